//! Turning a client's byte stream into lines.
//!
//! TCP delivers bytes, not lines: one `read` may hold half a line or fifty. A
//! [`LineBuffer`] keeps the bytes that have arrived but not yet been handled
//! and hands them out one [`Frame`] at a time. It never knows about sockets,
//! so every rule below is unit-tested at the bottom of this file.
//!
//! The rules follow Go's `bufio.Scanner` (the reference server's reader), with
//! one deliberate difference: a line longer than the limit is cut and the
//! rest of it discarded, instead of ending the client's session.
//!
//! - A line ends at `\n`; one `\r` right before it is removed.
//! - At end of input, bytes after the last `\n` still form a line
//!   ([`LineBuffer::finish`]), again without a trailing `\r`.
//! - A line whose content is longer than `max` bytes becomes
//!   [`Frame::Cut`]: the first `max` bytes (backed off to a UTF-8 character
//!   boundary), emitted as soon as the limit is crossed. The remainder up to
//!   the next `\n` is dropped as it arrives, so the buffer never holds more
//!   than `max + 2` bytes of one line plus one read.

/// One unit of input handed to the chat layer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line, without its `\n` or `\r\n`.
    Line(&'a [u8]),
    /// The kept start of a line that was longer than the limit.
    Cut(&'a [u8]),
}

/// Bytes received from one client that have not been handled yet.
#[derive(Debug, Default)]
pub struct LineBuffer {
    /// Received bytes; `buf[start..]` are not yet handled. Empty (and
    /// unallocated) whenever nothing is pending, so idle clients cost nothing.
    buf: Vec<u8>,
    /// Offset of the first unhandled byte. Frames are consumed by moving it
    /// forward; the handled prefix is dropped by [`LineBuffer::push`], which
    /// compacts before it appends.
    start: usize,
    /// True while the tail of an over-long line is being thrown away: bytes are
    /// dropped up to and including the next `\n`.
    discarding: bool,
}

impl LineBuffer {
    /// Appends freshly read bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            // Compact first, so the buffer's size tracks what is pending rather
            // than everything ever received.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The bytes received but not yet handed out.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// True when no byte is waiting.
    pub fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }

    /// Frees the allocation once everything has been handled. Called after
    /// each read, so a client that is not mid-line holds no input memory.
    pub fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// Bytes currently allocated, for memory accounting.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// True if [`LineBuffer::next`] would return a frame. Used to decide
    /// whether a client out of rate tokens must wait: one still in the middle
    /// of a line may go on reading.
    pub fn has_frame(&self, max: usize) -> bool {
        let data = self.pending();
        let data = if self.discarding {
            match memchr(b'\n', data) {
                Some(i) => &data[i + 1..],
                None => return false,
            }
        } else {
            data
        };
        data.len() >= max.saturating_add(2) || memchr(b'\n', data).is_some()
    }

    /// Takes the next frame, if a whole one has arrived.
    ///
    /// `max` is the longest line content kept, in bytes (at least 1).
    pub fn next(&mut self, max: usize) -> Option<Frame<'_>> {
        let found = self.locate(max);
        self.start = found.next;
        self.discarding = found.discarding;
        let line = found.line?;
        Some(self.frame(line, found.cut, max))
    }

    /// The frame [`LineBuffer::next`] would return, without taking it: the
    /// server looks at a line before deciding whether this turn has room for
    /// what it will produce.
    ///
    /// The rest of an over-long line is still dropped as it arrives, so a
    /// client streaming without a newline holds no more than before.
    pub fn peek(&mut self, max: usize) -> Option<Frame<'_>> {
        let found = self.locate(max);
        if found.line.is_none() {
            self.start = found.next;
            self.discarding = found.discarding;
            return None;
        }
        Some(self.frame(found.line?, found.cut, max))
    }

    fn frame(&self, (begin, end): (usize, usize), cut_it: bool, max: usize) -> Frame<'_> {
        let line = &self.buf[begin..end];
        if cut_it {
            Frame::Cut(cut(line, max))
        } else {
            Frame::Line(line)
        }
    }

    /// Finds the next frame without consuming anything.
    fn locate(&self, max: usize) -> Located {
        debug_assert!(max > 0);
        let mut start = self.start;
        if self.discarding {
            match memchr(b'\n', &self.buf[start..]) {
                Some(i) => start += i + 1,
                None => {
                    // Everything pending belongs to the over-long line.
                    return Located {
                        line: None,
                        cut: false,
                        next: self.buf.len(),
                        discarding: true,
                    };
                }
            }
        }
        let data = &self.buf[start..];
        // A line of `max` bytes may be followed by `\r\n`, so a newline is
        // looked for in the first `max + 2` bytes; past that the line is
        // certainly too long.
        let window = data.len().min(max.saturating_add(2));
        match memchr(b'\n', &data[..window]) {
            Some(i) => {
                let len = strip_cr(&data[..i]).len();
                Located {
                    line: Some((start, start + len)),
                    cut: len > max,
                    next: start + i + 1,
                    discarding: false,
                }
            }
            None if data.len() >= max.saturating_add(2) => Located {
                line: Some((start, start + max + 2)),
                cut: true,
                next: start + max + 2,
                discarding: true,
            },
            None => Located {
                line: None,
                cut: false,
                next: start,
                discarding: false,
            },
        }
    }

    /// At end of input: the last line if it had no `\n`.
    pub fn finish(&mut self, max: usize) -> Option<Frame<'_>> {
        let begin = self.start;
        self.start = self.buf.len();
        if std::mem::take(&mut self.discarding) || begin == self.buf.len() {
            return None;
        }
        let line = strip_cr(&self.buf[begin..]);
        if line.len() <= max {
            Some(Frame::Line(line))
        } else {
            Some(Frame::Cut(cut(line, max)))
        }
    }
}

/// Where the next frame lies, found by [`LineBuffer::locate`].
struct Located {
    /// The line's bytes in `buf` (before cutting), if a frame is complete.
    line: Option<(usize, usize)>,
    /// The line is over the limit and is to be cut.
    cut: bool,
    /// Where unhandled input starts once the frame is taken.
    next: usize,
    /// Whether the rest of an over-long line is being dropped after it.
    discarding: bool,
}

/// Removes one trailing `\r`.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The first `max` bytes of `line` (which is longer), moved back to the start
/// of a UTF-8 character if the limit falls inside one, so a cut never turns a
/// valid character into a replacement mark.
fn cut(line: &[u8], max: usize) -> &[u8] {
    let mut end = max;
    // At most three continuation bytes can follow a lead byte.
    while end > 0 && max - end < 3 && line[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    if line[end] & 0xC0 == 0x80 || end == 0 {
        // Not a character boundary after all (invalid UTF-8): cut at the limit.
        end = max;
    }
    &line[..end]
}

/// Position of the first `needle` in `haystack`. The standard library's
/// `position` compiles to a tight loop; lines are short, so this is enough.
pub(crate) fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after another and collects every frame, with the
    /// final line at end of input.
    fn frames(chunks: &[&[u8]], max: usize) -> Vec<(bool, Vec<u8>)> {
        let mut buf = LineBuffer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.push(chunk);
            while let Some(f) = buf.next(max) {
                out.push(owned(f));
            }
        }
        if let Some(f) = buf.finish(max) {
            out.push(owned(f));
        }
        out
    }

    fn owned(f: Frame<'_>) -> (bool, Vec<u8>) {
        match f {
            Frame::Line(l) => (false, l.to_vec()),
            Frame::Cut(l) => (true, l.to_vec()),
        }
    }

    fn lines(v: &[&str]) -> Vec<(bool, Vec<u8>)> {
        v.iter().map(|s| (false, s.as_bytes().to_vec())).collect()
    }

    #[test]
    fn splits_on_newline_and_strips_one_cr() {
        assert_eq!(
            frames(&[b"Hi!\nHi yourself.\r\n\n\r\r\n"], 100),
            lines(&["Hi!", "Hi yourself.", "", "\r"])
        );
    }

    #[test]
    fn joins_a_line_split_across_reads() {
        let text = b"hello there\r\nsecond\n";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(frames(&chunks, 100), lines(&["hello there", "second"]));
    }

    #[test]
    fn keeps_a_last_line_without_newline() {
        assert_eq!(frames(&[b"a\nlast"], 100), lines(&["a", "last"]));
        assert_eq!(frames(&[b"a\nlast\r"], 100), lines(&["a", "last"]));
        assert_eq!(frames(&[b"a\n"], 100), lines(&["a"]));
        assert_eq!(frames(&[b""], 100), lines(&[]));
    }

    #[test]
    fn a_line_of_exactly_max_bytes_is_whole_even_with_crlf() {
        assert_eq!(frames(&[b"abcd\r", b"\n"], 4), lines(&["abcd"]));
        assert_eq!(frames(&[b"abcd\n"], 4), lines(&["abcd"]));
        assert_eq!(frames(&[b"abcd"], 4), lines(&["abcd"]));
    }

    #[test]
    fn cuts_a_long_line_and_discards_its_tail() {
        assert_eq!(
            frames(&[b"abcdefgh", b"ijk\nnext\n"], 4),
            vec![(true, b"abcd".to_vec()), (false, b"next".to_vec())]
        );
        // Cut when the newline is already in sight: nothing to discard later.
        assert_eq!(
            frames(&[b"abcde\nnext\n"], 4),
            vec![(true, b"abcd".to_vec()), (false, b"next".to_vec())]
        );
        // A carriage return inside a long line does not save it.
        assert_eq!(frames(&[b"abcd\rx\n"], 4), vec![(true, b"abcd".to_vec())]);
        // The tail of a cut line at end of input is not another line.
        assert_eq!(frames(&[b"abcdefgh"], 4), vec![(true, b"abcd".to_vec())]);
    }

    #[test]
    fn memory_stays_flat_while_a_huge_line_streams_in() {
        let mut buf = LineBuffer::default();
        let block = vec![b'x'; 16 * 1024];
        let mut cuts = 0;
        for _ in 0..1000 {
            buf.push(&block);
            while let Some(f) = buf.next(4096) {
                assert!(matches!(f, Frame::Cut(c) if c.len() == 4096));
                cuts += 1;
            }
            assert!(buf.pending().len() <= 4096 + 2);
            assert!(buf.capacity() <= 64 * 1024, "{}", buf.capacity());
        }
        assert_eq!(cuts, 1);
        buf.push(b"\nok\n");
        assert_eq!(buf.next(4096), Some(Frame::Line(b"ok")));
    }

    #[test]
    fn a_cut_does_not_split_a_utf8_character() {
        // "é" is two bytes; a limit of 4 falls inside the third one.
        let text = "abcé€x\n".as_bytes();
        assert_eq!(frames(&[text], 4), vec![(true, b"abc".to_vec())]);
        let text = "ab€€€\n".as_bytes();
        assert_eq!(frames(&[text], 4), vec![(true, b"ab".to_vec())]);
        // Invalid bytes are cut at the limit exactly.
        assert_eq!(
            frames(&[b"\x80\x80\x80\x80\x80\x80\n"], 4),
            vec![(true, vec![0x80; 4])]
        );
    }

    #[test]
    fn has_frame_says_whether_next_would_give_one() {
        let mut buf = LineBuffer::default();
        for chunk in [&b"ab"[..], b"c\nd", b"efghijkl", b"mn\n", b"xy\n"] {
            buf.push(chunk);
            loop {
                let promised = buf.has_frame(4);
                let got = buf.next(4).is_some();
                assert_eq!(promised, got, "after {chunk:?}");
                if !got {
                    break;
                }
            }
        }
    }

    #[test]
    fn releases_memory_when_drained() {
        let mut buf = LineBuffer::default();
        buf.push(b"one\ntwo");
        assert_eq!(buf.next(10), Some(Frame::Line(b"one")));
        buf.release_if_empty();
        assert_eq!(buf.pending(), b"two");
        buf.push(b"\n");
        assert_eq!(buf.next(10), Some(Frame::Line(b"two")));
        buf.release_if_empty();
        assert_eq!(buf.capacity(), 0);
    }

    #[test]
    fn peek_shows_what_next_takes_and_changes_nothing() {
        let inputs: [&[u8]; 5] = [
            b"short\r\nline two\n",
            b"0123456789abcdefXYZ\nok\n",
            b"0123456789abcdefXYZ and on",
            b"\n\n",
            b"tail without newline",
        ];
        for input in inputs {
            let mut buf = LineBuffer::default();
            buf.push(input);
            loop {
                let peeked = buf.peek(8).map(owned);
                assert_eq!(buf.peek(8).map(owned), peeked, "peek is repeatable");
                let taken = buf.next(8).map(owned);
                assert_eq!(peeked, taken, "{input:?}");
                if taken.is_none() {
                    break;
                }
            }
        }
    }
}
