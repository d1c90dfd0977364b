//! Stopping and starting a node or Redis: the local cluster's own process
//! control, or the user's shell commands against a deployment.
//!
//! A fault the set-up cannot inject is a [`Stop::Skip`] with the option
//! that is missing, so the scenario is SKIPPED, never passed untested.

use crate::scenario::evidence::Stop;
use cluster::LocalCluster;
use std::process::Command;
use std::time::{Duration, Instant};

/// Longest a fault command may run before it is killed (and the scenario fails).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The user's fault commands (`{n}` is the 1-based node number).
#[derive(Debug, Clone, Default)]
pub struct Commands {
    pub stop_node: Option<String>,
    pub start_node: Option<String>,
    pub stop_redis: Option<String>,
    pub start_redis: Option<String>,
    pub reload_balancer: Option<String>,
}

pub enum Control {
    Local(Box<LocalCluster>),
    External(Commands),
}

impl Control {
    /// Whether node `i` (0-based) can be stopped and started again.
    pub fn can_restart_node(&self) -> Result<(), Stop> {
        match self {
            Control::Local(_) => Ok(()),
            Control::External(c) => {
                need(&c.stop_node, "--stop-node-cmd")?;
                need(&c.start_node, "--start-node-cmd").map(|_| ())
            }
        }
    }

    /// Whether Redis can be stopped and started again.
    pub fn can_restart_redis(&self) -> Result<(), Stop> {
        match self {
            Control::Local(c) if c.redis().is_none() => Err(no_redis()),
            Control::Local(_) => Ok(()),
            Control::External(c) => {
                need(&c.stop_redis, "--stop-redis-cmd")?;
                need(&c.start_redis, "--start-redis-cmd").map(|_| ())
            }
        }
    }

    /// Whether the balancer's configuration can be reloaded.
    pub fn can_reload_balancer(&self) -> Result<(), Stop> {
        match self {
            Control::Local(_) => Ok(()),
            Control::External(c) => need(&c.reload_balancer, "--reload-balancer-cmd").map(|_| ()),
        }
    }

    /// Reload the balancer: SIGHUP to the local nginx, or the user's command.
    pub fn reload_balancer(&mut self) -> Result<String, Stop> {
        match self {
            Control::Local(c) => {
                if c.nginx().reload() {
                    Ok(format!(
                        "SIGHUP to nginx (pid {:?}): reload",
                        c.nginx().pid()
                    ))
                } else {
                    Err(Stop::Abort("nginx is not running: cannot reload it".into()))
                }
            }
            Control::External(c) => shell(need(&c.reload_balancer, "--reload-balancer-cmd")?, None),
        }
    }

    /// Stop node `i` (0-based) the way `docker stop` does: SIGTERM, then
    /// SIGKILL if it does not exit; with `crash`, SIGKILL at once (local
    /// only: a deployment's command decides).
    pub fn stop_node(&mut self, i: usize, crash: bool) -> Result<String, Stop> {
        match self {
            Control::Local(c) => {
                let pid = c.node(i).pid();
                let signal = if crash {
                    c.node_mut(i).kill();
                    "SIGKILL (a crash)"
                } else {
                    c.node_mut(i).terminate();
                    "SIGTERM"
                };
                Ok(format!("{signal} to node{} (pid {pid:?})", i + 1))
            }
            Control::External(c) => shell(need(&c.stop_node, "--stop-node-cmd")?, Some(i)),
        }
    }

    pub fn start_node(&mut self, i: usize) -> Result<String, Stop> {
        match self {
            Control::Local(c) => {
                c.node_mut(i)
                    .restart()
                    .map_err(|e| Stop::Abort(format!("restarting node{}: {e}", i + 1)))?;
                Ok(format!(
                    "node{} started again (pid {:?})",
                    i + 1,
                    c.node(i).pid()
                ))
            }
            Control::External(c) => shell(need(&c.start_node, "--start-node-cmd")?, Some(i)),
        }
    }

    pub fn stop_redis(&mut self) -> Result<String, Stop> {
        match self {
            Control::Local(c) => {
                let r = local_redis(c)?;
                r.stop();
                Ok(format!("redis-server on port {} killed", r.port()))
            }
            Control::External(c) => shell(need(&c.stop_redis, "--stop-redis-cmd")?, None),
        }
    }

    pub fn start_redis(&mut self) -> Result<String, Stop> {
        match self {
            Control::Local(c) => {
                let r = local_redis(c)?;
                r.restart()
                    .map_err(|e| Stop::Abort(format!("restarting redis-server: {e}")))?;
                Ok(format!(
                    "redis-server started again on port {} (empty)",
                    r.port()
                ))
            }
            Control::External(c) => shell(need(&c.start_redis, "--start-redis-cmd")?, None),
        }
    }
}

fn no_redis() -> Stop {
    Stop::Skip("the local cluster runs without Redis".into())
}

fn local_redis(c: &mut LocalCluster) -> Result<&mut cluster::RedisServer, Stop> {
    c.redis_mut().ok_or_else(no_redis)
}

fn need<'a>(cmd: &'a Option<String>, option: &str) -> Result<&'a str, Stop> {
    cmd.as_deref()
        .ok_or_else(|| Stop::Skip(format!("{option} not given: this fault cannot be injected")))
}

/// Run `sh -c CMD` with `{n}` replaced, bounded by [`COMMAND_TIMEOUT`].
fn shell(cmd: &str, node: Option<usize>) -> Result<String, Stop> {
    let cmd = match node {
        Some(i) => cmd.replace("{n}", &(i + 1).to_string()),
        None => cmd.to_string(),
    };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Stop::Abort(format!("running `{cmd}`: {e}")))?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(format!("ran `{cmd}`")),
            Ok(Some(status)) => return Err(Stop::Abort(format!("`{cmd}` failed: {status}"))),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Stop::Abort(format!(
                    "`{cmd}` still running after {COMMAND_TIMEOUT:?}: killed"
                )));
            }
            Err(e) => return Err(Stop::Abort(format!("waiting for `{cmd}`: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn external(stop_node: &str) -> Control {
        Control::External(Commands {
            stop_node: Some(stop_node.into()),
            ..Commands::default()
        })
    }

    #[test]
    fn commands_get_the_node_number_and_their_failures_abort() {
        // `{n}` is 1-based: node index 1 is node 2.
        assert!(external("test {n} = 2").stop_node(1, false).is_ok());
        assert!(matches!(
            external("test {n} = 2").stop_node(0, false),
            Err(Stop::Abort(_))
        ));
        assert!(
            matches!(external("exit 3").stop_node(0, false), Err(Stop::Abort(e)) if e.contains("failed"))
        );
    }

    #[test]
    fn a_missing_command_skips_and_names_the_option() {
        let c = external("true");
        assert!(
            c.can_restart_node()
                .is_err_and(|e| matches!(e, Stop::Skip(r) if r.contains("--start-node-cmd")))
        );
        assert!(
            c.can_restart_redis()
                .is_err_and(|e| matches!(e, Stop::Skip(r) if r.contains("--stop-redis-cmd")))
        );
        let mut c = external("true");
        assert!(matches!(c.start_redis(), Err(Stop::Skip(_))));
    }
}
