//! One conversation: its members, the turn's arena its lines are formatted
//! into, its history and topic, the `/who` answer, and the rate of its
//! arrival notices.
//!
//! A broadcast is formatted once, into the arena; each member's queue then
//! takes a range of it (see [`crate::hub`]). The history and the `/who`
//! answer are shared texts, built once per change and queued by reference.

use std::collections::VecDeque;

use crate::notice::NoticeGate;
use crate::out_queue::{Meter, SharedText};

/// The last chat lines, for newcomers.
#[derive(Debug)]
pub struct History {
    lines: VecDeque<Box<[u8]>>,
    /// Bytes in `lines`.
    bytes: usize,
    /// `--history`: most lines kept (0: none).
    max_lines: usize,
    /// `--history-bytes`: most bytes kept.
    max_bytes: usize,
    /// `lines` as one shared text, built when a newcomer needs it after a
    /// change.
    text: Option<SharedText>,
}

impl History {
    pub fn new(max_lines: usize, max_bytes: usize) -> History {
        History {
            lines: VecDeque::new(),
            bytes: 0,
            max_lines,
            max_bytes,
            text: None,
        }
    }

    /// Keeps `line` (formatted, with its `\n`), dropping the oldest lines past
    /// either limit. A line longer than the byte limit alone is not kept.
    pub fn remember(&mut self, line: &[u8]) {
        if self.max_lines == 0 || line.len() > self.max_bytes {
            return;
        }
        self.bytes += line.len();
        self.lines.push_back(line.into());
        while self.lines.len() > self.max_lines || self.bytes > self.max_bytes {
            let old = self.lines.pop_front().expect("over a limit, so not empty");
            self.bytes -= old.len();
        }
        self.text = None;
    }

    /// Forgets every line.
    pub fn clear(&mut self) {
        self.lines.clear();
        self.bytes = 0;
        self.text = None;
    }

    /// The history as one shared text (counted by `meter`), built once per
    /// change; `None` while it is empty.
    pub fn text(&mut self, meter: &Meter) -> Option<SharedText> {
        if self.lines.is_empty() {
            return None;
        }
        let lines = &self.lines;
        let text = self.text.get_or_insert_with(|| {
            let mut bytes = Vec::with_capacity(self.bytes);
            for line in lines {
                bytes.extend_from_slice(line);
            }
            SharedText::new(bytes, meter)
        });
        Some(text.clone())
    }
}

/// One conversation's state.
#[derive(Debug)]
pub struct Room {
    /// Its name as first created (`#Help`); looked up case-insensitively.
    pub name: Box<str>,
    /// The keys of its joined members, in no order; each member knows its
    /// index here, so leaving is O(1).
    pub members: Vec<usize>,
    /// The ids of other nodes' members in it (in a cluster), likewise.
    pub remote: Vec<usize>,
    /// `/topic`, cleaned.
    pub topic: Option<Box<str>>,
    /// This turn's formatted broadcasts. Members' queues point into it; at
    /// the end of the turn the part still needed is copied into a shared
    /// chunk and the arena is cleared.
    pub arena: Vec<u8>,
    pub history: History,
    /// The `/who` answer, built when asked for after a change of membership.
    pub who_text: Option<SharedText>,
    /// `--notice-rate`: which arrivals and departures are announced.
    pub notices: NoticeGate,
}

impl Room {
    pub fn new(name: &str, history: History, notice_rate: u32) -> Room {
        Room {
            name: name.into(),
            members: Vec::new(),
            remote: Vec::new(),
            topic: None,
            arena: Vec::new(),
            history,
            who_text: None,
            notices: NoticeGate::new(notice_rate),
        }
    }

    /// Members here, on this node and others.
    pub fn population(&self) -> usize {
        self.members.len() + self.remote.len()
    }

    /// Readies the arena for the next turn, giving back what one busy turn
    /// grew it to beyond `keep` bytes.
    pub fn clear_arena(&mut self, keep: usize) {
        self.arena.clear();
        if self.arena.capacity() > keep {
            self.arena.shrink_to(keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_newest_lines_within_both_limits() {
        let meter = Meter::default();
        let mut h = History::new(3, 20);
        for line in ["a: 1\n", "a: 2\n", "a: 3\n", "a: 4\n"] {
            h.remember(line.as_bytes());
        }
        assert_eq!(h.text(&meter).unwrap().chunk.bytes(), b"a: 2\na: 3\na: 4\n");
        h.remember(b"a: a long line\n");
        assert_eq!(
            h.text(&meter).unwrap().chunk.bytes(),
            b"a: 4\na: a long line\n"
        );
        h.remember(b"a: a line over the byte limit\n");
        assert_eq!(
            h.text(&meter).unwrap().chunk.bytes(),
            b"a: 4\na: a long line\n"
        );
    }

    #[test]
    fn the_history_text_is_built_once_per_change() {
        let meter = Meter::default();
        let mut h = History::new(10, 1000);
        assert!(h.text(&meter).is_none());
        h.remember(b"x\n");
        let a = h.text(&meter).unwrap();
        let b = h.text(&meter).unwrap();
        assert!(std::rc::Rc::ptr_eq(&a.chunk, &b.chunk));
        h.remember(b"y\n");
        assert!(!std::rc::Rc::ptr_eq(
            &a.chunk,
            &h.text(&meter).unwrap().chunk
        ));
    }
}
