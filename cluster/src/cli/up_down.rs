//! `wscluster up` and `down`: start the whole cluster and record it, stop
//! exactly what was recorded.
//!
//! `up` returns while its processes keep running, so it writes a state file
//! (see [`crate::state_file`]); `down` reads it, stops each recorded process
//! only while it still is that process, and removes the temp dirs.

use super::args::{DownArgs, StateArg, UpArgs};
use super::wsnode_exe;
use crate::error::ClusterError;
use crate::local::{ClusterOptions, LocalCluster};
use crate::nginx::Balance;
use crate::node::NodeProgram;
use crate::ports::PortChoice;
use crate::process::{self, Stopped};
use crate::state_file::{self, Member, Role};
use std::path::PathBuf;
use std::time::Duration;

pub fn up(a: UpArgs) -> Result<i32, ClusterError> {
    let path = a.state.path();
    let choose = |given: Option<u16>, preferred: u16| match given {
        Some(0) => PortChoice::Any,
        Some(p) => PortChoice::Fixed(p),
        None => PortChoice::Prefer(preferred),
    };
    let mut opts = ClusterOptions {
        nodes: usize::from(a.nodes),
        redis: !a.no_redis,
        redis_port: choose(a.redis_port, 6379),
        node_port: choose(a.node_port, 8081),
        nginx_port: choose(a.nginx_port, 8080),
        balance: a.balance,
        node_args: a.node_args,
        base_dir: a.dir,
        ready_timeout: a.ready_timeout,
        worker_connections: a.worker_connections,
        nginx_program: a.nginx,
        redis_program: a.redis_server,
        process_group: true,
        // The program is found once the options are known to be sound (below).
        ..ClusterOptions::new(PathBuf::new())
    };
    opts.validate()?;
    if let Some(base) = opts.base_dir.as_ref().filter(|b| !b.is_dir()) {
        return Err(ClusterError::Invalid(format!(
            "--dir {}: no such directory",
            base.display()
        )));
    }
    // The options are sound: now the program they run must exist.
    opts.node_program = NodeProgram::new(wsnode_exe::find(a.wsnode)?);
    // A recorded cluster that still runs is the likeliest reason for busy ports: say so first.
    clear_stale_state(&path)?;
    opts.preflight()?;

    process::cancel_on_interrupt();
    eprintln!(
        "starting {}{} node(s) and nginx...",
        if opts.redis { "redis-server, " } else { "" },
        opts.nodes
    );
    let cluster = LocalCluster::start(opts.clone())?;
    let notes = cluster.notes().to_vec();
    let nginx_port = cluster.nginx().port();
    let st = cluster.detach()?;
    if let Err(e) = state_file::save(&path, &st) {
        // Without a state file nobody could stop them later: stop them now.
        for m in st.members.iter().rev() {
            process::stop_recorded(&m.process, Duration::from_secs(5));
            let _ = state_file::remove_member_dir(&m.dir);
        }
        return Err(e);
    }

    println!("wsbench local cluster is up:");
    // Entry point first, then the nodes in order, then Redis.
    let order = [Role::Nginx, Role::Node, Role::Redis];
    let members = order
        .iter()
        .flat_map(|r| st.members.iter().filter(move |m| m.role == *r));
    for m in members {
        println!(
            "  {:<7} {:<24} pid {:<7} log {}",
            m.name,
            m.url,
            m.process.pid,
            m.log.display()
        );
    }
    println!("  WebSocket: ws://127.0.0.1:{nginx_port}/ws/chat?session_id=demo");
    println!("  balance:   {}", opts.balance.name());
    for n in &notes {
        println!("  note: {n}");
    }
    if opts.balance == Balance::IpHash {
        println!(
            "  note: ip-hash sends every 127.0.0.x client to one node; `--balance consistent-hash` spreads clients with different source addresses"
        );
    }
    if !opts.redis {
        println!("  note: --no-redis: the nodes share no sessions or streams");
    }
    println!("  state:     {}", path.display());
    println!("stop it with: wscluster down{}", state_flag(&a.state));
    Ok(0)
}

fn state_flag(s: &StateArg) -> String {
    s.state
        .as_ref()
        .map(|p| format!(" --state {}", p.display()))
        .unwrap_or_default()
}

/// A state file left by a cluster that is gone (machine reboot, processes
/// killed by hand) is removed with its dirs; one with live processes blocks `up`.
fn clear_stale_state(path: &std::path::Path) -> Result<(), ClusterError> {
    let Some(old) = state_file::load(path)? else {
        return Ok(());
    };
    let alive: Vec<String> = old
        .members
        .iter()
        .filter(|m| m.process.is_running())
        .map(|m| format!("{} (pid {})", m.name, m.process.pid))
        .collect();
    if !alive.is_empty() {
        return Err(ClusterError::Invalid(format!(
            "a cluster recorded in {} is still running: {}; run `wscluster down` first, or use another --state",
            path.display(),
            alive.join(", ")
        )));
    }
    for m in &old.members {
        let _ = state_file::remove_member_dir(&m.dir);
    }
    state_file::remove(path)?;
    eprintln!("note: removed a stale state file {}", path.display());
    Ok(())
}

pub fn down(a: DownArgs) -> Result<i32, ClusterError> {
    let path = a.state.path();
    let Some(st) = state_file::load(&path)? else {
        println!(
            "no local cluster recorded in {}: nothing to stop",
            path.display()
        );
        return Ok(0);
    };
    let timeout = a.timeout;
    let mut failed = false;
    // nginx first (no new clients), then the nodes together, then Redis.
    for role in [Role::Nginx, Role::Node, Role::Redis] {
        let group: Vec<&Member> = st.members.iter().filter(|m| m.role == role).collect();
        let results: Vec<(&Member, Stopped, Option<String>)> = std::thread::scope(|s| {
            let handles: Vec<_> = group
                .iter()
                .map(|m| {
                    s.spawn(move || {
                        let other = (!m.process.is_running())
                            .then(|| process::ProcessId::of(m.process.pid))
                            .flatten()
                            .map(|p| p.command());
                        (*m, process::stop_recorded(&m.process, timeout), other)
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(&group)
                .map(|(h, m)| {
                    h.join()
                        .unwrap_or((*m, Stopped::Stuck, Some("stop thread panicked".into())))
                })
                .collect()
        });
        for (m, how, other) in results {
            let pid = m.process.pid;
            match (how, other) {
                (Stopped::AlreadyGone, Some(cmd)) => println!(
                    "{}: pid {pid} now belongs to another process ({cmd}); left alone",
                    m.name
                ),
                (Stopped::AlreadyGone, None) => println!("{}: was not running", m.name),
                (Stopped::Terminated, _) => println!("{}: stopped (pid {pid})", m.name),
                (Stopped::Killed, _) => println!(
                    "{}: killed (pid {pid} ignored SIGTERM for {})",
                    m.name,
                    humantime::format_duration(timeout)
                ),
                (Stopped::Stuck, _) => {
                    eprintln!("{}: pid {pid} is still running after SIGKILL", m.name);
                    failed = true;
                }
            }
        }
    }
    if failed {
        eprintln!(
            "wscluster: not everything stopped; {} kept so `down` can be run again",
            path.display()
        );
        return Ok(1);
    }
    for m in &st.members {
        if let Err(e) = state_file::remove_member_dir(&m.dir) {
            eprintln!("{}: {e}", m.name);
        }
    }
    state_file::remove(&path)?;
    println!("local cluster stopped");
    Ok(0)
}
