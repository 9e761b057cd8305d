//! The hub in a cluster: news of what local members do, for the other
//! nodes, and what other nodes' members do, applied here. Nothing here sees
//! Redis; `cluster.rs` carries the news both ways.

use super::Hub;
use crate::clean::clean;
use crate::names::{Name, check_single_script, parse_name};
use crate::notice::Movement;
use crate::wire::Record;

impl Hub {
    /// This node's id, in a cluster.
    pub fn node(&self) -> Option<&str> {
        self.config.node.as_deref()
    }

    /// Keeps `record` for the other nodes, in a cluster.
    pub fn tell(&mut self, record: Record) {
        if let Some(news) = &mut self.news {
            news.push(record);
        }
    }

    /// The news of this turn, in order.
    pub fn take_news(&mut self) -> Vec<Record> {
        self.news.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Whether the cluster link is up (names can be given out).
    pub fn set_cluster_up(&mut self, up: bool) {
        self.cluster_up = up;
    }

    /// In a cluster whose link is down: no name can be given out now.
    pub fn names_unavailable(&self) -> bool {
        self.news.is_some() && !self.cluster_up
    }

    /// In a cluster: `name` is to be asked for; the member waits.
    pub fn request_claim(&mut self, key: usize, name: Name, first: bool) {
        self.claims.push((key, name, first));
    }

    /// The names asked for this turn.
    pub fn take_claims(&mut self) -> Vec<(usize, Name, bool)> {
        std::mem::take(&mut self.claims)
    }

    /// A notice to every local member in a room, wherever it is.
    pub fn tell_everyone(&mut self, line: &[u8]) {
        let rooms: Vec<usize> = self
            .rooms
            .iter()
            .filter(|(_, r)| !r.members.is_empty())
            .map(|(id, _)| id)
            .collect();
        for room in rooms {
            self.announce(room, line);
        }
    }

    /// `(key, name)` of every local member that holds a name (not an address
    /// identity).
    pub fn local_names(&self) -> Vec<(usize, String)> {
        self.roster
            .iter()
            .filter(|(_, m)| m.receives() && !m.who.contains('@'))
            .map(|(key, m)| (key, m.who.to_string()))
            .collect()
    }

    /// The names (not address identities) `node`'s members hold.
    pub fn remote_names_of(&self, node: &str) -> Vec<String> {
        self.remotes
            .of_node(node)
            .into_iter()
            .map(|id| self.remotes.get(id).who.to_string())
            .filter(|who| !who.contains('@'))
            .collect()
    }

    /// A topic read from Redis, for a room that exists here.
    pub fn set_topic(&mut self, room: &str, text: &str) {
        if let Some(id) = self.rooms.find(room) {
            self.rooms.get_mut(id).topic = (!text.is_empty()).then(|| text.into());
        }
    }

    /// A valid name that nobody on any node holds and that looks like no
    /// one's, or the line explaining why not.
    pub fn check_name(&self, key: usize, raw: &[u8]) -> Result<Name, String> {
        let invalid = |why: String| format!("*** invalid name: {} ({why})\n", clean(raw));
        let name = parse_name(raw).map_err(invalid)?;
        let display = &name.display;
        if self.roster.held_by_other(key, &name.key) || self.remotes.find(display).is_some() {
            return Err(format!("*** name taken: {display}\n"));
        }
        let like = self
            .roster
            .look_alike(key, &name.skeleton)
            .or_else(|| self.remotes.look_alike(&name.skeleton));
        if let Some(like) = like {
            return Err(format!("*** name taken: {display} (looks like {like})\n"));
        }
        check_single_script(&name).map_err(invalid)?;
        Ok(name)
    }

    /// `(who, room)` of every local member in a room: what this node tells
    /// the cluster it holds.
    pub fn local_users(&self) -> Vec<(String, String)> {
        self.roster
            .iter()
            .filter(|(_, m)| m.receives())
            .map(|(_, m)| {
                let room = &self.rooms.get(m.room as usize).name;
                (m.who.to_string(), room.to_string())
            })
            .collect()
    }

    /// The names in `room` on every node, in order of arrival.
    pub(super) fn names_in_order(&self, room: usize) -> Vec<&str> {
        let r = self.rooms.get(room);
        let mut here: Vec<(u32, &str)> = r
            .members
            .iter()
            .filter_map(|&key| self.roster.get(key))
            .map(|m| (m.joined_seq, &*m.who))
            .chain(r.remote.iter().map(|&id| {
                let remote = self.remotes.get(id);
                (remote.seq, &*remote.who)
            }))
            .collect();
        here.sort_unstable();
        here.into_iter().map(|(_, who)| who).collect()
    }

    // ----- what other nodes' members do ------------------------------------------

    /// `who` of `node` is in `room`; announced to the room's local members
    /// if `announce`. Nothing changes if it is already known there.
    pub fn remote_arrive(
        &mut self,
        node: &str,
        room: &str,
        who: &str,
        announce: bool,
        now_ms: u64,
    ) {
        if self.remotes.find_on(node, who).is_some() {
            return;
        }
        let Ok(room) = self.rooms.find_or_create(room) else {
            log::warn!("cluster: no room left for {who} of {node}");
            return;
        };
        let seq = self.roster.next_seq();
        let id = self.remotes.insert(node, who, room, seq);
        self.seat_remote(id, room);
        if announce && self.pass_notice(room, Movement::Arrival, now_ms) {
            self.announce(room, format!("{who} has arrived\n").as_bytes());
        }
    }

    /// Puts remote member `id` in `room`'s list.
    fn seat_remote(&mut self, id: usize, room: usize) {
        let r = self.rooms.get_mut(room);
        let slot = r.remote.len();
        r.remote.push(id);
        r.who_text = None;
        let remote = self.remotes.get_mut(id);
        remote.room = room as u32;
        remote.room_slot = slot as u32;
    }

    /// Takes remote member `id` out of its room's list; returns the room.
    fn unseat_remote(&mut self, id: usize) -> usize {
        let remote = self.remotes.get(id);
        let (room, slot) = (remote.room as usize, remote.room_slot as usize);
        let r = self.rooms.get_mut(room);
        r.remote.swap_remove(slot);
        r.who_text = None;
        if let Some(&moved) = r.remote.get(slot) {
            self.remotes.get_mut(moved).room_slot = slot as u32;
        }
        room
    }

    /// `who` of `node` left, maybe saying why; announced in its room.
    pub fn remote_leave(
        &mut self,
        node: &str,
        who: &str,
        why: Option<&str>,
        announce: bool,
        now_ms: u64,
    ) {
        let Some(id) = self.remotes.find_on(node, who) else {
            return;
        };
        let room = self.unseat_remote(id);
        self.remotes.remove(id);
        if announce && self.pass_notice(room, Movement::Departure, now_ms) {
            // `why` was checked clean by `wire::decode`.
            let line = match why {
                Some(why) => format!("{who} has left ({why})\n"),
                None => format!("{who} has left\n"),
            };
            self.announce(room, line.as_bytes());
        }
        self.vacate_if_empty(room);
    }

    /// `who` of `node` moved to `to`.
    pub fn remote_move(&mut self, node: &str, to: &str, who: &str, now_ms: u64) {
        let Some(id) = self.remotes.find_on(node, who) else {
            return;
        };
        let Ok(to) = self.rooms.find_or_create(to) else {
            return;
        };
        let from = self.unseat_remote(id);
        let line = format!("{who} has gone to {}\n", self.rooms.get(to).name);
        self.announce(from, line.as_bytes());
        self.vacate_if_empty(from);
        self.remotes.get_mut(id).seq = self.roster.next_seq();
        self.seat_remote(id, to);
        if self.pass_notice(to, Movement::Arrival, now_ms) {
            self.announce(to, format!("{who} has arrived\n").as_bytes());
        }
    }

    /// `old` of `node` is now known as `new`.
    pub fn remote_nick(&mut self, node: &str, old: &str, new: &str) {
        let Some(id) = self.remotes.find_on(node, old) else {
            return;
        };
        self.remotes.rename(id, new);
        let room = self.remotes.get(id).room as usize;
        self.rooms.get_mut(room).who_text = None;
        self.announce(room, format!("{old} is now known as {new}\n").as_bytes());
    }

    /// A chat line from another node; false if it does not fit this turn
    /// (then nothing was done).
    pub fn remote_say(&mut self, room: &str, who: &str, text: &str, me: bool) -> bool {
        let Some(room) = self.rooms.find(room) else {
            return true; // Nobody here is in it.
        };
        if self.rooms.get(room).members.is_empty() {
            return true;
        }
        // `who` and `text` were checked clean by `wire::decode`.
        self.broadcast(room, true, |arena, _| {
            if me {
                arena.extend_from_slice(b"* ");
            }
            arena.extend_from_slice(who.as_bytes());
            arena.extend_from_slice(if me { b" " } else { b": " });
            arena.extend_from_slice(text.as_bytes());
            arena.push(b'\n');
        })
        .is_some()
    }

    /// Another node's member set `room`'s topic.
    pub fn remote_topic(&mut self, room: &str, who: &str, text: &str) {
        let Some(room) = self.rooms.find(room) else {
            return;
        };
        self.rooms.get_mut(room).topic = Some(text.into());
        self.announce(
            room,
            format!("*** {who} set the topic: {text}\n").as_bytes(),
        );
    }

    /// A private line from another node's member; false if it does not fit
    /// this turn for its recipient.
    pub fn remote_msg(&mut self, to: &str, from: &str, text: &str) -> bool {
        let Some(key) = self.roster.find(to.as_bytes()) else {
            return true; // Not here (any more): at most once.
        };
        let line = format!("{from} (private): {text}\n");
        if !self.fits_one(key, line.len()) {
            return false;
        }
        self.send(key, line.as_bytes());
        true
    }

    /// Every member of `node` leaves (it died or shut down).
    pub fn drop_node(&mut self, node: &str, now_ms: u64) {
        for id in self.remotes.of_node(node) {
            let who = self.remotes.get(id).who.to_string();
            self.remote_leave(node, &who, None, true, now_ms);
        }
    }

    /// What `node` holds now, as read from Redis: members not known are
    /// added, members gone are removed, quietly (this is convergence after
    /// an outage, not news).
    pub fn converge_node(&mut self, node: &str, users: &[(String, String)], now_ms: u64) {
        let known: Vec<String> = self
            .remotes
            .of_node(node)
            .into_iter()
            .map(|id| self.remotes.get(id).who.to_string())
            .collect();
        for who in &known {
            if !users.iter().any(|(w, _)| w == who) {
                self.remote_leave(node, who, None, false, now_ms);
            }
        }
        for (who, room) in users {
            match self.remotes.find_on(node, who) {
                Some(id) if *self.rooms.get(self.remotes.get(id).room as usize).name == **room => {}
                Some(_) => self.remote_move(node, room, who, now_ms),
                None => self.remote_arrive(node, room, who, false, now_ms),
            }
        }
    }

    /// A name this node claimed while the cluster link was down turned out
    /// to be another node's: the local member goes back to its address
    /// identity, and is told.
    pub fn lose_name(&mut self, key: usize, address: &str) {
        let old = &self.member(key).who;
        if &**old == address {
            return;
        }
        let notice = format!(
            "*** {old} was taken on another node while the cluster link was down; you are {address}\n"
        );
        self.send(key, notice.as_bytes());
        let key_of = crate::names::name_key(address);
        let name = Name {
            display: address.to_string(),
            skeleton: crate::names::name_skeleton(&key_of),
            key: key_of,
        };
        self.rename(key, name);
    }
}
