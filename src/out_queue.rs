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
use std::mem::size_of;
use std::rc::Rc;

/// What the allocator adds to each allocation (glibc: a 16-byte header and
/// 16-byte alignment), so that what is counted is what the heap really holds.
const MALLOC_OVERHEAD: usize = 16;
/// What one chunk costs beside its bytes: the `Rc` counts and the [`Chunk`]
/// itself in one allocation, and the header of the bytes' allocation.
pub const CHUNK_HEADER: usize = 2 * size_of::<usize>() + size_of::<Chunk>() + 2 * MALLOC_OVERHEAD;
/// What one entry slot of a queue is charged against `--max-output`: the slot
/// itself and the header of a chunk it may keep alive on its own. (Shared
/// chunks are thereby charged to each of their holders; the cap errs on the
/// side of counting too much.)
pub const ENTRY_COST: usize = size_of::<Entry>() + CHUNK_HEADER;
/// A queue holding more entries than this at the end of a turn is compacted:
/// a client that stopped reading gains one entry per turn it misses, and
/// without compaction its memory would follow the turns, not the bytes.
pub const COMPACT_AT: usize = 8;
/// Entries shorter than this are merged by compaction. A longer one already
/// costs little beside its bytes (at most 1/5 more).
pub const SMALL_ENTRY: usize = 512;

/// Counts the heap bytes that queued output holds — shared chunks with their
/// headers, and every queue's entry array — so the server can bound the total
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
///
/// A chunk held by one entry only may still grow at its end: compaction
/// appends a stalled client's small entries to the chunk that ends its queue
/// rather than copying everything again.
#[derive(Debug)]
pub struct Chunk {
    /// The bytes. Its capacity, plus [`CHUNK_HEADER`], is what the meter holds
    /// for this chunk.
    bytes: Vec<u8>,
    meter: Meter,
}

impl Chunk {
    /// Copies `bytes` into a new shared chunk, counted by `meter`.
    pub fn new(bytes: &[u8], meter: &Meter) -> Rc<Chunk> {
        Chunk::owned(bytes.to_vec(), meter)
    }

    /// Makes `bytes` a chunk, counted by `meter`.
    pub fn owned(bytes: Vec<u8>, meter: &Meter) -> Rc<Chunk> {
        meter.add(CHUNK_HEADER + bytes.capacity());
        Rc::new(Chunk {
            bytes,
            meter: meter.clone(),
        })
    }

    /// The chunk's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Appends `more`, keeping the meter in step with the capacity.
    fn extend(&mut self, more: &[u8]) {
        let before = self.bytes.capacity();
        self.bytes.extend_from_slice(more);
        self.meter.add(self.bytes.capacity() - before);
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.meter.sub(CHUNK_HEADER + self.bytes.capacity());
    }
}

/// Lines every newcomer (or every asker) gets the same, held once: the
/// motd, the history replay, the `/who` answer. Queued by reference.
#[derive(Clone, Debug)]
pub struct SharedText {
    pub chunk: Rc<Chunk>,
    /// Lines in it, counted once when it is built.
    pub lines: u64,
}

impl SharedText {
    /// Copies `bytes` (whole lines) into one chunk counted by `meter`.
    pub fn new(bytes: Vec<u8>, meter: &Meter) -> SharedText {
        SharedText {
            lines: count_newlines(&bytes),
            chunk: Chunk::owned(bytes, meter),
        }
    }

    /// Bytes in it.
    pub fn len(&self) -> usize {
        self.chunk.bytes.len()
    }

    /// True if it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.chunk.bytes.is_empty()
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

    /// True if nobody else holds this entry's chunk: copying its bytes frees
    /// them.
    fn is_private(&self) -> bool {
        self.chunk
            .as_ref()
            .is_some_and(|c| Rc::strong_count(c) == 1 && Rc::weak_count(c) == 0)
    }

    /// True if the chunk is private and the entry runs to its end, so bytes
    /// can be appended to it.
    fn can_grow(&self) -> bool {
        self.is_private()
            && self
                .chunk
                .as_ref()
                .is_some_and(|c| self.end as usize == c.bytes.len())
    }

    /// Appends `bytes` to this entry's chunk if nobody else holds the chunk
    /// and the entry runs to its end; false if it cannot grow.
    fn grow(&mut self, bytes: &[u8]) -> bool {
        let Some(chunk) = self.chunk.as_mut().and_then(Rc::get_mut) else {
            return false;
        };
        if self.end as usize != chunk.bytes.len()
            || chunk.bytes.len() + bytes.len() > u32::MAX as usize
        {
            return false;
        }
        chunk.extend(bytes);
        self.end = chunk.bytes.len() as u32;
        true
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
    /// Sum of the entries' lengths.
    len: usize,
    /// Where the entry array's memory is counted (with every chunk's).
    meter: Meter,
    /// Entry slots (the array's capacity) counted in `meter` so far.
    counted_slots: usize,
}

impl OutQueue {
    /// An empty queue whose entry array is counted by `meter`.
    pub fn new(meter: &Meter) -> OutQueue {
        OutQueue {
            entries: VecDeque::new(),
            len: 0,
            meter: meter.clone(),
            counted_slots: 0,
        }
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What this queue is charged against `--max-output`: its bytes, plus
    /// [`ENTRY_COST`] for every entry slot it holds.
    pub fn cost(&self) -> usize {
        self.len + self.entries.capacity() * ENTRY_COST
    }

    /// Entries queued (ranges, not bytes).
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Brings the meter in step with the entry array's capacity.
    fn recount(&mut self) {
        let slots = self.entries.capacity();
        if slots > self.counted_slots {
            self.meter
                .add((slots - self.counted_slots) * size_of::<Entry>());
        } else {
            self.meter
                .sub((self.counted_slots - slots) * size_of::<Entry>());
        }
        self.counted_slots = slots;
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
        if self.entries.capacity() != self.counted_slots {
            self.recount();
        }
    }

    /// Merges runs of small entries that this queue alone holds (private
    /// lines, notices, `/msg` floods) into one chunk, once the queue holds
    /// more than [`COMPACT_AT`] entries. A small entry is appended to the
    /// private chunk before it when there is one, so a queue that keeps
    /// growing has each byte copied about once, not once per compaction.
    ///
    /// Bytes shared with other queues are never copied: with ten thousand
    /// stalled readers, one turn's broadcast copied into each of their queues
    /// would cost ten thousand times its size in one go. A shared entry holds
    /// at least one whole line, so it costs at most a few times its bytes,
    /// and that cost is counted. Must not be called while arena entries
    /// remain.
    pub fn compact(&mut self) {
        if self.entries.len() <= COMPACT_AT {
            return;
        }
        let old = std::mem::take(&mut self.entries);
        let mut kept: VecDeque<Entry> = VecDeque::with_capacity(COMPACT_AT);
        for entry in old {
            debug_assert!(entry.chunk.is_some(), "compacting an arena entry");
            if entry.is_private()
                && entry.len() < SMALL_ENTRY
                && let Some(last) = kept.back_mut()
                && last.is_private()
                && (last.len() < SMALL_ENTRY || last.can_grow())
            {
                let bytes = entry.bytes(&[]);
                if !last.grow(bytes) {
                    // Start a private chunk holding both; theirs are freed.
                    let mut both = Vec::with_capacity(last.len() + bytes.len());
                    both.extend_from_slice(last.bytes(&[]));
                    both.extend_from_slice(bytes);
                    *last = Entry::whole(Chunk::owned(both, &self.meter));
                }
                continue;
            }
            kept.push_back(entry);
        }
        self.entries = kept;
        self.recount();
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

    /// Shrinks the queue until its [`OutQueue::cost`] is at most `cap`, as
    /// [`OutQueue::truncate_lines`] does. Returns how many lines were dropped.
    pub fn truncate_cost(&mut self, cap: usize, arena: &[u8]) -> u64 {
        let slots = self.entries.capacity() * ENTRY_COST;
        self.truncate_lines(cap.saturating_sub(slots), arena)
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
        self.recount();
    }

    /// Gives the entry array back to the allocator once the queue is empty,
    /// so idle clients hold no output memory.
    pub fn release(&mut self) {
        if self.is_empty() && self.entries.capacity() > 0 {
            self.clear();
        }
    }
}

impl Drop for OutQueue {
    fn drop(&mut self) {
        self.meter.sub(self.counted_slots * size_of::<Entry>());
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
        assert_eq!(meter.get(), CHUNK_HEADER + 10, "one copy for both queues");
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

    /// A queue that never writes and receives one small line per turn,
    /// in a chunk of its own (a private line, a notice).
    fn flooded_queue(turns: usize, meter: &Meter) -> (OutQueue, Vec<u8>) {
        let mut q = OutQueue::new(meter);
        let mut expected = Vec::new();
        for turn in 0..turns {
            let line = format!("alice (private): line {turn}\n");
            expected.extend_from_slice(line.as_bytes());
            q.push(Entry::whole(Chunk::new(line.as_bytes(), meter)));
            q.compact();
        }
        (q, expected)
    }

    #[test]
    fn compaction_keeps_a_flooded_queue_proportional_to_its_bytes() {
        let meter = Meter::default();
        let (mut q, expected) = flooded_queue(10_000, &meter);
        assert!(q.entry_count() <= COMPACT_AT, "{}", q.entry_count());
        assert_eq!(q.len(), expected.len());
        // The charge is the bytes plus a handful of slots, not 10,000 entries.
        assert!(
            q.cost() < q.len() + 2 * COMPACT_AT * ENTRY_COST,
            "{}",
            q.cost()
        );
        // What is held is about the bytes, not one header per line.
        let held = meter.get();
        assert!(
            held < 2 * expected.len() + 16 * CHUNK_HEADER,
            "{held} for {}",
            expected.len()
        );
        let mut w = Trickle::new(usize::MAX, 1_000);
        q.write_to(&mut w, &[], OPEN);
        assert_eq!(w.got, expected, "every byte, in order");
        drop(q);
        assert_eq!(meter.get(), 0, "everything given back");
    }

    #[test]
    fn compaction_copies_each_byte_about_once() {
        // The private chunk grows in place: after 10,000 lines there is one,
        // and its capacity is within a factor of two of the bytes it holds.
        let meter = Meter::default();
        let (q, _) = flooded_queue(10_000, &meter);
        let big: Vec<&Rc<Chunk>> = q
            .entries
            .iter()
            .filter_map(|e| e.chunk.as_ref())
            .filter(|c| c.bytes.len() >= SMALL_ENTRY)
            .collect();
        assert_eq!(big.len(), 1);
        let held = big[0].bytes.len();
        assert!(held > 9_000 * 20, "{held}");
        assert!(big[0].bytes.capacity() <= 2 * held, "{held}");
    }

    #[test]
    fn compaction_never_copies_shared_bytes_and_keeps_the_order() {
        // A stalled reader's broadcasts are shared with other queues: copying
        // them would multiply them. They stay, and their entries are counted.
        let meter = Meter::default();
        let mut q = OutQueue::new(&meter);
        let mut others = Vec::new();
        let mut expected = Vec::new();
        for i in 0..40 {
            let line = format!("bob: shared {i}\n");
            let chunk = Chunk::new(line.as_bytes(), &meter);
            q.push(Entry::whole(chunk.clone()));
            others.push(chunk);
            expected.extend_from_slice(line.as_bytes());
            if i % 4 == 0 {
                let private = format!("*** private {i}\n");
                q.push(Entry::whole(Chunk::new(private.as_bytes(), &meter)));
                expected.extend_from_slice(private.as_bytes());
            }
            q.compact();
        }
        let shared = q.entries.iter().filter(|e| !e.is_private()).count();
        assert_eq!(shared, 40, "no shared entry was copied");
        assert!(q.cost() >= q.len() + 40 * ENTRY_COST);
        let mut w = Trickle::new(usize::MAX, 1_000);
        q.write_to(&mut w, &[], OPEN);
        assert_eq!(w.got, expected);
    }

    #[test]
    fn the_meter_counts_entry_arrays_and_gives_them_back() {
        let meter = Meter::default();
        let mut q = OutQueue::new(&meter);
        for i in 0..100 {
            q.push(Entry::arena(i * 2, i * 2 + 1));
        }
        assert_eq!(meter.get(), q.entries.capacity() * size_of::<Entry>());
        assert!(q.cost() >= q.len() + 100 * ENTRY_COST);
        q.clear();
        assert_eq!(meter.get(), 0);
    }
}
