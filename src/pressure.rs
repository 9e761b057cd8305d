//! Backpressure policy: what happens when output piles up.
//!
//! Two caps. [`QueueCap`] is `--max-output`, per client, with its two
//! policies (`--slow-client disconnect` or `drop`). [`TotalCap`] is
//! `--max-total-output`, for everyone: over it reading (and accepting)
//! pauses until the total is below half, and a pause that does not end by
//! itself ends by closing the readers that hold it. Both decide; the server
//! does (closes, reads, logs the close). Time is passed in, so the rules are
//! tested without sockets.

use log::warn;

use crate::config::SlowClient;
use crate::limits::{LINGER, LOG_WARNINGS_PER_SEC, PAUSE_STALL};
use crate::log_gate::{LogGate, held_note};
use crate::member::Member;
use crate::out_queue::count_newlines;

/// `--max-output` and its policy.
#[derive(Clone, Copy, Debug)]
pub struct QueueCap {
    pub max_output: usize,
    pub policy: SlowClient,
}

/// What the cap says about a queue after its flush.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the cap.
    Within,
    /// Over it, under `disconnect`: close the client (its cost is given).
    Disconnect(usize),
    /// Over it, under `drop`: this many of the newest lines were skipped;
    /// `first` if it just started skipping.
    Skipped { lines: u64, first: bool },
}

/// What to do with a turn's broadcasts for a member that may be skipping.
#[derive(Debug, PartialEq, Eq)]
pub enum Region {
    /// Queue them.
    Queue,
    /// It drained: queue this notice of what it missed, then them.
    Resume(String),
    /// Still skipping: count them as skipped.
    Skip(u64),
}

impl QueueCap {
    /// Applies the cap to what is left of `member`'s queue after a flush:
    /// its cost, that is its bytes and the entries that hold them.
    pub fn apply(&self, member: &mut Member, arena: &[u8]) -> Verdict {
        let cost = member.output.cost();
        if cost <= self.max_output {
            return Verdict::Within;
        }
        match self.policy {
            SlowClient::Disconnect => Verdict::Disconnect(cost),
            SlowClient::Drop => {
                let lines = member.output.truncate_cost(self.max_output, arena);
                member.skip(lines);
                let first = !member.skipping;
                member.skipping = true;
                Verdict::Skipped { lines, first }
            }
        }
    }

    /// Decides about a broadcast `region` for `member`: a member skipping
    /// under `drop` keeps skipping until its queue drains below half the
    /// cap, then is told what it missed before the next line.
    pub fn region(&self, member: &mut Member, region: &[u8]) -> Region {
        if !member.skipping {
            return Region::Queue;
        }
        if member.output.cost() < self.max_output / 2 {
            member.skipping = false;
            let missed = std::mem::take(&mut member.skipped_unreported);
            return Region::Resume(format!("*** {missed} lines skipped\n"));
        }
        let lines = count_newlines(region);
        member.skip(lines);
        Region::Skip(lines)
    }
}

/// A client holding queued output, as the total cap sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    pub key: usize,
    /// Its queue's cost.
    pub cost: usize,
    /// When its socket last took a byte.
    pub last_write_ms: u64,
}

/// `--max-total-output`: the pause of reading for everyone.
#[derive(Debug)]
pub struct TotalCap {
    max_total: usize,
    /// When the current pause began, if reading is paused.
    paused_since: Option<u64>,
    gate_pause: LogGate,
    gate_resume: LogGate,
    gate_evict: LogGate,
}

impl TotalCap {
    pub fn new(max_total: usize) -> TotalCap {
        TotalCap {
            max_total,
            paused_since: None,
            gate_pause: LogGate::new(2),
            gate_resume: LogGate::new(2),
            gate_evict: LogGate::new(LOG_WARNINGS_PER_SEC),
        }
    }

    /// True while reading is paused for everyone.
    pub fn paused(&self) -> bool {
        self.paused_since.is_some()
    }

    /// Pauses reading if `held` is over the cap; true if reading may go on.
    /// Nothing is dropped: TCP holds the senders back.
    pub fn allows(&mut self, held: usize, now_ms: u64) -> bool {
        if self.paused() {
            return false;
        }
        if held <= self.max_total {
            return true;
        }
        self.paused_since = Some(now_ms);
        if let Some(held_back) = self.gate_pause.pass(now_ms) {
            warn!(
                "{held} bytes queued for clients, over --max-total-output {}: pausing reads{}",
                self.max_total,
                held_note(held_back)
            );
        }
        false
    }

    /// True once `held` is below half the cap, and ends the pause.
    pub fn resumes(&mut self, held: usize, now_ms: u64) -> bool {
        if !self.paused() || held >= self.max_total / 2 {
            return false;
        }
        self.paused_since = None;
        if let Some(held_back) = self.gate_resume.pass(now_ms) {
            warn!(
                "queued output down to {held} bytes: reading again{}",
                held_note(held_back)
            );
        }
        true
    }

    /// The holders to close, biggest first, while a pause lasts and the
    /// total is not below half: those whose socket took nothing for
    /// [`PAUSE_STALL`], or, after [`LINGER`] of pause, any. A healthy reader
    /// takes bytes as fast as the network allows, so it is never among them.
    /// The caller closes them in order until the total is below half.
    pub fn to_close(&self, held: usize, holders: Vec<Holder>, now_ms: u64) -> Vec<Holder> {
        let Some(since) = self.paused_since else {
            return Vec::new();
        };
        if held < self.max_total / 2 {
            return Vec::new();
        }
        let stall = PAUSE_STALL.as_millis() as u64;
        let any = now_ms >= since + LINGER.as_millis() as u64;
        let mut chosen: Vec<Holder> = holders
            .into_iter()
            .filter(|h| any || now_ms >= h.last_write_ms + stall)
            .collect();
        chosen.sort_unstable_by(|a, b| b.cost.cmp(&a.cost).then(a.key.cmp(&b.key)));
        chosen
    }

    /// True if the total has come down far enough to stop closing holders.
    pub fn relieved(&self, held: usize) -> bool {
        held < self.max_total / 2
    }

    /// Logs one holder closed during a pause.
    pub fn log_close(&mut self, who: &str, cost: usize, now_ms: u64) {
        if let Some(held) = self.gate_evict.pass(now_ms) {
            warn!(
                "{who}: {cost} bytes queued while reading is paused: disconnecting{}",
                held_note(held)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::out_queue::{Chunk, Entry, Meter, OutQueue};

    fn member_with(bytes: &[u8]) -> Member {
        let meter = Meter::default();
        let mut m = Member::new("m".into(), OutQueue::new(&meter));
        m.output.push(Entry::whole(Chunk::new(bytes, &meter)));
        m
    }

    #[test]
    fn disconnect_over_the_cap_and_not_under() {
        let cap = QueueCap {
            max_output: 1000,
            policy: SlowClient::Disconnect,
        };
        let mut small = member_with(&[b'x'; 100]);
        assert_eq!(cap.apply(&mut small, &[]), Verdict::Within);
        let mut big = member_with(&[b'x'; 2000]);
        assert!(matches!(cap.apply(&mut big, &[]), Verdict::Disconnect(c) if c > 2000));
    }

    #[test]
    fn drop_skips_whole_lines_then_says_how_many_once_drained() {
        let cap = QueueCap {
            max_output: 1000,
            policy: SlowClient::Drop,
        };
        let mut m = member_with(&b"0123456789012345678\n".repeat(100));
        let Verdict::Skipped { lines, first } = cap.apply(&mut m, &[]) else {
            panic!("over the cap")
        };
        assert!(first && lines > 50, "{lines}");
        assert!(m.output.cost() <= 1000);
        // Still over half: the next broadcasts are skipped too.
        assert_eq!(cap.region(&mut m, b"a\nb\n"), Region::Skip(2));
        m.output.clear();
        assert_eq!(
            cap.region(&mut m, b"c\n"),
            Region::Resume(format!("*** {} lines skipped\n", lines + 2))
        );
        assert_eq!(cap.region(&mut m, b"d\n"), Region::Queue);
    }

    #[test]
    fn a_pause_closes_the_stalled_biggest_first_then_anyone_after_linger() {
        let mut total = TotalCap::new(1000);
        assert!(total.allows(1000, 0));
        assert!(!total.allows(1001, 100), "over the cap: paused");
        assert!(!total.allows(0, 150), "paused until resumed");
        let holders = vec![
            Holder {
                key: 1,
                cost: 300,
                last_write_ms: 0,
            },
            Holder {
                key: 2,
                cost: 500,
                last_write_ms: 0,
            },
            Holder {
                key: 3,
                cost: 900,
                last_write_ms: 1000,
            },
        ];
        // Within PAUSE_STALL of their last write nobody is closed.
        assert!(total.to_close(1001, holders.clone(), 900).is_empty());
        let stalled = total.to_close(1001, holders.clone(), 1100);
        assert_eq!(stalled.iter().map(|h| h.key).collect::<Vec<_>>(), [2, 1]);
        let all = total.to_close(1001, holders, 100 + LINGER.as_millis() as u64);
        assert_eq!(all.iter().map(|h| h.key).collect::<Vec<_>>(), [3, 2, 1]);
        assert!(!total.resumes(500, 2000), "not below half");
        assert!(total.resumes(499, 2000));
        assert!(total.allows(900, 2001));
    }
}
