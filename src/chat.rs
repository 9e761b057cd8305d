//! What lines mean: names, chat lines and commands.
//!
//! Each function here turns one input line into calls on the [`Hub`]'s API
//! (broadcast, send to one, rename, depart); moving the bytes is someone
//! else's job. A line whose output would not fit in this turn's budget is
//! left alone and reported [`Outcome::Held`]: the server keeps it in the
//! client's buffer and tries again next turn.

use crate::clean::{clean, clean_into, cleaned_len};
use crate::command::{self, Command, HELP};
use crate::hub::{Hub, listing};
use crate::limits::MAX_TOPIC_BYTES;
use crate::member::Phase;
use crate::rooms::{TooManyRooms, parse_room_name};
use crate::stats::{StatsView, render_stats_line};
use crate::wire::Record;

/// What came of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Handled.
    Done,
    /// Not handled: what it would queue does not fit in this turn's budget.
    Held,
    /// The client quit (`/quit`): it has left the room, and its connection
    /// is to be closed once its output is flushed.
    Quit,
    /// In a cluster: the client asked for a name and waits for the
    /// cluster's answer; nothing more is read from it until then.
    Waiting,
}

/// Handles one complete input line from `key`.
pub fn handle_line(hub: &mut Hub, key: usize, line: &[u8], now_ms: u64) -> Outcome {
    match hub.member(key).phase {
        Phase::Naming => take_name(hub, key, line, now_ms),
        Phase::Joined => handle_command(hub, key, line, now_ms),
        Phase::Gone => Outcome::Done,
    }
}

fn handle_command(hub: &mut Hub, key: usize, line: &[u8], now_ms: u64) -> Outcome {
    match command::parse(line) {
        Command::Say(text) => say(hub, key, b"", b": ", text),
        Command::Me(text) => say(hub, key, b"* ", b" ", text),
        Command::Nick(name) => rename(hub, key, name),
        Command::Who(room) => who(hub, key, room),
        Command::Join(room) => join_room(hub, key, room, now_ms),
        Command::Rooms => {
            let rooms: Vec<String> = hub
                .rooms
                .listing()
                .into_iter()
                .map(|(name, n)| format!("{name} ({n})"))
                .collect();
            reply(hub, key, listing("*** rooms: ", &rooms).as_bytes())
        }
        Command::Topic(text) => topic(hub, key, text),
        Command::Msg { to, text } => private_message(hub, key, to, text),
        Command::Quit(why) => quit(hub, key, why, now_ms),
        Command::Stats => {
            let line = stats_line(hub, key);
            reply(hub, key, line.as_bytes())
        }
        Command::Help => {
            let mut text = HELP.join("\n");
            text.push('\n');
            reply(hub, key, text.as_bytes())
        }
        Command::Usage(usage) => reply(hub, key, format!("*** usage: {usage}\n").as_bytes()),
        Command::Unknown(word) => {
            let line = format!("*** unknown command: /{} (try /help)\n", clean(word));
            reply(hub, key, line.as_bytes())
        }
    }
}

/// Queues `bytes` for `key` if they fit in this turn.
fn reply(hub: &mut Hub, key: usize, bytes: &[u8]) -> Outcome {
    if !hub.fits_one(key, bytes.len()) {
        return Outcome::Held;
    }
    hub.send(key, bytes);
    Outcome::Done
}

/// `<before><who><after><text>\n` to everyone in the sender's room, sender
/// included, and into the room's history.
fn say(hub: &mut Hub, key: usize, before: &[u8], after: &[u8], text: &[u8]) -> Outcome {
    let room = hub.room_of(key);
    let kept = hub.broadcast(room, true, |arena, roster| {
        arena.extend_from_slice(before);
        arena.extend_from_slice(roster.get(key).expect("present").who.as_bytes());
        arena.extend_from_slice(after);
        clean_into(arena, text);
        arena.push(b'\n');
    });
    let Some(line) = kept else {
        return Outcome::Held;
    };
    if hub.node().is_some() {
        // The other nodes get the text as cleaned into the arena.
        let who = hub.member(key).who.to_string();
        let r = hub.room(room);
        let cleaned = &r.arena[line.start + before.len() + who.len() + after.len()..line.end - 1];
        let (room, text) = (
            r.name.to_string(),
            String::from_utf8_lossy(cleaned).into_owned(),
        );
        hub.tell(if before.is_empty() {
            Record::Say { room, who, text }
        } else {
            Record::Me { room, who, text }
        });
    }
    Outcome::Done
}

/// `/quit [REASON]`: the client leaves, and the others are told why.
fn quit(hub: &mut Hub, key: usize, why: Option<&[u8]>, now_ms: u64) -> Outcome {
    let notice = hub.member(key).who.len() + b" has left ()\n".len() + why.map_or(0, cleaned_len);
    if !hub.fits_everyone(hub.room_of(key), notice) {
        return Outcome::Held;
    }
    hub.depart(key, why, true, now_ms);
    Outcome::Quit
}

/// Under `--ask-name`: the first lines are name attempts (surrounding
/// blanks ignored, as for `/nick`).
fn take_name(hub: &mut Hub, key: usize, raw: &[u8], now_ms: u64) -> Outcome {
    let raw = raw.trim_ascii();
    match hub.check_name(key, raw) {
        Ok(_) if hub.names_unavailable() => reply(
            hub,
            key,
            b"*** names are unavailable while the cluster link is down\nWhat is your name?\n",
        ),
        Ok(name) if hub.node().is_some() => {
            hub.request_claim(key, name, true);
            Outcome::Waiting
        }
        Ok(name) => {
            hub.roster.take_name(key, name);
            hub.join(key, now_ms);
            Outcome::Done
        }
        Err(refusal) => reply(
            hub,
            key,
            format!("{refusal}What is your name?\n").as_bytes(),
        ),
    }
}

/// `/nick NAME`: everyone learns the new name.
fn rename(hub: &mut Hub, key: usize, raw: &[u8]) -> Outcome {
    let name = match hub.check_name(key, raw) {
        Ok(name) => name,
        Err(refusal) => return reply(hub, key, refusal.as_bytes()),
    };
    let old = &hub.member(key).who;
    if **old == *name.display {
        let line = format!("*** you are already {}\n", name.display);
        return reply(hub, key, line.as_bytes());
    }
    if hub.names_unavailable() {
        return reply(
            hub,
            key,
            b"*** names are unavailable while the cluster link is down\n",
        );
    }
    let line = format!("{old} is now known as {}\n", name.display);
    let room = hub.room_of(key);
    if !hub.fits_everyone(room, line.len()) {
        return Outcome::Held;
    }
    if hub.node().is_some() {
        hub.request_claim(key, name, false);
        return Outcome::Waiting;
    }
    hub.rename(key, name);
    Outcome::Done
}

/// `/msg NAME TEXT`: both lines, or neither, go out this turn.
fn private_message(hub: &mut Hub, key: usize, to: &[u8], text: &[u8]) -> Outcome {
    let Some(target) = hub.roster.find(to) else {
        return remote_message(hub, key, to, text);
    };
    let text = clean(text);
    let to_target = format!("{} (private): {text}\n", hub.member(key).who);
    let to_sender = format!("-> {}: {text}\n", hub.member(target).who);
    let fits = if target == key {
        hub.fits_one(key, to_target.len() + to_sender.len())
    } else {
        hub.fits_one(target, to_target.len()) && hub.fits_one(key, to_sender.len())
    };
    if !fits {
        return Outcome::Held;
    }
    hub.send(target, to_target.as_bytes());
    hub.send(key, to_sender.as_bytes());
    Outcome::Done
}

/// `/msg` to a member of another node (or to nobody).
fn remote_message(hub: &mut Hub, key: usize, to: &[u8], text: &[u8]) -> Outcome {
    let remote = std::str::from_utf8(to)
        .ok()
        .and_then(|to| hub.remotes.find(to));
    let Some(id) = remote else {
        let line = format!("*** no such user: {}\n", clean(to));
        return reply(hub, key, line.as_bytes());
    };
    let to = hub.remotes.get(id).who.to_string();
    let text = clean(text);
    let to_sender = format!("-> {to}: {text}\n");
    if !hub.fits_one(key, to_sender.len()) {
        return Outcome::Held;
    }
    let from = hub.member(key).who.to_string();
    hub.tell(Record::Msg { to, from, text });
    hub.send(key, to_sender.as_bytes());
    Outcome::Done
}

/// `/who`: who is in the asker's room, or in `#ROOM`.
fn who(hub: &mut Hub, key: usize, room: Option<&[u8]>) -> Outcome {
    let id = match room {
        None => hub.room_of(key),
        Some(raw) => match find_room(hub, raw) {
            Ok(id) => id,
            Err(refusal) => return reply(hub, key, refusal.as_bytes()),
        },
    };
    let who = hub.who_text(id);
    if !hub.fits_one(key, who.len()) {
        return Outcome::Held;
    }
    hub.send_shared(key, &who);
    Outcome::Done
}

/// The room `raw` names, or the line saying why there is none.
fn find_room(hub: &Hub, raw: &[u8]) -> Result<usize, String> {
    let name = parse_room_name(raw)
        .map_err(|why| format!("*** invalid room: {} ({why})\n", clean(raw)))?;
    hub.rooms
        .find(name)
        .ok_or_else(|| format!("*** no such room: {name}\n"))
}

/// `/join #ROOM`: moves the client, making the room if needed.
fn join_room(hub: &mut Hub, key: usize, raw: &[u8], now_ms: u64) -> Outcome {
    let name = match parse_room_name(raw) {
        Ok(name) => name,
        Err(why) => {
            let line = format!("*** invalid room: {} ({why})\n", clean(raw));
            return reply(hub, key, line.as_bytes());
        }
    };
    let here = hub.room_of(key);
    if hub.rooms.find(name) == Some(here) {
        let line = format!("*** you are already in {}\n", hub.room(here).name);
        return reply(hub, key, line.as_bytes());
    }
    // Both rooms hear of the move, and the mover gets the new room's
    // listing and history: check the biggest share first.
    let who = hub.member(key).who.len();
    if !hub.fits_everyone(here, who + name.len() + 16) {
        return Outcome::Held;
    }
    let to = match hub.rooms.find_or_create(name) {
        Ok(to) => to,
        Err(TooManyRooms(max)) => {
            let line = format!("*** too many rooms ({max}): join one of /rooms\n");
            return reply(hub, key, line.as_bytes());
        }
    };
    hub.move_to(key, to, now_ms);
    Outcome::Done
}

/// `/topic`: shows the room's topic; `/topic TEXT` sets it, and the room
/// is told.
fn topic(hub: &mut Hub, key: usize, text: Option<&[u8]>) -> Outcome {
    let room = hub.room_of(key);
    let Some(text) = text else {
        let line = match &hub.room(room).topic {
            Some(topic) => format!("*** topic: {topic}\n"),
            None => format!("*** no topic in {}\n", hub.room(room).name),
        };
        return reply(hub, key, line.as_bytes());
    };
    let topic = clean(text);
    if topic.len() > MAX_TOPIC_BYTES {
        let line = format!("*** topic too long: at most {MAX_TOPIC_BYTES} bytes\n");
        return reply(hub, key, line.as_bytes());
    }
    let line = format!("*** {} set the topic: {topic}\n", hub.member(key).who);
    if !hub.fits_everyone(room, line.len()) {
        return Outcome::Held;
    }
    hub.rooms.get_mut(room).topic = Some(topic.clone().into_boxed_str());
    hub.announce(room, line.as_bytes());
    let (room, who) = (
        hub.room(room).name.to_string(),
        hub.member(key).who.to_string(),
    );
    hub.tell(Record::Topic {
        room,
        who,
        text: topic,
    });
    Outcome::Done
}

/// `/stats`: the client's own queue and the hub's sizes, then the server's
/// counters (`stats.rs` writes the line).
fn stats_line(hub: &mut Hub, key: usize) -> String {
    hub.catch_up(key);
    let member = hub.member(key);
    let view = StatsView {
        queued: member.output.len(),
        skipped: member.skipped_total,
        clients: hub.roster.len(),
        total_queued: hub.queued_bytes(),
        rooms: hub.rooms.len(),
        biggest_room: hub.rooms.biggest(),
    };
    render_stats_line(&hub.stats, &view)
}
