//! The real nginx, run by `NginxServer` in front of tiny in-test upstreams.
//!
//! These back two claims of docs/CLUSTER.md with evidence: `ip_hash` sends
//! every 127.0.0.x client to the same node while `hash $remote_addr
//! consistent` spreads them (and both stay sticky), and stopping or killing
//! nginx leaves neither master nor worker behind.

use cluster::process::ProcessId;
use cluster::{Balance, ClusterError, NginxServer, PortChoice};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::time::Duration;

/// An HTTP upstream that answers every request with its name. Its thread
/// blocks in accept until the test process exits.
fn upstream(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                name.len()
            );
        }
    });
    addr
}

/// A TCP connection to `to` from the local address `from` (any 127.x.y.z
/// is local on Linux): how a client on another address looks to nginx.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    // SAFETY: plain socket calls on a descriptor we own; it is handed to
    // TcpStream (which closes it) only after bind and connect succeeded, and
    // closed here on failure.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let sa = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = sa(from, 0);
        let SocketAddr::V4(to) = to else {
            panic!("IPv4 only")
        };
        let remote = sa(*to.ip(), to.port());
        let ok = libc::bind(fd, (&raw const local).cast(), len) == 0
            && libc::connect(fd, (&raw const remote).cast(), len) == 0;
        if !ok {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            panic!("connect from {from} to {to}: {e}");
        }
        TcpStream::from_raw_fd(fd)
    }
}

/// Which upstream answered `GET /` for a client on `from`.
fn answered_by(from: Ipv4Addr, nginx: SocketAddr) -> String {
    let mut s = connect_from(from, nginx);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    resp.rsplit("\r\n\r\n").next().unwrap().to_string()
}

fn nodes() -> Vec<SocketAddr> {
    vec![upstream("n1"), upstream("n2"), upstream("n3")]
}

fn clients() -> impl Iterator<Item = Ipv4Addr> {
    (2..=21).map(|i| Ipv4Addr::new(127, 0, 0, i))
}

#[test]
fn ip_hash_sends_every_loopback_client_to_one_node() {
    let nginx = NginxServer::builder()
        .upstreams(nodes())
        .balance(Balance::IpHash)
        .worker_connections(256)
        .start()
        .expect("nginx (scripts/test.sh installs it)");
    let seen: BTreeSet<String> = clients().map(|c| answered_by(c, nginx.addr())).collect();
    assert_eq!(
        seen.len(),
        1,
        "127.0.0.x share their first three octets: {seen:?}"
    );
}

#[test]
fn consistent_hash_spreads_clients_and_keeps_each_on_its_node() {
    let nginx = NginxServer::builder()
        .upstreams(nodes())
        .balance(Balance::ConsistentHash)
        .worker_connections(256)
        .start()
        .expect("nginx");
    let first: Vec<String> = clients().map(|c| answered_by(c, nginx.addr())).collect();
    let seen: BTreeSet<&String> = first.iter().collect();
    assert!(
        seen.len() >= 2,
        "20 client addresses all on one node: {first:?}"
    );
    let again: Vec<String> = clients().map(|c| answered_by(c, nginx.addr())).collect();
    assert_eq!(first, again, "sticky: each client stays on its node");
}

#[test]
fn round_robin_is_not_sticky() {
    let nginx = NginxServer::start(nodes(), Balance::RoundRobin).expect("nginx");
    let from = Ipv4Addr::new(127, 0, 0, 1);
    let seen: BTreeSet<String> = (0..6).map(|_| answered_by(from, nginx.addr())).collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn stop_and_kill_leave_no_master_or_worker() {
    for crash in [false, true] {
        let mut nginx = NginxServer::start(nodes(), Balance::IpHash).expect("nginx");
        let master = ProcessId::of(nginx.pid().unwrap()).unwrap();
        let workers: Vec<ProcessId> = nginx
            .worker_pids()
            .into_iter()
            .filter_map(ProcessId::of)
            .collect();
        assert_eq!(workers.len(), 1, "worker_processes 1");
        let dir = nginx.dir().to_path_buf();
        assert!(dir.join("nginx.conf").exists() && nginx.error_log_path().exists());
        if crash {
            nginx.kill();
        } else {
            nginx.stop();
        }
        drop(nginx);
        for p in workers.iter().chain([&master]) {
            assert!(
                cluster::process::wait_until(Duration::from_secs(5), || !p.is_running()),
                "{} left running (crash: {crash})",
                p.command()
            );
        }
        assert!(!dir.exists(), "temp dir removed");
    }
}

#[test]
fn a_busy_port_and_a_broken_config_are_clear_errors() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let err = NginxServer::builder()
        .upstreams(nodes())
        .port(PortChoice::Fixed(port))
        .start()
        .err()
        .expect("busy");
    assert!(
        matches!(err, ClusterError::PortBusy { port: p, .. } if p == port),
        "{err}"
    );

    let err = NginxServer::builder()
        .config_text("events {}\nhttp { server { listen 127.0.0.1:@PORT@; lisen 1; } }\n")
        .start()
        .err()
        .expect("broken config");
    let msg = err.to_string();
    assert!(matches!(err, ClusterError::Exited { .. }), "{msg}");
    assert!(
        msg.contains("lisen"),
        "nginx's own complaint is shown: {msg}"
    );
}
