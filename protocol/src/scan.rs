//! A cursor over JSON's plain form, for one-pass readers that must read
//! exactly what serde_json reads or give up.
//!
//! The node's `decode_client` fast path and loadgen's one-pass reply tree
//! both read one object of plain members (strings without escapes,
//! integers) without serde, and leave anything else to serde. The rules of
//! what "plain" means live here once: JSON's whitespace, strings without
//! escapes or control characters, integers without sign games, leading
//! zeros, fractions, exponents or overflow. Every method returns `None` at
//! the first byte outside that form; the caller then asks serde.

/// The cursor, over text already known to be UTF-8.
pub struct Scan<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    #[inline]
    pub fn new(text: &'a str) -> Scan<'a> {
        Scan {
            s: text,
            b: text.as_bytes(),
            i: 0,
        }
    }

    /// Over bytes: `None` unless they are UTF-8 (then serde must judge).
    #[inline]
    pub fn bytes(b: &'a [u8]) -> Option<Scan<'a>> {
        std::str::from_utf8(b).ok().map(Scan::new)
    }

    /// Skip JSON's whitespace (serde_json skips exactly these).
    #[inline]
    pub fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// After whitespace, the byte `c`.
    #[inline]
    pub fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// After whitespace, the next byte, taken.
    #[inline]
    pub fn next_byte(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    /// After whitespace, the next byte, not taken.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// After whitespace, the literal `w` (`null`, `true`, `false`).
    #[inline]
    pub fn word(&mut self, w: &[u8]) -> Option<()> {
        self.ws();
        self.b[self.i..].starts_with(w).then(|| self.i += w.len())
    }

    /// Only whitespace is left.
    #[inline]
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    /// A string without escapes or control characters.
    #[inline]
    pub fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = first_special(&self.b[start..])?;
        // The closing quote itself: no whitespace skipped before it.
        (self.b[start + len] == b'"').then_some(())?;
        self.i = start + len + 1;
        // Cut at ASCII quotes: on char boundaries.
        self.s.get(start..start + len)
    }

    /// An integer, after whitespace: `Ok(n)` for `n`, `Err(n)` for `-n`
    /// (never `-0`, which serde reads as a float). No leading zero,
    /// fraction or exponent, no overflow of 64 bits.
    #[inline]
    pub fn integer(&mut self) -> Option<Result<u64, u64>> {
        let neg = self.peek()? == b'-';
        if neg {
            self.i += 1;
        }
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(&c @ b'0'..=b'9') = self.b.get(self.i) {
            // Nineteen digits always fit 64 bits: only a longer number
            // pays for the overflow checks.
            n = if self.i - start < 19 {
                n * 10 + u64::from(c - b'0')
            } else {
                n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?
            };
            self.i += 1;
        }
        let len = self.i - start;
        let leading_zero = len > 1 && self.b[start] == b'0';
        let more = matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'));
        if len == 0 || leading_zero || more {
            return None;
        }
        match (neg, n) {
            (true, 0) => None,
            (true, n) => Some(Err(n)),
            (false, n) => Some(Ok(n)),
        }
    }

    /// A negative integer's value, if it fits an i64 as serde reads it.
    #[inline]
    pub fn negative(magnitude: u64) -> Option<i64> {
        0i64.checked_sub_unsigned(magnitude)
    }
}

/// Where the first `"`, `\\` or control character (below 0x20) is in `b`.
///
/// Eight bytes at a time (SWAR) rather than one byte and three tests at a
/// time: every string of every reply and client message is searched so.
#[inline]
pub fn first_special(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        // Little-endian: byte k of the chunk is bits 8k..8k+8.
        let w = u64::from_le_bytes(chunk.try_into().ok()?);
        let q = w ^ (LO * u64::from(b'"'));
        let e = w ^ (LO * u64::from(b'\\'));
        // A byte's high bit is set where it is zero (q, e) or below 0x20
        // (w). Bytes above the first hit may be flagged by the borrow; the
        // lowest flag is always exact.
        let hits =
            (q.wrapping_sub(LO) & !q | e.wrapping_sub(LO) & !e | w.wrapping_sub(LO * 0x20) & !w)
                & HI;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|k| i + k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_forms_are_read_and_the_rest_refused() {
        let mut s = Scan::new(r#" { "a" : -12 , "b":"x y", "c":0, "d":null } "#);
        assert_eq!(s.eat(b'{'), Some(()));
        assert_eq!(s.string(), Some("a"));
        assert_eq!(s.eat(b':'), Some(()));
        assert_eq!(s.integer(), Some(Err(12)));
        assert_eq!(s.eat(b','), Some(()));
        assert_eq!(s.string(), Some("b"));
        s.eat(b':');
        assert_eq!(s.string(), Some("x y"));
        s.eat(b',');
        s.string();
        s.eat(b':');
        assert_eq!(s.integer(), Some(Ok(0)));
        s.eat(b',');
        s.string();
        s.eat(b':');
        assert_eq!(s.word(b"null"), Some(()));
        assert_eq!(s.eat(b'}'), Some(()));
        assert!(s.at_end());
        for (text, n) in [
            ("9999999999999999999", 9_999_999_999_999_999_999),
            ("18446744073709551615", u64::MAX),
            ("10000000000000000000", 10_000_000_000_000_000_000),
        ] {
            assert_eq!(Scan::new(text).integer(), Some(Ok(n)), "{text}");
        }
        for bad in [
            "-0",
            "01",
            "1.5",
            "1e3",
            "-",
            "18446744073709551616",
            "99999999999999999999",
            "184467440737095516150",
            "x",
        ] {
            assert_eq!(Scan::new(bad).integer(), None, "{bad}");
        }
        for bad in [r#""a\"b""#, "\"tab\there\"", r#""open"#] {
            assert_eq!(Scan::new(bad).string(), None, "{bad}");
        }
        assert!(Scan::bytes(b"\"\xff\"").is_none());
        assert_eq!(Scan::bytes("\"ü\"".as_bytes()).unwrap().string(), Some("ü"));
        assert_eq!(Scan::negative(9_223_372_036_854_775_808), Some(i64::MIN));
        assert_eq!(Scan::negative(9_223_372_036_854_775_809), None);
    }

    #[test]
    fn the_first_special_byte_is_found_as_a_byte_search_finds_it() {
        let slow = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        // Every byte value at every place of strings up to 20 bytes long,
        // over backgrounds that can fool a word-wide test (0x21, 0x23,
        // 0x5d, 0x80, 0xff: next to the targets, or with the high bit).
        for bg in [b'x', 0x21, 0x23, 0x5b, 0x5d, 0x80, 0xff, 0x1f + 1] {
            for len in 0..20 {
                for at in 0..len {
                    for c in 0..=255u8 {
                        let mut v = vec![bg; len];
                        v[at] = c;
                        assert_eq!(first_special(&v), slow(&v), "{v:?}");
                        // A second target after the first.
                        if at + 1 < len {
                            v[at + 1] = b'"';
                            assert_eq!(first_special(&v), slow(&v), "{v:?}");
                        }
                    }
                }
                assert_eq!(first_special(&vec![bg; len]), slow(&vec![bg; len]));
            }
        }
    }
}
