//! [`ClusterError`]: everything that can go wrong starting, probing or
//! stopping the cluster's processes, one variant per thing a caller (or the
//! `wscluster` exit code) tells apart.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{program} not found: install it (scripts/test.sh installs redis-server and nginx)")]
    NotInstalled { program: &'static str },
    #[error("{program} not found at {}: check the path", path.display())]
    ProgramNotFound {
        program: &'static str,
        path: PathBuf,
    },
    #[error(
        "wsnode not found at {}: {}",
        path.display(),
        if *given { "check the path" } else { "build it next to wscluster (`cargo build -p server --bin wsnode`), or name it with --wsnode PATH or WSBENCH_WSNODE" }
    )]
    WsnodeNotFound {
        path: PathBuf,
        /// Named by the user (`--wsnode`, `WSBENCH_WSNODE`), not the default.
        given: bool,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} did not become ready within {secs} s: {detail}")]
    NotReady {
        what: String,
        secs: u64,
        detail: String,
    },
    #[error("{what} exited ({status}) before it became ready{}", fmt_log(log))]
    Exited {
        what: String,
        status: String,
        /// The last lines of its log, which usually say why.
        log: String,
    },
    #[error("port {port} for {what} is busy: free it, or choose another with {option}")]
    PortBusy {
        what: String,
        port: u16,
        option: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("interrupted")]
    Cancelled,
}

fn fmt_log(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("; its log ends with:\n{log}")
    }
}

/// Wrap an `io::Error` with what was being done.
pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}
