//! What can go wrong while starting the control plane.

use std::path::PathBuf;

/// Why the control plane could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A binary the harness needs is not in the binaries directory.
    #[error(
        "{binary} is missing from {dir}: build the test binaries with `{command}` and set \
         JOBIFY_TESTBINS to the directory it prints"
    )]
    MissingBinary {
        /// The binary's file name.
        binary: String,
        /// The directory searched.
        dir: PathBuf,
        /// The command that builds it.
        command: &'static str,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A helper command (`openssl`) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A control-plane process exited while it should have been running.
    #[error("{name} exited with {status}; its log is {log} (last lines below)\n{tail}")]
    Exited {
        /// The process (`etcd`, `kube-apiserver`, ...).
        name: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// Something did not happen in time.
    #[error("{what} did not happen within {seconds} s; the control plane's logs are in {logs}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        seconds: u64,
        /// The directory of the process logs.
        logs: PathBuf,
    },
    /// The kubeconfig could not be loaded.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The kubeconfig's path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// A request to the API server failed.
    #[error("{what}: {source}")]
    Kube {
        /// What the harness was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    pub(crate) fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let what = what.into();
        move |source| Error::Kube { what, source }
    }
}
