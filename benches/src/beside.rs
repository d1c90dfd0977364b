//! Finding a sibling binary (loadgen, wsnode, tcp_floor) next to the bench
//! binary that runs it: shared by `floor_compare` and `hostile`, which are
//! both built into `target/release/` with the programs they drive.

use std::path::PathBuf;

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
