//! Deterministic chunk text.
//!
//! The node's simulated AI answer is made of chunks whose text depends only on
//! `(message_id, index)`. The text of length `n` is always the prefix of the
//! text of length `n + 1`, so a client can verify a chunk from its own length
//! alone, whatever chunk size the node was configured with.

const WORDS: [&str; 32] = [
    "the", "stream", "node", "token", "answer", "model", "quick", "session", "redis", "chunk",
    "order", "never", "lost", "each", "reply", "fast", "cluster", "hello", "world", "data",
    "under", "load", "safe", "again", "bytes", "socket", "frame", "ready", "steady", "flow",
    "proof", "test",
];

/// FNV-1a, chosen for being tiny and stable across versions and platforms.
fn seed(message_id: &str, index: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in message_id.bytes().chain(index.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The endless byte sequence a chunk's text is a prefix of.
fn text_bytes(message_id: &str, index: u32) -> impl Iterator<Item = u8> {
    let mut state = seed(message_id, index) | 1;
    std::iter::from_fn(move || {
        // xorshift64: cheap, deterministic, good enough to pick words.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Some(WORDS[(state % WORDS.len() as u64) as usize])
    })
    .flat_map(|w| w.bytes().chain(std::iter::once(b' ')))
}

/// The text of chunk `index` of `message_id`, exactly `len` ASCII bytes long.
pub fn chunk_text(message_id: &str, index: u32, len: usize) -> String {
    let bytes: Vec<u8> = text_bytes(message_id, index).take(len).collect();
    // Every word is ASCII, so this cannot fail.
    String::from_utf8(bytes).unwrap_or_default()
}

/// True when `text` is what chunk `index` of `message_id` must contain.
/// Allocation-free, so a load generator can check every chunk it receives.
pub fn verify_chunk(message_id: &str, index: u32, text: &str) -> bool {
    text.bytes()
        .eq(text_bytes(message_id, index).take(text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_length_and_prefix_stable() {
        let long = chunk_text("m1", 3, 64);
        assert_eq!(long.len(), 64);
        for n in 0..64 {
            let short = chunk_text("m1", 3, n);
            assert_eq!(short.len(), n);
            assert!(long.starts_with(&short));
        }
    }

    #[test]
    fn differs_by_message_and_index() {
        assert_ne!(chunk_text("m1", 0, 32), chunk_text("m1", 1, 32));
        assert_ne!(chunk_text("m1", 0, 32), chunk_text("m2", 0, 32));
        assert_eq!(chunk_text("m1", 7, 32), chunk_text("m1", 7, 32));
    }

    #[test]
    fn verify_accepts_own_text_and_rejects_others() {
        let t = chunk_text("abc", 5, 20);
        assert!(verify_chunk("abc", 5, &t));
        assert!(!verify_chunk("abc", 6, &t));
        assert!(!verify_chunk("abd", 5, &t));
        let mut tampered = t.clone().into_bytes();
        tampered[3] = b'#';
        assert!(!verify_chunk(
            "abc",
            5,
            std::str::from_utf8(&tampered).unwrap()
        ));
    }
}
