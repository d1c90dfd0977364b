//! Finding the programs the cluster runs (nginx, redis-server, wsnode) and
//! checking a path the user gave before trying to run it.

use crate::error::ClusterError;
use std::path::{Path, PathBuf};

/// Find an executable on PATH or in the usual system directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(Into::into))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A program path given by the user must exist before we try to run it.
pub(crate) fn check_program(program: &'static str, path: &Path) -> Result<(), ClusterError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(ClusterError::ProgramNotFound {
            program,
            path: path.to_path_buf(),
        })
    }
}

/// The program to run as `name`: the path the user gave (which must exist),
/// else `name` found on PATH, else [`ClusterError::NotInstalled`].
pub(crate) fn given_or_found(
    given: Option<&Path>,
    name: &'static str,
) -> Result<PathBuf, ClusterError> {
    match given {
        Some(p) => check_program(name, p).map(|()| p.to_path_buf()),
        None => find_program(name).ok_or(ClusterError::NotInstalled { program: name }),
    }
}
