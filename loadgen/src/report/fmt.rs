//! Numbers for people.

/// Microseconds for humans: "850us", "12.3ms", "1.20s".
pub fn fmt_us(us: u64) -> String {
    if us < 1000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_magnitude() {
        assert_eq!(fmt_us(850), "850us");
        assert_eq!(fmt_us(12_340), "12.3ms");
        assert_eq!(fmt_us(1_200_000), "1.20s");
    }
}
