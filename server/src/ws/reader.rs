//! The node's reader of client frames: [`protocol::wsframe::FrameBuf`] (the
//! small-buffer parser it shares with loadgen) over the socket's read half.
//!
//! fastwebsockets' reader keeps an 8 KiB buffer for as long as the
//! connection lives. This one takes 512 bytes while bytes are arriving and
//! gives the buffer back each time the socket has nothing more to read, so
//! an idle connection holds no read buffer at all: at 10 messages a second
//! that is one small allocation per message, against a few KiB for every
//! connection a node keeps open.

use protocol::wsframe::{FrameBuf, FrameError, RawFrame};
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, ReadBuf};

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadFail {
    Io,
    Eof,
    Frame(FrameError),
}

pub struct ClientReader<R> {
    io: R,
    buf: FrameBuf,
}

impl<R: AsyncRead + Unpin> ClientReader<R> {
    /// A reader going on from `frames`: bytes already read past the upgrade
    /// request, or by an epoll loop, and not yet consumed (see
    /// [`FrameBuf::new`] for the frame limit and masking).
    pub fn with_frames(io: R, frames: FrameBuf) -> Self {
        ClientReader { io, buf: frames }
    }

    /// The socket half it reads from.
    pub fn io(&self) -> &R {
        &self.io
    }

    pub fn payload(&self, f: &RawFrame) -> &[u8] {
        self.buf.payload(f)
    }

    /// The next frame, unmasked. Cancel-safe: bytes read stay buffered.
    pub async fn next(&mut self) -> Result<RawFrame, ReadFail> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<RawFrame, ReadFail>> {
        loop {
            match self.buf.next_frame() {
                Ok(Some(f)) => return Poll::Ready(Ok(f)),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(ReadFail::Frame(e))),
            }
            let io = &mut self.io;
            let read = ready!(self.buf.poll_fill(|room| {
                let mut rb = ReadBuf::new(room);
                Pin::new(io)
                    .poll_read(cx, &mut rb)
                    .map_ok(|()| rb.filled().len())
            }));
            match read {
                Ok(0) => return Poll::Ready(Err(ReadFail::Eof)),
                Ok(_) => {}
                Err(_) => return Poll::Ready(Err(ReadFail::Io)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::wsframe::Masking;
    use tokio::io::AsyncWriteExt;

    fn reader<R: AsyncRead + Unpin>(io: R, max: usize, early: &[u8]) -> ClientReader<R> {
        let mut frames = FrameBuf::new(max, Masking::Required);
        frames.seed(early);
        ClientReader::with_frames(io, frames)
    }

    fn masked(op: u8, payload: &[u8]) -> Vec<u8> {
        let key = [7, 1, 9, 3];
        let mut v = vec![0x80 | op, 0x80 | payload.len() as u8];
        v.extend_from_slice(&key);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        v
    }

    #[tokio::test]
    async fn reads_frames_and_holds_no_buffer_while_waiting() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut wire = masked(0x1, b"first");
        let early = wire.split_off(3);
        let mut r = reader(server, 1000, &wire);
        client.write_all(&early).await.unwrap();
        let f = r.next().await.unwrap();
        assert_eq!(r.payload(&f), b"first");
        // Nothing to read: the pending read gives the buffer back.
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), r.next()).await;
        assert!(pending.is_err());
        assert_eq!(r.buf.capacity(), 0);
        client.write_all(&masked(0x9, b"p")).await.unwrap();
        let f = r.next().await.unwrap();
        assert_eq!((f.opcode, r.payload(&f)), (0x9, &b"p"[..]));
        drop(client);
        assert!(matches!(r.next().await, Err(ReadFail::Eof)));
    }

    #[tokio::test]
    async fn an_unmasked_client_frame_is_refused() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(&[0x81, 2, b'h', b'i']).await.unwrap();
        let mut r = reader(server, 1000, &[]);
        assert!(matches!(r.next().await, Err(ReadFail::Frame(_))));
    }
}
