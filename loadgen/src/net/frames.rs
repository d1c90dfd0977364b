//! loadgen's reader of server frames: [`protocol::wsframe::FrameBuf`] (the
//! small-buffer parser it shares with wsnode) over an async stream.
//!
//! fastwebsockets' reader keeps an 8 KiB buffer per connection, which on its
//! own is most of loadgen's memory budget; this one holds no buffer while
//! the server is silent, 512 bytes while frames arrive, and grows only for
//! a large frame. Writing (masking, framing) still goes
//! through fastwebsockets.

use protocol::wsframe::{FrameBuf, FrameError, Masking};
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, ReadBuf};

pub use protocol::wsframe::{
    OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, RawFrame,
};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the TCP connection")]
    Eof,
    #[error("{0}")]
    Frame(#[from] FrameError),
}

pub struct FrameReader<R> {
    io: R,
    buf: FrameBuf,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R, max: usize) -> Self {
        FrameReader {
            io,
            buf: FrameBuf::new(max, Masking::Either),
        }
    }

    /// Bytes already read from the stream by someone else (the handshake).
    pub fn seed(&mut self, bytes: &[u8]) {
        self.buf.seed(bytes);
    }

    pub fn payload(&self, f: &RawFrame) -> &[u8] {
        self.buf.payload(f)
    }

    /// Read the next frame. Cancel-safe: bytes read stay buffered. No
    /// buffer is held while the server has nothing to say.
    pub async fn next(&mut self) -> Result<RawFrame, ReadError> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<RawFrame, ReadError>> {
        loop {
            if let Some(f) = self.buf.next_frame()? {
                return Poll::Ready(Ok(f));
            }
            let io = &mut self.io;
            let n = ready!(self.buf.poll_fill(|room| {
                let mut rb = ReadBuf::new(room);
                Pin::new(io)
                    .poll_read(cx, &mut rb)
                    .map_ok(|()| rb.filled().len())
            }))?;
            if n == 0 {
                return Poll::Ready(Err(ReadError::Eof));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_arrive_over_a_stream_in_pieces() {
        let mut wire = vec![0x81, 5];
        wire.extend_from_slice(b"hello");
        wire.extend_from_slice(&[0x89, 1, b'p']);
        let (mut a, b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for c in wire.chunks(3) {
                a.write_all(c).await.unwrap();
            }
        });
        let mut r = FrameReader::new(b, 100);
        let f = r.next().await.unwrap();
        assert_eq!((f.opcode, r.payload(&f)), (OP_TEXT, &b"hello"[..]));
        let f = r.next().await.unwrap();
        assert_eq!((f.opcode, r.payload(&f)), (OP_PING, &b"p"[..]));
        assert!(matches!(r.next().await, Err(ReadError::Eof)));
    }

    #[tokio::test]
    async fn a_bad_frame_is_an_error_not_a_panic() {
        let wire = [0x81u8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let mut r = FrameReader::new(&wire[..], 1000);
        assert!(matches!(
            r.next().await,
            Err(ReadError::Frame(FrameError::TooLarge(..)))
        ));
    }
}
