//! Every timer of the server in one place: what is due when.
//!
//! The loop sleeps in `poll` until the earliest deadline ([`Deadlines::earliest`])
//! and then takes what is due ([`Deadlines::pop_due`]). Timers are values,
//! not callbacks: the loop matches on them. Time is server-clock
//! milliseconds, passed in, so this is tested without a clock.
//!
//! A singleton timer (the sweep, the accept retry, …) has at most one live
//! deadline: scheduling it again earlier replaces the old one, later is
//! ignored, and a replaced entry left in the heap is skipped when it comes
//! up. Per-client timers ([`Timer::Wake`], [`Timer::Handshake`]) carry the
//! client's connection id, so one that outlives its client is recognised
//! and dropped by the caller.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// A rate-limited client may be read again (its slab key and id).
    Wake { key: usize, id: u32 },
    /// A TLS client's handshake deadline (its slab key and id). Per client,
    /// not a sweep: a storm of stalled handshakes must not make every
    /// client be walked once per deadline.
    Handshake { key: usize, id: u32 },
    /// Walk the clients for idle timeouts and lingering leavers.
    Sweep,
    /// Accept again after the listener was put off (resource error, paused
    /// reading, a full turn).
    AcceptRetry,
    /// The shutdown grace is over.
    ShutdownGrace,
    /// While reading is paused: look for stalled holders to close.
    PauseCheck,
    /// A metrics connection's deadline or the metrics accept retry.
    Metrics,
    /// `--notice-rate`: the summary of held-back notices is due.
    Notices,
    /// The cluster link's own time: reconnect, ping, find dead nodes.
    Cluster,
}

impl Timer {
    /// The slot of a singleton timer, or `None` for per-client ones.
    fn slot(self) -> Option<usize> {
        match self {
            Timer::Wake { .. } | Timer::Handshake { .. } => None,
            Timer::Sweep => Some(0),
            Timer::AcceptRetry => Some(1),
            Timer::ShutdownGrace => Some(2),
            Timer::PauseCheck => Some(3),
            Timer::Metrics => Some(4),
            Timer::Notices => Some(5),
            Timer::Cluster => Some(6),
        }
    }
}

const SINGLETONS: usize = 7;

/// The pending deadlines.
#[derive(Debug, Default)]
pub struct Deadlines {
    heap: BinaryHeap<Reverse<(u64, Timer)>>,
    /// The live deadline of each singleton timer.
    live: [Option<u64>; SINGLETONS],
    /// Per-client entries in the heap.
    wakes: usize,
}

impl Deadlines {
    /// Schedules `timer` at `at_ms`. A singleton already due earlier keeps
    /// its deadline.
    pub fn at(&mut self, at_ms: u64, timer: Timer) {
        if let Some(slot) = timer.slot() {
            if self.live[slot].is_some_and(|t| t <= at_ms) {
                return;
            }
            self.live[slot] = Some(at_ms);
        } else {
            self.wakes += 1;
        }
        self.heap.push(Reverse((at_ms, timer)));
        // Replaced singleton entries stay until they come up; keep them from
        // piling up when a deadline keeps moving earlier.
        if self.heap.len() > 64 + 2 * (self.wakes + SINGLETONS) {
            self.prune();
        }
    }

    /// Forgets a singleton timer (it will not fire).
    pub fn cancel(&mut self, timer: Timer) {
        if let Some(slot) = timer.slot() {
            self.live[slot] = None;
        }
    }

    /// True if `timer` (a singleton) is scheduled.
    pub fn is_set(&self, timer: Timer) -> bool {
        timer.slot().is_some_and(|slot| self.live[slot].is_some())
    }

    /// The earliest live deadline.
    pub fn earliest(&mut self) -> Option<u64> {
        while let Some(&Reverse((at, timer))) = self.heap.peek() {
            if self.is_live(at, timer) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Takes the next timer due at `now_ms`, if any.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<Timer> {
        while let Some(&Reverse((at, timer))) = self.heap.peek() {
            if at > now_ms {
                return None;
            }
            self.heap.pop();
            if !self.is_live(at, timer) {
                continue; // Replaced or cancelled.
            }
            match timer.slot() {
                Some(slot) => self.live[slot] = None,
                None => self.wakes -= 1,
            }
            return Some(timer);
        }
        None
    }

    fn is_live(&self, at: u64, timer: Timer) -> bool {
        match timer.slot() {
            Some(slot) => self.live[slot] == Some(at),
            None => true,
        }
    }

    fn prune(&mut self) {
        let live = self.live;
        self.heap.retain(|Reverse((at, t))| match t.slot() {
            Some(slot) => live[slot] == Some(*at),
            None => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handshake_keeps_its_own_deadline() {
        let mut d = Deadlines::default();
        d.at(300, Timer::Handshake { key: 2, id: 9 });
        d.at(100, Timer::Handshake { key: 1, id: 8 });
        assert_eq!(d.pop_due(100), Some(Timer::Handshake { key: 1, id: 8 }));
        assert_eq!(d.pop_due(299), None, "the later one is not pulled forward");
        assert_eq!(d.pop_due(300), Some(Timer::Handshake { key: 2, id: 9 }));
        assert_eq!(d.earliest(), None);
    }

    #[test]
    fn timers_come_due_in_order() {
        let mut d = Deadlines::default();
        d.at(30, Timer::Sweep);
        d.at(10, Timer::Wake { key: 1, id: 7 });
        d.at(20, Timer::AcceptRetry);
        assert_eq!(d.earliest(), Some(10));
        assert_eq!(d.pop_due(9), None);
        assert_eq!(d.pop_due(25), Some(Timer::Wake { key: 1, id: 7 }));
        assert_eq!(d.pop_due(25), Some(Timer::AcceptRetry));
        assert_eq!(d.pop_due(25), None);
        assert_eq!(d.earliest(), Some(30));
        assert_eq!(d.pop_due(30), Some(Timer::Sweep));
        assert_eq!(d.earliest(), None);
    }

    #[test]
    fn a_singleton_moves_earlier_never_later_and_fires_once() {
        let mut d = Deadlines::default();
        d.at(100, Timer::Sweep);
        d.at(200, Timer::Sweep);
        assert_eq!(d.earliest(), Some(100), "later is ignored");
        d.at(50, Timer::Sweep);
        assert_eq!(d.earliest(), Some(50), "earlier replaces");
        assert_eq!(d.pop_due(1000), Some(Timer::Sweep));
        assert_eq!(d.pop_due(1000), None, "the replaced one does not fire");
        assert!(!d.is_set(Timer::Sweep));
    }

    #[test]
    fn a_cancelled_singleton_does_not_fire() {
        let mut d = Deadlines::default();
        d.at(10, Timer::PauseCheck);
        assert!(d.is_set(Timer::PauseCheck));
        d.cancel(Timer::PauseCheck);
        assert_eq!(d.earliest(), None);
        assert_eq!(d.pop_due(100), None);
    }

    #[test]
    fn replaced_deadlines_do_not_pile_up() {
        let mut d = Deadlines::default();
        for at in (0..10_000).rev() {
            d.at(at + 1, Timer::Sweep);
        }
        assert!(d.heap.len() <= 64, "{}", d.heap.len());
        assert_eq!(d.pop_due(u64::MAX), Some(Timer::Sweep));
        assert_eq!(d.pop_due(u64::MAX), None);
    }
}
