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

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::mem::size_of;
use std::rc::Rc;

pub use crate::chunk::{CHUNK_HEADER, Chunk, Meter, SharedText};
use crate::limits::{COMPACT_AT, MAX_IOVECS, SMALL_ENTRY};

/// What one entry slot of a queue is charged against `--max-output`: the slot
/// itself and the header of a chunk it may keep alive on its own. (Shared
/// chunks are thereby charged to each of their holders; the cap errs on the
/// side of counting too much.)
pub const ENTRY_COST: usize = size_of::<Entry>() + CHUNK_HEADER;
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
mod tests;
