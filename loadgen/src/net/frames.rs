//! loadgen's reader of server frames: [`protocol::wsframe::FrameBuf`] (the
//! small-buffer parser it shares with wsnode) over an async stream.
//!
//! fastwebsockets' reader keeps an 8 KiB buffer per connection, which on its
//! own is most of loadgen's memory budget; this one holds no buffer while
//! the server is silent, 512 bytes while frames arrive, and grows only for
//! a large frame. Writing (masking, framing) still goes
//! through fastwebsockets' `Frame`; [`FrameWriter`] only adds the socket,
//! and gives it back (`into_inner`) when the connection moves to its
//! thread's epoll loop (`engine::steady`), which fastwebsockets' own
//! writer cannot.

use fastwebsockets::{Frame, OpCode, WebSocketError};
use protocol::wsframe::{FrameBuf, FrameError, Masking};
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

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

    pub fn get_ref(&self) -> &R {
        &self.io
    }

    /// The stream and the bytes read from it that are not frames yet.
    pub fn into_parts(self) -> (R, FrameBuf) {
        (self.io, self.buf)
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

/// Payloads above this are written with `writev` (header and payload
/// apart) instead of being copied behind the header first.
const WRITEV_ABOVE: usize = 1024;

/// A client's frame writer: each frame masked (RFC 6455 5.3) and formatted
/// by fastwebsockets' `Frame`, then written whole.
pub struct FrameWriter<W> {
    io: W,
    /// Header and payload of a small frame, so it leaves in one write.
    buf: Vec<u8>,
    closed: bool,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(io: W) -> Self {
        FrameWriter {
            io,
            buf: Vec::new(),
            closed: false,
        }
    }

    /// Mask and write one frame. After a close frame, nothing else is sent.
    pub async fn write_frame(&mut self, mut frame: Frame<'_>) -> Result<(), WebSocketError> {
        if self.closed {
            return Err(WebSocketError::ConnectionClosed);
        }
        self.closed = frame.opcode == OpCode::Close;
        frame.mask();
        if frame.payload.len() > WRITEV_ABOVE {
            frame.writev(&mut self.io).await?;
        } else {
            let bytes = frame.write(&mut self.buf);
            self.io.write_all(bytes).await?;
        }
        Ok(())
    }

    /// The stream, for the steady-state loop.
    pub fn into_inner(self) -> W {
        self.io
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
    async fn written_frames_are_masked_and_read_back_whole() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let mut w = FrameWriter::new(a);
        let big = vec![b'y'; 3000];
        w.write_frame(Frame::text(fastwebsockets::Payload::Borrowed(b"hi")))
            .await
            .unwrap();
        w.write_frame(Frame::binary(fastwebsockets::Payload::Owned(big.clone())))
            .await
            .unwrap();
        w.write_frame(Frame::close(1000, b"")).await.unwrap();
        assert!(
            w.write_frame(Frame::text(fastwebsockets::Payload::Borrowed(b"late")))
                .await
                .is_err(),
            "a frame after the close must be refused"
        );
        drop(w);
        let mut wire = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut { b }, &mut wire)
            .await
            .unwrap();
        // A server's reader: an unmasked frame would be an error here.
        let mut r = FrameBuf::new(1 << 16, Masking::Required);
        r.seed(&wire);
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!((f.opcode, r.payload(&f)), (OP_TEXT, &b"hi"[..]));
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!((f.opcode, r.payload(&f)), (OP_BINARY, &big[..]));
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!(f.opcode, OP_CLOSE);
        assert!(r.next_frame().unwrap().is_none(), "nothing after the close");
        assert_eq!(r.buffered(), 0);
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
