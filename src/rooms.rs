//! The rooms of a hub: created by the first `/join`, looked up by name in
//! any case, removed when the last member leaves (the default room stays).

use std::collections::HashMap;

use slab::Slab;

use crate::limits::MAX_ROOM_NAME;
use crate::room::{History, Room};

/// The rooms, by id (a slab key) and by name.
#[derive(Debug)]
pub struct Rooms {
    rooms: Slab<Room>,
    /// Lower-cased names.
    by_name: HashMap<String, usize>,
    /// The room everyone starts in (never removed).
    default: usize,
    /// `--max-rooms`.
    max: usize,
    history_lines: usize,
    history_bytes: usize,
    notice_rate: u32,
}

/// `/join` of a room that does not exist while `--max-rooms` exist.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyRooms(pub usize);

impl Rooms {
    pub fn new(
        default_name: &str,
        max: usize,
        history_lines: usize,
        history_bytes: usize,
        notice_rate: u32,
    ) -> Rooms {
        let mut rooms = Rooms {
            rooms: Slab::new(),
            by_name: HashMap::new(),
            default: 0,
            max: max.max(1),
            history_lines,
            history_bytes,
            notice_rate,
        };
        rooms.default = rooms.add(default_name);
        rooms
    }

    fn add(&mut self, name: &str) -> usize {
        let history = History::new(self.history_lines, self.history_bytes);
        let id = self
            .rooms
            .insert(Room::new(name, history, self.notice_rate));
        self.by_name.insert(name.to_ascii_lowercase(), id);
        id
    }

    /// The room everyone starts in.
    pub fn default_id(&self) -> usize {
        self.default
    }

    pub fn get(&self, id: usize) -> &Room {
        &self.rooms[id]
    }

    pub fn get_mut(&mut self, id: usize) -> &mut Room {
        &mut self.rooms[id]
    }

    /// The room called `name` (with its `#`, any case).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// The room called `name`, created if needed.
    pub fn find_or_create(&mut self, name: &str) -> Result<usize, TooManyRooms> {
        if let Some(id) = self.find(name) {
            return Ok(id);
        }
        if self.rooms.len() >= self.max {
            return Err(TooManyRooms(self.max));
        }
        Ok(self.add(name))
    }

    /// Rooms now.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Members of the biggest room.
    pub fn biggest(&self) -> usize {
        self.rooms
            .iter()
            .map(|(_, r)| r.members.len())
            .max()
            .unwrap_or(0)
    }

    /// Every room with its id.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Room)> {
        self.rooms.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut Room)> {
        self.rooms.iter_mut()
    }

    /// `(name, members)`, most populous first (then in order of creation).
    pub fn listing(&self) -> Vec<(&str, usize)> {
        // A room emptied this turn is gone, though its arena stays until
        // the turn ends.
        let mut list: Vec<(usize, &str, usize)> = self
            .rooms
            .iter()
            .filter(|(id, r)| *id == self.default || r.population() > 0)
            .map(|(id, r)| (id, &*r.name, r.population()))
            .collect();
        list.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        list.into_iter().map(|(_, name, n)| (name, n)).collect()
    }

    /// Removes `id` if it is empty and not the default room; true if it was.
    pub fn remove_if_empty(&mut self, id: usize) -> bool {
        let room = &self.rooms[id];
        if id == self.default || room.population() > 0 {
            return false;
        }
        self.by_name.remove(&room.name.to_ascii_lowercase());
        self.rooms.remove(id);
        true
    }
}

/// Checks a room name: `#` then 1 to [`MAX_ROOM_NAME`] ASCII letters,
/// digits, `-` or `_`. ASCII only, so no two rooms can look alike: rooms
/// are listed to everyone. On failure, the reason shown after `*** invalid
/// room: NAME (`.
pub fn parse_room_name(raw: &[u8]) -> Result<&str, &'static str> {
    let Some(rest) = raw.strip_prefix(b"#") else {
        return Err("must start with #");
    };
    if rest.is_empty() {
        return Err("empty after #");
    }
    if rest.len() > MAX_ROOM_NAME {
        return Err("longer than 32 characters after #");
    }
    if !rest
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        return Err("only letters, digits, - and _ allowed");
    }
    Ok(std::str::from_utf8(raw).expect("ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        assert_eq!(parse_room_name(b"#help"), Ok("#help"));
        assert_eq!(parse_room_name(b"#Rust-lang_2"), Ok("#Rust-lang_2"));
        assert_eq!(parse_room_name(b"help"), Err("must start with #"));
        assert_eq!(parse_room_name(b"#"), Err("empty after #"));
        assert_eq!(
            parse_room_name(b"#a b"),
            Err("only letters, digits, - and _ allowed")
        );
        assert_eq!(
            parse_room_name("#hеlp".as_bytes()),
            Err("only letters, digits, - and _ allowed")
        );
        assert!(parse_room_name(format!("#{}", "a".repeat(32)).as_bytes()).is_ok());
        assert!(parse_room_name(format!("#{}", "a".repeat(33)).as_bytes()).is_err());
    }

    #[test]
    fn rooms_are_found_in_any_case_listed_by_size_and_removed_when_empty() {
        let mut rooms = Rooms::new("#lobby", 3, 0, 0, 0);
        let help = rooms.find_or_create("#Help").unwrap();
        assert_eq!(rooms.find("#HELP"), Some(help));
        assert_eq!(
            rooms.get(help).name.as_ref(),
            "#Help",
            "shown as first created"
        );
        let random = rooms.find_or_create("#random").unwrap();
        assert_eq!(rooms.find_or_create("#more"), Err(TooManyRooms(3)));
        rooms.get_mut(random).members.extend([1, 2]);
        rooms.get_mut(help).members.push(3);
        assert_eq!(
            rooms.listing(),
            [("#random", 2), ("#Help", 1), ("#lobby", 0)]
        );
        assert!(
            !rooms.remove_if_empty(rooms.default_id()),
            "the default stays"
        );
        assert!(!rooms.remove_if_empty(help));
        rooms.get_mut(help).members.clear();
        assert!(rooms.remove_if_empty(help));
        assert_eq!(rooms.find("#help"), None);
        assert_eq!(rooms.len(), 2);
    }
}
