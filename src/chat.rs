//! What lines mean: names, chat lines and commands.
//!
//! Each function here turns one input line into calls on the [`Hub`]'s API
//! (broadcast, send to one, rename, depart); moving the bytes is someone
//! else's job. A line whose output would not fit in this turn's budget is
//! left alone and reported [`Outcome::Held`]: the server keeps it in the
//! client's buffer and tries again next turn.

use crate::clean::{clean, clean_into, cleaned_len};
use crate::command::{self, Command, HELP};
use crate::hub::Hub;
use crate::member::Phase;
use crate::stats::CloseReason;

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
        Command::Who => {
            let who = hub.who_text();
            if !hub.fits_one(key, who.len()) {
                return Outcome::Held;
            }
            hub.send_shared(key, &who);
            Outcome::Done
        }
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

/// `<before><who><after><text>\n` to everyone in the room, sender included,
/// and into the history.
fn say(hub: &mut Hub, key: usize, before: &[u8], after: &[u8], text: &[u8]) -> Outcome {
    let who = hub.member(key).who.clone();
    let kept = hub.broadcast(true, |arena| {
        arena.extend_from_slice(before);
        arena.extend_from_slice(who.as_bytes());
        arena.extend_from_slice(after);
        clean_into(arena, text);
        arena.push(b'\n');
    });
    if kept { Outcome::Done } else { Outcome::Held }
}

/// `/quit [REASON]`: the client leaves, and the others are told why.
fn quit(hub: &mut Hub, key: usize, why: Option<&[u8]>, now_ms: u64) -> Outcome {
    let notice = hub.member(key).who.len() + b" has left ()\n".len() + why.map_or(0, cleaned_len);
    if !hub.fits_everyone(notice) {
        return Outcome::Held;
    }
    hub.depart(key, why, true, now_ms);
    Outcome::Quit
}

/// Under `--ask-name`: the first lines are name attempts (surrounding
/// blanks ignored, as for `/nick`).
fn take_name(hub: &mut Hub, key: usize, raw: &[u8], now_ms: u64) -> Outcome {
    let raw = raw.trim_ascii();
    match hub.roster.check_name(key, raw) {
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
    let name = match hub.roster.check_name(key, raw) {
        Ok(name) => name,
        Err(refusal) => return reply(hub, key, refusal.as_bytes()),
    };
    let old = &hub.member(key).who;
    if **old == *name.display {
        let line = format!("*** you are already {}\n", name.display);
        return reply(hub, key, line.as_bytes());
    }
    let line = format!("{old} is now known as {}\n", name.display);
    if !hub.fits_everyone(line.len()) {
        return Outcome::Held;
    }
    hub.roster.take_name(key, name);
    hub.room.who_text = None;
    hub.announce(line.as_bytes());
    Outcome::Done
}

/// `/msg NAME TEXT`: both lines, or neither, go out this turn.
fn private_message(hub: &mut Hub, key: usize, to: &[u8], text: &[u8]) -> Outcome {
    let Some(target) = hub.roster.find(to) else {
        let line = format!("*** no such user: {}\n", clean(to));
        return reply(hub, key, line.as_bytes());
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

/// `/stats`: the client's own queue and the server's counters.
fn stats_line(hub: &mut Hub, key: usize) -> String {
    hub.catch_up(key);
    let member = hub.member(key);
    let s = &hub.stats;
    format!(
        "*** stats: queued={} skipped={} clients={} total_queued={} short_writes={} \
         slow_disconnects={} skipped_total={} lines_in={} lines_out={} bytes_out={} \
         cut_lines={} rate_limited={} read_pauses={} fd_exhausted={} budget_holds={}\n",
        member.output.len(),
        member.skipped_total,
        hub.roster.len(),
        hub.queued_bytes(),
        s.short_writes,
        s.closed(CloseReason::Slow),
        s.skipped_lines,
        s.lines_in,
        s.lines_out,
        s.bytes_out,
        s.cut_lines,
        s.rate_limited,
        s.total_pauses,
        s.fd_exhausted,
        s.budget_holds,
    )
}
