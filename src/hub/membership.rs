//! Members come, move between rooms and go: the one way in ([`Hub::join`]),
//! the one way between rooms ([`Hub::move_to`]) and the one way out
//! ([`Hub::depart`]).

use super::Hub;
use crate::member::{Member, Phase};
use crate::notice::Movement;
use crate::out_queue::{Chunk, OutQueue};

impl Hub {
    /// Adds a member under `key` (its connection's), not yet in a room.
    pub fn add(&mut self, key: usize, who: Box<str>) {
        let mut member = Member::new(who, OutQueue::new(&self.meter));
        let room = self.rooms.default_id();
        member.room = room as u32;
        // What is already in the arena is not for it.
        member.set_mark(self.turn, self.rooms.get(room).arena.len());
        self.roster.insert(key, member);
    }

    /// Puts a member in the default room: it learns who it is, then the
    /// others learn it arrived (the newcomer does not see its own arrival,
    /// as in the reference). Its welcome — motd, who line, history — is
    /// shared text, queued by reference, and fits in half of `--max-output`
    /// by configuration, so it is not held to the turn budget.
    pub fn join(&mut self, key: usize, now_ms: u64) {
        self.catch_up(key);
        self.roster.mark_joined(key);
        let room = self.room_of(key);
        self.enter(key, room);
        let greeting = format!("You are {}\n", self.member(key).who);
        self.send(key, greeting.as_bytes());
        if let Some(motd) = self.motd.clone() {
            self.send_shared(key, &motd);
        }
        if self.config.who_on_join {
            let who = self.who_text(room);
            self.send_shared(key, &who);
        }
        if let Some(history) = self.history_text(room) {
            self.send_shared(key, &history);
        }
        self.arrive(key, room, now_ms);
        let (room, who) = (
            self.rooms.get(room).name.to_string(),
            self.member(key).who.to_string(),
        );
        self.tell(crate::wire::Record::Arrive { room, who });
    }

    /// Gives `key` the name `name` (checked, and in a cluster claimed), and
    /// tells its room.
    pub fn rename(&mut self, key: usize, name: crate::names::Name) {
        let old = self.member(key).who.to_string();
        let new = name.display.clone();
        self.roster.take_name(key, name);
        let room = self.room_of(key);
        self.rooms.get_mut(room).who_text = None;
        self.announce(room, format!("{old} is now known as {new}\n").as_bytes());
        let room = self.rooms.get(room).name.to_string();
        self.tell(crate::wire::Record::Nick { room, old, new });
    }

    /// Announces `key`'s arrival in `room` (to everyone there but itself).
    fn arrive(&mut self, key: usize, room: usize, now_ms: u64) {
        if self.pass_notice(room, Movement::Arrival, now_ms) {
            let line = format!("{} has arrived\n", self.member(key).who);
            let others = self.rooms.get(room).members.len() - 1;
            self.push_arena(room, line.as_bytes());
            self.stats.lines_out += others as u64;
        }
        // Skip the announcement for the newcomer itself.
        let end = self.rooms.get(room).arena.len();
        let turn = self.turn;
        self.member_mut(key).set_mark(turn, end);
    }

    /// Moves a joined member to `to`: it takes everything its old room said
    /// before the move, the old room is told `<who> has gone to #NAME`, the
    /// new room that it arrived; it is told where it is, the topic, who is
    /// there and the history, and sees nothing the new room said before.
    pub fn move_to(&mut self, key: usize, to: usize, now_ms: u64) {
        let from = self.room_of(key);
        let from_name = self.rooms.get(from).name.to_string();
        self.catch_up(key);
        self.detach_from_arena(key, from);
        self.leave_room(key, from);
        let line = format!(
            "{} has gone to {}\n",
            self.member(key).who,
            self.rooms.get(to).name
        );
        self.announce(from, line.as_bytes());
        self.vacate_if_empty(from);
        self.roster.arrive_again(key);
        self.member_mut(key).room = to as u32;
        self.enter(key, to);
        self.arrive(key, to, now_ms);
        let room = self.rooms.get(to);
        let mut welcome = format!("*** you are in {}\n", room.name);
        if let Some(topic) = &room.topic {
            welcome.push_str(&format!("*** topic: {topic}\n"));
        }
        self.send(key, welcome.as_bytes());
        let who = self.who_text(to);
        self.send_shared(key, &who);
        if let Some(history) = self.history_text(to) {
            self.send_shared(key, &history);
        }
        let who = self.member(key).who.to_string();
        let to = self.rooms.get(to).name.to_string();
        self.tell(crate::wire::Record::Move {
            from: from_name,
            to,
            who,
        });
    }

    /// Adds `key` to `room`'s member list.
    fn enter(&mut self, key: usize, room: usize) {
        let members = &mut self.rooms.get_mut(room).members;
        let slot = members.len();
        members.push(key);
        self.rooms.get_mut(room).who_text = None;
        self.member_mut(key).room_slot = slot as u32;
    }

    /// Takes `key` out of `room`'s member list.
    fn leave_room(&mut self, key: usize, room: usize) {
        let slot = self.member(key).room_slot as usize;
        let r = self.rooms.get_mut(room);
        r.who_text = None;
        debug_assert_eq!(r.members[slot], key);
        r.members.swap_remove(slot);
        if let Some(&moved) = r.members.get(slot) {
            self.member_mut(moved).room_slot = slot as u32;
        }
    }

    /// A room left without members is gone (but the default room): a
    /// newcomer finds a new room, even in this turn. If its arena holds a
    /// notice, the room itself is removed at the end of the turn.
    pub(super) fn vacate_if_empty(&mut self, room: usize) {
        let default = self.rooms.default_id();
        let r = self.rooms.get_mut(room);
        if r.population() > 0 || room == default {
            return;
        }
        r.topic = None;
        r.history.clear();
        if r.arena.is_empty() {
            self.rooms.remove_if_empty(room);
        }
    }

    /// A mover's queue may point into its old room's arena; it is about to
    /// take ranges of another, so those are copied out now.
    fn detach_from_arena(&mut self, key: usize, room: usize) {
        let Some(low) = self.member(key).output.arena_low() else {
            return;
        };
        let chunk = Chunk::new(&self.rooms.get(room).arena[low..], &self.meter);
        self.member_mut(key).output.seal(low, &chunk);
    }

    /// Takes a member out of its room, the one way to leave: its name is
    /// freed and, if `announce` and it was in the room, the others there get
    /// `<who> has left` (with the reason, if any) — once, however often this
    /// is called. It receives nothing more; what is queued for it stays to
    /// be flushed. Never called during a flush: its notice would reach only
    /// the members not yet flushed.
    pub fn depart(&mut self, key: usize, why: Option<&[u8]>, announce: bool, now_ms: u64) {
        if self.member(key).phase == Phase::Gone {
            return;
        }
        self.catch_up(key);
        let room = self.room_of(key);
        let was_joined = self.roster.mark_gone(key);
        if !was_joined {
            return;
        }
        self.leave_room(key, room);
        if !announce {
            return self.vacate_if_empty(room);
        }
        let who = self.member(key).who.to_string();
        let room_name = self.rooms.get(room).name.to_string();
        let why = why.map(crate::clean::clean);
        if self.pass_notice(room, Movement::Departure, now_ms) {
            let line = match &why {
                Some(why) => format!("{who} has left ({why})\n"),
                None => format!("{who} has left\n"),
            };
            self.announce(room, line.as_bytes());
        }
        self.tell(crate::wire::Record::Leave {
            room: room_name,
            who,
            why,
        });
        self.vacate_if_empty(room);
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
}
