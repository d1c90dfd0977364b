//! Why a connection ended, and the close frame that says so.
//!
//! Every way a connection can end (the client's close, a lost TCP
//! connection, a limit, the node's shutdown) is one [`End`]; the writer
//! turns it into the close code and reason the client reads (RFC 6455).

use super::reader::ReadFail;
use protocol::close;
use protocol::wsframe::FrameError;

/// Why a connection ended; decides the close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The client sent a close frame with this code (echoed back).
    ClientClosed(u16),
    /// TCP closed without a close frame.
    Eof,
    Idle,
    TooBig,
    InvalidData,
    Protocol,
    /// A fragmented message unfinished past `--fragment-timeout`.
    FragmentTimeout,
    SlowConsumer,
    /// A slow consumer cut off in the middle of a write (no close frame possible).
    SlowConsumerCut,
    Shutdown,
    /// Writing failed or was cut short: no close frame can be sent.
    Broken,
}

impl End {
    pub fn close_code(&self) -> Option<u16> {
        Some(match self {
            End::ClientClosed(code) => *code,
            End::Idle => close::POLICY,
            End::TooBig => close::TOO_BIG,
            End::InvalidData => close::INVALID_DATA,
            End::Protocol => close::PROTOCOL_ERROR,
            End::FragmentTimeout => close::POLICY,
            End::SlowConsumer => close::TRY_AGAIN_LATER,
            End::Shutdown => close::GOING_AWAY,
            End::Eof | End::Broken | End::SlowConsumerCut => return None,
        })
    }

    pub fn reason(&self) -> &'static str {
        match self {
            End::ClientClosed(_) => "client closed",
            End::Eof => "connection lost",
            End::Idle => "idle timeout",
            End::TooBig => "message too large",
            End::InvalidData => "invalid UTF-8",
            End::Protocol => "protocol error",
            End::FragmentTimeout => "fragmented message unfinished too long",
            End::SlowConsumer | End::SlowConsumerCut => "outbound queue overflow (slow reader)",
            End::Shutdown => "node shutting down",
            End::Broken => "write failed",
        }
    }
}

pub fn read_error(e: ReadFail) -> End {
    match e {
        ReadFail::Eof | ReadFail::Io => End::Eof,
        ReadFail::Frame(FrameError::TooLarge(..)) => End::TooBig,
        ReadFail::Frame(FrameError::Protocol(_)) => End::Protocol,
    }
}

/// The code to echo for a client's close frame (RFC 6455 5.5.1, 7.4).
pub fn close_reply(payload: &[u8]) -> u16 {
    match payload {
        [] => close::NORMAL,
        [a, b, rest @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            let valid = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
            if valid && std::str::from_utf8(rest).is_ok() {
                code
            } else {
                close::PROTOCOL_ERROR
            }
        }
        _ => close::PROTOCOL_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_are_validated() {
        assert_eq!(close_reply(&[]), 1000);
        assert_eq!(close_reply(&1001u16.to_be_bytes()), 1001);
        assert_eq!(close_reply(&1005u16.to_be_bytes()), 1002);
        assert_eq!(close_reply(&[3]), 1002);
        assert_eq!(
            close_reply(&[0x0f, 0xa0, 0xff]),
            1002,
            "invalid UTF-8 reason"
        );
    }
}
