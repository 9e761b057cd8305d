//! Keeping logs from filling a disk.
//!
//! A hostile client can trigger the same warning thousands of times a second
//! (over-long lines, connect floods). A [`LogGate`] lets a few messages of one
//! kind through per second and counts the rest, so the next message that
//! passes can say how many were held back.

/// Lets at most `per_second` messages through in each one-second window.
#[derive(Debug)]
pub struct LogGate {
    per_second: u32,
    /// Start of the current window, in server-clock milliseconds.
    window_ms: u64,
    /// Messages let through in the current window.
    passed: u32,
    /// Messages held back since the last one that passed.
    held: u64,
}

impl LogGate {
    pub const fn new(per_second: u32) -> LogGate {
        LogGate {
            per_second,
            window_ms: 0,
            passed: 0,
            held: 0,
        }
    }

    /// Returns `Some(held_back)` if a message may be logged now, where
    /// `held_back` is how many were suppressed since the last one.
    pub fn pass(&mut self, now_ms: u64) -> Option<u64> {
        if now_ms >= self.window_ms + 1000 {
            self.window_ms = now_ms;
            self.passed = 0;
        }
        if self.passed < self.per_second {
            self.passed += 1;
            Some(std::mem::take(&mut self.held))
        } else {
            self.held += 1;
            None
        }
    }
}

/// Formats the "(and N more)" suffix for a message that passed a gate.
pub fn held_note(held: u64) -> String {
    if held == 0 {
        String::new()
    } else {
        format!(" ({held} similar messages suppressed)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_a_few_through_per_second_and_counts_the_rest() {
        let mut gate = LogGate::new(2);
        assert_eq!(gate.pass(0), Some(0));
        assert_eq!(gate.pass(10), Some(0));
        for ms in 11..1000 {
            assert_eq!(gate.pass(ms), None);
        }
        assert_eq!(gate.pass(1000), Some(989));
        assert_eq!(held_note(0), "");
        assert_eq!(held_note(3), " (3 similar messages suppressed)");
    }
}
