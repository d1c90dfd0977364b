//! A heartbeat on its own OS thread, with its own blocking connection.
//!
//! An agent at full load can starve its tokio runtime for seconds (that is
//! what a send lag measures); a heartbeat on that runtime would then
//! expire and the controller would give up a live agent. On its own thread
//! the beat only needs a time slice from the OS, so a missing heartbeat
//! means what it should: the process died, stopped, or lost Redis.

use crate::agents::keys::{ALIVE_TTL, BEAT};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest wait for one heartbeat command.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// A running heartbeat; stops when dropped.
pub struct Beat {
    stop: Arc<AtomicBool>,
    gone: Arc<Mutex<Option<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Beat {
    /// Every [`BEAT`], set `key` (expiring after [`ALIVE_TTL`]); with
    /// `watch`, also check that key (the other side's heartbeat) exists.
    pub fn start(url: &str, key: String, watch: Option<String>) -> Beat {
        let stop = Arc::new(AtomicBool::new(false));
        let gone = Arc::new(Mutex::new(None));
        let url = url.to_string();
        let (s, g) = (stop.clone(), gone.clone());
        let spawned = std::thread::Builder::new()
            .name("loadgen-beat".into())
            .spawn(move || beat(&url, &key, watch.as_deref(), &s, &g));
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                if let Ok(mut g) = gone.lock() {
                    *g = Some(format!("the heartbeat thread did not start: {e}"));
                }
                None
            }
        };
        Beat { stop, gone, thread }
    }

    /// Stop and wait for the thread (at most one command's timeout), so no
    /// beat lands after the caller deletes the key. Blocking.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Why the watched side (or Redis) is considered gone, once it is.
    pub fn gone(&self) -> Option<String> {
        self.gone.lock().ok().and_then(|g| g.clone())
    }
}

impl Drop for Beat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn beat(
    url: &str,
    key: &str,
    watch: Option<&str>,
    stop: &AtomicBool,
    gone: &Mutex<Option<String>>,
) {
    let client = match redis::Client::open(url) {
        Ok(c) => c,
        Err(e) => {
            if let Ok(mut g) = gone.lock() {
                *g = Some(format!("coordinator {url}: {e}"));
            }
            return;
        }
    };
    let mut conn: Option<redis::Connection> = None;
    let mut missing_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        if conn.is_none() {
            conn = client
                .get_connection_with_timeout(IO_TIMEOUT)
                .ok()
                .filter(|c| {
                    c.set_read_timeout(Some(IO_TIMEOUT)).is_ok()
                        && c.set_write_timeout(Some(IO_TIMEOUT)).is_ok()
                });
        }
        let seen = conn.as_mut().map(|c| {
            let mut p = redis::pipe();
            p.cmd("SET")
                .arg(key)
                .arg(1)
                .arg("PX")
                .arg(ALIVE_TTL.as_millis() as u64)
                .ignore();
            if let Some(w) = watch {
                p.cmd("EXISTS").arg(w);
            } else {
                p.cmd("PING");
            }
            p.query::<(redis::Value,)>(c)
        });
        let (reachable, there) = match seen {
            Some(Ok((redis::Value::Int(n),))) => (true, n > 0),
            Some(Ok(_)) => (true, true),
            Some(Err(_)) | None => {
                conn = None;
                (false, false)
            }
        };
        if there {
            missing_since = None;
        } else {
            let since = *missing_since.get_or_insert(started);
            if since.elapsed() > ALIVE_TTL
                && let Ok(mut g) = gone.lock()
                && g.is_none()
            {
                *g = Some(if reachable {
                    "the controller's heartbeat stopped".into()
                } else {
                    "the coordinator cannot be reached".into()
                });
            }
        }
        // Sleep out the beat in short steps, to stop soon when dropped.
        while started.elapsed() < BEAT && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
