//! The real `jobify` binary as a child process: where it is, starting it against the
//! simulators as in production (`jobify run -c` with `KUBECONFIG` and the token in the
//! environment), and what `/proc/<pid>/status` says about its memory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use jobify::simenv::{API_TOKEN, API_TOKEN_ENV, SimFiles};

/// The `jobify` binary: `explicit`, or the one next to this benchmark. Started by `cargo run`
/// (which builds only the benchmark), it first has cargo build `jobify` with the same profile,
/// so the binary measured is never older than the source.
pub(crate) fn locate(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    let bench = std::env::current_exe().context("cannot tell where jobify-bench runs from")?;
    let dir = bench
        .parent()
        .context("the benchmark executable has no parent directory")?;
    let jobify = dir.join(format!("jobify{}", std::env::consts::EXE_SUFFIX));
    if let Some(cargo) = std::env::var_os("CARGO") {
        build_with(&cargo)?;
    }
    if !jobify.is_file() {
        bail!(
            "no jobify binary at {}: build it with `cargo build -p jobify` (add `--release` \
             for figures) or pass --jobify PATH",
            jobify.display()
        );
    }
    Ok(jobify)
}

/// `cargo build -p jobify --bin jobify`, in this build's profile: the product binary, without
/// the `demo` feature this benchmark itself is built with.
fn build_with(cargo: &std::ffi::OsStr) -> anyhow::Result<()> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../jobify-bin/Cargo.toml");
    let mut command = std::process::Command::new(cargo);
    // `cargo run` gave this process the variables of its own package (CARGO_PKG_NAME,
    // CARGO_MANIFEST_DIR, ...). Build scripts such as ring's watch some of them, so passing
    // them on would make this build, and the next ordinary one, compile ring and everything
    // above it again.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let from_cargo_run = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
            || key == "CARGO_PRIMARY_PACKAGE"
            || key == "OUT_DIR";
        if from_cargo_run {
            command.env_remove(key.as_ref());
        }
    }
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--bin", "jobify"]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let status = command
        .status()
        .context("cannot run cargo to build the jobify binary")?;
    if !status.success() {
        bail!("`cargo build --bin jobify` failed ({status}); see its output above");
    }
    Ok(())
}

/// Memory of the child as the kernel counts it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Memory {
    /// `VmHWM`: the peak resident set so far, bytes.
    pub(crate) peak: u64,
    /// `VmRSS`: the resident set now, bytes.
    pub(crate) now: u64,
}

/// A running `jobify run`; killed when dropped, so a failed benchmark leaves no process behind.
pub(crate) struct Jobify {
    child: std::process::Child,
    pid: u32,
    log: PathBuf,
}

impl Jobify {
    /// Starts `binary run -c <config>` with the simulators' kubeconfig and API token, logging
    /// (warnings and up) to `log`.
    pub(crate) fn spawn(binary: &Path, files: &SimFiles, log: &Path) -> anyhow::Result<Jobify> {
        let out = std::fs::File::create(log)
            .with_context(|| format!("cannot create the log file {}", log.display()))?;
        let err = out.try_clone().context("cannot share the log file")?;
        let child = std::process::Command::new(binary)
            .arg("run")
            .arg("-c")
            .arg(&files.config)
            .env("KUBECONFIG", &files.kubeconfig)
            .env(API_TOKEN_ENV, API_TOKEN)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id();
        Ok(Jobify {
            child,
            pid,
            log: log.to_owned(),
        })
    }

    /// An error with the end of the child's log if it has exited.
    pub(crate) fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "jobify exited early ({status}); its log ({}) ends with:\n{}",
                self.log.display(),
                self.log_tail()
            ),
            Err(e) => Err(e).context("cannot query the jobify child's status"),
        }
    }

    /// `VmHWM` and `VmRSS` from `/proc/<pid>/status`.
    pub(crate) fn memory(&self) -> anyhow::Result<Memory> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {path} (Linux only)"))?;
        parse_status(&status).with_context(|| format!("{path} has no VmHWM/VmRSS lines"))
    }

    /// CPU time the child has used so far (user and system).
    pub(crate) fn cpu(&self) -> anyhow::Result<Duration> {
        cpu_of(&self.pid.to_string())
    }

    /// Kills the child and reaps it, so its memory and ports are released.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().context("cannot stop the jobify child")?;
        self.child.wait().context("cannot reap the jobify child")?;
        Ok(())
    }

    /// The last lines of the child's log.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Jobify {
    fn drop(&mut self) {
        // After `stop` the child is already reaped and this fails harmlessly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user and system) process `pid` (or `self`) has used so far, from
/// `/proc/<pid>/stat`.
pub(crate) fn cpu_of(pid: &str) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {path} (Linux only)"))?;
    parse_stat(&stat).with_context(|| format!("{path} has no utime/stime fields"))
}

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const USER_HZ: u64 = 100;

/// `utime + stime` of a `/proc/<pid>/stat` line. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted after its closing parenthesis.
fn parse_stat(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// `VmHWM` and `VmRSS` (kB in the file) as bytes.
fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kb: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
            Some(kb * 1024)
        })
    };
    Some(Memory {
        peak: field("VmHWM")?,
        now: field("VmRSS")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_gives_user_plus_system_time() {
        let stat = "42 (tokio (rt) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 9 1 1";
        assert_eq!(parse_stat(stat), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat("42 (x) S 1"), None);
    }

    #[test]
    fn status_lines_give_peak_and_current_resident_set_in_bytes() {
        let status = "Name:\tjobify\nVmPeak:\t  900 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        let memory = parse_status(status).expect("both lines");
        assert_eq!(memory.peak, 20 * 1024 * 1024);
        assert_eq!(memory.now, 10 * 1024 * 1024);
        assert!(parse_status("VmRSS:\t1 kB\n").is_none());
    }
}
