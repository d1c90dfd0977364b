//! The frames a connection's writer owes its client, encoded back to back.
//!
//! Everything the delivery filter emits in one wake-up goes out in one
//! write: a burst of chunks, a replay or a fan-out costs one syscall, not
//! one per frame. fastwebsockets formats each frame's header; the bytes are
//! copied into one buffer, which is given back after each write so an idle
//! connection holds none. The write future is a plain `write_all`, a few
//! dozen bytes in every connection's task (fastwebsockets' `write_frame`
//! future was 320).

use super::delivery::Wire;
use fastwebsockets::{Frame, OpCode, Payload};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Longest frame header a server writes (no mask): 2 + 8.
pub const MAX_HEAD: usize = 14;

#[derive(Debug, Default)]
pub struct Outbox {
    buf: Vec<u8>,
    /// Text frames in `buf` (the node's `messages_out`).
    texts: u64,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn push(&mut self, wire: &Wire) {
        let frame = match wire {
            Wire::Raw(b) => return self.buf.extend_from_slice(b),
            Wire::Text(b) => {
                self.texts += 1;
                Frame::text(Payload::Borrowed(b))
            }
            Wire::Pong(b) => Frame::pong(Payload::Borrowed(b)),
            Wire::Ping => Frame::new(true, OpCode::Ping, None, Payload::Borrowed(b"")),
        };
        self.encode(frame);
    }

    /// The header of a server frame (text, or pong when `text` is false)
    /// with this payload, into `head`; returns its length.
    pub fn head(text: bool, payload: &[u8], head: &mut [u8; MAX_HEAD]) -> usize {
        let payload = Payload::Borrowed(payload);
        let mut frame = if text {
            Frame::text(payload)
        } else {
            Frame::pong(payload)
        };
        frame.fmt_head(head)
    }

    /// The close frame: always the last thing written.
    pub fn close(&mut self, code: u16, reason: &str) {
        self.encode(Frame::close(code, reason.as_bytes()));
    }

    fn encode(&mut self, mut frame: Frame<'_>) {
        let mut head = [0u8; MAX_HEAD];
        let n = frame.fmt_head(&mut head);
        self.buf.reserve(n + frame.payload.len());
        self.buf.extend_from_slice(&head[..n]);
        self.buf.extend_from_slice(&frame.payload);
    }

    /// Write everything queued; returns how many text frames went out.
    /// Not cancel-safe mid-write (a cut write is a broken connection anyway).
    pub async fn flush<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> std::io::Result<u64> {
        w.write_all(&self.buf).await?;
        self.buf = Vec::new();
        Ok(std::mem::take(&mut self.texts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use protocol::wsframe::{FrameBuf, Masking, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

    #[tokio::test]
    async fn frames_go_out_in_one_write_and_parse_back() {
        let mut out = Outbox::default();
        let long = Bytes::from(vec![b'x'; 70_000]);
        out.push(&Wire::Text(Bytes::from_static(b"hello")));
        out.push(&Wire::Text(long.clone()));
        out.push(&Wire::Pong(Bytes::from_static(b"p")));
        out.push(&Wire::Ping);
        out.close(1013, "slow");
        let mut wire = Vec::new();
        assert_eq!(out.flush(&mut wire).await.unwrap(), 2);
        assert!(out.is_empty());
        let mut fb = FrameBuf::new(1 << 20, Masking::Either);
        fb.seed(&wire);
        let mut got = Vec::new();
        while let Some(f) = fb.next_frame().unwrap() {
            got.push((f.opcode, fb.payload(&f).to_vec()));
        }
        assert_eq!(got[0], (OP_TEXT, b"hello".to_vec()));
        assert_eq!(got[1], (OP_TEXT, long.to_vec()));
        assert_eq!(got[2], (OP_PONG, b"p".to_vec()));
        assert_eq!(got[3], (OP_PING, vec![]));
        assert_eq!(got[4].0, OP_CLOSE);
        assert_eq!(&got[4].1[..2], &1013u16.to_be_bytes());
        assert_eq!(&got[4].1[2..], b"slow");
    }
}
