//! The files every process handle keeps: its temp dir, and the tail of its
//! log for error messages.

use crate::error::{ClusterError, io_err};
use std::path::Path;

/// A fresh temp dir `PREFIXxxxxxx` under `base` (default: the system temp
/// dir), readable by others: nginx's workers may run as another user.
pub(crate) fn temp_dir(
    base: Option<&Path>,
    prefix: &str,
) -> Result<tempfile::TempDir, ClusterError> {
    use std::os::unix::fs::PermissionsExt;
    let mut b = tempfile::Builder::new();
    b.prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o755));
    match base {
        Some(base) => b.tempdir_in(base),
        None => b.tempdir(),
    }
    .map_err(io_err(format!(
        "create a temp dir in {}",
        base.map_or_else(std::env::temp_dir, Path::to_path_buf)
            .display()
    )))
}

/// The last lines of a log file (at most 20 lines, 4 KiB), for error messages.
pub fn log_tail(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| tail_text(&b))
        .unwrap_or_default()
}

/// The last lines of `bytes` (at most 20 lines, 4 KiB), indented for messages.
pub(crate) fn tail_text(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(4096);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(20);
    lines[from..]
        .iter()
        .map(|l| format!("  | {l}\n"))
        .collect::<String>()
        .trim_end()
        .to_string()
}
