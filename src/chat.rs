//! What lines mean: joining, chat lines, names and commands.
//!
//! Everything here turns one input line into output queued for some clients;
//! moving the bytes is `server.rs`'s job. Broadcast lines are formatted once,
//! straight into the turn arena: `<who>: <cleaned text>\n`.

use log::debug;

use crate::clean::{clean, clean_into, cleaned_len};
use crate::client::Phase;
use crate::command::{self, Command, HELP};
use crate::config::MAX_WHO_BYTES;
use crate::names::{self, Name, check_single_script, parse_name};
use crate::notice::Movement;
use crate::out_queue::SharedText;
use crate::server::Server;
use crate::stats::CloseReason;

/// Whether a line was handled, or must wait for the next turn because what
/// it would queue does not fit in this turn's budget (nothing was done).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    Held,
}

impl Server {
    /// Handles one complete input line from `key`.
    pub(crate) fn handle_line(&mut self, key: usize, line: &[u8]) -> Outcome {
        match self.clients[key].phase {
            Phase::Naming => self.take_name(key, line),
            Phase::Joined => self.handle_command(key, line),
            Phase::Closing => Outcome::Done,
        }
    }

    fn handle_command(&mut self, key: usize, line: &[u8]) -> Outcome {
        match command::parse(line) {
            Command::Say(text) => self.broadcast_chat(key, b"", b": ", text),
            Command::Me(text) => self.broadcast_chat(key, b"* ", b" ", text),
            Command::Nick(name) => self.rename(key, name),
            Command::Who => {
                let who = self.who_text();
                if !self.fits_one(key, who.len()) {
                    return Outcome::Held;
                }
                self.send_shared(key, &who);
                Outcome::Done
            }
            Command::Msg { to, text } => self.private_message(key, to, text),
            Command::Quit(why) => {
                let notice = self.clients[key].who.len()
                    + b" has left ()\n".len()
                    + why.map_or(0, cleaned_len);
                if !self.fits_everyone(notice) {
                    return Outcome::Held;
                }
                self.leave(key, CloseReason::Quit, why);
                Outcome::Done
            }
            Command::Stats => {
                let line = self.stats_line(key);
                self.reply(key, line.as_bytes())
            }
            Command::Help => {
                let mut text = HELP.join("\n");
                text.push('\n');
                self.reply(key, text.as_bytes())
            }
            Command::Usage(usage) => self.reply(key, format!("*** usage: {usage}\n").as_bytes()),
            Command::Unknown(word) => {
                let line = format!("*** unknown command: /{} (try /help)\n", clean(word));
                self.reply(key, line.as_bytes())
            }
        }
    }

    /// Queues `bytes` for `key` if they fit in this turn.
    fn reply(&mut self, key: usize, bytes: &[u8]) -> Outcome {
        if !self.fits_one(key, bytes.len()) {
            return Outcome::Held;
        }
        self.send(key, bytes);
        Outcome::Done
    }

    /// Puts a named (or address-identified) client in the room: it learns
    /// who it is, then the others learn it arrived. The newcomer does not see
    /// its own arrival, as in the reference. Its welcome (motd, who line,
    /// history) is shared text, queued by reference, and fits in half of
    /// `--max-output` by configuration, so it is not held to the turn budget.
    pub(crate) fn join(&mut self, key: usize) {
        self.catch_up(key);
        let client = &mut self.clients[key];
        client.phase = Phase::Joined;
        client.joined_seq = self.next_joined_seq;
        self.next_joined_seq += 1;
        self.joined += 1;
        self.who_text = None;

        let greeting = format!("You are {}\n", client.who);
        self.send(key, greeting.as_bytes());
        if let Some(motd) = self.motd.clone() {
            self.send_shared(key, &motd);
        }
        if self.config.who_on_join {
            let who = self.who_text();
            self.send_shared(key, &who);
        }
        if let Some(history) = self.history_text() {
            self.send_shared(key, &history);
        }

        if self.notices.pass(Movement::Arrival, self.now_ms) {
            let who = &self.clients[key].who;
            self.arena.extend_from_slice(who.as_bytes());
            self.arena.extend_from_slice(b" has arrived\n");
            self.stats.lines_out += self.joined as u64 - 1;
        }
        // Skip the announcement for the newcomer itself.
        self.clients[key].mark = self.arena.len() as u32;
        self.clients[key].mark_turn = self.turn;
    }

    /// `<before><who><after><text>\n` to everyone in the room, sender included.
    fn broadcast_chat(&mut self, key: usize, before: &[u8], after: &[u8], text: &[u8]) -> Outcome {
        let start = self.arena.len();
        self.arena.extend_from_slice(before);
        self.arena
            .extend_from_slice(self.clients[key].who.as_bytes());
        self.arena.extend_from_slice(after);
        clean_into(&mut self.arena, text);
        self.arena.push(b'\n');
        let len = self.arena.len() - start;
        if !self.budget_allows(start + self.turn_max_private, len) {
            // Formatted for nothing: take it back and wait for the next turn.
            self.arena.truncate(start);
            return Outcome::Held;
        }
        self.stats.lines_out += self.joined as u64;
        let line = &self.arena[start..];
        debug!("{}", String::from_utf8_lossy(&line[..line.len() - 1]));
        if self.config.history > 0 {
            self.remember(start);
        }
        Outcome::Done
    }

    /// Keeps the line at `start` of the arena in the history, dropping the
    /// oldest lines past `--history` lines or `--history-bytes` bytes.
    fn remember(&mut self, start: usize) {
        let line: Box<[u8]> = self.arena[start..].into();
        let limit = self.config.history_limit();
        if line.len() > limit {
            return;
        }
        self.history_bytes += line.len();
        self.history.push_back(line);
        while self.history.len() > self.config.history || self.history_bytes > limit {
            let old = self
                .history
                .pop_front()
                .expect("over a limit, so not empty");
            self.history_bytes -= old.len();
        }
        self.history_text = None;
    }

    /// The history as one shared text, built once per change.
    fn history_text(&mut self) -> Option<SharedText> {
        if self.history.is_empty() {
            return None;
        }
        if self.history_text.is_none() {
            let mut bytes = Vec::with_capacity(self.history_bytes);
            for line in &self.history {
                bytes.extend_from_slice(line);
            }
            self.history_text = Some(SharedText::new(bytes, &self.fixed_meter));
        }
        self.history_text.clone()
    }

    /// Under `--ask-name`: the first lines are name attempts (surrounding
    /// blanks ignored, as for `/nick`).
    fn take_name(&mut self, key: usize, raw: &[u8]) -> Outcome {
        let raw = raw.trim_ascii();
        match self.check_name(key, raw) {
            Ok(name) => {
                self.clients[key].who = name.display.into_boxed_str();
                self.names.insert(name.key, key);
                self.skeletons.insert(name.skeleton, key);
                self.join(key);
                Outcome::Done
            }
            Err(refusal) => self.reply(key, format!("{refusal}What is your name?\n").as_bytes()),
        }
    }

    /// `/nick NAME`: everyone learns the new name.
    fn rename(&mut self, key: usize, raw: &[u8]) -> Outcome {
        let name = match self.check_name(key, raw) {
            Ok(name) => name,
            Err(refusal) => return self.reply(key, refusal.as_bytes()),
        };
        if *self.clients[key].who == *name.display {
            let line = format!("*** you are already {}\n", name.display);
            return self.reply(key, line.as_bytes());
        }
        let line = format!(
            "{} is now known as {}\n",
            self.clients[key].who, name.display
        );
        if !self.fits_everyone(line.len()) {
            return Outcome::Held;
        }
        self.release_name(key);
        self.clients[key].who = name.display.into_boxed_str();
        self.names.insert(name.key, key);
        self.skeletons.insert(name.skeleton, key);
        self.who_text = None;
        self.arena.extend_from_slice(line.as_bytes());
        self.stats.lines_out += self.joined as u64;
        Outcome::Done
    }

    /// Frees the name `key` holds, in both maps, when it renames or leaves.
    /// Only entries that are its own are removed: an address identity holds
    /// none, and must not free a name that happens to share its key.
    pub(crate) fn release_name(&mut self, key: usize) {
        let name_key = names::name_key(&self.clients[key].who);
        let skeleton = names::name_skeleton(&name_key);
        if self.names.get(&name_key) == Some(&key) {
            self.names.remove(&name_key);
        }
        if self.skeletons.get(&skeleton) == Some(&key) {
            self.skeletons.remove(&skeleton);
        }
    }

    /// A valid name that nobody else holds and that looks like no one
    /// else's, or the line explaining why not. The checks run in this
    /// order so the most useful reason wins: a name's own form, then the
    /// same name held by another, then a look-alike of another's (showing
    /// whose), then the mix of scripts, which also catches look-alikes of
    /// names nobody holds yet.
    fn check_name(&self, key: usize, raw: &[u8]) -> Result<Name, String> {
        let invalid = |why: String| format!("*** invalid name: {} ({why})\n", clean(raw));
        let name = parse_name(raw).map_err(invalid)?;
        match self.names.get(&name.key) {
            Some(&holder) if holder != key => {
                return Err(format!("*** name taken: {}\n", name.display));
            }
            _ => {}
        }
        match self.skeletons.get(&name.skeleton) {
            Some(&holder) if holder != key => {
                let like = &self.clients[holder].who;
                return Err(format!(
                    "*** name taken: {} (looks like {like})\n",
                    name.display
                ));
            }
            _ => {}
        }
        check_single_script(&name).map_err(invalid)?;
        Ok(name)
    }

    /// `/msg NAME TEXT`: both lines, or neither, go out this turn.
    fn private_message(&mut self, key: usize, to: &[u8], text: &[u8]) -> Outcome {
        let Some(target) = self.find(to) else {
            let line = format!("*** no such user: {}\n", clean(to));
            return self.reply(key, line.as_bytes());
        };
        let text = clean(text);
        let to_target = format!("{} (private): {text}\n", self.clients[key].who);
        let to_sender = format!("-> {}: {text}\n", self.clients[target].who);
        let both = to_target.len() + to_sender.len();
        let fits = if target == key {
            self.fits_one(key, both)
        } else {
            self.fits_one(target, to_target.len()) && self.fits_one(key, to_sender.len())
        };
        if !fits {
            return Outcome::Held;
        }
        self.send(target, to_target.as_bytes());
        self.send(key, to_sender.as_bytes());
        Outcome::Done
    }

    /// The joined client called `name` (a taken name, any case, or an address).
    fn find(&self, name: &[u8]) -> Option<usize> {
        let name = std::str::from_utf8(name).ok()?;
        let key = match self.names.get(&names::name_key(name)) {
            Some(&key) => key,
            None => self
                .clients
                .iter()
                .find(|(_, c)| &*c.who == name)
                .map(|(key, _)| key)?,
        };
        self.clients[key].receives().then_some(key)
    }

    /// `*** <n> here: a, b, c`, in order of arrival, as shared text: built
    /// once per change of membership, however often it is asked for. Past
    /// [`MAX_WHO_BYTES`] the list ends with `(and N more)`.
    pub(crate) fn who_text(&mut self) -> SharedText {
        if let Some(text) = &self.who_text {
            return text.clone();
        }
        let mut here: Vec<(u64, &str)> = self
            .clients
            .iter()
            .filter(|(_, c)| c.receives())
            .map(|(_, c)| (c.joined_seq, &*c.who))
            .collect();
        here.sort_unstable();
        let mut line = format!("*** {} here: ", here.len());
        // Room for the longest `, (and N more)` ending.
        let room = MAX_WHO_BYTES - 32;
        for (i, (_, who)) in here.iter().enumerate() {
            if line.len() + who.len() + 2 > room {
                line.push_str(&format!("(and {} more)", here.len() - i));
                break;
            }
            line.push_str(who);
            if i + 1 < here.len() {
                line.push_str(", ");
            }
        }
        line.push('\n');
        let text = SharedText::new(line.into_bytes(), &self.fixed_meter);
        self.who_text = Some(text.clone());
        text
    }

    /// `/stats`: the client's own queue and the server's counters.
    fn stats_line(&mut self, key: usize) -> String {
        self.catch_up(key);
        let client = &self.clients[key];
        let s = &self.stats;
        format!(
            "*** stats: queued={} skipped={} clients={} total_queued={} short_writes={} \
             slow_disconnects={} skipped_total={} lines_in={} lines_out={} bytes_out={} \
             cut_lines={} rate_limited={} read_pauses={} fd_exhausted={} budget_holds={}\n",
            client.output.len(),
            client.skipped_total,
            self.clients.len(),
            self.queued_bytes(),
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
}
