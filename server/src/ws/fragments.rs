//! Reassembly of fragmented messages, bounded by `--max-message-size` and
//! `--fragment-timeout`.
//!
//! The frame reader (`protocol::wsframe`) checks the size of each frame,
//! not the total of a fragmented message, so a client could send endless
//! continuation frames. This assembler enforces the limit on the whole
//! message and validates UTF-8 once it is complete.
//!
//! Size alone is not enough: empty continuation frames never reach it, and
//! each one (like a ping) counts as activity for `--idle-timeout`. So a
//! message also has a time limit from its first frame. The connection calls
//! [`Assembler::check`] for every frame it reads, control frames included,
//! so a client that keeps an unfinished message open with pings is closed
//! at its first frame past the limit; one that sends nothing at all is
//! closed by `--idle-timeout`. An unfinished message thus lasts at most
//! `--fragment-timeout` plus the gap to the client's next frame (under
//! `--idle-timeout`).

use protocol::wsframe::{OP_BINARY, OP_CONTINUATION, OP_TEXT};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, PartialEq, Eq)]
pub enum FragmentError {
    TooBig,
    /// Continuation without a start, or a new message inside a fragmented one.
    Sequence,
    InvalidUtf8,
    /// Unfinished for longer than the fragment timeout.
    TooSlow,
}

/// A complete message.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
}

pub struct Assembler {
    max: usize,
    timeout: Duration,
    /// `Some(is_text)` while a fragmented message is in progress.
    started: Option<bool>,
    /// When the message in progress began.
    since: Instant,
    buf: Vec<u8>,
}

impl Assembler {
    pub fn new(max: usize, timeout: Duration) -> Assembler {
        Assembler {
            max,
            timeout,
            started: None,
            since: Instant::now(),
            buf: Vec::new(),
        }
    }

    /// Fails once the message in progress (if any) is older than the timeout.
    pub fn check(&self) -> Result<(), FragmentError> {
        if self.started.is_some() && self.since.elapsed() > self.timeout {
            return Err(FragmentError::TooSlow);
        }
        Ok(())
    }

    /// True while a fragmented message is being collected.
    pub fn in_progress(&self) -> bool {
        self.started.is_some()
    }

    /// Add one data frame; returns the message once its final frame arrived.
    pub fn push(
        &mut self,
        opcode: u8,
        fin: bool,
        payload: &[u8],
    ) -> Result<Option<Message>, FragmentError> {
        match (opcode, self.started) {
            (OP_TEXT | OP_BINARY, None) => {
                self.started = Some(opcode == OP_TEXT);
                self.since = Instant::now();
            }
            (OP_CONTINUATION, Some(_)) => self.check()?,
            _ => return Err(FragmentError::Sequence),
        }
        if self.buf.len() + payload.len() > self.max {
            return Err(FragmentError::TooBig);
        }
        self.buf.extend_from_slice(payload);
        if !fin {
            return Ok(None);
        }
        let is_text = self.started.take() == Some(true);
        let data = std::mem::take(&mut self.buf);
        if is_text {
            String::from_utf8(data)
                .map(|s| Some(Message::Text(s)))
                .map_err(|_| FragmentError::InvalidUtf8)
        } else {
            Ok(Some(Message::Binary(data)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_and_bounds() {
        let mut a = Assembler::new(10, Duration::from_secs(10));
        assert_eq!(a.push(OP_TEXT, false, b"he").unwrap(), None);
        assert!(a.in_progress());
        assert_eq!(
            a.push(OP_CONTINUATION, true, b"llo").unwrap(),
            Some(Message::Text("hello".into()))
        );
        assert!(!a.in_progress());
        assert_eq!(a.push(OP_BINARY, false, b"123456").unwrap(), None);
        assert_eq!(
            a.push(OP_CONTINUATION, false, b"78901").unwrap_err(),
            FragmentError::TooBig
        );
    }

    #[test]
    fn rejects_bad_sequences_and_utf8() {
        let mut a = Assembler::new(100, Duration::from_secs(10));
        assert_eq!(
            a.push(OP_CONTINUATION, true, b"x").unwrap_err(),
            FragmentError::Sequence
        );
        let mut a = Assembler::new(100, Duration::from_secs(10));
        a.push(OP_TEXT, false, b"x").unwrap();
        assert_eq!(
            a.push(OP_TEXT, true, b"y").unwrap_err(),
            FragmentError::Sequence
        );
        let mut a = Assembler::new(100, Duration::from_secs(10));
        // A multi-byte character split across frames is fine...
        a.push(OP_TEXT, false, &[0xc3]).unwrap();
        assert_eq!(
            a.push(OP_CONTINUATION, true, &[0xa9]).unwrap(),
            Some(Message::Text("\u{e9}".into()))
        );
        // ...an invalid sequence is not.
        a.push(OP_TEXT, false, &[0xc3]).unwrap();
        assert_eq!(
            a.push(OP_CONTINUATION, true, b"(").unwrap_err(),
            FragmentError::InvalidUtf8
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfinished_message_has_a_time_limit() {
        let limit = Duration::from_secs(10);
        let mut a = Assembler::new(100, limit);
        // Nothing in progress: no clock runs.
        tokio::time::advance(limit * 2).await;
        assert_eq!(a.check(), Ok(()));
        a.push(OP_TEXT, false, b"").unwrap();
        tokio::time::advance(limit).await;
        assert_eq!(a.check(), Ok(()));
        assert_eq!(a.push(OP_CONTINUATION, false, b"").unwrap(), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        // Empty continuations (or pings, which only call check) do not extend it.
        assert_eq!(a.check(), Err(FragmentError::TooSlow));
        assert_eq!(
            a.push(OP_CONTINUATION, true, b"").unwrap_err(),
            FragmentError::TooSlow
        );
        // A new message starts a new clock.
        let mut a = Assembler::new(100, limit);
        a.push(OP_TEXT, false, b"a").unwrap();
        tokio::time::advance(limit).await;
        assert_eq!(
            a.push(OP_CONTINUATION, true, b"b").unwrap(),
            Some(Message::Text("ab".into()))
        );
        tokio::time::advance(limit * 2).await;
        a.push(OP_BINARY, false, b"c").unwrap();
        assert_eq!(a.check(), Ok(()));
    }
}
