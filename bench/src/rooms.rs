//! Rooms (`--rooms R`): which room each client is in, which clients
//! observe, and the `/join` exchange.
//!
//! Client `i` is in room `i mod R`, named `#r<i mod R>`. With R = 1 nobody
//! joins anything: everyone stays in the server's default room, as without
//! rooms. With R > 1 a client sends `/join #rK` once greeted and counts as
//! connected when the server answers with its `*** <n> here: …` line.
//!
//! Senders are clients `0..S`, so sender `j` is in room `j mod R`: each room
//! has ⌊S/R⌋ or ⌈S/R⌉ senders (exactly S/R when R divides S), and S ≥ R
//! gives every room at least one. Clients `S..S+R` are the first non-senders
//! of their rooms, one per room (R consecutive numbers cover every
//! remainder): each is its room's observer, whose receipt of a line
//! acknowledges it to its sender.

/// The room layout of a run.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub rooms: usize,
    pub senders: usize,
}

impl Layout {
    pub fn new(rooms: usize, senders: usize) -> Self {
        Layout {
            rooms: rooms.max(1),
            senders,
        }
    }

    /// Do clients join rooms at all?
    pub fn joins(&self) -> bool {
        self.rooms > 1
    }

    #[inline]
    pub fn room_of(&self, client: usize) -> usize {
        client % self.rooms
    }

    /// Is `client` its room's observer?
    #[inline]
    pub fn observes(&self, client: usize) -> bool {
        (self.senders..self.senders + self.rooms).contains(&client)
    }

    /// The line that takes `client` to its room.
    pub fn join_line(&self, client: usize) -> Vec<u8> {
        format!("/join #r{}\n", self.room_of(client)).into_bytes()
    }
}

/// What a line read while waiting for the answer to `/join` says.
#[derive(Debug, PartialEq, Eq)]
pub enum JoinReply {
    /// `*** <n> here: …`: in the room.
    Joined,
    /// The server refused or did not understand the command.
    Refused,
    /// Anything else (the greeting, notices, `*** you are in`, the topic).
    Other,
}

/// Classify one line (without its newline) read while joining.
pub fn join_reply(line: &[u8]) -> JoinReply {
    let Some(rest) = line.strip_prefix(b"*** ") else {
        return JoinReply::Other;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > 0 && rest[digits..].starts_with(b" here:") {
        return JoinReply::Joined;
    }
    const REFUSALS: [&[u8]; 4] = [
        b"too many rooms",
        b"invalid room",
        b"unknown command",
        b"usage:",
    ];
    if REFUSALS.iter().any(|r| rest.starts_with(r)) {
        JoinReply::Refused
    } else {
        JoinReply::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_spreads_senders_and_observers_over_rooms() {
        let l = Layout::new(4, 6);
        let rooms: Vec<usize> = (0..6).map(|s| l.room_of(s)).collect();
        assert_eq!(rooms, [0, 1, 2, 3, 0, 1]);
        let observers: Vec<usize> = (0..20).filter(|&c| l.observes(c)).collect();
        assert_eq!(observers, [6, 7, 8, 9]);
        let mut covered: Vec<usize> = observers.iter().map(|&c| l.room_of(c)).collect();
        covered.sort();
        assert_eq!(covered, [0, 1, 2, 3]);
        assert_eq!(l.join_line(9), b"/join #r1\n");
        // One room: the observer is client S, as without rooms.
        let one = Layout::new(1, 8);
        assert!(!one.joins());
        assert_eq!(
            (0..20).filter(|&c| one.observes(c)).collect::<Vec<_>>(),
            [8]
        );
    }

    #[test]
    fn join_replies() {
        assert_eq!(join_reply(b"*** 3 here: a, b, c"), JoinReply::Joined);
        assert_eq!(join_reply(b"*** 12 here: x"), JoinReply::Joined);
        assert_eq!(join_reply(b"*** you are in #r1"), JoinReply::Other);
        assert_eq!(join_reply(b"*** topic: 3 here: no"), JoinReply::Other);
        assert_eq!(join_reply(b"alice: *** 3 here: x"), JoinReply::Other);
        assert_eq!(
            join_reply(b"*** too many rooms (1000): join one of /rooms"),
            JoinReply::Refused
        );
        assert_eq!(
            join_reply(b"*** unknown command: /join (try /help)"),
            JoinReply::Refused
        );
    }
}
