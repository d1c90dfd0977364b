//! An epoll set that tokio's reactor watches: the base of the two event
//! loops of the workspace, wsnode's connection loops (`ws::steady`) and
//! loadgen's steady state (`loadgen/src/engine/steady`, which links this
//! crate).
//!
//! An epoll descriptor is itself pollable, so a loop can be an ordinary
//! tokio task: it waits on its set, and then takes every ready socket with
//! one `epoll_wait` that does not block. Handshakes and the rest of the
//! process keep running on the same runtime.

use mio::{Events, Poll, Registry};
use std::io;
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// A `mio::Poll` watched by tokio's reactor.
pub struct EpollSet {
    fd: AsyncFd<Poll>,
}

impl EpollSet {
    /// A new set, and a handle to add sockets to it.
    pub fn open() -> io::Result<(EpollSet, Registry)> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        // SAFETY: the `Poll` owns its epoll descriptor from creation to drop,
        // and `as_raw_fd` always returns that descriptor; the `AsyncFd` owns
        // the `Poll`, so the descriptor outlives its registration.
        let fd = unsafe { AsyncFd::register_with_interest(poll, tokio::io::Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok((EpollSet { fd }, registry))
    }

    /// Wait until a socket of the set is ready, then take the ready events
    /// into `events` (cleared first) without waiting. A full batch leaves
    /// the set ready, so the next call returns at once with the rest.
    pub async fn ready(&mut self, events: &mut Events) -> io::Result<()> {
        let mut guard = self.fd.readable_mut().await?;
        events.clear();
        match guard.get_inner_mut().poll(events, Some(Duration::ZERO)) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
            _ => {}
        }
        if events.iter().count() < events.capacity() {
            // All taken: wait for new events.
            guard.clear_ready();
        }
        Ok(())
    }

    /// Take the ready events into `events` (cleared first) without
    /// waiting: for a turn that left sockets with bytes to read.
    pub fn poll_now(&mut self, events: &mut Events) -> io::Result<()> {
        events.clear();
        match self.fd.get_mut().poll(events, Some(Duration::ZERO)) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }
}
