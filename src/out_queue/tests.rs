//! Queues and chunks with a fake writer that takes a few bytes at a time
//! and then says `WouldBlock`.

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
