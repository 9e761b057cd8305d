//! The token every generated line carries, and the scanner that finds it.
//!
//! A generated line is `~SSSSQQQQQQQQQQTTTTTTTTTTTT#` followed by `x` padding
//! and `\n`, where `SSSS` is the sender id (4 hex digits), `Q…` the sender's
//! sequence number (10 hex digits) and `T…` the send time in nanoseconds
//! since the start of the run (12 hex digits, about 78 hours). The servers add
//! a prefix of their own (`127.0.0.1:5000: `, `<user3> `, `name: `), so the
//! receiver looks for the *last* `~` in a line and checks that exactly one
//! well-formed token plus the expected padding follows it, up to the end of
//! the line. A line without `~` is a server notice ("has arrived", …) and is
//! ignored. A line with a `~` that does not check out (split by a server that
//! prefixes reads rather than lines, truncated, two tokens glued together) is
//! malformed.

/// Bytes of the token itself, from `~` to `#` inclusive.
pub const TOKEN_LEN: usize = 28;
/// The smallest line (token plus newline).
pub const MIN_LINE: usize = TOKEN_LEN + 1;
/// The largest line the generator agrees to send.
pub const MAX_LINE: usize = 16 * 1024;

const MARK: u8 = b'~';
const END: u8 = b'#';
pub const PAD: u8 = b'x';

const SENDER_AT: usize = 1;
const SEQ_AT: usize = 5;
const TIME_AT: usize = 15;
const END_AT: usize = 27;

/// The largest encodable sender id, sequence number and time.
pub const MAX_SENDER: u64 = 0xffff;
pub const MAX_SEQ: u64 = 0xff_ffff_ffff;
pub const MAX_TIME: u64 = 0xffff_ffff_ffff;

const HEXDIGITS: &[u8; 16] = b"0123456789abcdef";

const fn hex_table() -> [u8; 256] {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
}
static HEX: [u8; 256] = hex_table();

#[inline]
fn put_hex(dst: &mut [u8], mut v: u64) {
    for b in dst.iter_mut().rev() {
        *b = HEXDIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

#[inline]
fn get_hex(src: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    let mut bad = 0u8;
    for &c in src {
        let d = HEX[c as usize];
        bad |= d;
        v = (v << 4) | u64::from(d & 0xf);
    }
    // Every valid digit is < 16, so any 0xff sets the high bits.
    if bad & 0xf0 != 0 { None } else { Some(v) }
}

/// A line template for one sender: token with the sender id filled in,
/// padding and newline. `stamp` fills in sequence number and time.
pub fn template(sender: u64, line_bytes: usize) -> Vec<u8> {
    assert!((MIN_LINE..=MAX_LINE).contains(&line_bytes));
    let mut v = vec![PAD; line_bytes];
    v[0] = MARK;
    put_hex(&mut v[SENDER_AT..SEQ_AT], sender);
    put_hex(&mut v[SEQ_AT..TIME_AT], 0);
    put_hex(&mut v[TIME_AT..END_AT], 0);
    v[END_AT] = END;
    v[line_bytes - 1] = b'\n';
    v
}

/// Fill in sequence number and time of a line made from `template`.
#[inline]
pub fn stamp(line: &mut [u8], seq: u64, time_ns: u64) {
    debug_assert!(seq <= MAX_SEQ && time_ns <= MAX_TIME);
    put_hex(&mut line[SEQ_AT..TIME_AT], seq);
    put_hex(&mut line[TIME_AT..END_AT], time_ns);
}

/// What a received line turned out to be.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Line {
    /// No token marker at all: a server notice, ignored.
    Noise,
    /// A token marker, but no intact token and padding after it.
    Malformed,
    /// A good token.
    Token { sender: u64, seq: u64, time_ns: u64 },
}

/// Checks received lines for tokens; `body` is the expected line minus the
/// newline (token plus padding).
pub struct Scanner {
    body_len: usize,
    pad: Vec<u8>,
}

impl Scanner {
    pub fn new(line_bytes: usize) -> Self {
        assert!((MIN_LINE..=MAX_LINE).contains(&line_bytes));
        Scanner {
            body_len: line_bytes - 1,
            pad: vec![PAD; line_bytes - 1 - TOKEN_LEN],
        }
    }

    /// Classify one line, given without its `\n` (a trailing `\r` is allowed).
    #[inline]
    pub fn classify(&self, line: &[u8]) -> Line {
        let line = match line.last() {
            Some(b'\r') => &line[..line.len() - 1],
            _ => line,
        };
        let Some(at) = memchr::memrchr(MARK, line) else {
            return Line::Noise;
        };
        let body = &line[at..];
        if body.len() != self.body_len
            || body[END_AT] != END
            || body[TOKEN_LEN..] != self.pad[..]
            || memchr::memchr(MARK, &line[..at]).is_some()
        {
            return Line::Malformed;
        }
        match (
            get_hex(&body[SENDER_AT..SEQ_AT]),
            get_hex(&body[SEQ_AT..TIME_AT]),
            get_hex(&body[TIME_AT..END_AT]),
        ) {
            (Some(sender), Some(seq), Some(time_ns)) => Line::Token {
                sender,
                seq,
                time_ns,
            },
            _ => Line::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sender: u64, seq: u64, t: u64, bytes: usize) -> Vec<u8> {
        let mut l = template(sender, bytes);
        stamp(&mut l, seq, t);
        l
    }

    #[test]
    fn round_trip_with_any_prefix() {
        let s = Scanner::new(64);
        let l = line(3, 0x12345, 0xabcdef012, 64);
        assert_eq!(l.len(), 64);
        let want = Line::Token {
            sender: 3,
            seq: 0x12345,
            time_ns: 0xabcdef012,
        };
        for prefix in [&b""[..], b"127.0.0.1:50000: ", b"<user3> ", b"alice: "] {
            let mut got = prefix.to_vec();
            got.extend_from_slice(&l[..63]);
            assert_eq!(s.classify(&got), want);
            got.push(b'\r');
            assert_eq!(s.classify(&got), want);
        }
        let max = line(MAX_SENDER, MAX_SEQ, MAX_TIME, MIN_LINE);
        assert_eq!(
            Scanner::new(MIN_LINE).classify(&max[..MIN_LINE - 1]),
            Line::Token {
                sender: MAX_SENDER,
                seq: MAX_SEQ,
                time_ns: MAX_TIME
            }
        );
    }

    #[test]
    fn notices_are_noise() {
        let s = Scanner::new(64);
        for n in [
            &b"You are 127.0.0.1:5000"[..],
            b"127.0.0.1:5000 has arrived",
            b"",
            b"<user1> hello",
        ] {
            assert_eq!(s.classify(n), Line::Noise);
        }
    }

    #[test]
    fn split_or_glued_lines_are_malformed() {
        let s = Scanner::new(64);
        let l = line(1, 77, 99, 64);
        let body = &l[..63];
        // ncat-style: a read boundary inside the line inserts a prefix.
        for cut in 1..63 {
            let mut got = b"<user5> ".to_vec();
            got.extend_from_slice(&body[..cut]);
            got.extend_from_slice(b"<user5> ");
            got.extend_from_slice(&body[cut..]);
            assert_eq!(s.classify(&got), Line::Malformed, "cut at {cut}");
        }
        // The tail of one line glued to a whole other line.
        let mut got = body[..20].to_vec();
        got.extend_from_slice(b"<user2> ");
        got.extend_from_slice(body);
        assert_eq!(s.classify(&got), Line::Malformed);
        // Truncated.
        assert_eq!(s.classify(&body[..40]), Line::Malformed);
        // Bad digit.
        let mut bad = body.to_vec();
        bad[7] = b'g';
        assert_eq!(s.classify(&bad), Line::Malformed);
    }
}
