//! What arrived: every received line classified, generated lines checked
//! for duplicates and order per (receiver, sender), deliveries counted and
//! their latency recorded.

use std::io;

use hdrhistogram::Histogram;

use crate::client::{Client, State};
use crate::rooms::Layout;
use crate::senders::Senders;
use crate::sites::SiteSplit;
use crate::token::{Line, Scanner};

/// Per (receiver, sender): highest sequence seen + 1 and a bitmap of the 64
/// sequence numbers below it, for duplicate and order detection.
#[derive(Clone, Copy, Default)]
struct Track {
    hi: u64,
    bits: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// New, and after everything seen before.
    InOrder,
    /// New, but behind a later line (or too far back to tell a duplicate
    /// from a late line).
    Late,
    Duplicate,
}

impl Track {
    fn see(&mut self, seq: u64) -> Seen {
        if seq >= self.hi {
            let shift = seq + 1 - self.hi;
            self.bits = if shift >= 64 { 0 } else { self.bits << shift };
            self.bits |= 1;
            self.hi = seq + 1;
            return Seen::InOrder;
        }
        let back = self.hi - 1 - seq;
        if back >= 64 {
            Seen::Late
        } else if self.bits & (1 << back) != 0 {
            Seen::Duplicate
        } else {
            self.bits |= 1 << back;
            Seen::Late
        }
    }
}

/// Line counts over the whole run (`delivered`: the measured interval).
#[derive(Default)]
pub struct LineStats {
    pub noise: u64,
    pub malformed: u64,
    pub duplicates: u64,
    pub order_violations: u64,
    /// Own lines a sender got back: the server echoes.
    pub self_seen: u64,
    /// Distinct valid lines received during the measured interval.
    pub delivered: u64,
    /// Lines of a sender in another room than the receiver's: a server
    /// that leaks between rooms (never counted as delivered).
    pub cross_room: u64,
}

pub struct Tally {
    scanner: Scanner,
    /// Clients whose lines count (a burst's clients are not among them).
    receivers: usize,
    senders: usize,
    /// Rooms, senders and observers.
    layout: Layout,
    /// The run's time zero (tokens carry send times relative to it).
    base: u64,
    tracks: Vec<Track>,
    /// Distinct measured lines received, per client.
    pub uniq: Vec<u64>,
    pub st: LineStats,
    /// Latency (ns): from send (intended send) time to arrival.
    pub hist: Histogram<u64>,
    /// The same, up to when this thread read the line (kept when arrival
    /// times are the kernel's).
    pub hist_user: Histogram<u64>,
    /// With a burst of connections: `hist` split by send time.
    pub burst: Option<Box<BurstSplit>>,
    /// With clients on several addresses: `hist` split by whether the
    /// receiver is on its line's sender's address.
    pub sites: Option<Box<SiteSplit>>,
    keep_read_latency: bool,
    /// Inside the measured interval: deliveries count.
    measuring: bool,
    last_delivery: u64,
    pub longest_gap: u64,
}

/// The latency of the lines sent while a burst of connections was under
/// way (`window`, by intended send time), and of the others.
pub struct BurstSplit {
    pub window: (u64, u64),
    pub during: Histogram<u64>,
    pub outside: Histogram<u64>,
}

impl BurstSplit {
    #[inline]
    fn record(&mut self, sent_at: u64, latency: u64) {
        let (from, to) = self.window;
        let h = if (from..=to).contains(&sent_at) {
            &mut self.during
        } else {
            &mut self.outside
        };
        h.saturating_record(latency);
    }
}

pub fn histogram() -> io::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1_000, 3_600_000_000_000, 3)
        .map_err(|e| io::Error::other(e.to_string()))
}

impl Tally {
    /// `receivers` clients whose lines count, `clients` in all; `layout` says
    /// which of them send and observe, and who is in which room.
    pub fn new(
        line_bytes: usize,
        (receivers, clients, layout): (usize, usize, Layout),
        base: u64,
        keep_read_latency: bool,
    ) -> io::Result<Self> {
        let senders = layout.senders;
        Ok(Tally {
            scanner: Scanner::new(line_bytes),
            receivers,
            senders,
            layout,
            base,
            tracks: vec![Track::default(); receivers * senders],
            uniq: vec![0; clients],
            st: LineStats::default(),
            hist: histogram()?,
            hist_user: histogram()?,
            burst: None,
            sites: None,
            keep_read_latency,
            measuring: false,
            last_delivery: base,
            longest_gap: 0,
        })
    }

    /// Split the latency by the window of a burst of connections (set in
    /// `burst.window`; until then, every line is outside it).
    pub fn split_burst(&mut self) -> io::Result<()> {
        self.burst = Some(Box::new(BurstSplit {
            window: (u64::MAX, u64::MAX),
            during: histogram()?,
            outside: histogram()?,
        }));
        Ok(())
    }

    /// Does the server send senders their own lines?
    pub fn echo(&self) -> bool {
        self.st.self_seen > 0
    }

    pub fn start_measuring(&mut self, t0: u64) {
        self.measuring = true;
        self.last_delivery = t0;
    }

    /// End of the measured interval at `t1`; returns how long before it the
    /// last line was delivered.
    pub fn stop_measuring(&mut self, t1: u64) -> u64 {
        let final_gap = t1 - self.last_delivery.min(t1);
        self.longest_gap = self.longest_gap.max(final_gap);
        self.measuring = false;
        final_gap
    }

    /// One line received by client `idx`, read at `now`, arrived at `rx`.
    #[inline]
    pub fn on_line(
        &mut self,
        idx: usize,
        line: &[u8],
        (now, rx): (u64, u64),
        senders: &mut Senders,
    ) {
        if idx >= self.receivers {
            return;
        }
        match self.scanner.classify(line) {
            Line::Noise => self.st.noise += 1,
            Line::Malformed => self.st.malformed += 1,
            Line::Token {
                sender,
                seq,
                time_ns,
            } => self.on_token(idx, (sender as usize, seq, time_ns), (now, rx), senders),
        }
    }

    #[inline]
    fn on_token(
        &mut self,
        idx: usize,
        (s, seq, time_ns): (usize, u64, u64),
        (now, rx): (u64, u64),
        senders: &mut Senders,
    ) {
        let room = self.layout.room_of(idx);
        if s < self.senders && self.layout.room_of(s) != room {
            self.st.cross_room += 1;
            return;
        }
        let observer = self.layout.observes(idx);
        let Some(snd) = senders.arrived(s, seq, observer, now) else {
            // Not a line this run sent: as good as mangled.
            self.st.malformed += 1;
            return;
        };
        if snd.client == idx {
            self.st.self_seen += 1;
        }
        let mstart = snd.mstart;
        match self.tracks[idx * self.senders + s].see(seq) {
            Seen::InOrder => {}
            Seen::Late => self.st.order_violations += 1,
            Seen::Duplicate => {
                self.st.duplicates += 1;
                return;
            }
        }
        if self.measuring {
            self.st.delivered += 1;
            self.longest_gap = self.longest_gap.max(now - self.last_delivery.min(now));
            self.last_delivery = now;
        }
        if seq >= mstart {
            self.uniq[idx] += 1;
            let sent_at = self.base + time_ns;
            let latency = rx.saturating_sub(sent_at).max(1_000);
            self.hist.saturating_record(latency);
            if let Some(b) = self.burst.as_deref_mut() {
                b.record(sent_at, latency);
            }
            if let Some(x) = self.sites.as_deref_mut() {
                x.record(idx, snd.client, latency);
            }
            if self.keep_read_latency {
                self.hist_user
                    .saturating_record(now.saturating_sub(sent_at).max(1_000));
            }
        }
    }

    /// (expected, received) distinct measured lines over the clients that
    /// were receiving when the interval began; with `connected_only`, over
    /// those still connected. A client expects every measured line of its
    /// room, less its own when the server does not echo.
    pub fn deliveries(
        &self,
        senders: &Senders,
        clients: &[Client],
        connected_only: bool,
    ) -> (u64, u64) {
        let mut per_room = vec![0u64; self.layout.rooms];
        for s in 0..senders.count() {
            per_room[self.layout.room_of(s)] += senders.measured(s);
        }
        let mut exp = 0;
        let mut got = 0;
        for (i, c) in clients.iter().enumerate() {
            if !c.receiving || (connected_only && c.state != State::Connected) {
                continue;
            }
            let total = per_room[self.layout.room_of(i)];
            exp += match c.sender {
                Some(s) if !self.echo() => total - senders.measured(s),
                _ => total,
            };
            got += self.uniq[i];
        }
        (exp, got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_split_goes_by_send_time() {
        let mut t = Tally::new(64, (2, 2, Layout::new(1, 1)), 0, false).unwrap();
        t.split_burst().unwrap();
        let b = t.burst.as_deref_mut().unwrap();
        b.record(5, 1_000);
        b.window = (10, u64::MAX);
        b.record(9, 2_000);
        b.record(12, 3_000);
        b.window = (10, 20);
        b.record(20, 4_000);
        b.record(21, 5_000);
        assert_eq!((b.during.len(), b.outside.len()), (2, 3));
        assert!(b.during.equivalent(b.during.max(), 4_000));
    }

    #[test]
    fn track_tells_late_from_duplicate() {
        let mut t = Track::default();
        assert_eq!(t.see(0), Seen::InOrder);
        assert_eq!(t.see(2), Seen::InOrder);
        assert_eq!(t.see(1), Seen::Late);
        assert_eq!(t.see(1), Seen::Duplicate);
        assert_eq!(t.see(2), Seen::Duplicate);
        assert_eq!(t.see(100), Seen::InOrder);
        // 64 and more behind: no longer in the bitmap, taken as late.
        assert_eq!(t.see(36), Seen::Late);
        assert_eq!(t.see(37), Seen::Late);
        assert_eq!(t.see(37), Seen::Duplicate);
    }
}
