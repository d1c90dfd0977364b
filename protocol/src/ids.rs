//! Session and message identifiers.
//!
//! Ids end up in log lines, Redis keys (`stream:chunks:{id}`) and URLs, so the
//! alphabet is kept to characters that need no escaping anywhere.

/// Longest accepted session id, message id or token, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// True when `s` is 1 to [`MAX_ID_LEN`] characters of `[A-Za-z0-9_.:-]`.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert!(is_valid_id("load_test_1"));
        assert!(is_valid_id("a.b:c-d_E9"));
        assert!(is_valid_id(&"x".repeat(MAX_ID_LEN)));
    }

    #[test]
    fn rejects_everything_else() {
        assert!(!is_valid_id(""));
        assert!(!is_valid_id(&"x".repeat(MAX_ID_LEN + 1)));
        for bad in ["a b", "a/b", "a%20", "é", "a\n", "{x}", "a*"] {
            assert!(!is_valid_id(bad), "{bad:?} should be rejected");
        }
    }
}
