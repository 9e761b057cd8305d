//! What nodes of a cluster tell each other, as published through Redis.
//!
//! A message is one node's news for one channel in one turn: a header line
//! `natter1 <node> <seq>` and one line per record, fields separated by one
//! space, free text last. Everything in it came from a client of some node
//! and is checked again here like a client's line: node ids, room names and
//! names by their rules, text must already be in its cleaned form and no
//! longer than a cut line can be. A message that fails is dropped whole,
//! with the reason, never applied in part.

use std::io::Write as _;

use crate::clean::is_clean;
use crate::names::{check_single_script, parse_name};
use crate::rooms::parse_room_name;

/// The first word of every message: the format's version.
pub const MAGIC: &str = "natter1";
/// Longest node id.
pub const MAX_NODE_ID: usize = 64;

/// One piece of news.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// `<who>: <text>` in `room`.
    Say {
        room: String,
        who: String,
        text: String,
    },
    /// `* <who> <text>` in `room`.
    Me {
        room: String,
        who: String,
        text: String,
    },
    /// `who` came into `room` (joined the server, or was found there).
    Arrive { room: String, who: String },
    /// `who` left the server from `room`, maybe saying why.
    Leave {
        room: String,
        who: String,
        why: Option<String>,
    },
    /// `who` moved from `from` to `to`.
    Move {
        from: String,
        to: String,
        who: String,
    },
    /// `old` in `room` is now known as `new`.
    Nick {
        room: String,
        old: String,
        new: String,
    },
    /// `who` set `room`'s topic.
    Topic {
        room: String,
        who: String,
        text: String,
    },
    /// A private line for `to`, from `from`.
    Msg {
        to: String,
        from: String,
        text: String,
    },
    /// The sending node is alive.
    Ping,
    /// The sending node (re)joined: its users are in Redis.
    Hello,
    /// The sending node is shutting down: its users leave.
    Bye,
}

/// A decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub node: String,
    /// Per node, one more for each message it publishes.
    pub seq: u64,
    pub records: Vec<Record>,
}

/// Appends a message header.
pub fn encode_header(out: &mut Vec<u8>, node: &str, seq: u64) {
    out.extend_from_slice(format!("{MAGIC} {node} {seq}\n").as_bytes());
}

/// Appends one record line.
pub fn encode_record(out: &mut Vec<u8>, record: &Record) {
    // Writing to a Vec cannot fail.
    let _ = match record {
        Record::Say { room, who, text } => write!(out, "say {room} {who} {text}"),
        Record::Me { room, who, text } => write!(out, "me {room} {who} {text}"),
        Record::Arrive { room, who } => write!(out, "arrive {room} {who}"),
        Record::Leave {
            room,
            who,
            why: None,
        } => write!(out, "leave {room} {who}"),
        Record::Leave {
            room,
            who,
            why: Some(why),
        } => write!(out, "leave {room} {who} {why}"),
        Record::Move { from, to, who } => write!(out, "move {from} {to} {who}"),
        Record::Nick { room, old, new } => write!(out, "nick {room} {old} {new}"),
        Record::Topic { room, who, text } => write!(out, "topic {room} {who} {text}"),
        Record::Msg { to, from, text } => write!(out, "msg {to} {from} {text}"),
        Record::Ping => write!(out, "ping"),
        Record::Hello => write!(out, "hello"),
        Record::Bye => write!(out, "bye"),
    };
    out.push(b'\n');
}

/// Decodes and checks a message. `max_text` bounds free text (a cut line,
/// cleaned, is at most a few times `--max-line`).
pub fn decode(payload: &[u8], max_text: usize) -> Result<Message, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "not UTF-8".to_string())?;
    let mut lines = text.split_terminator('\n');
    let header = lines.next().ok_or("empty")?;
    let mut fields = header.split(' ');
    if fields.next() != Some(MAGIC) {
        return Err("not a natter1 message".into());
    }
    let node = fields.next().ok_or("no node")?;
    check_node(node)?;
    let seq = fields
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("no sequence number")?;
    if fields.next().is_some() {
        return Err("extra fields in the header".into());
    }
    let records = lines
        .map(|line| decode_record(line, max_text))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Message {
        node: node.to_string(),
        seq,
        records,
    })
}

fn decode_record(line: &str, max_text: usize) -> Result<Record, String> {
    let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
    let field = |rest: &str, n: usize| -> Result<Vec<String>, String> {
        let parts: Vec<&str> = rest.splitn(n, ' ').collect();
        if parts.len() != n {
            return Err(format!("{kind}: {n} fields expected"));
        }
        Ok(parts.into_iter().map(String::from).collect())
    };
    let record = match kind {
        "say" | "me" | "topic" => {
            let [room, who, text] = <[String; 3]>::try_from(field(rest, 3)?).expect("3");
            check_room(&room)?;
            check_who(&who)?;
            check_text(&text, max_text)?;
            match kind {
                "say" => Record::Say { room, who, text },
                "me" => Record::Me { room, who, text },
                _ => Record::Topic { room, who, text },
            }
        }
        "arrive" => {
            let [room, who] = <[String; 2]>::try_from(field(rest, 2)?).expect("2");
            check_room(&room)?;
            check_who(&who)?;
            Record::Arrive { room, who }
        }
        "leave" => decode_leave(rest, max_text)?,
        "move" => {
            let [from, to, who] = <[String; 3]>::try_from(field(rest, 3)?).expect("3");
            check_room(&from)?;
            check_room(&to)?;
            check_who(&who)?;
            Record::Move { from, to, who }
        }
        "nick" => {
            let [room, old, new] = <[String; 3]>::try_from(field(rest, 3)?).expect("3");
            check_room(&room)?;
            check_who(&old)?;
            check_who(&new)?;
            Record::Nick { room, old, new }
        }
        "msg" => {
            let [to, from, text] = <[String; 3]>::try_from(field(rest, 3)?).expect("3");
            check_who(&to)?;
            check_who(&from)?;
            check_text(&text, max_text)?;
            Record::Msg { to, from, text }
        }
        "ping" | "hello" | "bye" if rest.is_empty() => match kind {
            "ping" => Record::Ping,
            "hello" => Record::Hello,
            _ => Record::Bye,
        },
        _ => return Err(format!("unknown record {:?}", truncate(kind))),
    };
    Ok(record)
}

fn decode_leave(rest: &str, max_text: usize) -> Result<Record, String> {
    let mut parts = rest.splitn(3, ' ');
    let room = parts.next().unwrap_or_default().to_string();
    let who = parts.next().ok_or("leave: no name")?.to_string();
    check_room(&room)?;
    check_who(&who)?;
    let why = match parts.next() {
        Some(why) => {
            check_text(why, max_text)?;
            Some(why.to_string())
        }
        None => None,
    };
    Ok(Record::Leave { room, who, why })
}

/// A node id: 1 to 64 of ASCII letters, digits, `.`, `_`, `-` and `:`.
pub fn check_node(node: &str) -> Result<(), String> {
    let ok = !node.is_empty()
        && node.len() <= MAX_NODE_ID
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(format!("bad node id {:?}", truncate(node)))
    }
}

fn check_room(room: &str) -> Result<(), String> {
    parse_room_name(room.as_bytes())
        .map(|_| ())
        .map_err(|why| format!("bad room {:?}: {why}", truncate(room)))
}

/// A name as it is held (NFC, valid), or an address identity with its node
/// (`127.0.0.1:5000@node`).
pub fn check_who(who: &str) -> Result<(), String> {
    if let Some((addr, node)) = who.rsplit_once('@') {
        let addr_ok = addr.parse::<std::net::SocketAddr>().is_ok();
        if addr_ok && check_node(node).is_ok() {
            return Ok(());
        }
        return Err(format!("bad address identity {:?}", truncate(who)));
    }
    check_name(who)
}

fn check_name(name: &str) -> Result<(), String> {
    match parse_name(name.as_bytes()) {
        Ok(parsed) if parsed.display == name && check_single_script(&parsed).is_ok() => Ok(()),
        _ => Err(format!("bad name {:?}", truncate(name))),
    }
}

fn check_text(text: &str, max: usize) -> Result<(), String> {
    if text.len() > max {
        return Err(format!("text of {} bytes, over {max}", text.len()));
    }
    if !is_clean(text.as_bytes()) {
        return Err("text that is not in its cleaned form".into());
    }
    Ok(())
}

/// The start of an untrusted string, for a log line.
fn truncate(s: &str) -> String {
    crate::clean::clean(&s.as_bytes()[..s.len().min(40)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(records: Vec<Record>) {
        let mut out = Vec::new();
        encode_header(&mut out, "node-a:8000", 7);
        for r in &records {
            encode_record(&mut out, r);
        }
        let message = decode(&out, 4096).unwrap();
        assert_eq!(message.node, "node-a:8000");
        assert_eq!(message.seq, 7);
        assert_eq!(message.records, records);
    }

    #[test]
    fn every_record_round_trips() {
        let s = |x: &str| x.to_string();
        round_trip(vec![
            Record::Say {
                room: s("#lobby"),
                who: s("alice"),
                text: s("hi  there ^[[2J"),
            },
            Record::Me {
                room: s("#lobby"),
                who: s("127.0.0.1:5000@b"),
                text: s("waves"),
            },
            Record::Arrive {
                room: s("#help"),
                who: s("bob"),
            },
            Record::Leave {
                room: s("#help"),
                who: s("bob"),
                why: None,
            },
            Record::Leave {
                room: s("#help"),
                who: s("bob"),
                why: Some(s("gone fishing")),
            },
            Record::Move {
                from: s("#lobby"),
                to: s("#help"),
                who: s("Zoë"),
            },
            Record::Nick {
                room: s("#lobby"),
                old: s("127.0.0.1:5000@b"),
                new: s("carol"),
            },
            Record::Topic {
                room: s("#lobby"),
                who: s("alice"),
                text: s(""),
            },
            Record::Msg {
                to: s("alice"),
                from: s("bob"),
                text: s("psst"),
            },
            Record::Ping,
            Record::Hello,
            Record::Bye,
        ]);
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        let bad = |payload: &str| decode(payload.as_bytes(), 100).unwrap_err();
        assert!(bad("").contains("empty"));
        assert!(bad("HTTP/1.1 200\n").contains("not a natter1"));
        assert!(bad("natter1 bad/node 1\n").contains("node id"));
        assert!(bad("natter1 a x\n").contains("sequence"));
        assert!(bad("natter1 a 1\nsay lobby alice hi\n").contains("bad room"));
        assert!(bad("natter1 a 1\nsay #lobby аlice hi\n").contains("bad name"));
        assert!(bad("natter1 a 1\nsay #lobby alice \x1b[2J\n").contains("cleaned"));
        assert!(
            bad(&format!(
                "natter1 a 1\nsay #lobby alice {}\n",
                "x".repeat(101)
            ))
            .contains("over")
        );
        assert!(bad("natter1 a 1\nsay #lobby alice\n").contains("3 fields"));
        assert!(bad("natter1 a 1\nexec rm -rf\n").contains("unknown record"));
        assert!(bad("natter1 a 1\narrive #lobby 1.2.3.4:5@\n").contains("address identity"));
        assert!(
            decode(b"natter1 a 1\n\xff\n", 100)
                .unwrap_err()
                .contains("UTF-8")
        );
    }
}
