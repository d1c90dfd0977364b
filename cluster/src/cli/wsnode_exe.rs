//! Where `wscluster up` finds the wsnode executable it starts the nodes from.
//!
//! wscluster and wsnode are separate programs (the node does not link the
//! tooling that deploys it), and cargo builds both into the same directory,
//! so the default is `wsnode` next to wscluster's own executable;
//! `--wsnode PATH` (or `WSBENCH_WSNODE`) names another.

use crate::error::ClusterError;
use std::path::{Path, PathBuf};

/// The wsnode to run: `given` when set, else `wsnode` next to this executable.
/// Either must be an existing file.
pub fn find(given: Option<PathBuf>) -> Result<PathBuf, ClusterError> {
    let own = std::env::current_exe().map_err(crate::error::io_err("find this executable"))?;
    resolve(given, &own)
}

fn resolve(given: Option<PathBuf>, own_exe: &Path) -> Result<PathBuf, ClusterError> {
    let (path, given) = match given {
        Some(p) => (p, true),
        None => (own_exe.with_file_name("wsnode"), false),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(ClusterError::WsnodeNotFound { path, given })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_to_this_executable_unless_named() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("wscluster");
        let err = resolve(None, &own).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&dir.path().join("wsnode").display().to_string()),
            "{msg}"
        );
        assert!(
            msg.contains("--wsnode") && msg.contains("WSBENCH_WSNODE"),
            "{msg}"
        );

        std::fs::write(dir.path().join("wsnode"), "").unwrap();
        assert_eq!(resolve(None, &own).unwrap(), dir.path().join("wsnode"));

        let named = dir.path().join("my-node");
        assert!(
            resolve(Some(named.clone()), &own).is_err(),
            "a named one must exist"
        );
        std::fs::write(&named, "").unwrap();
        assert_eq!(resolve(Some(named.clone()), &own).unwrap(), named);
    }
}
