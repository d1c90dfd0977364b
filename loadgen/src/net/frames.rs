//! A lean reader for server-to-client WebSocket frames.
//!
//! fastwebsockets' reader keeps an 8 KiB buffer per connection, which on its
//! own is most of loadgen's memory budget (10 KiB per connection). Replies
//! here are ~100-byte frames, so this reader starts with a small buffer,
//! grows it only for a large frame (up to a hard limit) and shrinks it back
//! afterwards. Writing (masking, framing) still goes through fastwebsockets.

use std::ops::Range;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Initial and resting buffer size.
const SMALL: usize = 512;
/// Buffers above this are shrunk back to [`SMALL`] once empty.
const SHRINK_ABOVE: usize = 4096;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the TCP connection")]
    Eof,
    #[error("a {0}-byte frame exceeds the {1}-byte limit")]
    TooLarge(u64, usize),
    #[error("invalid WebSocket framing: {0}")]
    Protocol(&'static str),
}

/// One frame; the payload is [`FrameReader::payload`] of `range`.
#[derive(Debug, Clone)]
pub struct RawFrame {
    pub opcode: u8,
    pub fin: bool,
    pub range: Range<usize>,
}

pub struct FrameReader<R> {
    io: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
}

struct Header {
    len: usize,
    payload: u64,
    opcode: u8,
    fin: bool,
    mask: Option<[u8; 4]>,
}

fn parse_header(b: &[u8]) -> Result<Option<Header>, ReadError> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[0] & 0x70 != 0 {
        return Err(ReadError::Protocol("reserved bits set"));
    }
    let fin = b[0] & 0x80 != 0;
    let opcode = b[0] & 0x0f;
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(ReadError::Protocol("unknown opcode"));
    }
    let masked = b[1] & 0x80 != 0;
    let (mut len, payload) = match b[1] & 0x7f {
        126 => {
            if b.len() < 4 {
                return Ok(None);
            }
            (4, u64::from(u16::from_be_bytes([b[2], b[3]])))
        }
        127 => {
            if b.len() < 10 {
                return Ok(None);
            }
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[2..10]);
            (10, u64::from_be_bytes(a))
        }
        n => (2, u64::from(n)),
    };
    if opcode >= OP_CLOSE && (payload > 125 || !fin) {
        return Err(ReadError::Protocol("bad control frame"));
    }
    let mask = if masked {
        if b.len() < len + 4 {
            return Ok(None);
        }
        let m = [b[len], b[len + 1], b[len + 2], b[len + 3]];
        len += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some(Header {
        len,
        payload,
        opcode,
        fin,
        mask,
    }))
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R, max: usize) -> Self {
        FrameReader {
            io,
            buf: Vec::new(),
            start: 0,
            end: 0,
            max,
        }
    }

    /// Bytes already read from the stream by someone else (the handshake).
    pub fn seed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.room(self.end - self.start + bytes.len());
        let end = self.end + bytes.len();
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        self.buf[self.end..end].copy_from_slice(bytes);
        self.end = end;
    }

    pub fn payload(&self, f: &RawFrame) -> &[u8] {
        &self.buf[f.range.clone()]
    }

    /// Make room for `need` bytes from `start`.
    fn room(&mut self, need: usize) {
        let have = self.end - self.start;
        if self.buf.len() > SHRINK_ABOVE && need <= SMALL {
            // Back to a small buffer after a large frame.
            let mut small = vec![0; SMALL];
            small[..have].copy_from_slice(&self.buf[self.start..self.end]);
            self.buf = small;
            self.start = 0;
            self.end = have;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.start < need {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < need.max(SMALL) {
            self.buf.resize(need.max(SMALL).next_power_of_two(), 0);
        }
    }

    /// Read the next frame.
    pub async fn next(&mut self) -> Result<RawFrame, ReadError> {
        loop {
            let need = match parse_header(&self.buf[self.start..self.end])? {
                Some(h) => {
                    if h.payload > self.max as u64 {
                        return Err(ReadError::TooLarge(h.payload, self.max));
                    }
                    let total = h.len + h.payload as usize;
                    if self.end - self.start >= total {
                        let range = self.start + h.len..self.start + total;
                        if let Some(m) = h.mask {
                            for (i, b) in self.buf[range.clone()].iter_mut().enumerate() {
                                *b ^= m[i & 3];
                            }
                        }
                        self.start += total;
                        return Ok(RawFrame {
                            opcode: h.opcode,
                            fin: h.fin,
                            range,
                        });
                    }
                    total
                }
                None => 14,
            };
            self.room(need);
            let n = self.io.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(ReadError::Eof);
            }
            self.end += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(op: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut v = vec![0x80 | op];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => v.push(m | n as u8),
            n if n < 65536 => {
                v.push(m | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(m | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                v.extend_from_slice(&k);
                v.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i & 3]));
            }
            None => v.extend_from_slice(payload),
        }
        v
    }

    #[tokio::test]
    async fn reads_small_big_and_masked_frames_split_anywhere() {
        let big = vec![b'z'; 70_000];
        let mut wire = frame(OP_TEXT, b"hello", None);
        wire.extend(frame(OP_BINARY, &big, None));
        wire.extend(frame(OP_TEXT, b"masked!", Some([1, 2, 3, 4])));
        wire.extend(frame(OP_PING, b"p", None));
        wire.extend(frame(OP_TEXT, &[b'a'; 300], None));
        // Deliver in awkward 7-byte pieces.
        let (mut a, b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for c in wire.chunks(7) {
                a.write_all(c).await.unwrap();
            }
        });
        let mut r = FrameReader::new(b, 1 << 20);
        let f = r.next().await.unwrap();
        assert_eq!((f.opcode, r.payload(&f)), (OP_TEXT, &b"hello"[..]));
        let f = r.next().await.unwrap();
        assert_eq!(r.payload(&f).len(), 70_000);
        let f = r.next().await.unwrap();
        assert_eq!(r.payload(&f), b"masked!");
        let f = r.next().await.unwrap();
        assert_eq!((f.opcode, r.payload(&f)), (OP_PING, &b"p"[..]));
        let f = r.next().await.unwrap();
        assert_eq!(r.payload(&f).len(), 300);
        assert!(r.buf.len() <= SMALL, "shrunk back: {}", r.buf.len());
        assert!(matches!(r.next().await, Err(ReadError::Eof)));
    }

    #[tokio::test]
    async fn seeded_bytes_come_first() {
        let mut wire = frame(OP_TEXT, b"welcome", None);
        wire.extend(frame(OP_TEXT, b"next", None));
        let (seed, rest) = wire.split_at(5);
        let mut r = FrameReader::new(rest, 100);
        r.seed(seed);
        let f = r.next().await.unwrap();
        assert_eq!(r.payload(&f), b"welcome");
        let f = r.next().await.unwrap();
        assert_eq!(r.payload(&f), b"next");
    }

    #[tokio::test]
    async fn rejects_bad_frames() {
        for wire in [
            vec![0xf1, 0x00],                 // reserved bits
            vec![0x83, 0x00],                 // unknown opcode
            vec![0x09, 0x00],                 // fragmented ping
            frame(OP_PING, &[0; 126], None),  // oversized control frame
            frame(OP_TEXT, &[0; 2000], None), // above the limit
        ] {
            let mut r = FrameReader::new(&wire[..], 1000);
            assert!(r.next().await.is_err(), "{:?}", &wire[..2]);
        }
    }
}
