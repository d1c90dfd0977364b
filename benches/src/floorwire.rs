//! What tcp_floor puts on the wire: its bare 32-byte messages, or, with
//! `--ws`, wsnode's own echo protocol over WebSocket.
//!
//! The bare floor says what loopback TCP costs here. The WebSocket floor
//! adds only what this protocol itself needs per message and nothing a
//! runtime or a product adds: the client builds and masks a text frame of
//! the JSON loadgen's `--mode echo` sends and reads the reply's fields
//! through serde (borrowed, no allocation); the server unmasks, decodes the
//! request with the node's own decoder and encodes the node's reply with
//! serde_json. Still one epoll loop per side, no tasks, no locks. Its rate
//! against the bare floor is the share of the machine the protocol's own
//! work takes; loadgen and wsnode can be measured against it one side at a
//! time (`tcp_floor --ws --ws-node`, `loadgen --url` against `--serve --ws`).

use base64::Engine;
use protocol::wsframe::{self, FrameBuf, Masking, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use std::io::{Read, Write};

/// Bytes of a bare message: the intended send time (ns since the
/// schedule's start) and zero padding, about the size of loadgen's echo
/// frame payload.
pub const MSG: usize = 32;
/// Largest frame either side accepts.
const MAX_FRAME: usize = 64 * 1024;
/// Longest HTTP head either side accepts in a handshake.
const MAX_HEAD: usize = 8 * 1024;
/// Filler in each WebSocket message, as loadgen's default `--payload-size`.
const FILLER: &str = "xxxxxxxxxxxxxxxx";
/// The client's handshake key (a nonce in a browser; fixed here, the
/// floor's connections need no secret).
const CLIENT_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Mask keys for a client's frames (xorshift): masked, as RFC 6455 asks,
/// at the cost of a few instructions per message.
pub struct MaskKeys(u64);

impl MaskKeys {
    /// Keys from `seed` (any value but zero, which xorshift never leaves).
    pub fn new(seed: u64) -> MaskKeys {
        MaskKeys(seed.max(1))
    }

    pub fn next_key(&mut self) -> [u8; 4] {
        let k = &mut self.0;
        *k ^= *k << 13;
        *k ^= *k >> 7;
        *k ^= *k << 17;
        (*k as u32).to_ne_bytes()
    }
}

/// Which messages the floor sends and answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// 32 raw bytes, echoed byte for byte.
    Bare,
    /// wsnode's echo over WebSocket.
    Ws,
}

/// A client connection's receive state.
pub enum Rx {
    Bare { partial: [u8; MSG], have: usize },
    Ws(Box<FrameBuf>),
}

/// The parts of a node's reply the client reads.
#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    ts: Option<u64>,
}

/// The node's echo reply, as wsnode encodes it.
#[derive(Serialize)]
struct EchoReply<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: u64,
    ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    node_id: &'static str,
}

impl Wire {
    /// Open the connection's protocol on a connected blocking socket;
    /// returns the bytes read past the handshake.
    pub fn handshake(self, s: &mut std::net::TcpStream, conn: usize) -> Result<Vec<u8>, String> {
        if self == Wire::Bare {
            return Ok(Vec::new());
        }
        let host = s.peer_addr().map_err(|e| e.to_string())?;
        // A session id per connection: wsnode refuses a second connection
        // to a session without its token.
        let req = format!(
            "GET /ws/chat?session_id=floor-{conn} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {CLIENT_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes())
            .map_err(|e| format!("handshake write: {e}"))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        let end = loop {
            let n = s
                .read(&mut buf)
                .map_err(|e| format!("handshake read: {e}"))?;
            if n == 0 {
                return Err("the server closed the connection in the handshake".into());
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = find(&head, b"\r\n\r\n") {
                break i + 4;
            }
            if head.len() > MAX_HEAD {
                return Err("the server's handshake answer is too long".into());
            }
        };
        if !head.starts_with(b"HTTP/1.1 101") {
            let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
            return Err(format!(
                "upgrade refused: {}",
                String::from_utf8_lossy(line)
            ));
        }
        Ok(head.split_off(end))
    }

    /// A new connection's receive state, seeded with `leftover`.
    pub fn rx(self, leftover: &[u8]) -> Rx {
        match self {
            Wire::Bare => Rx::Bare {
                partial: [0; MSG],
                have: 0,
            },
            Wire::Ws => {
                let mut f = FrameBuf::new(MAX_FRAME, Masking::Either);
                f.seed(leftover);
                Rx::Ws(Box::new(f))
            }
        }
    }

    /// Message `seq`, due at `at_ns`, into `out` (cleared first).
    pub fn message(self, seq: u64, at_ns: u64, sent_ns: u64, mask: [u8; 4], out: &mut Vec<u8>) {
        out.clear();
        match self {
            Wire::Bare => {
                out.extend_from_slice(&at_ns.to_le_bytes());
                out.resize(MSG, 0);
            }
            Wire::Ws => {
                // loadgen's echo.toml message, with the same fields.
                let mut text = [0u8; 128];
                let mut w = &mut text[..];
                let _ = write!(
                    w,
                    "{{\"type\":\"echo\",\"id\":{seq},\"ts\":{},\"payload\":\"{}.{FILLER}\"}}",
                    at_ns / 1000,
                    sent_ns / 1000
                );
                let len = 128 - w.len();
                client_frame(OP_TEXT, &mut text[..len], mask, out);
            }
        }
    }
}

/// A masked client frame of `payload` (masked in place) into `out`.
pub fn client_frame(op: u8, payload: &mut [u8], mask: [u8; 4], out: &mut Vec<u8>) {
    out.push(0x80 | op);
    push_len(out, 0x80, payload.len());
    out.extend_from_slice(&mask);
    wsframe::apply_mask(payload, mask);
    out.extend_from_slice(payload);
}

fn push_len(out: &mut Vec<u8>, mask_bit: u8, len: usize) {
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xffff {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Rx {
    /// Room to read into.
    pub fn spare<'a>(&'a mut self, stack: &'a mut [u8]) -> &'a mut [u8] {
        match self {
            Rx::Bare { .. } => stack,
            Rx::Ws(f) => f.spare(),
        }
    }

    /// `n` bytes were read into [`spare`](Self::spare): call `answered`
    /// with the intended send time (ns) of every reply now complete, and
    /// put any control frame owed back (a pong) into `out`.
    pub fn filled(
        &mut self,
        stack: &[u8],
        n: usize,
        out: &mut Vec<u8>,
        mut answered: impl FnMut(u64),
    ) -> Result<(), String> {
        match self {
            Rx::Bare { partial, have } => {
                for &b in &stack[..n] {
                    partial[*have] = b;
                    *have += 1;
                    if *have == MSG {
                        *have = 0;
                        answered(u64::from_le_bytes(
                            partial[..8].try_into().unwrap_or_default(),
                        ));
                    }
                }
                Ok(())
            }
            Rx::Ws(f) => {
                f.filled(n);
                while let Some(frame) = f.next_frame().map_err(|e| e.to_string())? {
                    let payload = f.payload(&frame);
                    match frame.opcode {
                        OP_TEXT if frame.fin => {
                            let r: Reply = serde_json::from_slice(payload)
                                .map_err(|e| format!("bad reply: {e}"))?;
                            match (r.kind, r.ts) {
                                ("echo", Some(ts)) => answered(ts * 1000),
                                ("welcome", _) => {}
                                (kind, _) => return Err(format!("unexpected {kind:?} frame")),
                            }
                        }
                        OP_PING => {
                            let mut p = payload.to_vec();
                            client_frame(OP_PONG, &mut p, [1, 2, 3, 4], out);
                        }
                        OP_CLOSE => return Err("the server closed a connection".into()),
                        _ => return Err("unexpected frame".into()),
                    }
                }
                Ok(())
            }
        }
    }
}

/// A server connection: the bytes to echo, or the WebSocket state.
pub enum ServerConn {
    Bare,
    /// The request head so far.
    Handshake(Vec<u8>),
    Open(Box<FrameBuf>),
}

/// Why the server drops a connection.
pub type Refusal = String;

impl ServerConn {
    pub fn new(wire: Wire) -> ServerConn {
        match wire {
            Wire::Bare => ServerConn::Bare,
            Wire::Ws => ServerConn::Handshake(Vec::new()),
        }
    }

    /// Room to read into.
    pub fn spare<'a>(&'a mut self, stack: &'a mut [u8]) -> &'a mut [u8] {
        match self {
            ServerConn::Open(f) => f.spare(),
            _ => stack,
        }
    }

    /// `n` bytes were read into [`spare`](Self::spare); what to write back goes to `out`.
    pub fn filled(&mut self, stack: &[u8], n: usize, out: &mut Vec<u8>) -> Result<(), Refusal> {
        match self {
            ServerConn::Bare => {
                out.extend_from_slice(&stack[..n]);
                Ok(())
            }
            ServerConn::Handshake(head) => {
                head.extend_from_slice(&stack[..n]);
                let Some(end) = find(head, b"\r\n\r\n") else {
                    return if head.len() > MAX_HEAD {
                        Err("request head too long".into())
                    } else {
                        Ok(())
                    };
                };
                let key =
                    header(&head[..end], "sec-websocket-key").ok_or("no Sec-WebSocket-Key")?;
                let accept = accept_key(key);
                let _ = write!(
                    out,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                );
                server_frame(
                    br#"{"type":"welcome","session_id":"floor","node_id":"floor","token":"00000000000000000000000000000000","streams":[]}"#,
                    OP_TEXT,
                    out,
                );
                let mut f = FrameBuf::new(MAX_FRAME, Masking::Required);
                f.seed(&head[end + 4..]);
                *self = ServerConn::Open(Box::new(f));
                self.filled(stack, 0, out)
            }
            ServerConn::Open(f) => {
                f.filled(n);
                while let Some(frame) = f.next_frame().map_err(|e| e.to_string())? {
                    let payload = f.payload(&frame);
                    match frame.opcode {
                        OP_TEXT if frame.fin => {
                            let text = std::str::from_utf8(payload).map_err(|e| e.to_string())?;
                            match protocol::decode_client(text) {
                                Ok(protocol::ClientMsg::Echo { id, ts, payload }) => {
                                    echo_into(id, ts, payload.as_deref(), out)
                                }
                                _ => return Err("not an echo".into()),
                            }
                        }
                        OP_PING => server_frame(payload, OP_PONG, out),
                        OP_PONG => {}
                        _ => return Err("closed or unexpected frame".into()),
                    }
                }
                Ok(())
            }
        }
    }
}

/// wsnode's echo reply as one unmasked frame.
fn echo_into(id: u64, ts: u64, payload: Option<&str>, out: &mut Vec<u8>) {
    let mut text = [0u8; 256];
    let mut w = &mut text[..];
    let reply = EchoReply {
        kind: "echo",
        id,
        ts,
        payload,
        node_id: "floor",
    };
    if serde_json::to_writer(&mut w, &reply).is_ok() {
        let len = 256 - w.len();
        server_frame(&text[..len], OP_TEXT, out);
    } else {
        // Longer than the stack buffer: a client's large payload.
        let v = serde_json::to_vec(&reply).unwrap_or_default();
        server_frame(&v, OP_TEXT, out);
    }
}

fn server_frame(payload: &[u8], op: u8, out: &mut Vec<u8>) {
    out.push(0x80 | op);
    push_len(out, 0, payload.len());
    out.extend_from_slice(payload);
}

/// The value of header `name` (lower case) in an HTTP head.
fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(name.as_bytes())
            .then(|| line[colon + 1..].trim_ascii())
    })
}

/// RFC 6455's Sec-WebSocket-Accept for `key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_is_rfc_6455s_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    /// Bytes arriving on a server connection, as tcp_floor's loops read them.
    fn arrive(sc: &mut ServerConn, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), Refusal> {
        let mut stack = [0u8; 4096];
        sc.spare(&mut stack)[..bytes.len()].copy_from_slice(bytes);
        sc.filled(&stack, bytes.len(), out)
    }

    #[test]
    fn a_ws_message_round_trips_through_the_server_and_back() {
        let mut server = ServerConn::new(Wire::Ws);
        let mut out = Vec::new();
        let req = b"GET /ws/chat HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        arrive(&mut server, req, &mut out).unwrap();
        assert!(out.starts_with(b"HTTP/1.1 101 "));
        let head = String::from_utf8_lossy(&out).to_string();
        assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        let head_end = find(&out, b"\r\n\r\n").unwrap() + 4;
        let mut rx = Wire::Ws.rx(&out[head_end..]);
        let mut msg = Vec::new();
        Wire::Ws.message(7, 5_000_000, 5_100_000, [9, 8, 7, 6], &mut msg);
        // Masked on the wire: the JSON is not readable as sent.
        assert!(!String::from_utf8_lossy(&msg).contains("echo"));
        out.clear();
        arrive(&mut server, &msg, &mut out).unwrap();
        assert!(
            String::from_utf8_lossy(&out).contains(
                r#""id":7,"ts":5000,"payload":"5100.xxxxxxxxxxxxxxxx","node_id":"floor""#
            )
        );
        let mut got = Vec::new();
        let mut pong = Vec::new();
        // The welcome (seeded) is skipped; the echo names its intended time.
        let mut stack = [0u8; 512];
        rx.spare(&mut stack)[..out.len()].copy_from_slice(&out);
        rx.filled(&stack, out.len(), &mut pong, |at| got.push(at))
            .unwrap();
        assert_eq!(got, vec![5_000_000]);
        assert!(pong.is_empty());
        // A frame the server cannot take drops the connection.
        let mut bad = Vec::new();
        client_frame(
            OP_TEXT,
            &mut b"{\"type\":\"nope\"}".to_vec(),
            [1, 1, 1, 1],
            &mut bad,
        );
        assert!(arrive(&mut server, &bad, &mut out).is_err());
    }

    #[test]
    fn bare_messages_are_echoed_and_timed_across_split_reads() {
        let mut server = ServerConn::new(Wire::Bare);
        let mut msg = Vec::new();
        Wire::Bare.message(0, 42, 43, [0; 4], &mut msg);
        assert_eq!(msg.len(), MSG);
        let mut out = Vec::new();
        arrive(&mut server, &msg, &mut out).unwrap();
        assert_eq!(out, msg);
        let mut rx = Wire::Bare.rx(&[]);
        let (mut got, mut ctl) = (Vec::new(), Vec::new());
        for part in [&out[..5], &out[5..]] {
            let mut stack = [0u8; 64];
            rx.spare(&mut stack)[..part.len()].copy_from_slice(part);
            rx.filled(&stack, part.len(), &mut ctl, |at| got.push(at))
                .unwrap();
        }
        assert_eq!(got, vec![42]);
    }
}
