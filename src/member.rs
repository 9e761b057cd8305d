//! One client as the chat sees it: its name, where it is in its life, and
//! the output queued for it. Its socket is elsewhere ([`crate::connection`]);
//! nothing here sees one.

use crate::out_queue::OutQueue;

/// Where a member is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Connected under `--ask-name`, not yet named: gets only its own prompts
    /// and is not announced to anyone.
    Naming,
    /// In the room: receives broadcasts, its lines are handled.
    Joined,
    /// Left the room (its departure, if any, is announced): nothing more is
    /// queued for it, and what is queued is flushed before its connection
    /// closes.
    Gone,
}

/// A member of the hub.
#[derive(Debug)]
pub struct Member {
    /// How others see it: its address (`127.0.0.1:64208`, `[::1]:50000`)
    /// until it takes a name.
    pub who: Box<str>,
    /// Output waiting to be written.
    pub output: OutQueue,
    pub phase: Phase,
    /// The room it is in (or will join), by id.
    pub room: u32,
    /// Its index in its room's member list, while joined.
    pub room_slot: u32,
    /// Order of joining, for `/who`.
    pub joined_seq: u32,
    /// Offset in its room's arena from which broadcasts are still to be
    /// queued for it; valid only while `mark_turn` is the current turn
    /// (otherwise it takes the arena from its start).
    pub mark: u32,
    pub mark_turn: u32,
    /// Bytes queued for it alone (not broadcasts) in turn `private_turn`:
    /// what the per-turn budget checks private lines against.
    private_bytes: u32,
    private_turn: u32,
    /// Lines skipped under `--slow-client drop`, in all.
    pub skipped_total: u32,
    /// Lines skipped and not yet reported to it.
    pub skipped_unreported: u32,
    /// Under `--slow-client drop`: lines are being skipped until the queue
    /// drains below half the cap.
    pub skipping: bool,
    /// In the hub's list of members with something to flush this turn.
    pub dirty: bool,
}

impl Member {
    pub fn new(who: Box<str>, output: OutQueue) -> Member {
        Member {
            who,
            output,
            phase: Phase::Naming,
            room: 0,
            room_slot: 0,
            joined_seq: 0,
            mark: 0,
            mark_turn: u32::MAX,
            private_bytes: 0,
            private_turn: u32::MAX,
            skipped_total: 0,
            skipped_unreported: 0,
            skipping: false,
            dirty: false,
        }
    }

    /// True if broadcasts are queued for it.
    pub fn receives(&self) -> bool {
        self.phase == Phase::Joined
    }

    /// Where its share of the arena starts in `turn`.
    pub fn region_start(&self, turn: u32) -> usize {
        if self.mark_turn == turn {
            self.mark as usize
        } else {
            0
        }
    }

    /// Moves its mark to `at` in `turn`'s arena: what is before is queued or
    /// not meant for it.
    pub fn set_mark(&mut self, turn: u32, at: usize) {
        self.mark = at as u32;
        self.mark_turn = turn;
    }

    /// Bytes queued for it alone in `turn`.
    pub fn private_in(&self, turn: u32) -> usize {
        if self.private_turn == turn {
            self.private_bytes as usize
        } else {
            0
        }
    }

    /// Counts `n` more bytes queued for it alone in `turn`; returns the
    /// turn's total so far.
    pub fn add_private(&mut self, turn: u32, n: usize) -> usize {
        if self.private_turn != turn {
            self.private_turn = turn;
            self.private_bytes = 0;
        }
        let n = n.min(u32::MAX as usize) as u32;
        self.private_bytes = self.private_bytes.saturating_add(n);
        self.private_bytes as usize
    }

    /// Counts lines skipped under `--slow-client drop`.
    pub fn skip(&mut self, lines: u64) {
        let lines = lines.min(u32::MAX as u64) as u32;
        self.skipped_unreported = self.skipped_unreported.saturating_add(lines);
        self.skipped_total = self.skipped_total.saturating_add(lines);
    }
}

/// Formats a peer address as Go's `RemoteAddr().String()` does:
/// `127.0.0.1:64208`, `[::1]:50000`, and IPv4-mapped IPv6 as plain IPv4.
pub fn who_from_addr(addr: std::net::SocketAddr) -> String {
    let ip = addr.ip().to_canonical();
    std::net::SocketAddr::new(ip, addr.port()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_as_go_prints_them() {
        assert_eq!(
            who_from_addr("127.0.0.1:64208".parse().unwrap()),
            "127.0.0.1:64208"
        );
        assert_eq!(who_from_addr("[::1]:50000".parse().unwrap()), "[::1]:50000");
        assert_eq!(
            who_from_addr("[::ffff:10.0.0.1]:7".parse().unwrap()),
            "10.0.0.1:7"
        );
    }

    #[test]
    fn private_bytes_count_per_turn() {
        let mut m = Member::new("a".into(), OutQueue::default());
        assert_eq!(m.add_private(3, 10), 10);
        assert_eq!(m.add_private(3, 5), 15);
        assert_eq!(m.private_in(3), 15);
        assert_eq!(m.private_in(4), 0, "a new turn starts at nothing");
        assert_eq!(m.add_private(4, 1), 1);
    }

    #[test]
    fn a_member_stays_small() {
        // With its connection, an idle client should cost under 300 bytes.
        let size = std::mem::size_of::<Member>();
        assert!(size <= 112, "{size}");
    }
}
