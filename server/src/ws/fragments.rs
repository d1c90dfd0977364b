//! Reassembly of fragmented messages, bounded by `--max-message-size`.
//!
//! fastwebsockets checks the size of each frame, but its fragment collector
//! does not bound the total of a fragmented message, so a client could send
//! endless continuation frames. This assembler enforces the limit on the
//! whole message and validates UTF-8 once it is complete.

use fastwebsockets::OpCode;

#[derive(Debug, PartialEq, Eq)]
pub enum FragmentError {
    TooBig,
    /// Continuation without a start, or a new message inside a fragmented one.
    Sequence,
    InvalidUtf8,
}

/// A complete message.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
}

pub struct Assembler {
    max: usize,
    /// `Some(is_text)` while a fragmented message is in progress.
    started: Option<bool>,
    buf: Vec<u8>,
}

impl Assembler {
    pub fn new(max: usize) -> Assembler {
        Assembler {
            max,
            started: None,
            buf: Vec::new(),
        }
    }

    /// True while a fragmented message is being collected.
    pub fn in_progress(&self) -> bool {
        self.started.is_some()
    }

    /// Add one data frame; returns the message once its final frame arrived.
    pub fn push(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: &[u8],
    ) -> Result<Option<Message>, FragmentError> {
        match (opcode, self.started) {
            (OpCode::Text | OpCode::Binary, None) => self.started = Some(opcode == OpCode::Text),
            (OpCode::Continuation, Some(_)) => {}
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
        let mut a = Assembler::new(10);
        assert_eq!(a.push(OpCode::Text, false, b"he").unwrap(), None);
        assert!(a.in_progress());
        assert_eq!(
            a.push(OpCode::Continuation, true, b"llo").unwrap(),
            Some(Message::Text("hello".into()))
        );
        assert!(!a.in_progress());
        assert_eq!(a.push(OpCode::Binary, false, b"123456").unwrap(), None);
        assert_eq!(
            a.push(OpCode::Continuation, false, b"78901").unwrap_err(),
            FragmentError::TooBig
        );
    }

    #[test]
    fn rejects_bad_sequences_and_utf8() {
        let mut a = Assembler::new(100);
        assert_eq!(
            a.push(OpCode::Continuation, true, b"x").unwrap_err(),
            FragmentError::Sequence
        );
        let mut a = Assembler::new(100);
        a.push(OpCode::Text, false, b"x").unwrap();
        assert_eq!(
            a.push(OpCode::Text, true, b"y").unwrap_err(),
            FragmentError::Sequence
        );
        let mut a = Assembler::new(100);
        // A multi-byte character split across frames is fine...
        a.push(OpCode::Text, false, &[0xc3]).unwrap();
        assert_eq!(
            a.push(OpCode::Continuation, true, &[0xa9]).unwrap(),
            Some(Message::Text("\u{e9}".into()))
        );
        // ...an invalid sequence is not.
        a.push(OpCode::Text, false, &[0xc3]).unwrap();
        assert_eq!(
            a.push(OpCode::Continuation, true, b"(").unwrap_err(),
            FragmentError::InvalidUtf8
        );
    }
}
