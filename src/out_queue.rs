//! Output waiting for one client, and the shared bytes it points into.
//!
//! A broadcast is formatted once. During one turn of the event loop every line
//! is appended to a single turn buffer (the *arena*, owned by the server); a
//! client's queue then holds [`Entry`] ranges pointing into it, not copies.
//! At the end of the turn most clients have taken everything in one `write`.
//! For the few that could not, the still-needed part of the arena is copied
//! once into an immutable, reference-counted [`Chunk`] that all of them share,
//! and their entries are re-pointed at it ([`OutQueue::seal`]). So a line
//! queued for a thousand slow readers is in memory once.
//!
//! This module never sees a socket: [`OutQueue::write_to`] takes any
//! `io::Write`, and the tests at the bottom use a fake writer that takes a few
//! bytes at a time and then says `WouldBlock`.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

/// Counts the bytes held by live chunks, so the server can bound the total
/// memory queued for all clients. Clones share one counter.
#[derive(Clone, Debug, Default)]
pub struct Meter(Rc<Cell<usize>>);

impl Meter {
    /// Bytes held right now.
    pub fn get(&self) -> usize {
        self.0.get()
    }

    fn add(&self, n: usize) {
        self.0.set(self.0.get() + n);
    }

    fn sub(&self, n: usize) {
        self.0.set(self.0.get() - n);
    }
}

/// Immutable bytes shared by every queue that still has to send them. Freed,
/// and subtracted from its [`Meter`], when the last entry pointing at it is
/// written or dropped.
#[derive(Debug)]
pub struct Chunk {
    bytes: Box<[u8]>,
    meter: Meter,
}

impl Chunk {
    /// Copies `bytes` into a new shared chunk, counted by `meter`.
    pub fn new(bytes: &[u8], meter: &Meter) -> Rc<Chunk> {
        meter.add(bytes.len());
        Rc::new(Chunk {
            bytes: bytes.into(),
            meter: meter.clone(),
        })
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.meter.sub(self.bytes.len());
    }
}

/// A range of bytes to send: in a shared chunk, or in the current turn's
/// arena. Arena entries exist only during a turn: [`OutQueue::seal`] turns the
/// ones still unsent into chunk entries before the arena is reused.
#[derive(Clone, Debug)]
pub struct Entry {
    /// `None` means the arena of the current turn.
    chunk: Option<Rc<Chunk>>,
    start: u32,
    end: u32,
}

impl Entry {
    /// Bytes `start..end` of the current turn's arena.
    pub fn arena(start: usize, end: usize) -> Entry {
        debug_assert!(start <= end && end <= u32::MAX as usize);
        Entry {
            chunk: None,
            start: start as u32,
            end: end as u32,
        }
    }

    /// All of `chunk`.
    pub fn whole(chunk: Rc<Chunk>) -> Entry {
        let end = chunk.bytes.len() as u32;
        Entry {
            chunk: Some(chunk),
            start: 0,
            end,
        }
    }

    fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    fn bytes<'a>(&'a self, arena: &'a [u8]) -> &'a [u8] {
        let all = match &self.chunk {
            Some(chunk) => &chunk.bytes[..],
            None => arena,
        };
        &all[self.start as usize..self.end as usize]
    }

    /// True if `next` continues this entry in the same buffer, so the two can
    /// be one range (and one `iovec`).
    fn continues_into(&self, next: &Entry) -> bool {
        self.end == next.start
            && match (&self.chunk, &next.chunk) {
                (None, None) => true,
                (Some(a), Some(b)) => Rc::ptr_eq(a, b),
                _ => false,
            }
    }
}

/// How many ranges one `writev` call gathers at most. Queues are usually one
/// or two entries long; a backlogged client's may be longer, and this keeps
/// the `iovec` array on the stack.
const MAX_IOVECS: usize = 64;

/// The limits that apply to one flush of one queue.
#[derive(Clone, Copy, Debug)]
pub struct WriteLimits {
    /// Most bytes offered to one write call.
    pub max_write: usize,
    /// Most bytes written in one flush; the rest waits for the next turn so a
    /// client with a huge backlog cannot hold the loop.
    pub budget: usize,
}

/// Why a flush stopped.
#[derive(Debug)]
pub enum Flushed {
    /// The queue is empty.
    Drained,
    /// The socket is full; wait until it is writable.
    Blocked,
    /// The per-turn budget ran out with the socket still writable; flush again
    /// next turn without waiting for an event.
    OutOfBudget,
    /// The connection failed; the client must be closed.
    Failed(io::Error),
}

/// What a flush did.
#[derive(Debug)]
pub struct FlushReport {
    pub how: Flushed,
    /// Bytes handed to the kernel.
    pub written: usize,
    /// Write calls that took fewer bytes than offered.
    pub short_writes: u32,
}

/// The bytes waiting to be sent to one client, oldest first.
#[derive(Debug, Default)]
pub struct OutQueue {
    /// Ranges to send, in order. The first one may be partly sent already: its
    /// `start` moves forward as bytes are written.
    entries: VecDeque<Entry>,
    /// Sum of the entries' lengths: what the per-client cap is checked against.
    len: usize,
}

impl OutQueue {
    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `entry`, merging it into the last one when they are adjacent
    /// in the same buffer: consecutive broadcasts become one range.
    pub fn push(&mut self, entry: Entry) {
        if entry.len() == 0 {
            return;
        }
        self.len += entry.len();
        if let Some(last) = self.entries.back_mut()
            && last.continues_into(&entry)
        {
            last.end = entry.end;
            return;
        }
        self.entries.push_back(entry);
    }

    /// Writes as much as the writer takes, within `limits`.
    ///
    /// Edge-triggered readiness means we must write until `WouldBlock` (or
    /// until the queue is empty) before waiting for the next event; a short
    /// write alone proves nothing, so it is counted and the loop goes on.
    pub fn write_to<W: Write>(
        &mut self,
        writer: &mut W,
        arena: &[u8],
        limits: WriteLimits,
    ) -> FlushReport {
        let mut report = FlushReport {
            how: Flushed::Drained,
            written: 0,
            short_writes: 0,
        };
        while !self.is_empty() {
            if report.written >= limits.budget {
                report.how = Flushed::OutOfBudget;
                return report;
            }
            let allowed = limits.max_write.min(limits.budget - report.written);
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            let mut offered = 0;
            for entry in self.entries.iter().take(MAX_IOVECS) {
                let bytes = entry.bytes(arena);
                let take = bytes.len().min(allowed - offered);
                slices[count] = IoSlice::new(&bytes[..take]);
                count += 1;
                offered += take;
                if offered == allowed {
                    break;
                }
            }
            match writer.write_vectored(&slices[..count]) {
                Ok(0) => {
                    report.how = Flushed::Failed(io::ErrorKind::WriteZero.into());
                    return report;
                }
                Ok(n) => {
                    if n < offered {
                        report.short_writes += 1;
                    }
                    report.written += n;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    report.how = Flushed::Blocked;
                    return report;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    report.how = Flushed::Failed(e);
                    return report;
                }
            }
        }
        self.release();
        report
    }

    /// Drops `n` written bytes from the front.
    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let front = self.entries.front_mut().expect("consumed more than queued");
            if front.len() <= n {
                n -= front.len();
                self.entries.pop_front();
            } else {
                front.start += n as u32;
                n = 0;
            }
        }
    }

    /// The lowest arena offset still referenced, if any entry points into the
    /// arena. The server copies the arena from there when it seals the turn.
    pub fn arena_low(&self) -> Option<usize> {
        self.entries
            .iter()
            .filter(|e| e.chunk.is_none())
            .map(|e| e.start as usize)
            .min()
    }

    /// Re-points arena entries at `chunk`, a copy of the arena from offset
    /// `low` on. After this the queue no longer depends on the arena.
    pub fn seal(&mut self, low: usize, chunk: &Rc<Chunk>) {
        for entry in self.entries.iter_mut().filter(|e| e.chunk.is_none()) {
            entry.chunk = Some(chunk.clone());
            entry.start -= low as u32;
            entry.end -= low as u32;
        }
    }

    /// Shrinks the queue to at most `cap` bytes by dropping whole lines from
    /// its end (the newest ones). Returns how many lines were dropped. The
    /// oldest, possibly half-sent line is never touched unless it alone is
    /// over the cap, in which case it is kept whole so no partial line is sent.
    pub fn truncate_lines(&mut self, cap: usize, arena: &[u8]) -> u64 {
        if self.len <= cap {
            return 0;
        }
        // Find the end of the last complete line that fits within `cap`.
        let mut keep = 0;
        let mut offset = 0;
        'outer: for entry in &self.entries {
            for (i, &b) in entry.bytes(arena).iter().enumerate() {
                if offset + i >= cap {
                    break 'outer;
                }
                if b == b'\n' {
                    keep = offset + i + 1;
                }
            }
            offset += entry.len();
        }
        if keep == 0 {
            // Keep the first line whole: a line is sent entirely or not at all.
            keep = self.first_line_len(arena);
        }
        let mut dropped = 0u64;
        let mut offset = 0;
        let mut kept_entries = 0;
        for entry in &mut self.entries {
            let end = offset + entry.len();
            if end <= keep {
                kept_entries += 1;
            } else {
                let from = keep.saturating_sub(offset);
                dropped += count_newlines(&entry.bytes(arena)[from..]);
                if from > 0 {
                    entry.end = entry.start + from as u32;
                    kept_entries += 1;
                }
            }
            offset = end;
        }
        self.entries.truncate(kept_entries);
        self.len = keep;
        dropped
    }

    fn first_line_len(&self, arena: &[u8]) -> usize {
        let mut offset = 0;
        for entry in &self.entries {
            if let Some(i) = crate::line_buffer::memchr(b'\n', entry.bytes(arena)) {
                return offset + i + 1;
            }
            offset += entry.len();
        }
        offset
    }

    /// Drops everything queued, and the memory behind it.
    pub fn clear(&mut self) {
        self.entries = VecDeque::new();
        self.len = 0;
    }

    /// Gives the entry array back to the allocator once the queue is empty,
    /// so idle clients hold no output memory.
    pub fn release(&mut self) {
        if self.is_empty() && self.entries.capacity() > 0 {
            self.entries = VecDeque::new();
        }
    }
}

/// Lines in `bytes` (every line ends in `\n`).
pub(crate) fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `per_call` bytes per call and then, after
    /// `calls_before_block` calls, says `WouldBlock` until refilled.
    struct Trickle {
        got: Vec<u8>,
        per_call: usize,
        calls_left: usize,
        fail: Option<io::ErrorKind>,
    }

    impl Trickle {
        fn new(per_call: usize, calls_left: usize) -> Trickle {
            Trickle {
                got: Vec::new(),
                per_call,
                calls_left,
                fail: None,
            }
        }
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if let Some(kind) = self.fail {
                return Err(kind.into());
            }
            if self.calls_left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls_left -= 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.per_call - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
            }
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const OPEN: WriteLimits = WriteLimits {
        max_write: usize::MAX,
        budget: usize::MAX,
    };

    #[test]
    fn adjacent_arena_ranges_merge_into_one_entry() {
        let mut q = OutQueue::default();
        q.push(Entry::arena(0, 5));
        q.push(Entry::arena(5, 9));
        q.push(Entry::arena(9, 9));
        assert_eq!(q.entries.len(), 1);
        assert_eq!(q.len(), 9);
        q.push(Entry::arena(12, 14));
        assert_eq!(q.entries.len(), 2);
    }

    #[test]
    fn short_writes_keep_the_rest_in_order() {
        let arena = b"alice: hi\nbob: hello\n".to_vec();
        let meter = Meter::default();
        let mut q = OutQueue::default();
        q.push(Entry::arena(0, 10));
        q.push(Entry::whole(Chunk::new(b"*** notice\n", &meter)));
        q.push(Entry::arena(10, arena.len()));
        let mut w = Trickle::new(3, 2);
        let r = q.write_to(&mut w, &arena, OPEN);
        assert!(matches!(r.how, Flushed::Blocked));
        assert_eq!(r.written, 6);
        assert_eq!(r.short_writes, 2);
        assert_eq!(w.got, b"alice:");
        // Refill and finish: the bytes continue exactly where they stopped.
        w.calls_left = 100;
        let r = q.write_to(&mut w, &arena, OPEN);
        assert!(matches!(r.how, Flushed::Drained));
        assert_eq!(w.got, b"alice: hi\n*** notice\nbob: hello\n");
        assert!(q.is_empty());
        assert_eq!(q.entries.capacity(), 0, "memory given back when drained");
        drop(q);
        assert_eq!(meter.get(), 0, "chunk freed once written");
    }

    #[test]
    fn max_write_caps_each_call_and_budget_caps_the_turn() {
        let arena = vec![b'x'; 100];
        let mut q = OutQueue::default();
        q.push(Entry::arena(0, 100));
        let mut w = Trickle::new(usize::MAX, 100);
        let limits = WriteLimits {
            max_write: 7,
            budget: 30,
        };
        let r = q.write_to(&mut w, &arena, limits);
        assert!(matches!(r.how, Flushed::OutOfBudget));
        assert_eq!(r.written, 30);
        assert_eq!(r.short_writes, 0, "a capped offer taken whole is not short");
        assert_eq!(q.len(), 70);
    }

    #[test]
    fn errors_and_zero_writes_fail_the_flush() {
        let arena = b"x\n".to_vec();
        let mut q = OutQueue::default();
        q.push(Entry::arena(0, 2));
        let mut w = Trickle::new(1, 10);
        w.fail = Some(io::ErrorKind::BrokenPipe);
        let r = q.write_to(&mut w, &arena, OPEN);
        assert!(matches!(r.how, Flushed::Failed(e) if e.kind() == io::ErrorKind::BrokenPipe));
        let mut w = Trickle::new(0, 10);
        let r = q.write_to(&mut w, &arena, OPEN);
        assert!(matches!(r.how, Flushed::Failed(e) if e.kind() == io::ErrorKind::WriteZero));
    }

    #[test]
    fn sealing_moves_arena_entries_into_a_shared_chunk() {
        let mut arena = b"one\ntwo\nthree\n".to_vec();
        let meter = Meter::default();
        let mut a = OutQueue::default();
        let mut b = OutQueue::default();
        a.push(Entry::arena(0, arena.len()));
        b.push(Entry::arena(4, arena.len()));
        // `a` takes the first line; both then need the arena from offset 4.
        let mut w = Trickle::new(4, 1);
        a.write_to(&mut w, &arena, OPEN);
        let low = a.arena_low().unwrap().min(b.arena_low().unwrap());
        assert_eq!(low, 4);
        let chunk = Chunk::new(&arena[low..], &meter);
        a.seal(low, &chunk);
        b.seal(low, &chunk);
        drop(chunk);
        assert_eq!(meter.get(), 10, "one copy for both queues");
        arena.clear();
        arena.extend_from_slice(b"garbage that must not be sent");
        for q in [&mut a, &mut b] {
            let mut w = Trickle::new(100, 10);
            q.write_to(&mut w, &arena, OPEN);
            assert_eq!(w.got, b"two\nthree\n");
        }
        assert_eq!(meter.get(), 0);
    }

    #[test]
    fn truncating_drops_whole_newest_lines_and_counts_them() {
        let arena = b"aaaa\nbbbb\ncccc\ndddd\n".to_vec();
        let mut q = OutQueue::default();
        q.push(Entry::arena(0, 10));
        q.push(Entry::arena(10, 20));
        assert_eq!(q.truncate_lines(12, &arena), 2);
        assert_eq!(q.len(), 10);
        let mut w = Trickle::new(100, 10);
        q.write_to(&mut w, &arena, OPEN);
        assert_eq!(w.got, b"aaaa\nbbbb\n");

        // A first line longer than the cap is kept whole.
        let mut q = OutQueue::default();
        q.push(Entry::arena(0, 20));
        assert_eq!(q.truncate_lines(3, &arena), 3);
        assert_eq!(q.len(), 5);
        assert_eq!(q.truncate_lines(100, &arena), 0);
    }
}
