//! Processes by pid: identity from `/proc`, signals, bounded stops.
//!
//! `wscluster down` runs in a later process than the one that started
//! the cluster, so it only has pids. A pid can be reused by an unrelated
//! process once ours exits; before signalling anything we check that the pid
//! still has the start time and command line we recorded. The handles that
//! own a [`Child`] use the same bounded stop (SIGTERM, a timeout, SIGKILL).

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by `wscluster up`'s SIGINT/SIGTERM handler; every wait in this
/// crate gives up (and the caller cleans up) once it is set.
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Ask every wait in progress to give up (async-signal-safe: one atomic store).
pub fn request_cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// Whether [`request_cancel`] was called.
pub fn cancel_requested() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

extern "C" fn on_signal(_: libc::c_int) {
    request_cancel();
}

/// While `up` starts things, Ctrl-C (or SIGTERM) must clean up rather than
/// kill us and orphan half a cluster: the handler only sets a flag that
/// every wait checks.
pub fn cancel_on_interrupt() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only performs an atomic store, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// What identifies one process over its lifetime: pid reuse changes the start time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`: clock ticks after boot when it started.
    pub start_time: u64,
    /// `/proc/PID/cmdline` split at NULs (nginx and redis-server retitle
    /// themselves, so this is read after start-up, not taken from our argv).
    pub cmdline: Vec<String>,
}

impl ProcessId {
    /// The live, non-zombie process with this pid, if any.
    pub fn of(pid: u32) -> Option<ProcessId> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields = stat_fields(&stat)?;
        // fields[0] is the state (field 3); fields[19] is starttime (field 22).
        if matches!(fields.first().copied(), Some("Z" | "X" | "x")) {
            return None;
        }
        let start_time = fields.get(19)?.parse().ok()?;
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        Some(ProcessId {
            pid,
            start_time,
            cmdline,
        })
    }

    /// Whether this very process is still running (same pid, start time and command line).
    pub fn is_running(&self) -> bool {
        ProcessId::of(self.pid).as_ref() == Some(self)
    }

    /// The command line as one string, for messages.
    pub fn command(&self) -> String {
        self.cmdline.join(" ")
    }
}

/// Fields after the `(comm)` of a `/proc/PID/stat` line (comm may hold spaces and parens).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// Parent pid of `pid`, if it is running.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat)?.get(1)?.parse().ok()
}

/// Live children of `pid` (nginx's workers, which outlive a SIGKILLed master).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| parent_of(p) == Some(pid) && ProcessId::of(p).is_some())
        .collect()
}

/// Pids of live processes whose working directory is inside `dir`: every
/// process of a cluster runs in its own temp dir, so this finds leftovers.
pub fn processes_in(dir: &Path) -> Vec<ProcessId> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .filter_map(ProcessId::of)
        .collect()
}

/// Send `sig` to `pid`; false when there is no such process.
pub fn signal(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; pid > 0 targets one process.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// SIGKILL `pid` (tests crash a recorded process with it); false when there is no such process.
pub fn sigkill(pid: u32) -> bool {
    signal(pid, libc::SIGKILL)
}

/// How a process stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running any more.
    AlreadyGone,
    /// It exited after SIGTERM.
    Terminated,
    /// It ignored SIGTERM for the whole timeout and was SIGKILLed.
    Killed,
    /// Still there even after SIGKILL (should not happen; reported, not hidden).
    Stuck,
}

/// Stop a process we did not spawn (it was recorded by an earlier `wscluster up`):
/// SIGTERM, wait up to `timeout`, then SIGKILL and wait up to 5 s more.
/// Does nothing unless `id` is still running.
pub fn stop_recorded(id: &ProcessId, timeout: Duration) -> Stopped {
    if !id.is_running() {
        return Stopped::AlreadyGone;
    }
    let children = children_of(id.pid);
    signal(id.pid, libc::SIGTERM);
    if wait_until(timeout, || !id.is_running()) {
        reap_orphans(&children);
        return Stopped::Terminated;
    }
    // Recheck right before SIGKILL: the pid must still be ours.
    if id.is_running() {
        signal(id.pid, libc::SIGKILL);
    }
    let gone = wait_until(Duration::from_secs(5), || !id.is_running());
    reap_orphans(&children);
    if gone {
        Stopped::Killed
    } else {
        Stopped::Stuck
    }
}

/// SIGKILL children that outlived their parent (only those still running
/// with the identity they had when we listed them).
fn reap_orphans(children: &[u32]) {
    let ids: Vec<ProcessId> = children.iter().filter_map(|&p| ProcessId::of(p)).collect();
    for id in &ids {
        signal(id.pid, libc::SIGKILL);
    }
    wait_until(Duration::from_secs(5), || {
        ids.iter().all(|i| !i.is_running())
    });
}

/// Stop a child we own: SIGTERM, wait up to `timeout`, then SIGKILL. Also
/// kills any children it left behind. Returns its exit status when known.
pub fn stop_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let children = children_of(child.id());
    signal(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                break child.wait().ok();
            }
        }
    };
    reap_orphans(&children);
    status
}

/// SIGKILL a child we own and reap it (and any children it left behind).
pub fn kill_child(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let children = children_of(child.id());
    let _ = child.kill();
    let status = child.wait().ok();
    reap_orphans(&children);
    status
}

/// Poll `done` every 20 ms for up to `timeout`; true once it holds.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn identity_of_self_and_of_a_gone_child() {
        let me = ProcessId::of(std::process::id()).expect("own /proc entry");
        assert!(me.is_running());
        assert!(!me.cmdline.is_empty());

        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        // Right after exec the new command line can take a moment to appear.
        let mut id = None;
        wait_until(Duration::from_secs(5), || {
            id = ProcessId::of(child.id()).filter(|i| !i.cmdline.is_empty());
            id.is_some()
        });
        let id = id.expect("sleep's /proc entry");
        assert_eq!(id.cmdline, ["sleep", "30"]);
        assert!(id.is_running());
        // A different start time is a different process, even with the same pid.
        let other = ProcessId {
            start_time: id.start_time + 1,
            ..id.clone()
        };
        assert!(!other.is_running());
        assert_eq!(
            stop_recorded(&other, Duration::from_secs(1)),
            Stopped::AlreadyGone
        );
        assert!(
            id.is_running(),
            "an impostor identity must not stop the real one"
        );
        // Not reaped yet: a zombie counts as gone.
        assert_eq!(
            stop_recorded(&id, Duration::from_secs(5)),
            Stopped::Terminated
        );
        assert!(!id.is_running());
        let _ = child.wait();
    }

    #[test]
    fn stop_child_escalates_to_sigkill() {
        // A shell that ignores SIGTERM.
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 30 & wait; sleep 30"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let grandchildren = children_of(child.id());
        let status = stop_child(&mut child, Duration::from_millis(300)).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        for p in grandchildren {
            assert!(
                wait_until(Duration::from_secs(5), || ProcessId::of(p).is_none()),
                "orphan {p} left behind"
            );
        }
    }
}
