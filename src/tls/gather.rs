//! Plaintext for TLS records, taken from a client's queue as `writev` would
//! take it: a list of slices (`&[u8]`, or the `IoSlice`s of a flush), read
//! across their boundaries.

use std::ops::Deref;

/// Walks `slices` front to back, handing out one record's plaintext at a
/// time: borrowed when it lies within one slice (the common case: a big
/// shared chunk), copied into `scratch` when it spans several (many short
/// lines). So a flush of many small chat lines still fills whole records.
pub struct Gather<'a, S> {
    slices: &'a [S],
    /// The slice being read, and how far into it: `slices[idx][off..]` is
    /// next. `idx == slices.len()` once everything is taken.
    idx: usize,
    off: usize,
    /// Bytes handed out so far, and in all.
    taken: usize,
    total: usize,
    /// Where a record that spans slices is put together (reused).
    scratch: Vec<u8>,
}

impl<'a, S: Deref<Target = [u8]>> Gather<'a, S> {
    pub fn new(slices: &'a [S]) -> Gather<'a, S> {
        Gather {
            slices,
            idx: 0,
            off: 0,
            taken: 0,
            total: slices.iter().map(|s| s.len()).sum(),
            scratch: Vec::new(),
        }
    }

    /// Bytes handed out so far.
    pub fn taken(&self) -> usize {
        self.taken
    }

    /// Bytes not handed out yet.
    pub fn remaining(&self) -> usize {
        self.total - self.taken
    }

    /// The next `n` bytes (at most [`Self::remaining`]).
    pub fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.remaining());
        self.taken += n;
        while self.idx < self.slices.len() && self.slices[self.idx].len() == self.off {
            self.idx += 1;
            self.off = 0;
        }
        if n == 0 {
            return &[];
        }
        let first = &self.slices[self.idx][self.off..];
        if first.len() >= n {
            self.off += n;
            return &first[..n];
        }
        self.scratch.clear();
        self.scratch.reserve(n);
        while self.scratch.len() < n {
            let s = &self.slices[self.idx][self.off..];
            let k = s.len().min(n - self.scratch.len());
            self.scratch.extend_from_slice(&s[..k]);
            self.off += k;
            if self.off == self.slices[self.idx].len() {
                self.idx += 1;
                self.off = 0;
            }
        }
        &self.scratch
    }
}

#[cfg(test)]
mod tests {
    use super::Gather;

    #[test]
    fn records_span_slices_and_skip_empty_ones() {
        let slices: &[&[u8]] = &[b"ab", b"", b"cde", b"f", b""];
        let mut g = Gather::new(slices);
        assert_eq!(g.remaining(), 6);
        assert_eq!(g.take(1), b"a");
        assert_eq!(g.take(3), b"bcd", "across the empty slice");
        assert_eq!(g.take(10), b"ef", "no more than remains");
        assert_eq!(g.take(1), b"");
        assert_eq!((g.taken(), g.remaining()), (6, 0));
    }

    #[test]
    fn within_one_slice_nothing_is_copied() {
        let big = vec![7u8; 100];
        let slices: &[&[u8]] = &[&big];
        let mut g = Gather::new(slices);
        let part = g.take(40);
        assert_eq!(part.as_ptr(), big.as_ptr(), "borrowed, not copied");
        assert_eq!(g.take(60).as_ptr(), big[40..].as_ptr());
        assert_eq!(g.scratch.capacity(), 0);
    }

    #[test]
    fn every_split_gives_back_the_concatenation() {
        let slices: &[&[u8]] = &[b"hello ", b"", b"w", b"orld", b"\n", b"again\n"];
        let whole: Vec<u8> = slices.concat();
        for n in 1..=whole.len() {
            let mut g = Gather::new(slices);
            let mut got = Vec::new();
            while g.remaining() > 0 {
                got.extend_from_slice(g.take(n));
            }
            assert_eq!(got, whole, "records of {n}");
        }
    }
}
