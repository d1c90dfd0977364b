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
        self.allow_at(Instant::now())
    }

    /// [`allow`](Self::allow) with a recent clock reading (the epoll
    /// loop's, one per turn, rather than one per message). A reading older
    /// than the last refill refills nothing, so time is never counted twice.
    pub fn allow_at(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        if now > self.last {
            let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.rate);
            self.last = now;
        }
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

    #[tokio::test(start_paused = true)]
    async fn a_stale_reading_refills_nothing_twice() {
        let mut r = RateLimit::new(10);
        let before = Instant::now();
        assert_eq!((0..20).filter(|_| r.allow()).count(), 10);
        tokio::time::advance(Duration::from_millis(500)).await;
        let now = Instant::now();
        assert_eq!((0..3).filter(|_| r.allow_at(now)).count(), 3);
        // A reading from before the last refill: no tokens from it.
        assert_eq!((0..20).filter(|_| r.allow_at(before)).count(), 2);
        assert!(!r.allow_at(now), "the half second was counted once");
    }

    #[test]
    fn zero_means_unlimited() {
        let mut r = RateLimit::new(0);
        assert!((0..10_000).all(|_| r.allow()));
    }
}
