//! The load shape: how many connections should be open at each instant and
//! when each connection sends.
//!
//! Kept free of I/O so it can be unit-tested exactly: stages ramp linearly
//! like k6's, and every connection gets its own phase within the send
//! interval so that N connections at R msg/s do not fire in lockstep bursts.

use std::time::Duration;

/// One k6-style stage: ramp linearly to `target` connections over `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stage {
    pub duration: Duration,
    pub target: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub stages: Vec<Stage>,
    /// Messages per second per connection; 0 means connect only.
    pub rate: f64,
    /// New connections per second; `None` means unthrottled.
    pub connect_rate: Option<f64>,
}

impl Plan {
    /// Hold `conns` connections for `duration` (they all open at once,
    /// subject to `connect_rate`).
    pub fn constant(conns: u64, duration: Duration, rate: f64, connect_rate: Option<f64>) -> Self {
        Plan {
            stages: vec![Stage {
                duration,
                target: conns,
            }],
            rate,
            connect_rate,
        }
        .with_step_start()
    }

    /// A constant plan opens everything at t=0 rather than ramping from 0.
    fn with_step_start(mut self) -> Self {
        if let [only] = self.stages.as_slice() {
            let s = *only;
            self.stages = vec![
                Stage {
                    duration: Duration::ZERO,
                    target: s.target,
                },
                s,
            ];
        }
        self
    }

    pub fn total(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The most connections ever wanted at once.
    pub fn max_conns(&self) -> u64 {
        self.stages.iter().map(|s| s.target).max().unwrap_or(0)
    }

    /// Connections wanted `elapsed` after the start.
    pub fn target_at(&self, elapsed: Duration) -> u64 {
        let mut from = 0u64;
        let mut start = Duration::ZERO;
        for s in &self.stages {
            let end = start + s.duration;
            if elapsed < end {
                let frac = (elapsed - start).as_secs_f64() / s.duration.as_secs_f64();
                let v = from as f64 + (s.target as f64 - from as f64) * frac;
                return v.round().max(0.0) as u64;
            }
            from = s.target;
            start = end;
        }
        from
    }

    /// Interval between two sends of one connection, if it sends at all.
    pub fn interval(&self) -> Option<Duration> {
        (self.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / self.rate))
    }
}

/// Offset of connection `slot`'s first send within one interval. The golden
/// ratio sequence spreads any number of connections evenly, without needing
/// to know how many there will be.
pub fn phase(slot: u64, interval: Duration) -> Duration {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    let frac = (slot as f64 * GOLDEN).fract();
    interval.mul_f64(frac)
}

/// Parse "1m:333,3m:1000,1m:0".
pub fn parse_stages(s: &str) -> Result<Vec<Stage>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (d, t) = part
            .split_once(':')
            .ok_or_else(|| format!("stage {part:?} is not DURATION:TARGET, e.g. 1m:333"))?;
        let duration = humantime::parse_duration(d.trim())
            .map_err(|e| format!("stage {part:?}: bad duration {d:?} ({e}); e.g. 30s, 1m"))?;
        let target = t
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("stage {part:?}: target {t:?} is not a whole number"))?;
        if duration.is_zero() {
            return Err(format!("stage {part:?} has zero duration"));
        }
        out.push(Stage { duration, target });
    }
    if out.is_empty() {
        return Err("--stages is empty; e.g. --stages 1m:333,3m:1000,1m:0".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_ramp_linearly() {
        let p = Plan {
            stages: parse_stages("10s:100,10s:100,10s:0").unwrap(),
            rate: 1.0,
            connect_rate: None,
        };
        assert_eq!(p.total(), Duration::from_secs(30));
        assert_eq!(p.target_at(Duration::ZERO), 0);
        assert_eq!(p.target_at(Duration::from_secs(5)), 50);
        assert_eq!(p.target_at(Duration::from_secs(15)), 100);
        assert_eq!(p.target_at(Duration::from_secs(25)), 50);
        assert_eq!(p.target_at(Duration::from_secs(31)), 0);
        assert_eq!(p.max_conns(), 100);
    }

    #[test]
    fn constant_plan_opens_at_once() {
        let p = Plan::constant(7, Duration::from_secs(3), 10.0, None);
        assert_eq!(p.target_at(Duration::ZERO), 7);
        assert_eq!(p.target_at(Duration::from_millis(2999)), 7);
        assert_eq!(p.total(), Duration::from_secs(3));
        assert_eq!(p.interval(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn bad_stages_are_explained() {
        for bad in ["", "1m", "1m:x", "zz:3", "0s:5"] {
            assert!(parse_stages(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phases_are_spread() {
        let iv = Duration::from_millis(100);
        let mut buckets = [0u32; 10];
        for slot in 0..1000 {
            let p = phase(slot, iv);
            assert!(p < iv);
            buckets[(p.as_millis() / 10) as usize] += 1;
        }
        // Every 10 ms bucket gets close to a tenth of the connections.
        assert!(
            buckets.iter().all(|&b| (80..=120).contains(&b)),
            "{buckets:?}"
        );
    }
}
