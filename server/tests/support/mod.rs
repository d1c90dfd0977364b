//! Test harness: a real node in-process on 127.0.0.1:0 and a WebSocket
//! client that is not built on fastwebsockets (tokio-tungstenite), so the
//! node's framing is checked by an independent implementation.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use protocol::{ServerMsg, StreamStatus};
use server::embed::EmbeddedNode;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for any one expected frame before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// A node in this test's runtime ([`server::embed::EmbeddedNode`]), with
/// the HTTP helpers tests use on it.
pub struct TestNode {
    pub addr: SocketAddr,
    node: EmbeddedNode,
}

/// Start a node with default options plus `args`.
pub async fn start(args: &[&str]) -> TestNode {
    start_named("test-node", args).await
}

/// Start a node called `node_id` with default options plus `args`.
pub async fn start_named(node_id: &str, args: &[&str]) -> TestNode {
    let mut argv = vec!["--listen", "127.0.0.1:0", "--node-id", node_id];
    argv.extend_from_slice(args);
    let config = server::embed::config_from_args(argv).expect("valid options");
    let node = EmbeddedNode::start(config).await.expect("node starts");
    TestNode {
        addr: node.addr(),
        node,
    }
}

impl TestNode {
    pub fn url(&self, query: &str) -> String {
        if query.is_empty() {
            format!("ws://{}/ws/chat", self.addr)
        } else {
            format!("ws://{}/ws/chat?{query}", self.addr)
        }
    }

    /// Signal shutdown and wait (10 s at most) until the node is gone.
    pub async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(10), self.node.stop())
            .await
            .expect("node stops in time");
    }

    /// Signal shutdown without waiting; [`stop`](Self::stop) waits.
    pub fn signal_stop(&mut self) {
        self.node.signal_stop();
    }

    /// Plain HTTP GET; returns (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        raw_http(
            self.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
        )
        .await
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path).await;
        assert!(status == 200 || status == 503, "{path}: {status} {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }
}

/// Send raw bytes as an HTTP request and read the whole response.
pub async fn raw_http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // Bodies are small and not chunked (Full<Bytes>), so this is the JSON.
    (status, body)
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub session_id: String,
    pub token: String,
    pub node_id: String,
    pub streams: Vec<protocol::StreamInfo>,
}

/// Connect and read the welcome frame.
pub async fn connect(url: &str) -> Client {
    let (ws, resp) = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    assert_eq!(resp.status(), 101);
    let mut c = Client {
        ws,
        session_id: String::new(),
        token: String::new(),
        node_id: String::new(),
        streams: vec![],
    };
    match c.recv().await {
        ServerMsg::Welcome {
            session_id,
            node_id,
            token,
            streams,
        } => {
            c.session_id = session_id;
            c.token = token;
            c.node_id = node_id;
            c.streams = streams;
        }
        other => panic!("expected welcome, got {other:?}"),
    }
    c
}

/// Try to connect; return the HTTP status of a refused handshake.
pub async fn connect_status(url: &str) -> Result<Client, (u16, String)> {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => Ok(connect(url).await),
        Err(WsError::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

impl Client {
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_json(&mut self, v: serde_json::Value) {
        self.send_text(&v.to_string()).await;
    }

    /// Next text frame as a server message (pings are answered by tungstenite).
    pub async fn recv(&mut self) -> ServerMsg {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("frame in time")
                .expect("stream open")
                .expect("valid frame");
            match msg {
                Message::Text(t) => {
                    return ServerMsg::from_json(&t)
                        .unwrap_or_else(|e| panic!("bad frame {t}: {e}"));
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Wait for the close frame and return its code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close in time")
            {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f: CloseFrame| u16::from(f.code));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Read an answer stream of `message_id` to its end; returns the chunk
    /// indices seen (checking each chunk's text) and the final status.
    pub async fn read_stream(&mut self, message_id: &str) -> (Vec<u32>, StreamStatus) {
        let mut seen = Vec::new();
        loop {
            match self.recv().await {
                ServerMsg::Chunk {
                    message_id: m,
                    index,
                    text,
                } if m == message_id => {
                    assert!(
                        protocol::chunk::verify_chunk(&m, index, &text),
                        "chunk {index} text"
                    );
                    seen.push(index);
                }
                ServerMsg::Done {
                    message_id: m,
                    chunks,
                } if m == message_id => {
                    assert_eq!(chunks as usize, seen.len().max(chunks as usize));
                    return (seen, StreamStatus::Done);
                }
                ServerMsg::Interrupted { message_id: m, .. } if m == message_id => {
                    return (seen, StreamStatus::Interrupted);
                }
                other => panic!("unexpected frame while streaming {message_id}: {other:?}"),
            }
        }
    }
}

pub fn chat(message_id: &str, chunks: u32, interval_ms: u64) -> serde_json::Value {
    serde_json::json!({"type":"chat","message_id":message_id,"text":"hello","chunks":chunks,"interval_ms":interval_ms})
}

/// A hand-driven WebSocket client over raw TCP, for inputs no well-behaved
/// library will send (invalid UTF-8, silence, never reading).
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Perform the handshake; panics unless the node answers 101.
    pub async fn connect(addr: SocketAddr, path_and_query: &str) -> RawWs {
        Self::connect_pipelined(addr, path_and_query, &[]).await
    }

    /// Handshake with `extra` bytes sent in the same write, right behind the request.
    pub async fn connect_pipelined(addr: SocketAddr, path_and_query: &str, extra: &[u8]) -> RawWs {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(extra);
        stream.write_all(&bytes).await.unwrap();
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        let end = loop {
            let n = tokio::time::timeout(WAIT, stream.read(&mut tmp))
                .await
                .expect("handshake in time")
                .unwrap();
            assert!(n > 0, "closed during handshake");
            buf.extend_from_slice(&tmp[..n]);
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        RawWs {
            stream,
            buf: buf[end..].to_vec(),
        }
    }

    /// Send one masked frame with the given first byte (FIN/RSV/opcode).
    pub async fn send_frame(&mut self, first: u8, payload: &[u8]) {
        let f = encode_frame(first, payload);
        self.stream.write_all(&f).await.unwrap();
    }

    /// Read one frame: (opcode, payload), or None on EOF.
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                let (b1, len7) = (self.buf[1], (self.buf[1] & 0x7f) as usize);
                assert_eq!(b1 & 0x80, 0, "server frames must not be masked");
                let (len, hdr) = match len7 {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n, 2),
                };
                if len != usize::MAX && self.buf.len() >= hdr + len {
                    let op = self.buf[0] & 0x0f;
                    let payload = self.buf[hdr..hdr + len].to_vec();
                    self.buf.drain(..hdr + len);
                    return Some((op, payload));
                }
            }
            let mut tmp = [0u8; 8192];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut tmp))
                .await
                .expect("frame in time")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    /// Read frames until a close frame; returns its code (None on EOF first).
    pub async fn close_code(&mut self) -> Option<u16> {
        while let Some((op, payload)) = self.read_frame().await {
            if op == 0x8 {
                return payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            }
        }
        None
    }
}

/// Value of an unlabelled-by-us Prometheus metric line `name{node="..."} v`.
pub async fn metric(node: &TestNode, name: &str) -> f64 {
    let (_, body) = node.get("/metrics").await;
    body.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

/// A masked client frame with the given first byte (FIN/RSV/opcode).
pub fn encode_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut f = vec![first];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}
