//! `--notice-rate`: keeping a connect storm from costing everyone a line per
//! arrival.
//!
//! Every `<who> has arrived` and `<who> has left` goes to every member of the
//! room, so n arrivals cost n² queued lines: 19,000 clients joining at once
//! take minutes to serve. With a rate set, the first N such notices in each
//! second are announced one by one and the rest are counted and summed up
//! once the second is over: `*** 57 more arrived, 3 left`. Nothing is lost:
//! `/who` still lists everyone. Time is passed in, so this is tested alone.

/// Arrivals and departures announced per one-second window.
#[derive(Debug, Default)]
pub struct NoticeGate {
    /// Notices shown per window; 0 shows them all.
    per_second: u32,
    /// Start of the current window (server-clock milliseconds).
    window_ms: u64,
    /// Notices shown in the current window.
    shown: u32,
    /// Arrivals held back since the last summary.
    arrived: u64,
    /// Departures held back since the last summary.
    left: u64,
}

/// What a notice is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Movement {
    Arrival,
    Departure,
}

impl NoticeGate {
    pub fn new(per_second: u32) -> NoticeGate {
        NoticeGate {
            per_second,
            ..NoticeGate::default()
        }
    }

    /// True if this arrival or departure should be announced now; false if
    /// it was counted for the next summary instead.
    pub fn pass(&mut self, movement: Movement, now_ms: u64) -> bool {
        if self.per_second == 0 {
            return true;
        }
        if !self.holding() && (self.shown == 0 || now_ms >= self.window_ms + 1000) {
            // A window starts with the first notice after a quiet spell.
            self.window_ms = now_ms;
            self.shown = 0;
        }
        if self.shown < self.per_second && !self.holding() {
            self.shown += 1;
            return true;
        }
        match movement {
            Movement::Arrival => self.arrived += 1,
            Movement::Departure => self.left += 1,
        }
        false
    }

    fn holding(&self) -> bool {
        self.arrived + self.left > 0
    }

    /// When the summary of what is held back is due, if anything is.
    pub fn due_ms(&self) -> Option<u64> {
        self.holding().then_some(self.window_ms + 1000)
    }

    /// The summary line, once due; starts a new window.
    pub fn summary(&mut self, now_ms: u64) -> Option<String> {
        if self.due_ms().is_none_or(|due| now_ms < due) {
            return None;
        }
        let (arrived, left) = (self.arrived, self.left);
        self.arrived = 0;
        self.left = 0;
        // The summary is one notice of the new window.
        self.window_ms = now_ms;
        self.shown = 1;
        Some(match (arrived, left) {
            (0, l) => format!("*** {l} more left\n"),
            (a, 0) => format!("*** {a} more arrived\n"),
            (a, l) => format!("*** {a} more arrived, {l} left\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_announces_everything() {
        let mut gate = NoticeGate::new(0);
        for ms in 0..1000 {
            assert!(gate.pass(Movement::Arrival, ms));
        }
        assert_eq!(gate.due_ms(), None);
    }

    #[test]
    fn above_the_rate_the_rest_are_summed_up_once_a_second() {
        let mut gate = NoticeGate::new(3);
        let shown = (0..60)
            .filter(|&i| gate.pass(Movement::Arrival, 10 + i))
            .count();
        assert_eq!(shown, 3);
        assert!(!gate.pass(Movement::Departure, 500));
        assert_eq!(gate.due_ms(), Some(1010));
        assert_eq!(gate.summary(1009), None, "not before the second is over");
        assert_eq!(
            gate.summary(1010).as_deref(),
            Some("*** 57 more arrived, 1 left\n")
        );
        assert_eq!(gate.due_ms(), None);
        // The summary counted as one notice of the new window.
        assert!(gate.pass(Movement::Departure, 1011));
        assert!(gate.pass(Movement::Departure, 1012));
        assert!(!gate.pass(Movement::Departure, 1013));
        assert_eq!(gate.summary(2010).as_deref(), Some("*** 1 more left\n"));
    }

    #[test]
    fn while_a_summary_is_pending_nothing_overtakes_it() {
        // A notice shown after held ones would tell the story out of order.
        let mut gate = NoticeGate::new(1);
        assert!(gate.pass(Movement::Arrival, 0));
        assert!(!gate.pass(Movement::Arrival, 1));
        assert!(!gate.pass(Movement::Arrival, 5000), "held until summed up");
        assert_eq!(gate.summary(5000).as_deref(), Some("*** 2 more arrived\n"));
    }
}
