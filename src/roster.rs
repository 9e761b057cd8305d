//! Who is here: every member by its key, the names they hold, and the order
//! they joined in.
//!
//! A member's key is its connection's key (its poll token), so the server
//! and the hub talk about the same client by the same number. Names are held
//! twice: by [`name_key`] (the same name in any case or compatibility form)
//! and by [`name_skeleton`] (a name that looks like it).

use std::collections::HashMap;

use crate::member::{Member, Phase};
use crate::names::{Name, name_key, name_skeleton};

/// The members and their names.
#[derive(Debug, Default)]
pub struct Roster {
    /// Indexed by key; `None` where no client is.
    members: Vec<Option<Member>>,
    /// Members present.
    len: usize,
    /// Names taken with `/nick` or `--ask-name`, by [`name_key`].
    names: HashMap<String, usize>,
    /// The same names by [`name_skeleton`], to refuse look-alikes.
    skeletons: HashMap<String, usize>,
    next_joined_seq: u32,
}

impl Roster {
    /// Adds a member under `key` (a free key: its connection's).
    pub fn insert(&mut self, key: usize, member: Member) {
        if self.members.len() <= key {
            self.members.resize_with(key + 1, || None);
        }
        debug_assert!(self.members[key].is_none(), "key {key} is taken");
        self.members[key] = Some(member);
        self.len += 1;
    }

    /// Takes the member under `key` away; its name must be released first.
    pub fn remove(&mut self, key: usize) -> Option<Member> {
        let member = self.members.get_mut(key)?.take()?;
        debug_assert_ne!(member.phase, Phase::Joined, "departs first");
        self.len -= 1;
        // Give back the tail of the index once it is empty.
        while self.members.last().is_some_and(Option::is_none) {
            self.members.pop();
        }
        if self.members.capacity() > 2 * self.members.len() + 64 {
            self.members.shrink_to(self.members.len() * 3 / 2);
        }
        Some(member)
    }

    pub fn get(&self, key: usize) -> Option<&Member> {
        self.members.get(key)?.as_ref()
    }

    pub fn get_mut(&mut self, key: usize) -> Option<&mut Member> {
        self.members.get_mut(key)?.as_mut()
    }

    /// Members present.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every member with its key.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Member)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(key, m)| Some((key, m.as_ref()?)))
    }

    /// Marks `key` as joined, in arrival order.
    pub fn mark_joined(&mut self, key: usize) {
        let seq = self.next_seq();
        let member = self.get_mut(key).expect("present");
        member.phase = Phase::Joined;
        member.joined_seq = seq;
    }

    /// Marks `key` as gone and frees its name. Returns false if it was not
    /// joined (then nothing changes but the phase).
    pub fn mark_gone(&mut self, key: usize) -> bool {
        self.release_name(key);
        let member = self.get_mut(key).expect("present");
        let was_joined = member.phase == Phase::Joined;
        member.phase = Phase::Gone;
        was_joined
    }

    /// True if someone but `key` holds the name `name_key`.
    pub fn held_by_other(&self, key: usize, name_key: &str) -> bool {
        self.names
            .get(name_key)
            .is_some_and(|&holder| holder != key)
    }

    /// The name of whoever but `key` holds a name with this skeleton.
    pub fn look_alike(&self, key: usize, skeleton: &str) -> Option<&str> {
        let holder = *self.skeletons.get(skeleton)?;
        (holder != key).then(|| &*self.get(holder).expect("holders are present").who)
    }

    /// Gives `key` the name (checked by [`Hub::check_name`](crate::hub::Hub::check_name)); its old one
    /// is freed.
    pub fn take_name(&mut self, key: usize, name: Name) {
        self.release_name(key);
        self.names.insert(name.key, key);
        self.skeletons.insert(name.skeleton, key);
        self.get_mut(key).expect("present").who = name.display.into_boxed_str();
    }

    /// Frees the name `key` holds, in both maps. Only entries that are its
    /// own are removed: an address identity holds none, and must not free a
    /// name that happens to share its key.
    fn release_name(&mut self, key: usize) {
        let who = &self.get(key).expect("present").who;
        let name_key = name_key(who);
        let skeleton = name_skeleton(&name_key);
        if self.names.get(&name_key) == Some(&key) {
            self.names.remove(&name_key);
        }
        if self.skeletons.get(&skeleton) == Some(&key) {
            self.skeletons.remove(&skeleton);
        }
    }

    /// The joined member called `name` (a taken name, any case, or an
    /// address identity).
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        let name = std::str::from_utf8(name).ok()?;
        let key = match self.names.get(&name_key(name)) {
            Some(&key) => key,
            // Only an address identity is not in the map, and every address
            // has a colon, which no name may hold: anything else is nobody
            // here, without a walk over every member.
            None if name.contains(':') => self.iter().find(|(_, m)| &*m.who == name)?.0,
            None => return None,
        };
        self.get(key)?.receives().then_some(key)
    }

    /// Gives `key` a new place in the order of arrival (it moved rooms).
    pub fn arrive_again(&mut self, key: usize) {
        let seq = self.next_seq();
        self.get_mut(key).expect("present").joined_seq = seq;
    }

    /// The next place in the order of arrival (shared with other nodes'
    /// members, in a cluster).
    pub fn next_seq(&mut self) -> u32 {
        let seq = self.next_joined_seq;
        self.next_joined_seq = seq.wrapping_add(1);
        seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::parse_name;
    use crate::out_queue::OutQueue;

    fn roster(names: &[&str]) -> Roster {
        let mut r = Roster::default();
        for (key, who) in names.iter().enumerate() {
            r.insert(key, Member::new((*who).into(), OutQueue::default()));
            r.mark_joined(key);
        }
        r
    }

    fn joined(r: &Roster) -> usize {
        r.iter().filter(|(_, m)| m.phase == Phase::Joined).count()
    }

    #[test]
    fn names_are_held_until_released() {
        let mut r = roster(&["127.0.0.1:1", "127.0.0.1:2"]);
        r.take_name(0, parse_name(b"alice").unwrap());
        assert!(r.held_by_other(1, &name_key("ALICE")));
        assert!(!r.held_by_other(0, &name_key("ALICE")), "its own name");
        let like = name_skeleton(&name_key("аlice"));
        assert_eq!(r.look_alike(1, &like), Some("alice"));
        assert_eq!(r.find(b"Alice"), Some(0));
        assert_eq!(r.find(b"127.0.0.1:2"), Some(1));
        assert!(r.mark_gone(0));
        assert!(
            !r.held_by_other(1, &name_key("alice")),
            "freed when it leaves"
        );
        assert_eq!(r.look_alike(1, &like), None);
        assert_eq!(r.find(b"alice"), None);
        assert_eq!(joined(&r), 1);
        assert!(!r.mark_gone(0), "leaving twice changes nothing");
        assert_eq!(joined(&r), 1);
    }

    #[test]
    fn arriving_again_goes_to_the_end_of_the_order() {
        let mut r = roster(&["c", "a", "b"]);
        let seq = |r: &Roster, k: usize| r.get(k).unwrap().joined_seq;
        assert!(seq(&r, 0) < seq(&r, 1) && seq(&r, 1) < seq(&r, 2));
        r.arrive_again(0);
        assert!(seq(&r, 1) < seq(&r, 2) && seq(&r, 2) < seq(&r, 0));
    }

    #[test]
    fn keys_come_and_go() {
        let mut r = roster(&["a", "b", "c"]);
        r.mark_gone(2);
        r.remove(2);
        r.mark_gone(0);
        r.remove(0);
        assert_eq!(r.iter().map(|(key, _)| key).collect::<Vec<_>>(), [1]);
        assert_eq!(r.len(), 1);
        assert!(r.get(0).is_none());
    }
}
