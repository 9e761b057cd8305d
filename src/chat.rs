//! What lines mean: joining, chat lines, names and commands.
//!
//! Everything here turns one input line into output queued for some clients;
//! moving the bytes is `server.rs`'s job. Broadcast lines are formatted once,
//! straight into the turn arena: `<who>: <cleaned text>\n`.

use log::debug;

use crate::clean::{clean, clean_into};
use crate::client::Phase;
use crate::command::{self, Command, HELP};
use crate::names::{self, Name, check_single_script, parse_name};
use crate::server::Server;
use crate::stats::CloseReason;

impl Server {
    /// Handles one complete input line from `key`.
    pub(crate) fn handle_line(&mut self, key: usize, line: &[u8]) {
        match self.clients[key].phase {
            Phase::Naming => self.take_name(key, line),
            Phase::Joined => self.handle_command(key, line),
            Phase::Closing => {}
        }
    }

    fn handle_command(&mut self, key: usize, line: &[u8]) {
        match command::parse(line) {
            Command::Say(text) => self.broadcast_chat(key, b"", b": ", text),
            Command::Me(text) => self.broadcast_chat(key, b"* ", b" ", text),
            Command::Nick(name) => self.rename(key, name),
            Command::Who => {
                let line = self.who_line();
                self.send(key, line.as_bytes());
            }
            Command::Msg { to, text } => self.private_message(key, to, text),
            Command::Quit(why) => {
                self.leave(key, CloseReason::Quit, why);
            }
            Command::Stats => {
                let line = self.stats_line(key);
                self.send(key, line.as_bytes());
            }
            Command::Help => {
                let mut text = HELP.join("\n");
                text.push('\n');
                self.send(key, text.as_bytes());
            }
            Command::Usage(usage) => {
                self.send(key, format!("*** usage: {usage}\n").as_bytes());
            }
            Command::Unknown(word) => {
                let line = format!("*** unknown command: /{} (try /help)\n", clean(word));
                self.send(key, line.as_bytes());
            }
        }
    }

    /// Puts a named (or address-identified) client in the room: it learns
    /// who it is, then the others learn it arrived. The newcomer does not see
    /// its own arrival, as in the reference.
    pub(crate) fn join(&mut self, key: usize) {
        self.catch_up(key);
        let client = &mut self.clients[key];
        client.phase = Phase::Joined;
        client.joined_seq = self.next_joined_seq;
        self.next_joined_seq += 1;
        self.joined += 1;

        let mut welcome = format!("You are {}\n", client.who).into_bytes();
        welcome.extend_from_slice(&self.motd);
        if self.config.who_on_join {
            welcome.extend_from_slice(self.who_line().as_bytes());
        }
        for line in &self.history {
            welcome.extend_from_slice(line);
        }
        self.send(key, &welcome);

        let who = &self.clients[key].who;
        self.arena.extend_from_slice(who.as_bytes());
        self.arena.extend_from_slice(b" has arrived\n");
        self.stats.lines_out += self.joined as u64 - 1;
        // Skip the announcement for the newcomer itself.
        self.clients[key].mark = self.arena.len() as u32;
        self.clients[key].mark_turn = self.turn;
    }

    /// `<before><who><after><text>\n` to everyone in the room, sender included.
    fn broadcast_chat(&mut self, key: usize, before: &[u8], after: &[u8], text: &[u8]) {
        let start = self.arena.len();
        self.arena.extend_from_slice(before);
        self.arena
            .extend_from_slice(self.clients[key].who.as_bytes());
        self.arena.extend_from_slice(after);
        clean_into(&mut self.arena, text);
        self.arena.push(b'\n');
        self.stats.lines_out += self.joined as u64;
        let line = &self.arena[start..];
        debug!("{}", String::from_utf8_lossy(&line[..line.len() - 1]));
        if self.config.history > 0 {
            if self.history.len() == self.config.history {
                self.history.pop_front();
            }
            self.history.push_back(line.into());
        }
    }

    /// Under `--ask-name`: the first lines are name attempts (surrounding
    /// blanks ignored, as for `/nick`).
    fn take_name(&mut self, key: usize, raw: &[u8]) {
        let raw = raw.trim_ascii();
        match self.check_name(key, raw) {
            Ok(name) => {
                self.clients[key].who = name.display.into_boxed_str();
                self.names.insert(name.key, key);
                self.skeletons.insert(name.skeleton, key);
                self.join(key);
            }
            Err(refusal) => {
                self.send(key, format!("{refusal}What is your name?\n").as_bytes());
            }
        }
    }

    /// `/nick NAME`: everyone learns the new name.
    fn rename(&mut self, key: usize, raw: &[u8]) {
        let name = match self.check_name(key, raw) {
            Ok(name) => name,
            Err(refusal) => {
                self.send(key, refusal.as_bytes());
                return;
            }
        };
        if *self.clients[key].who == *name.display {
            let line = format!("*** you are already {}\n", name.display);
            self.send(key, line.as_bytes());
            return;
        }
        self.release_name(key);
        let new = name.display.clone().into_boxed_str();
        let old = std::mem::replace(&mut self.clients[key].who, new);
        self.names.insert(name.key, key);
        self.skeletons.insert(name.skeleton, key);
        let line = format!("{old} is now known as {}\n", name.display);
        self.arena.extend_from_slice(line.as_bytes());
        self.stats.lines_out += self.joined as u64;
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

    /// `/msg NAME TEXT`.
    fn private_message(&mut self, key: usize, to: &[u8], text: &[u8]) {
        let Some(target) = self.find(to) else {
            let line = format!("*** no such user: {}\n", clean(to));
            self.send(key, line.as_bytes());
            return;
        };
        let text = clean(text);
        let line = format!("{} (private): {text}\n", self.clients[key].who);
        self.send(target, line.as_bytes());
        let line = format!("-> {}: {text}\n", self.clients[target].who);
        self.send(key, line.as_bytes());
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

    /// `*** <n> here: a, b, c`, in order of arrival.
    pub(crate) fn who_line(&self) -> String {
        let mut here: Vec<(u64, &str)> = self
            .clients
            .iter()
            .filter(|(_, c)| c.receives())
            .map(|(_, c)| (c.joined_seq, &*c.who))
            .collect();
        here.sort_unstable();
        let names: Vec<&str> = here.into_iter().map(|(_, who)| who).collect();
        format!("*** {} here: {}\n", names.len(), names.join(", "))
    }

    /// `/stats`: the client's own queue and the server's counters.
    fn stats_line(&mut self, key: usize) -> String {
        self.catch_up(key);
        let client = &self.clients[key];
        let s = &self.stats;
        format!(
            "*** stats: queued={} skipped={} clients={} total_queued={} short_writes={} \
             slow_disconnects={} skipped_total={} lines_in={} lines_out={} bytes_out={} \
             cut_lines={} rate_limited={} read_pauses={} fd_exhausted={}\n",
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
        )
    }
}
