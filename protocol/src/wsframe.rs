//! A small-buffer WebSocket frame reader, without I/O, shared by wsnode and
//! loadgen.
//!
//! fastwebsockets' reader keeps an 8 KiB buffer per connection, which was
//! most of an idle node connection's memory and most of loadgen's budget.
//! Messages here are ~100-byte frames, so [`FrameBuf`] starts with no buffer,
//! takes 512 bytes on the first read, grows only for a larger frame (up to
//! a hard limit) and shrinks back afterwards; [`FrameBuf::release`] gives
//! the memory back while a connection is idle. Writing (masking, framing)
//! stays with fastwebsockets.
//!
//! It does no I/O: the caller reads into [`FrameBuf::spare`] and reports
//! the count with [`FrameBuf::filled`], or hands [`FrameBuf::poll_fill`] a
//! non-blocking read. That keeps this crate free of an
//! async runtime, makes the parser a plain function for fuzzing, and makes
//! every read loop built on it cancel-safe (bytes are kept in the buffer
//! until a whole frame is there).

use std::ops::Range;
use std::task::Poll;

/// Size of the first buffer and of the buffer after a large frame.
pub const SMALL: usize = 512;
/// Buffers above this are shrunk back to [`SMALL`] once a large frame is consumed.
const SHRINK_ABOVE: usize = 4096;
/// Longest frame header: 2 + 8 (length) + 4 (mask).
const MAX_HEADER: usize = 14;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Why the bytes received are not an acceptable frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a {0}-byte frame exceeds the {1}-byte limit")]
    TooLarge(u64, usize),
    #[error("invalid WebSocket framing: {0}")]
    Protocol(&'static str),
}

/// Which masking the peer must use (RFC 6455 5.1: clients mask, servers do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masking {
    /// Reading a client's frames: every frame must be masked.
    Required,
    /// Reading a server's frames: masked frames are unmasked, not refused.
    Either,
}

/// One frame; its payload is [`FrameBuf::payload`] of `range`, valid until
/// the buffer is next filled or released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub opcode: u8,
    pub fin: bool,
    pub range: Range<usize>,
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Header length in bytes (mask key included).
    pub len: usize,
    pub payload: u64,
    pub opcode: u8,
    pub fin: bool,
    pub mask: Option<[u8; 4]>,
}

/// Parse one header from the front of `b`; `Ok(None)` when more bytes are
/// needed. Rejects reserved bits, unknown opcodes and bad control frames.
pub fn parse_header(b: &[u8]) -> Result<Option<Header>, FrameError> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[0] & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits set"));
    }
    let fin = b[0] & 0x80 != 0;
    let opcode = b[0] & 0x0f;
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(FrameError::Protocol("unknown opcode"));
    }
    let masked = b[1] & 0x80 != 0;
    let (mut len, payload) = match b[1] & 0x7f {
        126 => {
            let Some(n) = b.get(2..4) else {
                return Ok(None);
            };
            (4, u64::from(u16::from_be_bytes([n[0], n[1]])))
        }
        127 => {
            let Some(n) = b.get(2..10) else {
                return Ok(None);
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(n);
            (10, u64::from_be_bytes(a))
        }
        n => (2, u64::from(n)),
    };
    if opcode >= OP_CLOSE && (payload > 125 || !fin) {
        return Err(FrameError::Protocol("bad control frame"));
    }
    let mask = if masked {
        let Some(k) = b.get(len..len + 4) else {
            return Ok(None);
        };
        len += 4;
        Some([k[0], k[1], k[2], k[3]])
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

/// XOR `data` with the mask key, as both masking and unmasking do.
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (b, k) in chunks.into_remainder().iter_mut().zip(key) {
        *b ^= k;
    }
}

/// Received bytes and the frames in them. See the module docs.
#[derive(Debug)]
pub struct FrameBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Where the frame [`next_frame`](FrameBuf::next_frame) returned last began.
    last: usize,
    max: usize,
    masking: Masking,
    /// Bytes from `start` the next frame needs (its header, then all of it).
    need: usize,
}

impl FrameBuf {
    /// A reader refusing frames with a payload over `max` bytes.
    pub fn new(max: usize, masking: Masking) -> FrameBuf {
        FrameBuf {
            buf: Vec::new(),
            start: 0,
            end: 0,
            last: 0,
            max,
            masking,
            need: 2,
        }
    }

    /// Bytes already read from the stream by someone else (the handshake).
    pub fn seed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.spare_at_least(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        self.filled(bytes.len());
    }

    /// Bytes received and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Bytes of memory the buffer holds.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, unmasked, if it has arrived; `Ok(None)` means
    /// read more into [`spare`](Self::spare).
    pub fn next_frame(&mut self) -> Result<Option<RawFrame>, FrameError> {
        let Some(h) = parse_header(&self.buf[self.start..self.end])? else {
            self.need = MAX_HEADER.min(self.buffered() + 1).max(2);
            return Ok(None);
        };
        if h.payload > self.max as u64 {
            return Err(FrameError::TooLarge(h.payload, self.max));
        }
        if self.masking == Masking::Required && h.mask.is_none() {
            return Err(FrameError::Protocol("unmasked client frame"));
        }
        let total = h.len + h.payload as usize;
        if self.buffered() < total {
            self.need = total;
            return Ok(None);
        }
        let range = self.start + h.len..self.start + total;
        if let Some(key) = h.mask {
            apply_mask(&mut self.buf[range.clone()], key);
        }
        self.last = self.start;
        self.start += total;
        self.need = 2;
        Ok(Some(RawFrame {
            opcode: h.opcode,
            fin: h.fin,
            range,
        }))
    }

    /// The payload of a frame [`next_frame`](Self::next_frame) just returned.
    pub fn payload(&self, f: &RawFrame) -> &[u8] {
        &self.buf[f.range.clone()]
    }

    /// Give back the frame [`next_frame`](Self::next_frame) just returned,
    /// as it arrived (masked again): the next call returns it again. For a
    /// reader that hands its connection to another one, which must see the
    /// frame whole. Call it before anything else touches the buffer; a
    /// frame that is not the last one returned is left alone.
    pub fn put_back(&mut self, f: &RawFrame) {
        if f.range.end != self.start || self.last >= self.start {
            return;
        }
        if let Ok(Some(h)) = parse_header(&self.buf[self.last..self.end])
            && let Some(key) = h.mask
        {
            apply_mask(&mut self.buf[f.range.clone()], key);
        }
        self.start = self.last;
        self.need = 2;
    }

    /// Room to read into: at least what the pending frame still needs
    /// (bounded by the frame limit), at least one byte.
    pub fn spare(&mut self) -> &mut [u8] {
        let need = self.need.saturating_sub(self.buffered()).max(1);
        self.spare_at_least(need)
    }

    fn spare_at_least(&mut self, more: usize) -> &mut [u8] {
        let have = self.buffered();
        let need = have + more;
        if have == 0 {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() > SHRINK_ABOVE && need <= SMALL {
            // Back to a small buffer after a large frame.
            let mut small = vec![0; SMALL];
            small[..have].copy_from_slice(&self.buf[self.start..self.end]);
            self.buf = small;
            self.start = 0;
            self.end = have;
        }
        if self.buf.len() - self.start < need {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = have;
        }
        if self.buf.len() < need.max(SMALL) {
            self.buf.resize(need.max(SMALL).next_power_of_two(), 0);
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into [`spare`](Self::spare).
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Read more through `read`, which is handed the room to fill and
    /// answers like a non-blocking read (`Pending` when nothing is there).
    /// While no buffer is held, `read` fills a stack array instead, so a
    /// wake-up without data allocates nothing; when `read` is pending the
    /// buffer is given back if it holds nothing. Returns the bytes read
    /// (0: end of stream).
    pub fn poll_fill(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        if self.buf.is_empty() {
            let mut stack = [0u8; SMALL];
            let n = match read(&mut stack) {
                Poll::Ready(Ok(n)) => n.min(SMALL),
                other => return other,
            };
            self.seed(&stack[..n]);
            return Poll::Ready(Ok(n));
        }
        let polled = read(self.spare());
        match polled {
            Poll::Ready(Ok(n)) => self.filled(n),
            Poll::Pending => self.release(),
            Poll::Ready(Err(_)) => {}
        }
        polled
    }

    /// Free the buffer if nothing is pending: an idle connection then holds
    /// no read buffer until its next bytes arrive.
    pub fn release(&mut self) {
        if self.buffered() == 0 {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }
}

#[cfg(test)]
#[path = "wsframe_tests.rs"]
mod tests;
