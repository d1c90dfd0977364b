//! What the cluster tests share: the wsnode executable they start.
//!
//! The cluster crate runs wsnode as a program and does not link it, and
//! cargo only hands a test the binaries of its own package
//! (`CARGO_BIN_EXE_wscluster`, not wsnode). So the tests ask cargo for wsnode
//! the way a user would: `cargo build -p server --bin wsnode` with this
//! test's profile, which is a no-op when `cargo test --workspace` already
//! built it, and builds it when only `cargo test -p cluster` ran.
//! `WSBENCH_WSNODE=PATH` skips the build.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The wsnode executable for this test run (built on first use).
pub fn wsnode() -> &'static Path {
    static WSNODE: OnceLock<PathBuf> = OnceLock::new();
    WSNODE.get_or_init(|| {
        if let Some(p) = std::env::var_os("WSBENCH_WSNODE") {
            return PathBuf::from(p);
        }
        build_wsnode().unwrap_or_else(|e| panic!("{e}"))
    })
}

/// `cargo build -p server --bin wsnode` in this test's profile; the path
/// cargo reports for the executable.
fn build_wsnode() -> Result<PathBuf, String> {
    // target/<profile>/deps/<this test>: the profile is the dir above deps.
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("test executable outside a target dir")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(other) => other.to_string(),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args(["build", "-p", "server", "--bin", "wsnode", "--profile"])
        .arg(&profile)
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("run {}: {e}", Path::new(&cargo).display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let built = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "wsnode")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from));
    match built {
        Some(p) if out.status.success() => Ok(p),
        _ => {
            // Offline or otherwise unable to build: a wsnode next to this
            // test's target dir is the next best thing.
            let fallback = profile_dir.join("wsnode");
            if fallback.is_file() {
                Ok(fallback)
            } else {
                Err(format!(
                    "could not build wsnode ({}) and {} does not exist: run `cargo build -p server --bin wsnode`, or set WSBENCH_WSNODE",
                    out.status,
                    fallback.display()
                ))
            }
        }
    }
}
