//! The hub: every member, the rooms they talk in, and the output queued for
//! each of them. This is where a line becomes bytes for others to read.
//!
//! A broadcast is formatted once, into its room's arena, and each member's
//! share of the turn is a range of that arena, queued lazily
//! ([`Hub::catch_up`]) — when the member is flushed, or just before
//! anything is queued for it alone, so a private line never overtakes a
//! broadcast queued before it. At the end of the turn ([`Hub::seal`]) the
//! part of each arena that queues still point into is copied once into a
//! shared chunk. A line for a room costs one queue push per member of that
//! room, not per client of the server.
//!
//! Everything queued for one member in one turn is bounded by the turn
//! budget; [`Hub::fits_everyone`] and [`Hub::fits_one`] tell whether a line
//! may still go out this turn. A member leaves by one path only,
//! [`Hub::depart`], which frees its name and announces it at most once.
//!
//! Nothing here sees a socket or the poller: the unit tests in `hub/tests.rs`
//! play turns with byte slices.

use std::ops::Range;
use std::rc::Rc;

use log::debug;

use crate::limits::{ARENA_KEEP, MAX_WHO_BYTES, MIN_TURN_BUDGET, ROOM_ARENA_KEEP, TURN_BUDGET};
use crate::member::Member;
use crate::notice::Movement;
use crate::out_queue::{Chunk, Entry, Meter, OutQueue, SharedText, count_newlines};
use crate::pressure::{QueueCap, Region, Verdict};
use crate::remotes::Remotes;
use crate::room::Room;
use crate::rooms::Rooms;
use crate::roster::Roster;
use crate::stats::Stats;
use crate::wire::Record;

/// How a hub is set up (from the flags).
#[derive(Clone, Debug)]
pub struct HubConfig {
    pub cap: QueueCap,
    pub who_on_join: bool,
    pub history_lines: usize,
    pub history_bytes: usize,
    pub notice_rate: u32,
    pub default_room: String,
    pub max_rooms: usize,
    /// This node's id, in a cluster: address identities carry it, and
    /// local news is kept for the other nodes.
    pub node: Option<String>,
}

/// The members, their rooms, and what is queued for them.
#[derive(Debug)]
pub struct Hub {
    pub roster: Roster,
    pub rooms: Rooms,
    /// Other nodes' members, in a cluster.
    pub remotes: Remotes,
    /// News for the other nodes, in a cluster: what local members did this
    /// turn, in order.
    news: Option<Vec<Record>>,
    /// Names asked for that wait for the cluster's answer: `(key, name,
    /// first)`, `first` under `--ask-name`.
    claims: Vec<(usize, crate::names::Name, bool)>,
    /// In a cluster: names can be given out (the link to Redis is up).
    cluster_up: bool,
    /// The `--motd` lines, cleaned, each ending in `\n`.
    motd: Option<SharedText>,
    /// Bytes held by queued output: shared chunks and entry arrays. What
    /// `--max-total-output` bounds (with the arenas).
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
    /// Bytes in all arenas this turn.
    arena_bytes: usize,
    /// Rooms whose arena holds something this turn.
    busy: Vec<usize>,
    /// Members with something of their own to flush this turn.
    dirty: Vec<usize>,
    /// When the earliest summary of held-back notices is due, in any room
    /// (never later than the truth: a room that went since may have held
    /// it), so the loop finds it without a walk over the rooms.
    notices_due: Option<u64>,
    config: HubConfig,
    pub stats: Stats,
}

impl Hub {
    pub fn new(config: HubConfig) -> Hub {
        let max_output = config.cap.max_output;
        let rooms = Rooms::new(
            &config.default_room,
            config.max_rooms,
            config.history_lines,
            config.history_bytes,
            config.notice_rate,
        );
        Hub {
            roster: Roster::default(),
            rooms,
            remotes: Remotes::default(),
            news: config.node.is_some().then(Vec::new),
            claims: Vec::new(),
            cluster_up: false,
            motd: None,
            meter: Meter::default(),
            fixed_meter: Meter::default(),
            turn: 0,
            turn_budget: TURN_BUDGET.min((max_output / 2).max(MIN_TURN_BUDGET)),
            turn_max_private: 0,
            arena_bytes: 0,
            busy: Vec::new(),
            dirty: Vec::new(),
            notices_due: None,
            config,
            stats: Stats::default(),
        }
    }

    /// The turn counter (it wraps).
    pub fn turn(&self) -> u32 {
        self.turn
    }

    /// Output held for all members: shared chunks, entry arrays and this
    /// turn's arenas. What `--max-total-output` is checked against.
    pub fn queued_bytes(&self) -> usize {
        self.meter.get() + self.arena_bytes
    }

    /// True if something was queued this turn that is not flushed yet.
    pub fn has_work(&self) -> bool {
        !self.dirty.is_empty() || !self.busy.is_empty()
    }

    pub fn member(&self, key: usize) -> &Member {
        self.roster.get(key).expect("a present member")
    }

    fn member_mut(&mut self, key: usize) -> &mut Member {
        self.roster.get_mut(key).expect("a present member")
    }

    /// The room `key` is in (or will join).
    pub fn room_of(&self, key: usize) -> usize {
        self.member(key).room as usize
    }

    /// Replaces the motd (cleaned lines), or removes it.
    pub fn set_motd(&mut self, motd: Vec<u8>) {
        self.motd = (!motd.is_empty()).then(|| SharedText::new(motd, &self.fixed_meter));
    }

    /// Bytes in the motd.
    pub fn motd_len(&self) -> usize {
        self.motd.as_ref().map_or(0, SharedText::len)
    }

    // ----- the turn budget -------------------------------------------------------

    /// True if `bytes` more for every member of `room` fit in this turn's
    /// budget: its arena plus the most any one member got privately this
    /// turn. A turn that has queued nothing yet takes any one line, however
    /// long.
    pub fn fits_everyone(&self, room: usize, bytes: usize) -> bool {
        let arena = self.rooms.get(room).arena.len();
        self.budget_allows(arena + self.turn_max_private, bytes)
    }

    /// True if `bytes` more for `key` alone fit in this turn's budget.
    pub fn fits_one(&self, key: usize, bytes: usize) -> bool {
        let member = self.member(key);
        let arena = self.rooms.get(member.room as usize).arena.len();
        self.budget_allows(member.private_in(self.turn) + arena, bytes)
    }

    fn budget_allows(&self, used: usize, bytes: usize) -> bool {
        used == 0 || used + bytes <= self.turn_budget
    }

    // ----- queueing --------------------------------------------------------------

    /// Formats a chat line into `room`'s arena with `format` (which may read
    /// the roster, for the sender's name, without a copy of it) and keeps it
    /// if it fits in this turn's budget for everyone there (and in the
    /// room's history when `remember`): then returns where the line is in
    /// the arena. Otherwise takes it back and returns `None`.
    pub fn broadcast(
        &mut self,
        room: usize,
        remember: bool,
        format: impl FnOnce(&mut Vec<u8>, &Roster),
    ) -> Option<Range<usize>> {
        let turn_max_private = self.turn_max_private;
        let r = self.rooms.get_mut(room);
        let start = r.arena.len();
        format(&mut r.arena, &self.roster);
        let len = r.arena.len() - start;
        if !self.budget_allows(start + turn_max_private, len) {
            // Formatted for nothing: wait for the next turn.
            self.rooms.get_mut(room).arena.truncate(start);
            return None;
        }
        self.note_arena(room, len);
        let r = self.rooms.get_mut(room);
        self.stats.lines_out += r.members.len() as u64;
        let line = &r.arena[start..];
        debug!("{}", String::from_utf8_lossy(&line[..line.len() - 1]));
        if remember {
            r.history.remember(line);
        }
        Some(start..start + len)
    }

    /// A notice to everyone in `room` (`has left`, a name change, a topic,
    /// a summary), outside the budget: it is small and not a line anyone
    /// typed.
    pub fn announce(&mut self, room: usize, line: &[u8]) {
        self.push_arena(room, line);
        self.stats.lines_out += self.rooms.get(room).members.len() as u64;
    }

    fn push_arena(&mut self, room: usize, bytes: &[u8]) {
        self.rooms.get_mut(room).arena.extend_from_slice(bytes);
        self.note_arena(room, bytes.len());
    }

    /// Counts `len` new arena bytes in `room`.
    fn note_arena(&mut self, room: usize, len: usize) {
        if len > 0 && self.rooms.get(room).arena.len() == len {
            self.busy.push(room);
        }
        self.arena_bytes += len;
    }

    /// Queues the broadcasts of this turn that `key` has not been given yet.
    /// Called before anything is queued for it alone, so its private lines
    /// and the broadcasts around them stay in order, and before it stops
    /// receiving or moves.
    pub fn catch_up(&mut self, key: usize) {
        let turn = self.turn;
        let cap = self.config.cap;
        let member = self.roster.get_mut(key).expect("a present member");
        let arena = &self.rooms.get(member.room as usize).arena;
        let (from, to) = (member.region_start(turn), arena.len());
        member.set_mark(turn, to);
        if !member.receives() || from >= to {
            return;
        }
        match cap.region(member, &arena[from..to]) {
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

    /// `*** <n> here: a, b, c` for `room`, in order of arrival, as shared
    /// text: built once per change of membership, however often it is asked
    /// for. Past [`MAX_WHO_BYTES`] the list ends with `(and N more)`.
    pub fn who_text(&mut self, room: usize) -> SharedText {
        if let Some(text) = &self.rooms.get(room).who_text {
            return text.clone();
        }
        let here = self.names_in_order(room);
        let line = listing(&format!("*** {} here: ", here.len()), &here);
        let text = SharedText::new(line.into_bytes(), &self.fixed_meter);
        self.rooms.get_mut(room).who_text = Some(text.clone());
        text
    }

    /// `room`'s history as one shared text, if it has any.
    fn history_text(&mut self, room: usize) -> Option<SharedText> {
        let meter = self.fixed_meter.clone();
        self.rooms.get_mut(room).history.text(&meter)
    }

    // ----- the end of a turn -----------------------------------------------------

    /// The members to flush this turn, into `into`: the members of every
    /// room something was said in, and those with something of their own.
    pub fn take_visit(&mut self, into: &mut Vec<usize>) {
        into.clear();
        // The dirty ones are marked; a member of a busy room joins the list
        // unless it is already on it, so nobody is visited twice.
        into.append(&mut self.dirty);
        for &room in &self.busy {
            for &key in &self.rooms.get(room).members {
                if let Some(member) = self.roster.get_mut(key)
                    && !member.dirty
                {
                    member.dirty = true;
                    into.push(key);
                }
            }
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
        let arena = &self.rooms.get(member.room as usize).arena;
        (&mut member.output, arena)
    }

    /// Copies the part of each arena that the `backlog` members' queues
    /// still point into, once, into a chunk they share, then compacts their
    /// queues.
    pub fn seal(&mut self, backlog: &[usize]) {
        // The lowest offset still needed, per busy room (few: most turns
        // touch one or two rooms).
        let mut lows: Vec<(usize, usize)> = Vec::new();
        for &key in backlog {
            let member = self.member(key);
            let Some(low) = member.output.arena_low() else {
                continue;
            };
            let room = member.room as usize;
            match lows.iter_mut().find(|(r, _)| *r == room) {
                Some((_, at)) => *at = (*at).min(low),
                None => lows.push((room, low)),
            }
        }
        let chunks: Vec<(usize, usize, Rc<Chunk>)> = lows
            .into_iter()
            .map(|(room, low)| {
                let arena = &self.rooms.get(room).arena;
                (room, low, Chunk::new(&arena[low..], &self.meter))
            })
            .collect();
        for &key in backlog {
            let member = self.member_mut(key);
            let room = member.room as usize;
            if let Some((_, low, chunk)) = chunks.iter().find(|(r, _, _)| *r == room) {
                member.output.seal(*low, chunk);
            }
            member.output.compact();
        }
    }

    /// Applies `--max-output` to `key`'s queue after its flush.
    pub fn apply_cap(&mut self, key: usize) -> Verdict {
        let cap = self.config.cap;
        let member = self.roster.get_mut(key).expect("a present member");
        let verdict = cap.apply(member, &[]);
        if let Verdict::Skipped { lines, .. } = verdict {
            self.stats.skipped_lines += lines;
        }
        verdict
    }

    /// Readies the hub for the next turn: every queue must be sealed.
    /// Rooms left empty (but the default) go, with their topic and history.
    pub fn end_turn(&mut self) {
        let default = self.rooms.default_id();
        for room in std::mem::take(&mut self.busy) {
            let keep = if room == default {
                ARENA_KEEP
            } else {
                ROOM_ARENA_KEEP
            };
            self.rooms.get_mut(room).clear_arena(keep);
            self.rooms.remove_if_empty(room);
        }
        self.arena_bytes = 0;
        self.turn = self.turn.wrapping_add(1);
        self.turn_max_private = 0;
    }

    /// True if an arrival or departure in `room` is announced now; false
    /// if `--notice-rate` holds it for the room's next summary, whose time
    /// is then remembered.
    pub(crate) fn pass_notice(&mut self, room: usize, movement: Movement, now_ms: u64) -> bool {
        let gate = &mut self.rooms.get_mut(room).notices;
        if gate.pass(movement, now_ms) {
            return true;
        }
        if let Some(due) = gate.due_ms() {
            self.notices_due = Some(self.notices_due.map_or(due, |d| d.min(due)));
        }
        false
    }

    /// The summaries of held-back arrivals and departures that are due.
    /// Walks the rooms, which only the `Notices` timer does.
    pub fn sum_up_notices(&mut self, now_ms: u64) {
        let due: Vec<(usize, String)> = self
            .rooms
            .iter_mut()
            .filter_map(|(id, r)| Some((id, r.notices.summary(now_ms)?)))
            .collect();
        for (room, summary) in due {
            self.announce(room, summary.as_bytes());
        }
        self.notices_due = self
            .rooms
            .iter()
            .filter_map(|(_, r)| r.notices.due_ms())
            .min();
    }

    /// When the next notice summary is due, in any room.
    pub fn notices_due(&self) -> Option<u64> {
        self.notices_due
    }

    /// `(rooms, members of the biggest)`, for `/stats` and the metrics.
    pub fn room_gauges(&self) -> (usize, usize) {
        (self.rooms.len(), self.rooms.biggest())
    }

    /// The room a member sees, for the rooms commands.
    pub fn room(&self, id: usize) -> &Room {
        self.rooms.get(id)
    }
}

/// `prefix` followed by `items` joined with `, `, ended by `\n`; past
/// [`MAX_WHO_BYTES`] the list ends with `(and N more)`.
pub fn listing(prefix: &str, items: &[impl AsRef<str>]) -> String {
    let mut line = prefix.to_string();
    // Room for the longest `(and N more)` ending.
    let room = MAX_WHO_BYTES - 32;
    for (i, item) in items.iter().enumerate() {
        let item = item.as_ref();
        if line.len() + item.len() + 2 > room {
            line.push_str(&format!("(and {} more)", items.len() - i));
            break;
        }
        line.push_str(item);
        if i + 1 < items.len() {
            line.push_str(", ");
        }
    }
    line.push('\n');
    line
}

mod cluster;
mod membership;
#[cfg(test)]
mod tests;
