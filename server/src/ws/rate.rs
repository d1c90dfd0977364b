//! Per-connection inbound rate limit: a token bucket holding one second of
//! the allowed rate, refilled continuously. Owned by the connection's reader,
//! so it needs no lock.

use tokio::time::Instant;

pub struct RateLimit {
    /// Messages per second; 0 disables the limit.
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub fn new(per_sec: u32) -> RateLimit {
        let rate = f64::from(per_sec);
        RateLimit {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    /// Take one token; false when the connection is over its rate.
    pub fn allow(&mut self) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn burst_then_refill() {
        let mut r = RateLimit::new(10);
        assert_eq!((0..20).filter(|_| r.allow()).count(), 10);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!((0..20).filter(|_| r.allow()).count(), 5);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            (0..20).filter(|_| r.allow()).count(),
            10,
            "bucket holds one second at most"
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let mut r = RateLimit::new(0);
        assert!((0..10_000).all(|_| r.allow()));
    }
}
