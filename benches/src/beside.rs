//! Finding a sibling binary (loadgen, wsnode, tcp_floor) next to the bench
//! binary that runs it, and running loadgen for its `--json` report: shared
//! by `floor_compare` and `hostile`, which are both built into
//! `target/release/` with the programs they drive.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `name` in this program's directory, or an error saying how to build it.
pub fn beside(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = exe.with_file_name(name);
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found (cargo build --release -p server -p loadgen -p wsbench-benches --bins)",
            p.display()
        ))
    }
}

/// Run loadgen with `args` plus `--quiet --json json`, and read the report.
/// Exit 1 (a graded miss) is still a measurement; any other failure is an
/// error with loadgen's stderr.
pub fn loadgen_report<I, S>(bin: &Path, args: I, json: &Path) -> Result<serde_json::Value, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(bin)
        .args(args)
        .arg("--quiet")
        .arg("--json")
        .arg(json)
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if !matches!(out.status.code(), Some(0 | 1)) {
        return Err(format!(
            "loadgen failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = std::fs::read_to_string(json).map_err(|e| format!("{}: {e}", json.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))
}
