//! Bytes shared by the queues that still have to send them, and the meter
//! that counts what they cost.
//!
//! A broadcast that some clients could not take whole in its turn is copied
//! once into a [`Chunk`]; every queue that still needs it holds an `Rc` to
//! it. The [`Meter`] counts every chunk's bytes and header (and every
//! queue's entry array), which is what `--max-total-output` bounds.

use std::cell::Cell;
use std::mem::size_of;
use std::rc::Rc;

use crate::limits::MALLOC_OVERHEAD;

/// What one chunk costs beside its bytes: the `Rc` counts and the [`Chunk`]
/// itself in one allocation, and the header of the bytes' allocation.
pub const CHUNK_HEADER: usize = 2 * size_of::<usize>() + size_of::<Chunk>() + 2 * MALLOC_OVERHEAD;
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

    pub(crate) fn add(&self, n: usize) {
        self.0.set(self.0.get() + n);
    }

    pub(crate) fn sub(&self, n: usize) {
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
    pub(crate) bytes: Vec<u8>,
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
    pub(crate) fn extend(&mut self, more: &[u8]) {
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
            lines: crate::out_queue::count_newlines(&bytes),
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
