//! What lines mean: joining, chat lines, names and commands.
//!
//! Everything here turns one input line into output queued for some clients;
//! moving the bytes is `server.rs`'s job. Broadcast lines are formatted once,
//! straight into the turn arena: `<who>: <cleaned text>\n`.

use log::debug;

use crate::clean::{clean, clean_into};
use crate::client::Phase;
use crate::command::{self, Command, HELP, name_key, validate_name};
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
                self.names.insert(name_key(&name), key);
                self.clients[key].who = name.into_boxed_str();
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
        let old = std::mem::replace(&mut self.clients[key].who, name.clone().into_boxed_str());
        if *old == *name {
            self.send(key, format!("*** you are already {name}\n").as_bytes());
            return;
        }
        self.names.remove(&name_key(&old));
        self.names.insert(name_key(&name), key);
        let line = format!("{old} is now known as {name}\n");
        self.arena.extend_from_slice(line.as_bytes());
        self.stats.lines_out += self.joined as u64;
    }

    /// A valid name nobody else holds, or the line explaining why not.
    fn check_name(&self, key: usize, raw: &[u8]) -> Result<String, String> {
        let name = validate_name(raw)
            .map_err(|why| format!("*** invalid name: {} ({why})\n", clean(raw)))?;
        match self.names.get(&name_key(name)) {
            Some(&holder) if holder != key => Err(format!("*** name taken: {name}\n")),
            _ => Ok(name.to_string()),
        }
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
        let key = match self.names.get(&name_key(name)) {
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
