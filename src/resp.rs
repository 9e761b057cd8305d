//! RESP2, the Redis protocol: commands out, replies and pushed messages in.
//!
//! A small sans-IO codec of our own rather than a crate: natter sends a
//! handful of commands (arrays of bulk strings) and reads five reply types,
//! and a Redis server on the other end is still untrusted input to a daemon
//! meant for small machines, so every length and depth is bounded here.
//! Nothing here sees a socket: [`decode`] takes the bytes received so far
//! and says how many it used; the property tests in `tests/resp_props.rs`
//! and the fuzz target `fuzz/fuzz_targets/resp.rs` check it against any
//! input.

use std::fmt;

/// One RESP value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `+OK\r\n`
    Simple(Vec<u8>),
    /// `-ERR …\r\n`
    Error(Vec<u8>),
    /// `:42\r\n`
    Integer(i64),
    /// `$3\r\nabc\r\n`, or `$-1\r\n` for nil.
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n…`, or `*-1\r\n` for nil.
    Array(Option<Vec<Value>>),
}

/// Bounds on what [`decode`] accepts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest bulk string.
    pub max_bulk: usize,
    /// Most elements of one array.
    pub max_array: usize,
    /// Deepest nesting of arrays.
    pub max_depth: usize,
}

/// What natter accepts from Redis: messages are at most a few megabytes
/// (one room's lines in one turn), replies small.
pub const LIMITS: Limits = Limits {
    max_bulk: 64 * 1024 * 1024,
    max_array: 1024 * 1024,
    max_depth: 4,
};

/// Input that is not RESP, or passes a limit: the connection must be closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed RESP: {}", self.0)
    }
}

/// Appends a command (an array of bulk strings) to `out`.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        out.extend_from_slice(arg.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `value` to `out` (natter sends only commands; this is for tests
/// and for playing a server).
pub fn encode(out: &mut Vec<u8>, value: &Value) {
    let line = |out: &mut Vec<u8>, tag: u8, body: &[u8]| {
        out.push(tag);
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    };
    match value {
        Value::Simple(s) => line(out, b'+', s),
        Value::Error(s) => line(out, b'-', s),
        Value::Integer(n) => line(out, b':', n.to_string().as_bytes()),
        Value::Bulk(None) => line(out, b'$', b"-1"),
        Value::Bulk(Some(b)) => {
            line(out, b'$', b.len().to_string().as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Value::Array(None) => line(out, b'*', b"-1"),
        Value::Array(Some(items)) => {
            line(out, b'*', items.len().to_string().as_bytes());
            for item in items {
                encode(out, item);
            }
        }
    }
}

/// Decodes one value from the start of `buf`: `Ok(Some((value, used)))`,
/// `Ok(None)` if more bytes are needed, or an error for input that is not
/// RESP or passes `limits`.
pub fn decode(buf: &[u8], limits: Limits) -> Result<Option<(Value, usize)>, Malformed> {
    let mut at = 0;
    match value(buf, &mut at, limits, 0)? {
        Some(v) => Ok(Some((v, at))),
        None => Ok(None),
    }
}

fn value(
    buf: &[u8],
    at: &mut usize,
    limits: Limits,
    depth: usize,
) -> Result<Option<Value>, Malformed> {
    let Some(&tag) = buf.get(*at) else {
        return Ok(None);
    };
    let Some(line) = line(buf, *at + 1)? else {
        return Ok(None);
    };
    let next = *at + 1 + line.len() + 2;
    let value = match tag {
        b'+' => Value::Simple(line.to_vec()),
        b'-' => Value::Error(line.to_vec()),
        b':' => Value::Integer(integer(line)?),
        b'$' => match length(line, limits.max_bulk)? {
            None => Value::Bulk(None),
            Some(len) => {
                if buf.len() < next + len + 2 {
                    return Ok(None);
                }
                if &buf[next + len..next + len + 2] != b"\r\n" {
                    return Err(Malformed("bulk string not ended by CRLF"));
                }
                *at = next + len + 2;
                return Ok(Some(Value::Bulk(Some(buf[next..next + len].to_vec()))));
            }
        },
        b'*' => {
            if depth >= limits.max_depth {
                return Err(Malformed("arrays nested too deep"));
            }
            let Some(count) = length(line, limits.max_array)? else {
                *at = next;
                return Ok(Some(Value::Array(None)));
            };
            let mut cursor = next;
            // Not `with_capacity(count)`: the count is untrusted.
            let mut items = Vec::new();
            for _ in 0..count {
                match value(buf, &mut cursor, limits, depth + 1)? {
                    Some(item) => items.push(item),
                    None => return Ok(None),
                }
            }
            *at = cursor;
            return Ok(Some(Value::Array(Some(items))));
        }
        _ => return Err(Malformed("unknown type byte")),
    };
    *at = next;
    Ok(Some(value))
}

/// The bytes from `from` up to the next CRLF, if it has arrived. A line is
/// short (a number or a status): one longer than 64 KiB is refused.
fn line(buf: &[u8], from: usize) -> Result<Option<&[u8]>, Malformed> {
    let rest = buf.get(from..).unwrap_or(&[]);
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(&rest[..i])),
        None if rest.len() > 64 * 1024 => Err(Malformed("header line too long")),
        None => Ok(None),
    }
}

fn integer(line: &[u8]) -> Result<i64, Malformed> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Malformed("not an integer"))
}

/// A length (`-1` is nil), at most `max`.
fn length(line: &[u8], max: usize) -> Result<Option<usize>, Malformed> {
    match integer(line)? {
        -1 => Ok(None),
        n if n < 0 => Err(Malformed("negative length")),
        n if n as u64 > max as u64 => Err(Malformed("length over the limit")),
        n => Ok(Some(n as usize)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Value {
        let (v, used) = decode(bytes, LIMITS).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        v
    }

    #[test]
    fn every_type_decodes() {
        assert_eq!(one(b"+OK\r\n"), Value::Simple(b"OK".to_vec()));
        assert_eq!(one(b"-ERR no\r\n"), Value::Error(b"ERR no".to_vec()));
        assert_eq!(one(b":-42\r\n"), Value::Integer(-42));
        assert_eq!(
            one(b"$3\r\na\r\n\r\n"),
            Value::Bulk(Some(b"a\r\n".to_vec()))
        );
        assert_eq!(one(b"$-1\r\n"), Value::Bulk(None));
        assert_eq!(one(b"*-1\r\n"), Value::Array(None));
        assert_eq!(
            one(b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$0\r\n\r\n"),
            Value::Array(Some(vec![
                Value::Bulk(Some(b"message".to_vec())),
                Value::Bulk(Some(b"ch".to_vec())),
                Value::Bulk(Some(Vec::new())),
            ]))
        );
    }

    #[test]
    fn partial_input_asks_for_more_at_every_cut() {
        let mut whole = Vec::new();
        encode_command(
            &mut whole,
            &[b"PUBLISH", b"natter:room:#lobby", b"a line\n"],
        );
        for cut in 0..whole.len() {
            assert_eq!(decode(&whole[..cut], LIMITS), Ok(None), "cut at {cut}");
        }
        assert!(decode(&whole, LIMITS).unwrap().is_some());
    }

    #[test]
    fn malformed_input_and_limits_are_refused() {
        assert!(decode(b"?x\r\n", LIMITS).is_err());
        assert!(decode(b":x\r\n", LIMITS).is_err());
        assert!(decode(b"$-2\r\n", LIMITS).is_err());
        assert!(decode(b"$2\r\nabXY", LIMITS).is_err());
        let small = Limits {
            max_bulk: 4,
            max_array: 2,
            max_depth: 2,
        };
        assert!(decode(b"$5\r\n", small).is_err());
        assert!(decode(b"*3\r\n", small).is_err());
        assert!(decode(b"*1\r\n*1\r\n*1\r\n:1\r\n", small).is_err());
        // A huge announced array needs no memory before its elements come.
        assert_eq!(decode(b"*1000000\r\n", LIMITS), Ok(None));
    }
}
