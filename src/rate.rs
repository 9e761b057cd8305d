//! A token bucket per client: how many lines it may send right now.
//!
//! The bucket holds up to twice the rate, so a pasted block arrives whole, and
//! refills at the rate. When it is empty the server does not drop lines: it
//! stops reading the socket until a token is back, and TCP slows the sender.
//! Time is passed in, in milliseconds, so the arithmetic is tested alone.

/// Tokens are counted in thousandths, so slow rates refill smoothly with
/// integer arithmetic.
const MILLI: u64 = 1000;

/// One client's line allowance.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    /// Available tokens, in thousandths of a line; at most `2 * rate * 1000`.
    milli_tokens: u32,
    /// The time (ms on the server clock) up to which refills have been added.
    refilled_at: u64,
}

impl TokenBucket {
    /// A full bucket for `rate` lines per second (burst `2 * rate`).
    pub fn full(rate: u32, now_ms: u64) -> TokenBucket {
        TokenBucket {
            milli_tokens: capacity(rate),
            refilled_at: now_ms,
        }
    }

    fn refill(&mut self, rate: u32, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.refilled_at);
        // `rate` lines per second is `rate` thousandths per millisecond.
        let added = elapsed.saturating_mul(rate as u64);
        self.milli_tokens = (self.milli_tokens as u64 + added).min(capacity(rate) as u64) as u32;
        self.refilled_at = now_ms;
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self, rate: u32, now_ms: u64) -> bool {
        self.refill(rate, now_ms);
        if self.milli_tokens as u64 >= MILLI {
            self.milli_tokens -= MILLI as u32;
            true
        } else {
            false
        }
    }

    /// Refills, then says whether a token is available (without taking it).
    pub fn ready(&mut self, rate: u32, now_ms: u64) -> bool {
        self.refill(rate, now_ms);
        self.milli_tokens as u64 >= MILLI
    }

    /// Takes a token that [`TokenBucket::ready`] said was there.
    pub fn take(&mut self) {
        self.milli_tokens = self.milli_tokens.saturating_sub(MILLI as u32);
    }

    /// Milliseconds until a token is available (at least 1).
    pub fn wait_ms(&self, rate: u32) -> u64 {
        let missing = MILLI.saturating_sub(self.milli_tokens as u64);
        missing.div_ceil(rate.max(1) as u64).max(1)
    }
}

fn capacity(rate: u32) -> u32 {
    (2 * rate as u64 * MILLI).min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_twice_the_rate_passes_at_once() {
        let mut b = TokenBucket::full(20, 0);
        for _ in 0..40 {
            assert!(b.try_take(20, 0));
        }
        assert!(!b.try_take(20, 0));
        assert_eq!(b.wait_ms(20), 50);
    }

    #[test]
    fn refills_at_the_rate_and_never_beyond_the_burst() {
        let mut b = TokenBucket::full(20, 0);
        while b.try_take(20, 0) {}
        assert!(!b.try_take(20, 49));
        assert!(b.try_take(20, 50));
        assert!(!b.try_take(20, 50));
        // A long silence refills only up to the burst.
        let mut taken = 0;
        while b.try_take(20, 1_000_000) {
            taken += 1;
        }
        assert_eq!(taken, 40);
    }

    #[test]
    fn lines_over_ten_seconds_never_exceed_rate_times_time_plus_burst() {
        let mut b = TokenBucket::full(7, 0);
        let mut taken = 0;
        for ms in 0..10_000 {
            while b.try_take(7, ms) {
                taken += 1;
            }
        }
        assert!((70 + 14 - 1..=70 + 14).contains(&taken), "{taken}");
    }
}
