//! The hub: every member, the room they talk in, and the output queued for
//! each of them. This is where a line becomes bytes for others to read.
//!
//! A broadcast is formatted once, into the room's arena, and each member's
//! share of the turn is a range of it, queued lazily ([`Hub::catch_up`]) —
//! when the member is flushed, or just before anything is queued for it
//! alone, so a private line never overtakes a broadcast queued before it. At
//! the end of the turn ([`Hub::seal`]) the part of the arena that queues
//! still point into is copied once into a shared chunk.
//!
//! Everything queued for one member in one turn is bounded by the turn
//! budget; [`Hub::fits_everyone`] and [`Hub::fits_one`] tell whether a line
//! may still go out this turn. A member leaves by one path only,
//! [`Hub::depart`], which frees its name and announces it at most once.
//!
//! Nothing here sees a socket or the poller: the unit tests at the bottom
//! play turns with byte slices.

use log::debug;

use crate::limits::{MAX_WHO_BYTES, MIN_TURN_BUDGET, TURN_BUDGET};
use crate::member::{Member, Phase};
use crate::notice::Movement;
use crate::out_queue::{Chunk, Entry, Meter, OutQueue, SharedText, count_newlines};
use crate::pressure::{QueueCap, Region, Verdict};
use crate::room::{History, Room};
use crate::roster::Roster;
use crate::stats::Stats;

/// How a hub is set up (from the flags).
#[derive(Clone, Copy, Debug)]
pub struct HubConfig {
    pub cap: QueueCap,
    pub who_on_join: bool,
    pub history_lines: usize,
    pub history_bytes: usize,
    pub notice_rate: u32,
}

/// The members, their room, and what is queued for them.
#[derive(Debug)]
pub struct Hub {
    pub roster: Roster,
    pub room: Room,
    /// The `--motd` lines, cleaned, each ending in `\n`.
    motd: Option<SharedText>,
    /// Bytes held by queued output: shared chunks and entry arrays. What
    /// `--max-total-output` bounds.
    meter: Meter,
    /// Bytes held by the motd, history and `/who` texts: bounded by their
    /// own limits, so they do not count against `--max-total-output`.
    fixed_meter: Meter,
    /// Turn counter; tells current member marks from stale ones.
    turn: u32,
    /// Output allowed per member per turn: [`TURN_BUDGET`], or less with a
    /// small `--max-output`.
    turn_budget: usize,
    /// The most bytes queued for one member alone this turn, over all
    /// members: a broadcast may add at most `turn_budget` minus this.
    turn_max_private: usize,
    /// Members with something to flush this turn (when nothing was
    /// broadcast; a broadcast gives everyone something).
    dirty: Vec<usize>,
    config: HubConfig,
    pub stats: Stats,
}

impl Hub {
    pub fn new(config: HubConfig) -> Hub {
        let max_output = config.cap.max_output;
        let history = History::new(config.history_lines, config.history_bytes);
        Hub {
            roster: Roster::default(),
            room: Room::new(history, config.notice_rate),
            motd: None,
            meter: Meter::default(),
            fixed_meter: Meter::default(),
            turn: 0,
            turn_budget: TURN_BUDGET.min((max_output / 2).max(MIN_TURN_BUDGET)),
            turn_max_private: 0,
            dirty: Vec::new(),
            config,
            stats: Stats::default(),
        }
    }

    /// Output held for all members: shared chunks, entry arrays and this
    /// turn's arena. What `--max-total-output` is checked against.
    pub fn queued_bytes(&self) -> usize {
        self.meter.get() + self.room.arena.len()
    }

    /// The turn counter (it wraps).
    pub fn turn(&self) -> u32 {
        self.turn
    }

    /// True if something was queued this turn that is not flushed yet.
    pub fn has_work(&self) -> bool {
        !self.dirty.is_empty() || !self.room.arena.is_empty()
    }

    pub fn member(&self, key: usize) -> &Member {
        self.roster.get(key).expect("a present member")
    }

    fn member_mut(&mut self, key: usize) -> &mut Member {
        self.roster.get_mut(key).expect("a present member")
    }

    /// Replaces the motd (cleaned lines), or removes it.
    pub fn set_motd(&mut self, motd: Vec<u8>) {
        self.motd = (!motd.is_empty()).then(|| SharedText::new(motd, &self.fixed_meter));
    }

    /// Bytes in the motd.
    pub fn motd_len(&self) -> usize {
        self.motd.as_ref().map_or(0, SharedText::len)
    }

    // ----- members come and go ---------------------------------------------------

    /// Adds a member under `key` (its connection's), not yet in the room.
    pub fn add(&mut self, key: usize, who: Box<str>) {
        let mut member = Member::new(who, OutQueue::new(&self.meter));
        // What is already in the arena is not for it.
        member.set_mark(self.turn, self.room.arena.len());
        self.roster.insert(key, member);
    }

    /// Puts a member in the room: it learns who it is, then the others
    /// learn it arrived (the newcomer does not see its own arrival, as in
    /// the reference). Its welcome — motd, who line, history — is shared
    /// text, queued by reference, and fits in half of `--max-output` by
    /// configuration, so it is not held to the turn budget.
    pub fn join(&mut self, key: usize, now_ms: u64) {
        self.catch_up(key);
        self.roster.mark_joined(key);
        self.room.who_text = None;
        let greeting = format!("You are {}\n", self.member(key).who);
        self.send(key, greeting.as_bytes());
        if let Some(motd) = self.motd.clone() {
            self.send_shared(key, &motd);
        }
        if self.config.who_on_join {
            let who = self.who_text();
            self.send_shared(key, &who);
        }
        if let Some(history) = self.room.history.text(&self.fixed_meter) {
            self.send_shared(key, &history);
        }
        if self.room.notices.pass(Movement::Arrival, now_ms) {
            let line = format!("{} has arrived\n", self.member(key).who);
            self.room.arena.extend_from_slice(line.as_bytes());
            // Everyone but the newcomer.
            self.stats.lines_out += self.roster.joined() as u64 - 1;
        }
        // Skip the announcement for the newcomer itself.
        let end = self.room.arena.len();
        let turn = self.turn;
        self.member_mut(key).set_mark(turn, end);
    }

    /// Takes a member out of the room, the one way to leave: its name is
    /// freed and, if `announce` and it was in the room, the others get
    /// `<who> has left` (with the reason, if any) — once, however often
    /// this is called. It receives nothing more; what is queued for it
    /// stays to be flushed. Never called during a flush: its notice would
    /// reach only the members not yet flushed.
    pub fn depart(&mut self, key: usize, why: Option<&[u8]>, announce: bool, now_ms: u64) {
        if self.member(key).phase == Phase::Gone {
            return;
        }
        self.catch_up(key);
        let was_joined = self.roster.mark_gone(key);
        if !was_joined {
            return;
        }
        self.room.who_text = None;
        if announce && self.room.notices.pass(Movement::Departure, now_ms) {
            let mut line = format!("{} has left", self.member(key).who).into_bytes();
            if let Some(why) = why {
                line.extend_from_slice(b" (");
                crate::clean::clean_into(&mut line, why);
                line.push(b')');
            }
            line.push(b'\n');
            self.announce(&line);
        }
    }

    /// Drops everything queued for `key` (its connection is being closed);
    /// returns how many bytes were unsent.
    pub fn drop_output(&mut self, key: usize) -> usize {
        let output = &mut self.member_mut(key).output;
        let unsent = output.len();
        output.clear();
        unsent
    }

    /// Forgets a member that has departed, once its connection is closed.
    pub fn remove(&mut self, key: usize) {
        self.roster.remove(key);
    }

    // ----- the turn budget -------------------------------------------------------

    /// True if `bytes` more for every member fit in this turn's budget: the
    /// arena plus the most any one member got privately this turn. A turn
    /// that has queued nothing yet takes any one line, however long.
    pub fn fits_everyone(&self, bytes: usize) -> bool {
        self.budget_allows(self.room.arena.len() + self.turn_max_private, bytes)
    }

    /// True if `bytes` more for `key` alone fit in this turn's budget.
    pub fn fits_one(&self, key: usize, bytes: usize) -> bool {
        let private = self.member(key).private_in(self.turn);
        self.budget_allows(private + self.room.arena.len(), bytes)
    }

    fn budget_allows(&self, used: usize, bytes: usize) -> bool {
        used == 0 || used + bytes <= self.turn_budget
    }

    // ----- queueing --------------------------------------------------------------

    /// Formats a chat line into the arena with `format` and keeps it if it
    /// fits in this turn's budget for everyone (and in the history when
    /// `remember`); otherwise takes it back and returns false.
    pub fn broadcast(&mut self, remember: bool, format: impl FnOnce(&mut Vec<u8>)) -> bool {
        let start = self.room.arena.len();
        format(&mut self.room.arena);
        let len = self.room.arena.len() - start;
        if !self.budget_allows(start + self.turn_max_private, len) {
            // Formatted for nothing: wait for the next turn.
            self.room.arena.truncate(start);
            return false;
        }
        self.stats.lines_out += self.roster.joined() as u64;
        let line = &self.room.arena[start..];
        debug!("{}", String::from_utf8_lossy(&line[..line.len() - 1]));
        if remember {
            self.room.history.remember(line);
        }
        true
    }

    /// A notice to everyone in the room (`has arrived`, `has left`, a name
    /// change, a summary), outside the budget: it is small and not a line
    /// anyone typed.
    pub fn announce(&mut self, line: &[u8]) {
        self.room.arena.extend_from_slice(line);
        self.stats.lines_out += self.roster.joined() as u64;
    }

    /// Queues the broadcasts of this turn that `key` has not been given yet.
    /// Called before anything is queued for it alone, so its private lines
    /// and the broadcasts around them stay in order, and before it stops
    /// receiving.
    pub fn catch_up(&mut self, key: usize) {
        let turn = self.turn;
        let to = self.room.arena.len();
        let cap = self.config.cap;
        let member = self.roster.get_mut(key).expect("a present member");
        let from = member.region_start(turn);
        member.set_mark(turn, to);
        if !member.receives() || from >= to {
            return;
        }
        match cap.region(member, &self.room.arena[from..to]) {
            Region::Queue => {}
            Region::Skip(lines) => {
                self.stats.skipped_lines += lines;
                return;
            }
            Region::Resume(notice) => {
                let notice = Chunk::new(notice.as_bytes(), &self.meter);
                member.output.push(Entry::whole(notice));
            }
        }
        member.output.push(Entry::arena(from, to));
    }

    /// Queues `bytes` (whole lines) for one member only.
    pub fn send(&mut self, key: usize, bytes: &[u8]) {
        let lines = count_newlines(bytes);
        self.send_entry(key, Entry::whole(Chunk::new(bytes, &self.meter)), lines);
    }

    /// Queues a shared text (motd, history, `/who`) for one member, by
    /// reference.
    pub fn send_shared(&mut self, key: usize, text: &SharedText) {
        self.send_entry(key, Entry::whole(text.chunk.clone()), text.lines);
    }

    fn send_entry(&mut self, key: usize, entry: Entry, lines: u64) {
        self.catch_up(key);
        let turn = self.turn;
        let member = self.member_mut(key);
        let before = member.output.len();
        member.output.push(entry);
        let added = member.output.len() - before;
        let private = member.add_private(turn, added);
        self.turn_max_private = self.turn_max_private.max(private);
        self.stats.lines_out += lines;
        self.mark_dirty(key);
    }

    /// Puts `key` on the list of members to flush this turn.
    pub fn mark_dirty(&mut self, key: usize) {
        let member = self.member_mut(key);
        if !member.dirty {
            member.dirty = true;
            self.dirty.push(key);
        }
    }

    /// `*** <n> here: a, b, c`, in order of arrival, as shared text: built
    /// once per change of membership, however often it is asked for. Past
    /// [`MAX_WHO_BYTES`] the list ends with `(and N more)`.
    pub fn who_text(&mut self) -> SharedText {
        if let Some(text) = &self.room.who_text {
            return text.clone();
        }
        let here = self.roster.names_in_order();
        let mut line = format!("*** {} here: ", here.len());
        // Room for the longest `(and N more)` ending.
        let room = MAX_WHO_BYTES - 32;
        for (i, who) in here.iter().enumerate() {
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
        self.room.who_text = Some(text.clone());
        text
    }

    // ----- the end of a turn -----------------------------------------------------

    /// The members to flush this turn, into `into`: everyone if something
    /// was broadcast, else those with something of their own.
    pub fn take_visit(&mut self, into: &mut Vec<usize>) {
        into.clear();
        if self.room.arena.is_empty() {
            into.append(&mut self.dirty);
        } else {
            self.dirty.clear();
            into.extend(self.roster.keys());
        }
        for &key in into.iter() {
            if let Some(member) = self.roster.get_mut(key) {
                member.dirty = false;
            }
        }
    }

    /// `key`'s queue, caught up with the turn, and the arena its ranges
    /// point into: what a flush writes from.
    pub fn outbox(&mut self, key: usize) -> (&mut OutQueue, &[u8]) {
        self.catch_up(key);
        let member = self.roster.get_mut(key).expect("a present member");
        (&mut member.output, &self.room.arena)
    }

    /// Copies the part of the arena that the `backlog` members' queues still
    /// point into, once, into a chunk they share, then compacts their queues.
    pub fn seal(&mut self, backlog: &[usize]) {
        let low = backlog
            .iter()
            .filter_map(|&key| self.member(key).output.arena_low())
            .min();
        if let Some(low) = low {
            let chunk = Chunk::new(&self.room.arena[low..], &self.meter);
            for &key in backlog {
                self.member_mut(key).output.seal(low, &chunk);
            }
        }
        for &key in backlog {
            self.member_mut(key).output.compact();
        }
    }

    /// Applies `--max-output` to `key`'s queue after its flush.
    pub fn apply_cap(&mut self, key: usize) -> Verdict {
        let cap = self.config.cap;
        let member = self.roster.get_mut(key).expect("a present member");
        let verdict = cap.apply(member, &self.room.arena);
        if let Verdict::Skipped { lines, .. } = verdict {
            self.stats.skipped_lines += lines;
        }
        verdict
    }

    /// Readies the hub for the next turn. Every queue must be sealed.
    pub fn end_turn(&mut self) {
        self.room.clear_arena();
        self.turn = self.turn.wrapping_add(1);
        self.turn_max_private = 0;
    }

    /// The summary of held-back arrivals and departures, if it is due.
    pub fn sum_up_notices(&mut self, now_ms: u64) {
        if let Some(summary) = self.room.notices.summary(now_ms) {
            self.announce(summary.as_bytes());
        }
    }

    /// When the next notice summary is due.
    pub fn notices_due(&self) -> Option<u64> {
        self.room.notices.due_ms()
    }
}

#[cfg(test)]
mod tests;
