//! A minimal Redis client for what the monitor reads from Redis (`INFO`,
//! the node registry): one command per connection, RESP2 replies read with
//! a size and time bound. loadgen only reads; it never writes to Redis.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest reply accepted.
const LIMIT: usize = 1 << 20;
/// Longest wait for a whole reply.
const WAIT: Duration = Duration::from_secs(2);

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    /// A bulk string; `None` is the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// An array; `None` is the null array.
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// A bulk or simple string as text.
    pub fn text(&self) -> Option<&str> {
        match self {
            Resp::Bulk(Some(b)) => std::str::from_utf8(b).ok(),
            Resp::Simple(s) => Some(s),
            _ => None,
        }
    }

    /// The elements of an array reply (none for anything else).
    pub fn items(&self) -> &[Resp] {
        match self {
            Resp::Array(Some(v)) => v,
            _ => &[],
        }
    }
}

/// The request for `args`, as a RESP array of bulk strings.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Parse one reply at the start of `buf`: the reply and the bytes it took;
/// `None` while incomplete (or malformed).
pub fn parse(buf: &[u8]) -> Option<(Resp, usize)> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..line_end]).ok()?;
    let rest = line_end + 2;
    match buf.first()? {
        b'+' => Some((Resp::Simple(line.to_string()), rest)),
        b'-' => Some((Resp::Error(line.to_string()), rest)),
        b':' => Some((Resp::Int(line.parse().ok()?), rest)),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some((Resp::Bulk(None), rest));
            }
            let end = rest.checked_add(len as usize)?;
            if buf.len() < end + 2 {
                return None;
            }
            Some((Resp::Bulk(Some(buf[rest..end].to_vec())), end + 2))
        }
        b'*' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some((Resp::Array(None), rest));
            }
            let mut items = Vec::with_capacity((n as usize).min(1024));
            let mut at = rest;
            for _ in 0..n {
                let (item, used) = parse(&buf[at..])?;
                items.push(item);
                at += used;
            }
            Some((Resp::Array(Some(items)), at))
        }
        _ => None,
    }
}

/// Send one command to the Redis at `addr` and read its reply.
pub async fn command(addr: SocketAddr, args: &[&str]) -> Option<Resp> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(&encode(args)).await.ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > LIMIT {
                return None;
            }
            if let Some((r, _)) = parse(&buf) {
                return Some(r);
            }
        }
    };
    tokio::time::timeout(WAIT, exchange).await.ok()?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_whole_or_not_at_all() {
        assert_eq!(encode(&["GET", "k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        let reply = b"*3\r\n$5\r\nnode1\r\n$-1\r\n:1\r\n";
        let (r, used) = parse(reply).unwrap();
        assert_eq!(used, reply.len());
        assert_eq!(r.items()[0].text(), Some("node1"));
        assert_eq!(r.items()[1], Resp::Bulk(None));
        assert_eq!(r.items()[2], Resp::Int(1));
        for cut in 0..reply.len() {
            assert_eq!(parse(&reply[..cut]), None, "{cut}");
        }
        assert_eq!(
            parse(b"-ERR no\r\n").unwrap().0,
            Resp::Error("ERR no".into())
        );
        assert_eq!(parse(b"?\r\n"), None);
        assert_eq!(parse(b"$4\r\nab\r\n\r\n").unwrap().0.text(), Some("ab\r\n"));
    }
}
