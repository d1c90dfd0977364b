//! `wscluster status`, `stop NAME`, `start NAME`: one member at a time, like
//! `docker ps`, `docker stop` and `docker start` in the seed's scenarios.

use super::args::{StartArgs, StateArg, StatusArgs, StopArgs};
use crate::error::ClusterError;
use crate::process::{self, Stopped};
use crate::state_file::{self, Condition};
use std::path::PathBuf;
use std::time::Duration;

/// The recorded state, or an error saying there is none.
fn recorded(s: &StateArg) -> Result<(PathBuf, state_file::ClusterState), ClusterError> {
    let path = s.path();
    match state_file::load(&path)? {
        Some(st) => Ok((path, st)),
        None => Err(ClusterError::Invalid(format!(
            "no local cluster recorded in {}: start one with `wscluster up`",
            path.display()
        ))),
    }
}

/// Indexes of the named members; an unknown name is an error listing the known ones.
fn select(st: &state_file::ClusterState, names: &[String]) -> Result<Vec<usize>, ClusterError> {
    names
        .iter()
        .map(|n| {
            st.members.iter().position(|m| &m.name == n).ok_or_else(|| {
                let known: Vec<&str> = st.members.iter().map(|m| m.name.as_str()).collect();
                ClusterError::Invalid(format!("no member {n:?}; members: {}", known.join(", ")))
            })
        })
        .collect()
}

pub fn stop(a: StopArgs) -> Result<i32, ClusterError> {
    let (_, st) = recorded(&a.state)?;
    let mut failed = false;
    for i in select(&st, &a.names)? {
        let m = &st.members[i];
        let how = if a.kill {
            if m.process.is_running() {
                process::sigkill(m.process.pid);
                if process::wait_until(Duration::from_secs(5), || !m.process.is_running()) {
                    Stopped::Killed
                } else {
                    Stopped::Stuck
                }
            } else {
                Stopped::AlreadyGone
            }
        } else {
            process::stop_recorded(&m.process, a.timeout)
        };
        match how {
            Stopped::AlreadyGone => println!("{}: was not running", m.name),
            Stopped::Terminated => println!("{}: stopped (pid {})", m.name, m.process.pid),
            Stopped::Killed => println!("{}: killed (pid {})", m.name, m.process.pid),
            Stopped::Stuck => {
                eprintln!("{}: pid {} is still running", m.name, m.process.pid);
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

pub fn start(a: StartArgs) -> Result<i32, ClusterError> {
    let (path, mut st) = recorded(&a.state)?;
    let picked = select(&st, &a.names)?;
    process::cancel_on_interrupt();
    let mut result = Ok(0);
    for i in picked {
        let m = &mut st.members[i];
        match m.start(a.ready_timeout) {
            Ok(()) => println!("{}: started (pid {}) {}", m.name, m.process.pid, m.url),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // Record whatever did start, even if a later one failed.
    state_file::save(&path, &st)?;
    result
}

pub fn status(a: StatusArgs) -> Result<i32, ClusterError> {
    let path = a.state.path();
    let Some(st) = state_file::load(&path)? else {
        if a.json {
            println!("{}", serde_json::json!({ "running": false, "members": [] }));
        } else {
            println!("no local cluster recorded in {}", path.display());
        }
        return Ok(1);
    };
    let conditions: Vec<Condition> = std::thread::scope(|s| {
        let handles: Vec<_> = st
            .members
            .iter()
            .map(|m| s.spawn(move || m.condition()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or(Condition::Unhealthy("check panicked".into()))
            })
            .collect()
    });
    let all_ok = conditions.iter().all(|c| *c == Condition::Healthy);
    if a.json {
        let members: Vec<serde_json::Value> = st
            .members
            .iter()
            .zip(&conditions)
            .map(|(m, c)| {
                let (state, detail) = describe(c);
                serde_json::json!({
                    "name": m.name, "role": m.role, "pid": m.process.pid, "port": m.port,
                    "url": m.url, "log": m.log, "state": state, "detail": detail,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "running": all_ok, "state_file": path, "balance": st.balance, "members": members })
        );
    } else {
        println!(
            "{:<7} {:<8} {:<10} {:<24} DETAIL",
            "NAME", "PID", "STATE", "URL"
        );
        for (m, c) in st.members.iter().zip(&conditions) {
            let (state, detail) = describe(c);
            println!(
                "{:<7} {:<8} {:<10} {:<24} {detail}",
                m.name, m.process.pid, state, m.url
            );
        }
        println!("balance {}; state {}", st.balance, path.display());
    }
    Ok(if all_ok { 0 } else { 1 })
}

fn describe(c: &Condition) -> (&'static str, String) {
    match c {
        Condition::Healthy => ("healthy", String::new()),
        Condition::Unhealthy(d) => ("unhealthy", d.clone()),
        Condition::Down => ("down", "not running".into()),
        Condition::Replaced(cmd) => ("down", format!("pid reused by: {cmd}")),
    }
}
