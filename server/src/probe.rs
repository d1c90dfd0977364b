//! `wsnode health [URL]`: a one-shot `/health` probe for container
//! HEALTHCHECKs.
//!
//! The container image ships wsnode and nothing else (no curl, no shell
//! tools), so the node binary probes itself: GET the URL, exit 0 on HTTP 200,
//! 1 on anything else, 2 on bad usage. Without a URL it probes the port the
//! node listens on (`WSNODE_LISTEN`, as the node itself reads it).

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, Uri, header};
use hyper_util::rt::TokioIo;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;

/// Health answers are a few hundred bytes; anything beyond this is cut off.
const MAX_BODY: usize = 64 * 1024;

/// Probe a node's /health once; exit 0 on HTTP 200 (for container HEALTHCHECKs).
#[derive(Debug, Parser)]
#[command(name = "wsnode health", version)]
struct HealthArgs {
    /// URL to probe [default: http://127.0.0.1:PORT/health, PORT from WSNODE_LISTEN, else 8080].
    url: Option<String>,

    /// Give up after this long.
    #[arg(long, default_value = "3s", value_parser = crate::config::parse_duration)]
    timeout: Duration,
}

/// Why a probe failed (exit 1), or could not be made (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}: expected http://IP:PORT/PATH or http://localhost:PORT/PATH")]
    BadUrl(String),
    #[error("WSNODE_LISTEN={0} is not IP:PORT")]
    BadListen(String),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("{0}")]
    Connect(#[from] std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("reading the answer: {0}")]
    Body(String),
}

/// Entry point for `wsnode health ARGS...` (`args` without the `health`
/// word); returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let argv = std::iter::once(OsString::from("wsnode health")).chain(args);
    let a = match HealthArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let url = match a.url {
        Some(u) => u,
        None => match default_url(std::env::var("WSNODE_LISTEN").ok()) {
            Ok(u) => u,
            Err(e) => {
                eprintln!("wsnode health: {e}");
                return 2;
            }
        },
    };
    let (addr, uri) = match parse_url(&url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("wsnode health: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsnode health: {e}");
            return 1;
        }
    };
    match rt.block_on(get(addr, uri, a.timeout)) {
        Ok((200, body)) => {
            println!("{url}: 200 {}", body.trim());
            0
        }
        Ok((code, body)) => {
            eprintln!("{url}: HTTP {code} {}", body.trim());
            1
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            1
        }
    }
}

/// `http://127.0.0.1:PORT/health` for the node's listen address
/// (`0.0.0.0` and `[::]` become loopback: a listener on all interfaces).
fn default_url(listen: Option<String>) -> Result<String, ProbeError> {
    let listen = listen.unwrap_or_else(|| "0.0.0.0:8080".into());
    let mut addr: SocketAddr = listen
        .trim()
        .parse()
        .map_err(|_| ProbeError::BadListen(listen.clone()))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{addr}/health"))
}

/// The socket address to connect to and the URI to send. The host is an IP
/// address or `localhost`: a probe does no DNS and no TLS.
fn parse_url(url: &str) -> Result<(SocketAddr, Uri), ProbeError> {
    let bad = || ProbeError::BadUrl(url.to_string());
    let uri: Uri = url.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("http") {
        return Err(bad());
    }
    let host = uri.host().ok_or_else(bad)?;
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST.into()
    } else {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| bad())?
    };
    Ok((SocketAddr::new(ip, uri.port_u16().unwrap_or(80)), uri))
}

/// GET `uri` from `addr`: status and body, all within `timeout`.
async fn get(addr: SocketAddr, uri: Uri, timeout: Duration) -> Result<(u16, String), ProbeError> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let conn = tokio::spawn(conn);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = uri.authority().map_or(addr.to_string(), |a| a.to_string());
        let req = Request::get(path)
            .header(header::HOST, authority)
            .body(Empty::<Bytes>::new())
            .map_err(|e| ProbeError::BadUrl(e.to_string()))?;
        let resp = sender.send_request(req).await?;
        let code = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| ProbeError::Body(e.to_string()))?
            .to_bytes();
        conn.abort();
        Ok((code, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ProbeError::TimedOut(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_listen_addresses() {
        let (addr, uri) = parse_url("http://127.0.0.1:8081/health").unwrap();
        assert_eq!(addr, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(uri.path(), "/health");
        let (addr, _) = parse_url("http://localhost:9/x").unwrap();
        assert_eq!(addr, "127.0.0.1:9".parse().unwrap());
        let (addr, _) = parse_url("http://[::1]:7/health").unwrap();
        assert_eq!(addr, "[::1]:7".parse().unwrap());
        assert!(parse_url("ftp://127.0.0.1/x").is_err());
        assert!(parse_url("http://example.com:80/").is_err(), "no DNS");
        assert_eq!(
            default_url(Some("0.0.0.0:8082".into())).unwrap(),
            "http://127.0.0.1:8082/health"
        );
        assert_eq!(
            default_url(Some("[::]:8083".into())).unwrap(),
            "http://[::1]:8083/health"
        );
        assert_eq!(default_url(None).unwrap(), "http://127.0.0.1:8080/health");
        assert!(default_url(Some("nonsense".into())).is_err());
    }

    #[test]
    fn usage_errors_and_a_dead_port() {
        let run = |args: &[&str]| main(args.iter().map(OsString::from).collect());
        assert_eq!(run(&["ftp://x"]), 2);
        assert_eq!(run(&["--timeout", "soon"]), 2);
        assert_eq!(run(&["--help"]), 0);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/health");
        assert_eq!(run(&[&url, "--timeout", "1s"]), 1);
    }
}
