//! Session ids and tokens.
//!
//! A token is 128 random bits, handed out in the first `welcome` of a
//! session and required to attach to it again: knowing a session id alone
//! must not let anyone read another user's stream.

use std::sync::Arc;

fn random_hex<const N: usize>() -> String {
    let mut buf = [0u8; N];
    // The OS RNG failing is unrecoverable for a server that hands out
    // secrets; fall back to a clearly weaker value rather than panic.
    if getrandom::fill(&mut buf).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
        }
        tracing::error!("OS random number generator failed; tokens are weak");
    }
    let mut s = String::with_capacity(N * 2);
    for b in buf {
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    s
}

/// A fresh session token.
pub fn new_token() -> Arc<str> {
    random_hex::<16>().into()
}

/// A fresh session id for a client that did not bring one.
pub fn new_session_id() -> Arc<str> {
    format!("s-{}", random_hex::<12>()).into()
}

/// A node-unique message id for a chat that did not bring one.
pub fn new_message_id(node_id: &str, seq: u64) -> Arc<str> {
    // Node ids are ASCII (validated), so byte slicing is safe; 64 + 1 + 20 +
    // 1 + 8 stays within MAX_ID_LEN.
    let prefix = &node_id[..node_id.len().min(64)];
    format!("{prefix}-{seq}-{}", random_hex::<4>()).into()
}

/// Compare tokens in time independent of where they differ.
pub fn token_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::ids::is_valid_id;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(is_valid_id(&a) && is_valid_id(&new_session_id()));
        assert!(is_valid_id(&new_message_id(&"n".repeat(100), u64::MAX)));
    }

    #[test]
    fn token_comparison() {
        assert!(token_eq("abc", "abc"));
        assert!(!token_eq("abc", "abd"));
        assert!(!token_eq("abc", "abcd"));
    }
}
