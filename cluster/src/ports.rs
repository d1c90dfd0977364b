//! Free loopback ports, and the rule for choosing one.
//!
//! `wscluster up` prefers the seed's well-known ports (8080, 8081-8083, 6379)
//! but must still work on a machine where they are taken, and tests must
//! never collide with each other: hence [`PortChoice`].

use crate::error::ClusterError;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A port that was free a moment ago on 127.0.0.1 (the OS picks it).
/// Another process may take it before we use it; callers retry on bind errors.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether nothing listens on 127.0.0.1:`port` right now.
pub fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// `preferred` when it is free, otherwise any free port.
pub fn preferred_or_free(preferred: u16) -> std::io::Result<u16> {
    if preferred != 0 && is_free(preferred) {
        Ok(preferred)
    } else {
        free_port()
    }
}

/// An error naming the option to change when `port` is taken.
pub fn ensure_free(port: u16, what: &str, option: &'static str) -> Result<(), ClusterError> {
    if port == 0 {
        return Err(ClusterError::Invalid(format!(
            "{option} 0 is not a port; leave {option} out to get a free one"
        )));
    }
    if is_free(port) {
        Ok(())
    } else {
        Err(ClusterError::PortBusy {
            what: what.to_string(),
            port,
            option,
        })
    }
}

/// How a process's port is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoice {
    /// Exactly this port; starting fails with [`ClusterError::PortBusy`] if it is taken.
    Fixed(u16),
    /// This port when free, otherwise any free port (the defaults of `wscluster up`).
    Prefer(u16),
    /// Any free port (tests).
    Any,
}

impl PortChoice {
    /// The port to try first, or `None` for "any free port".
    pub fn first(self) -> Option<u16> {
        match self {
            PortChoice::Fixed(p) => Some(p),
            PortChoice::Prefer(p) if p != 0 && is_free(p) => Some(p),
            _ => None,
        }
    }

    /// The choice for the `i`-th of several processes (node1, node2, ...): the
    /// same kind of choice, `i` ports up.
    pub fn nth(self, i: u16) -> PortChoice {
        match self {
            PortChoice::Fixed(p) => PortChoice::Fixed(p.saturating_add(i)),
            PortChoice::Prefer(p) => PortChoice::Prefer(p.saturating_add(i)),
            PortChoice::Any => PortChoice::Any,
        }
    }
}

/// Wait until something accepts TCP connections on `addr`.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = l.local_addr().unwrap().port();
        assert!(!is_free(busy));
        assert_eq!(PortChoice::Prefer(busy).first(), None, "busy: any other");
        assert_eq!(PortChoice::Fixed(busy).first(), Some(busy));
        assert_ne!(preferred_or_free(busy).unwrap(), busy);
        assert!(matches!(
            ensure_free(busy, "nginx", "--nginx-port"),
            Err(ClusterError::PortBusy { port, .. }) if port == busy
        ));
        assert!(ensure_free(0, "nginx", "--nginx-port").is_err());
        assert_eq!(PortChoice::Fixed(8081).nth(2), PortChoice::Fixed(8083));
        assert_eq!(
            PortChoice::Fixed(u16::MAX).nth(2),
            PortChoice::Fixed(u16::MAX)
        );
    }
}
