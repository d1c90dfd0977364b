//! The embedded node: wsnode run from loadgen's own executable.
//!
//! Without `--url`, loadgen starts `<itself> __node --listen 127.0.0.1:0`
//! as a CHILD PROCESS, so the node's CPU and memory are measured apart from
//! loadgen's. The child prints its bound address on stdout and exits when
//! its stdin pipe closes, so it cannot outlive loadgen even if loadgen is
//! killed. Started with any other stdin, `loadgen __node ARGS` is wsnode
//! and runs until signalled (the cluster tests start it that way, as the
//! cluster harness's node program). The node itself is
//! [`server::embed::EmbeddedNode`], as in every other embedding.

use crate::error::Error;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// First line the child prints, followed by its address.
const READY: &str = "LOADGEN-NODE-LISTENING ";
/// Longest wait for the child to bind.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Stderr lines of the child kept to explain a failure.
const KEEP_LINES: usize = 20;

/// Run wsnode in this process (the hidden `__node` subcommand).
pub fn serve(args: Vec<String>) -> Result<u8, Error> {
    crate::limits::raise_nofile();
    let config = server::embed::config_from_args(args)
        .map_err(|e| Error::Node(format!("bad node option (--node-arg): {e}")))?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.threads {
        rt.worker_threads(n);
    }
    let rt = rt
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the node runtime", e))?;
    rt.block_on(async move {
        let node = server::embed::EmbeddedNode::start(config)
            .await
            .map_err(|e| Error::Node(e.to_string()))?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{READY}{}", node.addr());
        let _ = out.flush();
        drop(out);
        let stdin_closed = async {
            if !stdin_is_pipe() {
                // Started by something else (a cluster harness, a shell):
                // live until signalled, like wsnode.
                return std::future::pending().await;
            }
            let _ = tokio::task::spawn_blocking(|| {
                let mut buf = [0u8; 64];
                let mut stdin = std::io::stdin();
                while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            })
            .await;
        };
        tokio::select! {
            _ = stdin_closed => {}
            _ = server::shutdown_signal() => {}
        }
        node.stop().await;
        Ok::<(), Error>(())
    })?;
    Ok(0)
}

/// Whether stdin is a pipe: loadgen's own children get one, and its closing
/// means loadgen is gone.
fn stdin_is_pipe() -> bool {
    // SAFETY: fstat on fd 0 with a valid pointer to a local struct.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(0, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFIFO
    }
}

/// A running embedded node child.
pub struct NodeChild {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// Start the embedded node as a child of `exe` (default: this executable).
pub async fn spawn(exe: Option<&Path>, node_args: &[String]) -> Result<NodeChild, Error> {
    let exe: PathBuf = match exe {
        Some(p) => p.to_path_buf(),
        None => {
            std::env::current_exe().map_err(|e| Error::io("finding loadgen's own executable", e))?
        }
    };
    let mut child = Command::new(&exe)
        .arg("__node")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .args(node_args)
        .env(
            "RUST_LOG",
            std::env::var("LOADGEN_NODE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io(format!("starting the embedded node ({})", exe.display()), e))?;
    let pid = child.id().unwrap_or(0);
    let stderr = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(err) = child.stderr.take() {
        let keep = stderr.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let mut k = keep.lock().unwrap_or_else(|e| e.into_inner());
                if k.len() == KEEP_LINES {
                    k.pop_front();
                }
                k.push_back(l);
            }
        });
    }
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Node("no stdout pipe".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(START_TIMEOUT, async {
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(a) = l.strip_prefix(READY) {
                return a.trim().parse::<SocketAddr>().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    let Some(addr) = addr else {
        let _ = child.start_kill();
        let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let tail = stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(Error::Node(format!(
            "the embedded node did not start ({:?}){}{}",
            status.ok().and_then(Result::ok),
            if tail.is_empty() { "" } else { ":\n" },
            tail
        )));
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(NodeChild {
        child,
        addr,
        pid,
        stderr,
    })
}

impl NodeChild {
    /// Close its stdin (its shutdown signal), wait briefly, then kill it.
    pub async fn stop(mut self) -> Option<String> {
        drop(self.child.stdin.take());
        let exited = tokio::time::timeout(Duration::from_secs(8), self.child.wait()).await;
        if exited.is_err() {
            let _ = self.child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
            return Some("the embedded node did not exit in time and was killed".into());
        }
        None
    }

    /// The child's last stderr lines (for error reports).
    pub fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}
