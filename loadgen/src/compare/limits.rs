//! `--max-regression p99=10%,per_sec=5%`: the largest regression allowed
//! per headline figure.

use crate::compare::headline::{METRICS, metric};

/// One figure's limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Index into [`METRICS`].
    pub metric: usize,
    /// Largest regression allowed, in percent of the baseline.
    pub pct: f64,
}

/// The limits in `spec`, or a message naming what is wrong and the fix.
pub fn parse(spec: &str) -> Result<Vec<Limit>, String> {
    let mut v: Vec<Limit> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, pct)) = part.split_once('=') else {
            return Err(format!(
                "--max-regression {part:?}: write KEY=PCT%, e.g. p99=10%"
            ));
        };
        let key = key.trim();
        let Some(i) = metric(key) else {
            let known: Vec<&str> = METRICS.iter().map(|m| m.key).collect();
            return Err(format!(
                "--max-regression: unknown figure {key:?}; known figures: {}",
                known.join(", ")
            ));
        };
        let num = pct.trim().strip_suffix('%').unwrap_or(pct.trim()).trim();
        let pct = match num.parse::<f64>() {
            Ok(p) if p.is_finite() && p >= 0.0 => p,
            _ => {
                return Err(format!(
                    "--max-regression {key}={pct}: {pct:?} is not a percentage of 0 or more (write e.g. {key}=10%)"
                ));
            }
        };
        if v.iter().any(|l| l.metric == i) {
            return Err(format!("--max-regression: {key} is given twice"));
        }
        v.push(Limit { metric: i, pct });
    }
    if v.is_empty() {
        return Err("--max-regression is empty: give e.g. p99=10%,per_sec=5%".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_or_without_a_percent_sign() {
        let l = parse("p99=10%, per_sec=5").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(METRICS[l[0].metric].key, "p99");
        assert_eq!((l[0].pct, l[1].pct), (10.0, 5.0));
    }

    #[test]
    fn bad_limits_name_the_fix() {
        assert!(
            parse("p98=10%")
                .unwrap_err()
                .contains("unknown figure \"p98\"")
        );
        assert!(parse("p99=ten%").unwrap_err().contains("not a percentage"));
        assert!(parse("p99=-5%").unwrap_err().contains("not a percentage"));
        assert!(parse("p99").unwrap_err().contains("KEY=PCT%"));
        assert!(parse("p99=1%,p99=2%").unwrap_err().contains("twice"));
        assert!(parse(" , ").unwrap_err().contains("empty"));
    }
}
