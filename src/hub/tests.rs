//! The hub's ordering rules, played turn by turn without a socket: a
//! "socket" is a writer that takes a given number of bytes per turn.

use std::io::{self, IoSlice, Write};

use super::*;
use crate::config::SlowClient;
use crate::member::Phase;
use crate::out_queue::{Flushed, WriteLimits};

/// A socket that takes `room` bytes, then says `WouldBlock`.
struct Socket {
    got: Vec<u8>,
    room: usize,
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(self.room - n);
            self.got.extend_from_slice(&b[..take]);
            n += take;
        }
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const OPEN: WriteLimits = WriteLimits {
    max_write: usize::MAX,
    budget: usize::MAX,
};

fn hub() -> Hub {
    Hub::new(HubConfig {
        cap: QueueCap {
            max_output: 1 << 20,
            policy: SlowClient::Disconnect,
        },
        who_on_join: false,
        history_lines: 0,
        history_bytes: 0,
        notice_rate: 0,
        default_room: "#lobby".into(),
        max_rooms: 10,
        node: None,
    })
}

/// A hub with members 0..n joined, their greetings and arrivals flushed.
fn room_of(n: usize) -> (Hub, Vec<Socket>) {
    let mut hub = hub();
    for key in 0..n {
        hub.add(key, format!("m{key}").into_boxed_str());
        hub.join(key, 0);
    }
    let mut sockets: Vec<Socket> = (0..n)
        .map(|_| Socket {
            got: Vec::new(),
            room: usize::MAX,
        })
        .collect();
    end_turn(&mut hub, &mut sockets);
    for s in &mut sockets {
        s.got.clear();
    }
    (hub, sockets)
}

/// Flushes everyone once, seals, and ends the turn, as the server does.
fn end_turn(hub: &mut Hub, sockets: &mut [Socket]) {
    let mut visit = Vec::new();
    hub.take_visit(&mut visit);
    let mut backlog = Vec::new();
    for &key in &visit {
        let (queue, arena) = hub.outbox(key);
        let report = queue.write_to(&mut sockets[key], arena, OPEN);
        assert!(!matches!(report.how, Flushed::Failed(_)));
        if !queue.is_empty() {
            backlog.push(key);
        }
    }
    hub.seal(&backlog);
    hub.end_turn();
}

fn say(hub: &mut Hub, key: usize, text: &str) {
    let who = hub.member(key).who.clone();
    let room = hub.room_of(key);
    let line = hub.broadcast(room, false, |arena: &mut Vec<u8>, _: &Roster| {
        arena.extend_from_slice(format!("{who}: {text}\n").as_bytes())
    });
    let line = line.expect("within the budget");
    assert_eq!(
        hub.room(room).arena[line],
        *format!("{who}: {text}\n").as_bytes()
    );
}

#[test]
fn a_private_line_never_overtakes_a_broadcast_queued_before_it() {
    let (mut hub, mut sockets) = room_of(2);
    say(&mut hub, 0, "first");
    hub.send(1, b"*** private\n");
    say(&mut hub, 0, "second");
    end_turn(&mut hub, &mut sockets);
    assert_eq!(
        String::from_utf8_lossy(&sockets[1].got),
        "m0: first\n*** private\nm0: second\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&sockets[0].got),
        "m0: first\nm0: second\n"
    );
}

#[test]
fn a_departure_is_announced_exactly_once() {
    let (mut hub, mut sockets) = room_of(3);
    hub.depart(2, Some(b"bye"), true, 0);
    hub.depart(2, None, true, 0);
    hub.depart(2, Some(b"again"), true, 0);
    end_turn(&mut hub, &mut sockets);
    assert_eq!(
        String::from_utf8_lossy(&sockets[0].got),
        "m2 has left (bye)\n"
    );
    assert_eq!(sockets[2].got, b"", "the leaver gets nothing more");
    let joined = hub.roster.iter().filter(|(_, m)| m.phase == Phase::Joined);
    assert_eq!(joined.count(), 2);
    // Its name is free and it is not listed.
    assert_eq!(hub.who_text(0).chunk.bytes(), b"*** 2 here: m0, m1\n");
}

#[test]
fn sealing_keeps_every_byte_in_order_across_turns() {
    let (mut hub, mut sockets) = room_of(2);
    // Member 1's socket takes 7 bytes a turn; member 0's takes everything.
    let mut expected = Vec::new();
    for turn in 0..50 {
        sockets[1].room = 7;
        for line in 0..3 {
            let text = format!("t{turn} l{line}");
            say(&mut hub, 0, &text);
            expected.extend_from_slice(format!("m0: {text}\n").as_bytes());
        }
        if turn % 7 == 0 {
            hub.send(1, format!("*** note {turn}\n").as_bytes());
            // The note comes after this turn's lines so far.
            let at = expected.len();
            expected.splice(at..at, format!("*** note {turn}\n").bytes());
        }
        end_turn(&mut hub, &mut sockets);
        assert!(hub.member(1).output.arena_low().is_none(), "sealed");
    }
    sockets[1].room = usize::MAX;
    hub.mark_dirty(1);
    end_turn(&mut hub, &mut sockets);
    assert_eq!(
        String::from_utf8_lossy(&sockets[1].got),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(
        sockets[0].got.len(),
        expected.len() - count_notes(&expected)
    );
}

fn count_notes(bytes: &[u8]) -> usize {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| l.starts_with("*** note"))
        .map(|l| l.len() + 1)
        .sum()
}

#[test]
fn a_turn_gives_one_member_at_most_its_budget() {
    let (mut hub, _sockets) = room_of(2);
    let line = vec![b'x'; 1000];
    let mut sent = 0;
    while hub.fits_one(1, line.len()) {
        hub.send(1, &line);
        sent += line.len();
    }
    assert!(
        sent <= TURN_BUDGET && sent + line.len() > TURN_BUDGET,
        "{sent}"
    );
    // Broadcasts now wait too: member 1 would get them on top.
    assert!(
        hub.broadcast(0, false, |a: &mut Vec<u8>, _: &Roster| a
            .extend_from_slice(&line))
            .is_none()
    );
    // A new turn starts at nothing.
    hub.end_turn();
    assert!(hub.fits_one(1, line.len()));
    assert!(hub.fits_everyone(0, line.len()));
}

#[test]
fn a_newcomer_does_not_see_what_came_before_it() {
    let (mut hub, mut sockets) = room_of(1);
    say(&mut hub, 0, "before");
    hub.add(1, "m1".into());
    sockets.push(Socket {
        got: Vec::new(),
        room: usize::MAX,
    });
    hub.join(1, 0);
    say(&mut hub, 0, "after");
    end_turn(&mut hub, &mut sockets);
    assert_eq!(
        String::from_utf8_lossy(&sockets[1].got),
        "You are m1\nm0: after\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&sockets[0].got),
        "m0: before\nm1 has arrived\nm0: after\n"
    );
}

fn text(socket: &Socket) -> String {
    String::from_utf8_lossy(&socket.got).into_owned()
}

#[test]
fn a_line_reaches_its_room_only() {
    let (mut hub, mut sockets) = room_of(4);
    let help = hub.rooms.find_or_create("#help").unwrap();
    hub.move_to(2, help, 0);
    hub.move_to(3, help, 0);
    end_turn(&mut hub, &mut sockets);
    for s in &mut sockets {
        s.got.clear();
    }
    say(&mut hub, 0, "in the lobby");
    say(&mut hub, 2, "in help");
    end_turn(&mut hub, &mut sockets);
    assert_eq!(text(&sockets[1]), "m0: in the lobby\n");
    assert_eq!(text(&sockets[3]), "m2: in help\n");
    assert_eq!(hub.rooms.listing(), [("#lobby", 2), ("#help", 2)]);
}

#[test]
fn a_mover_sees_its_old_room_up_to_the_move_then_its_new_room_after_its_arrival() {
    let (mut hub, mut sockets) = room_of(3);
    let help = hub.rooms.find_or_create("#help").unwrap();
    hub.move_to(2, help, 0);
    end_turn(&mut hub, &mut sockets);
    for s in &mut sockets {
        s.got.clear();
    }
    // One turn: the lobby talks, the help room talks, member 1 moves, both
    // talk again. Member 1's socket takes 5 bytes a turn, so its queue is
    // sealed across turns while it holds ranges of both arenas.
    sockets[1].room = 5;
    say(&mut hub, 0, "lobby before");
    say(&mut hub, 2, "help before");
    hub.move_to(1, help, 0);
    say(&mut hub, 0, "lobby after");
    say(&mut hub, 2, "help after");
    end_turn(&mut hub, &mut sockets);
    for _ in 0..100 {
        sockets[1].room = 5;
        hub.mark_dirty(1);
        end_turn(&mut hub, &mut sockets);
    }
    assert_eq!(
        text(&sockets[1]),
        "m0: lobby before\n*** you are in #help\n*** 2 here: m2, m1\nm2: help after\n"
    );
    assert_eq!(
        text(&sockets[0]),
        "m0: lobby before\nm1 has gone to #help\nm0: lobby after\n"
    );
    assert_eq!(
        text(&sockets[2]),
        "m2: help before\nm1 has arrived\nm2: help after\n"
    );
}

#[test]
fn an_empty_room_goes_with_its_topic_and_history() {
    let (mut hub, mut sockets) = room_of(2);
    let help = hub.rooms.find_or_create("#help").unwrap();
    hub.move_to(1, help, 0);
    hub.rooms.get_mut(help).topic = Some("tea".into());
    end_turn(&mut hub, &mut sockets);
    hub.move_to(1, 0, 0);
    end_turn(&mut hub, &mut sockets);
    assert_eq!(hub.rooms.find("#help"), None);
    assert_eq!(hub.rooms.len(), 1);
    let again = hub.rooms.find_or_create("#help").unwrap();
    assert_eq!(hub.rooms.get(again).topic, None);
}

#[test]
fn a_name_lost_to_another_node_goes_back_to_the_address_and_is_announced_once() {
    let (mut hub, mut sockets) = room_of(2);
    let name = hub.check_name(0, b"alice").unwrap();
    hub.rename(0, name);
    end_turn(&mut hub, &mut sockets);
    hub.lose_name(0, "127.0.0.1:5");
    hub.lose_name(0, "127.0.0.1:5");
    end_turn(&mut hub, &mut sockets);
    assert_eq!(
        text(&sockets[0]),
        "m0 is now known as alice\n\
         *** alice was taken on another node while the cluster link was down; you are 127.0.0.1:5\n\
         alice is now known as 127.0.0.1:5\n"
    );
    assert_eq!(
        text(&sockets[1]),
        "m0 is now known as alice\nalice is now known as 127.0.0.1:5\n"
    );
    assert!(
        hub.check_name(1, b"alice").is_ok(),
        "the name is free again"
    );
}
