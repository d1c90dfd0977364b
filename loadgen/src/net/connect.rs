//! Opening one WebSocket client connection: TCP (optionally from a chosen
//! source address), TLS for `wss://`, and the HTTP upgrade, via
//! fastwebsockets' hyper handshake, each step timed.
//!
//! Kept apart from the load logic so the connect path can change (another
//! handshake, another socket option) without touching measurement code.

use crate::config::target::Target;
use crate::net::dial::Dialer;
use crate::net::frames::{FrameReader, FrameWriter};
use crate::net::stream::{ReadHalf, Stream, WriteHalf};
use crate::placeholders::Values;
use bytes::Bytes;
use fastwebsockets::handshake;
use http_body_util::Empty;
use hyper::Request;
use hyper::header::{CONNECTION, HOST, ORIGIN, SEC_WEBSOCKET_PROTOCOL, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;

pub type WsRead = FrameReader<ReadHalf>;
pub type WsWrite = FrameWriter<WriteHalf>;

/// An open client connection, already split: loadgen's lean frame reader
/// on one side, fastwebsockets' writer (framing, masking) on the other.
pub struct Conn {
    pub rx: WsRead,
    pub tx: WsWrite,
    pub times: ConnectTimes,
}

/// How long each step of opening the connection took.
#[derive(Debug, Clone, Copy)]
pub struct ConnectTimes {
    pub tcp: Duration,
    /// `None` for `ws://`.
    pub tls: Option<Duration>,
    pub upgrade: Duration,
}

/// Largest frame accepted from a server: bigger ones close the connection
/// instead of growing the read buffer without bound.
pub const MAX_FRAME: usize = 2 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("TCP connect to {addr}: {source}")]
    Tcp {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS handshake with {addr}: {reason}")]
    Tls { addr: SocketAddr, reason: String },
    #[error("WebSocket upgrade refused by {addr}: HTTP {status} ({hint})")]
    Refused {
        addr: SocketAddr,
        status: u16,
        hint: &'static str,
    },
    #[error("WebSocket handshake with {addr}: {reason}")]
    Handshake { addr: SocketAddr, reason: String },
}

/// Hands hyper's connection driver to the tokio runtime.
struct SpawnExecutor;

impl<F> hyper::rt::Executor<F> for SpawnExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

/// Connect to `target` and upgrade `path_and_query` to a WebSocket.
/// `vars` fill the placeholders of `--header` values.
pub async fn connect(
    dialer: &Dialer,
    target: &Target,
    path_and_query: &str,
    source: Option<Ipv4Addr>,
    vars: &Values<'_>,
) -> Result<Conn, ConnectError> {
    let addr = target.addr;
    let t0 = Instant::now();
    let tcp_err = |source| ConnectError::Tcp { addr, source };
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(tcp_err)?;
    if let (Some(ip), SocketAddr::V4(_)) = (source, addr) {
        bind_no_port(&socket).map_err(tcp_err)?;
        socket
            .bind(SocketAddr::new(IpAddr::V4(ip), 0))
            .map_err(tcp_err)?;
    }
    let tcp = socket.connect(addr).await.map_err(tcp_err)?;
    // Small frames must leave at once: latency is what is measured.
    let _ = tcp.set_nodelay(true);
    let t_tcp = Instant::now();

    let (stream, tls) = if target.tls {
        let tls_err = |reason: String| ConnectError::Tls { addr, reason };
        let connector = dialer.tls.as_ref().ok_or_else(|| {
            tls_err("no TLS configuration (a bug: wss:// target without one)".into())
        })?;
        let name = ServerName::try_from(target.host.clone())
            .map_err(|e| tls_err(format!("{:?} is not a TLS server name: {e}", target.host)))?;
        let s = connector
            .connect(name, tcp)
            .await
            .map_err(|e| tls_err(describe_tls(&e)))?;
        (Stream::Tls(Box::new(s)), Some(t_tcp.elapsed()))
    } else {
        (Stream::Plain(tcp), None)
    };
    let t_upgrade = Instant::now();

    let hs_err = |reason: String| ConnectError::Handshake { addr, reason };
    let mut req = Request::builder()
        .method("GET")
        .uri(path_and_query)
        .header(HOST, target.authority.as_str())
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header("Sec-WebSocket-Key", handshake::generate_key())
        .header("Sec-WebSocket-Version", "13");
    let d = &dialer.settings;
    if let Some(p) = &d.subprotocol {
        req = req.header(SEC_WEBSOCKET_PROTOCOL, p.as_str());
    }
    if let Some(o) = &d.origin {
        req = req.header(ORIGIN, o.as_str());
    }
    for (name, value) in &d.headers {
        req = req.header(name.as_str(), value.render(vars));
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| hs_err(format!("bad request: {e}")))?;
    let (ws, resp) = handshake::client(&SpawnExecutor, req, stream)
        .await
        .map_err(|e| match e {
            fastwebsockets::WebSocketError::InvalidStatusCode(status @ (401 | 403)) => {
                ConnectError::Refused {
                    addr,
                    status,
                    hint: "check the credentials given with --header",
                }
            }
            e => hs_err(describe(&e)),
        })?;
    if let Some(p) = &d.subprotocol {
        let chosen = resp.headers().get(SEC_WEBSOCKET_PROTOCOL);
        if chosen.and_then(|v| v.to_str().ok()) != Some(p.as_str()) {
            return Err(hs_err(format!(
                "the server did not accept subprotocol {p:?} (it answered {chosen:?})"
            )));
        }
    }
    // Take the stream back from hyper's upgrade wrapper: each read and
    // write then skips hyper's boxed IO. Nothing was read through
    // fastwebsockets yet, and the bytes hyper read past the 101 response
    // (often the welcome frame) seed our reader.
    let upgraded: Upgraded = ws.into_inner().into_inner();
    let parts = upgraded
        .downcast::<TokioIo<Stream>>()
        .map_err(|_| hs_err("unexpected upgraded stream type".into()))?;
    let (r, w) = parts.io.into_inner().into_split();
    let mut rx = FrameReader::new(r, MAX_FRAME);
    rx.seed(&parts.read_buf);
    let tx = FrameWriter::new(w);
    let times = ConnectTimes {
        tcp: t_tcp - t0,
        tls,
        upgrade: t_upgrade.elapsed(),
    };
    Ok(Conn { rx, tx, times })
}

fn describe(e: &fastwebsockets::WebSocketError) -> String {
    use fastwebsockets::WebSocketError as E;
    match e {
        E::InvalidStatusCode(c) => format!(
            "HTTP {c} instead of 101 Switching Protocols (not a WebSocket endpoint, wrong path, or session refused)"
        ),
        E::InvalidUpgradeHeader | E::InvalidConnectionHeader => {
            "the reply is not a WebSocket upgrade".to_string()
        }
        other => format!("{other}"),
    }
}

/// A TLS failure, with the fix when the certificate is not trusted.
fn describe_tls(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        format!("{text}; trust its CA with --ca-cert FILE (or skip verification with --insecure)")
    } else {
        text
    }
}

/// Let the kernel pick the source port at connect time rather than at bind
/// time, so one source address can serve many destinations
/// (IP_BIND_ADDRESS_NO_PORT, Linux 4.2+).
#[cfg(target_os = "linux")]
fn bind_no_port(socket: &TcpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a pointer to a live c_int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn bind_no_port(_socket: &TcpSocket) -> std::io::Result<()> {
    Ok(())
}
