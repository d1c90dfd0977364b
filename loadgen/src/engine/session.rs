//! What the sender and the receiver of one connected session share, and the
//! waits they both use.

use crate::engine::closing::Entered;
use crate::engine::ctx::RunCtx;
use crate::engine::pacer;
use crate::engine::pending::ConnState;
use crate::net::connect::WsWrite;
use fastwebsockets::Frame;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often a sleeping sender wakes to notice ramp-down or Ctrl-C.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);
/// Time allowed for our close frame to leave.
pub const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why a connection's session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Loadgen ended it: the run, a ramp-down or Ctrl-C.
    Finished,
    /// The server or the network ended it.
    Dropped,
}

/// One connected session of a slot, as its sender and receiver see it.
pub struct Session<'a> {
    pub ctx: &'a RunCtx,
    /// The slot's number in this process.
    pub local: u64,
    /// The slot's number in the whole run (session ids, chat message ids).
    pub global: u64,
    /// The write half; the receiver also writes (pongs, close replies).
    pub tx: tokio::sync::Mutex<WsWrite>,
    pub state: Mutex<ConnState>,
    /// Woken when a reply completes a message (closed loop, drain).
    pub replied: Notify,
    /// Counted among the sessions that close together when sending ends.
    pub closing: Entered<'a>,
}

impl Session<'_> {
    /// Write a frame on a rare path (a pong, a close, a keep-alive answer),
    /// within `limit`. Boxed: each inline write future (fastwebsockets'
    /// `write_frame` and the lock) would otherwise be part of every
    /// connection's task for its whole life; only the paced send keeps one.
    pub async fn write_rare(
        &self,
        frame: Frame<'_>,
        limit: Option<Duration>,
    ) -> Result<(), String> {
        let write = async {
            let mut w = self.tx.lock().await;
            w.write_frame(frame).await.map_err(|e| e.to_string())
        };
        match limit {
            None => Box::pin(write).await,
            Some(d) => Box::pin(tokio::time::timeout(d, write))
                .await
                .unwrap_or_else(|_| Err(format!("no progress in {d:?}"))),
        }
    }
}

/// Sleep until `until`, waking regularly to notice a stop; true if stopped.
pub async fn sleep_checking(ctx: &RunCtx, local: u64, until: Instant) -> bool {
    loop {
        if ctx.slot_stopped(local) {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        pacer::sleep_until(until.min(now + CHECK_EVERY)).await;
    }
}
