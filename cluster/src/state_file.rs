//! The state file `wscluster up` leaves for `down` and `status`.
//!
//! `up` returns while its processes keep running, so a later command needs
//! their pids, ports and dirs. Each process is recorded with its start time
//! and command line ([`ProcessId`](crate::process::ProcessId)): `down`
//! signals a pid only while it is still that very process, never whatever
//! reused the number.

use crate::error::{ClusterError, io_err};
pub use crate::member::{Condition, Member, Role};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Bumped when the format changes incompatibly.
pub const VERSION: u32 = 1;

/// Everything one `wscluster up` started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    pub version: u32,
    /// Seconds since the Unix epoch when `up` finished.
    pub created_unix: u64,
    /// `ip-hash`, `consistent-hash` or `round-robin`.
    pub balance: String,
    /// In start order: redis (if any), the nodes, nginx.
    pub members: Vec<Member>,
}

/// Where the state lives unless `--state` says otherwise:
/// `$XDG_RUNTIME_DIR/wsbench-cluster/state.json`, or
/// `/tmp/wsbench-cluster-UID/state.json` without a runtime dir.
pub fn default_path() -> PathBuf {
    let run = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    if let Some(run) = run.filter(|r| r.is_absolute() && r.is_dir()) {
        return run.join("wsbench-cluster").join("state.json");
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    std::env::temp_dir()
        .join(format!("wsbench-cluster-{uid}"))
        .join("state.json")
}

/// Read the state; `Ok(None)` when there is no file.
pub fn load(path: &Path) -> Result<Option<ClusterState>, ClusterError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(format!("read {}", path.display()))(e)),
    };
    let state: ClusterState = serde_json::from_str(&text).map_err(|e| {
        ClusterError::Invalid(format!(
            "{} is not a wsbench cluster state file ({e}); remove it if nothing of it runs",
            path.display()
        ))
    })?;
    if state.version != VERSION {
        return Err(ClusterError::Invalid(format!(
            "{} has format version {}, this wscluster understands {VERSION}",
            path.display(),
            state.version
        )));
    }
    Ok(Some(state))
}

/// Write the state atomically (temp file, then rename), creating its
/// directory private to this user.
pub fn save(path: &Path, state: &ClusterState) -> Result<(), ClusterError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    ensure_private_dir(dir)?;
    let text = serde_json::to_string_pretty(state)
        .map_err(|e| ClusterError::Invalid(format!("serialize state: {e}")))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(io_err(format!("create a file in {}", dir.display())))?;
    use std::io::Write;
    tmp.write_all(text.as_bytes())
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(io_err(format!("write {}", tmp.path().display())))?;
    tmp.persist(path)
        .map_err(|e| io_err(format!("write {}", path.display()))(e.error))?;
    Ok(())
}

/// Remove the state file (and the default state directory when that is empty).
pub fn remove(path: &Path) -> Result<(), ClusterError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("remove {}", path.display()))(e)),
    }
    // The default dir (`wsbench-cluster*`) goes when empty; a dir the user chose stays.
    if let Some(dir) = path.parent().filter(|d| {
        d.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("wsbench-cluster"))
    }) {
        let _ = std::fs::remove_dir(dir); // only succeeds when empty
    }
    Ok(())
}

/// Create `dir` (mode 0700) if missing. Our own default dir
/// (`wsbench-cluster*`, in a /tmp writable by all) must be a real directory
/// owned by this user, or someone else could have planted it.
fn ensure_private_dir(dir: &Path) -> Result<(), ClusterError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let ours = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("wsbench-cluster"));
    match std::fs::metadata(dir) {
        Ok(meta) => {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let uid = unsafe { libc::geteuid() };
            let link = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
            if !meta.is_dir() || (ours && (link || meta.uid() != uid)) {
                return Err(ClusterError::Invalid(format!(
                    "{} is not a directory owned by this user: choose another --state",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(format!("create {}", dir.display()))),
    }
}

/// Remove a member's temp dir, but only one that looks like ours
/// (`wsbench-*`, a real directory): a hand-edited state file must not make
/// `down` delete anything else.
pub fn remove_member_dir(dir: &Path) -> Result<(), ClusterError> {
    let ours = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("wsbench-"));
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Ok(meta) if ours && meta.is_dir() => {
            std::fs::remove_dir_all(dir).map_err(io_err(format!("remove {}", dir.display())))
        }
        _ => Err(ClusterError::Invalid(format!(
            "{} does not look like a wsbench temp dir: left in place",
            dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::ProcessId;

    fn sample() -> ClusterState {
        ClusterState {
            version: VERSION,
            created_unix: 1,
            balance: "ip-hash".into(),
            members: vec![Member {
                name: "node1".into(),
                role: Role::Node,
                port: 8081,
                url: "http://127.0.0.1:8081".into(),
                process: ProcessId::of(std::process::id()).unwrap(),
                dir: "/tmp/wsbench-node1-x".into(),
                log: "/tmp/wsbench-node1-x/node.log".into(),
                argv: vec!["wsnode".into()],
                env: Vec::new(),
            }],
        }
    }

    #[test]
    fn save_load_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("wsbench-cluster-t").join("state.json");
        assert_eq!(load(&path).unwrap(), None);
        save(&path, &sample()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample()));
        remove(&path).unwrap();
        assert!(!path.exists() && !path.parent().unwrap().exists());
        remove(&path).unwrap();
        // A directory the user chose is left alone.
        let mine = tmp.path().join("mine").join("state.json");
        save(&mine, &sample()).unwrap();
        remove(&mine).unwrap();
        assert!(!mine.exists() && mine.parent().unwrap().exists());
    }

    #[test]
    fn a_planted_default_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("elsewhere");
        std::fs::create_dir(&real).unwrap();
        let planted = tmp.path().join("wsbench-cluster-p");
        std::os::unix::fs::symlink(&real, &planted).unwrap();
        let err = save(&planted.join("state.json"), &sample()).unwrap_err();
        assert!(err.to_string().contains("owned by this user"), "{err}");
        // A directory the user names is theirs to choose.
        save(&real.join("state.json"), &sample()).unwrap();
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state.json");
        std::fs::write(&path, "{not json").unwrap();
        assert!(
            load(&path)
                .unwrap_err()
                .to_string()
                .contains("not a wsbench")
        );
        let mut s = sample();
        s.version = 99;
        std::fs::write(&path, serde_json::to_string(&s).unwrap()).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("version 99"));
    }

    #[test]
    fn only_our_dirs_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let other = tmp.path().join("precious");
        std::fs::create_dir(&other).unwrap();
        assert!(remove_member_dir(&other).is_err());
        assert!(other.exists());
        let ours = tmp.path().join("wsbench-node1-abc");
        std::fs::create_dir(&ours).unwrap();
        std::fs::write(ours.join("node.log"), "x").unwrap();
        remove_member_dir(&ours).unwrap();
        assert!(!ours.exists());
        remove_member_dir(&ours).unwrap();
    }

    #[test]
    fn a_dead_member_is_down() {
        let mut s = sample();
        s.members[0].process.start_time += 1; // not this process any more
        assert!(matches!(s.members[0].condition(), Condition::Replaced(_)));
        s.members[0].process.pid = u32::MAX - 1;
        assert_eq!(s.members[0].condition(), Condition::Down);
    }
}
