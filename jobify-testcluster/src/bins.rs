//! Finding the control-plane binaries built by `tools/k8s/build-testbins.sh`.

use std::path::{Path, PathBuf};

use crate::Error;

/// The environment variable naming the directory of the test binaries.
pub const TESTBINS_ENV: &str = "JOBIFY_TESTBINS";

/// The command that builds the binaries and runs the real-cluster tests.
pub const BUILD_COMMAND: &str = "tools/k8s/build-testbins.sh";

/// The full instruction printed when the binaries are missing.
pub const HOW_TO_BUILD: &str = "build them with `tools/k8s/build-testbins.sh` (from the \
    repository root; it prints the directory on its last line) and run the tests with \
    `JOBIFY_TESTBINS=$(tools/k8s/build-testbins.sh | tail -n1) cargo test ... -- --ignored`, \
    or run `tools/k8s/test-real-cluster.sh`, which does both";

/// Paths to the binaries the harness runs.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub kube_controller_manager: PathBuf,
    /// The directory they are in.
    pub dir: PathBuf,
}

impl Binaries {
    /// The binaries in `dir`; an error naming the build command if one is missing.
    pub fn in_dir(dir: &Path) -> Result<Self, Error> {
        let find = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::MissingBinary {
                    binary: name.to_owned(),
                    dir: dir.to_owned(),
                    command: BUILD_COMMAND,
                })
            }
        };
        Ok(Binaries {
            etcd: find("etcd")?,
            kube_apiserver: find("kube-apiserver")?,
            kube_controller_manager: find("kube-controller-manager")?,
            dir: dir.to_owned(),
        })
    }

    /// The binaries in the directory `JOBIFY_TESTBINS` names.
    ///
    /// # Panics
    ///
    /// When the variable is unset or the directory lacks a binary: the real-cluster tier
    /// never skips silently, it says how to build what it needs.
    pub fn from_env() -> Self {
        let Some(dir) = std::env::var_os(TESTBINS_ENV).filter(|d| !d.is_empty()) else {
            panic!(
                "{TESTBINS_ENV} is not set: the real-cluster tests need kube-apiserver, \
                 kube-controller-manager and etcd; {HOW_TO_BUILD}"
            );
        };
        match Binaries::in_dir(Path::new(&dir)) {
            Ok(bins) => bins,
            Err(e) => panic!(
                "{TESTBINS_ENV}={}: {e}; {HOW_TO_BUILD}",
                Path::new(&dir).display()
            ),
        }
    }
}
