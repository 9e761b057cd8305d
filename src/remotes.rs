//! The members of other nodes of a cluster, as this node knows them: their
//! names (which local clients may not take), the room each is in (for
//! `/who` and `/rooms`), and which node holds them (so that when a node
//! dies, its users leave).

use std::collections::HashMap;

use slab::Slab;

use crate::names::{name_key, name_skeleton};

/// A member of another node.
#[derive(Debug)]
pub struct Remote {
    pub who: Box<str>,
    pub node: Box<str>,
    /// The room it is in, by id in this node's rooms.
    pub room: u32,
    /// Its index in that room's list of remote members.
    pub room_slot: u32,
    /// Order of arrival, shared with local members, for `/who`.
    pub seq: u32,
}

/// Every remote member, by id (a slab key), by name and by node.
#[derive(Debug, Default)]
pub struct Remotes {
    members: Slab<Remote>,
    /// By [`name_key`] of `who`.
    by_name: HashMap<String, usize>,
    /// By [`name_skeleton`] of that key, to refuse look-alikes.
    by_skeleton: HashMap<String, usize>,
    by_node: HashMap<Box<str>, Vec<usize>>,
}

impl Remotes {
    pub fn get(&self, id: usize) -> &Remote {
        &self.members[id]
    }

    pub fn get_mut(&mut self, id: usize) -> &mut Remote {
        &mut self.members[id]
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member `node` holds under `who`.
    pub fn find_on(&self, node: &str, who: &str) -> Option<usize> {
        let id = *self.by_name.get(&name_key(who))?;
        (&*self.members[id].node == node).then_some(id)
    }

    /// The remote member called `who` (any case), on any node.
    pub fn find(&self, who: &str) -> Option<usize> {
        self.by_name.get(&name_key(who)).copied()
    }

    /// Adds a member of `node`; the caller puts it in its room.
    pub fn insert(&mut self, node: &str, who: &str, room: usize, seq: u32) -> usize {
        let id = self.members.insert(Remote {
            who: who.into(),
            node: node.into(),
            room: room as u32,
            room_slot: 0,
            seq,
        });
        self.index(id);
        self.by_node.entry(node.into()).or_default().push(id);
        id
    }

    fn index(&mut self, id: usize) {
        let key = name_key(&self.members[id].who);
        self.by_skeleton.insert(name_skeleton(&key), id);
        self.by_name.insert(key, id);
    }

    fn unindex(&mut self, id: usize) {
        let key = name_key(&self.members[id].who);
        let skeleton = name_skeleton(&key);
        if self.by_name.get(&key) == Some(&id) {
            self.by_name.remove(&key);
        }
        if self.by_skeleton.get(&skeleton) == Some(&id) {
            self.by_skeleton.remove(&skeleton);
        }
    }

    /// Renames a member.
    pub fn rename(&mut self, id: usize, new: &str) {
        self.unindex(id);
        self.members[id].who = new.into();
        self.index(id);
    }

    /// Takes a member away; the caller has taken it out of its room.
    pub fn remove(&mut self, id: usize) -> Remote {
        self.unindex(id);
        let remote = self.members.remove(id);
        if let Some(ids) = self.by_node.get_mut(&remote.node) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                self.by_node.remove(&remote.node);
            }
        }
        remote
    }

    /// The members `node` holds.
    pub fn of_node(&self, node: &str) -> Vec<usize> {
        self.by_node.get(node).cloned().unwrap_or_default()
    }

    /// The nodes that hold members.
    pub fn nodes(&self) -> Vec<Box<str>> {
        self.by_node.keys().cloned().collect()
    }

    /// The name of the remote member holding a name with this skeleton.
    pub fn look_alike(&self, skeleton: &str) -> Option<&str> {
        let holder = self.by_skeleton.get(skeleton)?;
        Some(&self.members[*holder].who)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::parse_name;

    #[test]
    fn remote_names_are_found_refused_and_freed() {
        let mut r = Remotes::default();
        let alice = r.insert("b", "alice", 0, 1);
        r.insert("b", "127.0.0.1:5000@b", 0, 2);
        r.insert("c", "bob", 0, 3);
        assert_eq!(r.find("ALICE"), Some(alice));
        assert_eq!(r.find_on("c", "alice"), None);
        let look_alike = parse_name("аlice".as_bytes()).unwrap();
        assert_eq!(r.look_alike(&look_alike.skeleton), Some("alice"));
        assert_eq!(r.of_node("b").len(), 2);
        r.rename(alice, "carol");
        assert_eq!(r.find("alice"), None);
        assert!(
            r.look_alike(&parse_name(b"alice").unwrap().skeleton)
                .is_none()
        );
        for id in r.of_node("b") {
            r.remove(id);
        }
        assert_eq!(r.nodes(), vec![Box::from("c")]);
    }
}
