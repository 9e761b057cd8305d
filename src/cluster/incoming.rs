//! What comes from Redis: replies to this node's commands, and other nodes'
//! messages, checked and applied to the hub.

use log::{debug, warn};
use mio::Registry;

use super::{Answer, Cluster, Pending, READ_BUDGET, SUB, State};
use crate::hub::Hub;
use crate::log_gate::held_note;
use crate::redis_link::RedisLink;
use crate::resp::Value;
use crate::rooms::parse_room_name;
use crate::wire::{self, Record};

/// What became of a name this node held through an outage.
#[derive(Debug)]
pub struct Lost {
    pub key: usize,
    pub who: String,
}

impl Cluster {
    /// A poll event on one of the two connections: writes complete or go
    /// on; reads are left for [`Cluster::pump`], which runs once a turn.
    pub fn on_event(
        &mut self,
        token: mio::Token,
        writable: bool,
        hub: &mut Hub,
        registry: &Registry,
        now_ms: u64,
    ) {
        let link = if token == SUB {
            &mut self.sub
        } else {
            &mut self.cmd
        };
        let Some(link) = link else {
            return;
        };
        if writable && let Err(e) = link.on_writable(registry) {
            self.down(hub, registry, now_ms, &format!("connect: {e}"));
        }
    }

    /// Reads both connections and applies what came, within the turn: the
    /// subscriber is read only while no received record waits for room.
    pub fn pump(&mut self, hub: &mut Hub, registry: &Registry, now_ms: u64) {
        if self.state_is_down() {
            return;
        }
        if let Err(why) = self.read_replies(hub, registry, now_ms) {
            return self.down(hub, registry, now_ms, &why);
        }
        if self.apply_inbox(hub, now_ms) {
            return;
        }
        match self.read_messages(now_ms) {
            Ok(true) => {}
            // Commands still work: only the subscriber was dropped.
            Ok(false) => return self.resubscribe(hub, registry, now_ms),
            Err(why) => return self.down(hub, registry, now_ms, &why),
        }
        if std::mem::take(&mut self.lost_lines) && self.is_up() {
            hub.tell_everyone(b"*** cluster link lost some lines\n");
        }
        self.apply_inbox(hub, now_ms);
    }

    fn state_is_down(&self) -> bool {
        matches!(self.state, State::Down { .. })
    }

    fn read_replies(
        &mut self,
        hub: &mut Hub,
        registry: &Registry,
        now_ms: u64,
    ) -> Result<(), String> {
        let Some(cmd) = &mut self.cmd else {
            return Ok(());
        };
        if !cmd.ready() {
            return Ok(());
        }
        if !cmd.read(usize::MAX).map_err(|e| format!("read: {e}"))? {
            return Err("Redis closed the connection".into());
        }
        while let Some(reply) = next(&mut self.cmd)? {
            let pending = self.pending.pop_front().ok_or("a reply nobody asked for")?;
            self.reply(pending, reply, hub, now_ms);
        }
        self.flush(hub, registry, now_ms);
        Ok(())
    }

    /// Reads other nodes' messages into the inbox; `Ok(false)` if Redis
    /// closed the subscriber connection.
    fn read_messages(&mut self, now_ms: u64) -> Result<bool, String> {
        let Some(sub) = &mut self.sub else {
            return Ok(true);
        };
        if !sub.ready() {
            return Ok(true);
        }
        match sub.read(READ_BUDGET) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(false),
            Err(e) => return Err(format!("read: {e}")),
        }
        while let Some(value) = next(&mut self.sub)? {
            self.message(value, now_ms);
        }
        Ok(true)
    }

    /// A pushed message: `pmessage <pattern> <channel> <payload>`.
    fn message(&mut self, value: Value, now_ms: u64) {
        let Value::Array(Some(items)) = value else {
            return;
        };
        let payload = match items.as_slice() {
            [Value::Bulk(Some(kind)), _, _, Value::Bulk(Some(payload))] if kind == b"pmessage" => {
                payload
            }
            _ => return, // Subscription confirmations.
        };
        let message = match wire::decode(payload, self.max_text) {
            Ok(message) => message,
            Err(why) => {
                if let Some(held) = self.gate.pass(now_ms) {
                    warn!(
                        "cluster: dropped a malformed message: {why}{}",
                        held_note(held)
                    );
                }
                return;
            }
        };
        let Some(gap) = self.seen(&message.node, message.seq, now_ms) else {
            return; // Our own.
        };
        if gap {
            if let Some(held) = self.gate.pass(now_ms) {
                warn!(
                    "cluster: messages from {} were lost{}",
                    message.node,
                    held_note(held)
                );
            }
            self.lost_lines = true;
        }
        for record in message.records {
            self.inbox.push_back((message.node.clone(), record));
        }
    }

    /// A reply to one of this node's commands.
    fn reply(&mut self, pending: Pending, reply: Value, hub: &mut Hub, now_ms: u64) {
        if let Value::Error(e) = &reply {
            warn!("cluster: Redis answered {}", String::from_utf8_lossy(e));
        }
        match pending {
            Pending::Ignore => {}
            Pending::Claim(claim) => {
                let result = self.holder(&reply).map_or(Ok(()), |holder| {
                    let display = &claim.name.display;
                    Err(if crate::names::name_key(&holder) == claim.name.key {
                        format!("*** name taken: {display}\n")
                    } else {
                        format!("*** name taken: {display} (looks like {holder})\n")
                    })
                });
                self.answers.push(Answer { claim, result });
            }
            Pending::Reclaim { key, who } => {
                if self.holder(&reply).is_some() {
                    self.lost.push(Lost { key, who });
                }
            }
            Pending::Nodes => self.nodes(reply, hub, now_ms),
            Pending::Users { node } => {
                let users = pairs(&reply, |who, room| {
                    wire::check_who(who).is_ok() && parse_room_name(room.as_bytes()).is_ok()
                });
                hub.converge_node(&node, &users, now_ms);
                self.bootstrapped(hub, now_ms);
            }
            Pending::Topics => {
                for (room, text) in pairs(&reply, |_, text| crate::clean::is_clean(text.as_bytes()))
                {
                    hub.set_topic(&room, &text);
                }
                self.bootstrapped(hub, now_ms);
            }
        }
    }

    /// Who else holds a name, from the reply to `SET … NX GET`: nobody
    /// (nil) or this node means it is ours.
    fn holder(&self, reply: &Value) -> Option<String> {
        let Value::Bulk(Some(value)) = reply else {
            return None;
        };
        let value = String::from_utf8_lossy(value);
        let (node, who) = value.split_once(' ')?;
        (node != self.node).then(|| who.to_string())
    }

    /// The list of nodes: each one's users are read.
    fn nodes(&mut self, reply: Value, hub: &mut Hub, now_ms: u64) {
        let Value::Array(Some(items)) = reply else {
            return;
        };
        let mut asked = 0;
        for item in items {
            let Value::Bulk(Some(node)) = item else {
                continue;
            };
            let Ok(node) = String::from_utf8(node) else {
                continue;
            };
            if node == self.node || wire::check_node(&node).is_err() {
                continue;
            }
            self.peers.entry(node.clone()).or_insert(super::Peer {
                last_seen_ms: now_ms,
                next_seq: None,
            });
            let users = self.users_key(&node);
            self.command(&[b"HGETALL", users.as_bytes()], Pending::Users { node });
            asked += 1;
        }
        if let State::Bootstrapping { waiting } = &mut self.state {
            *waiting += asked;
        }
        self.bootstrapped(hub, now_ms);
    }

    /// Counts one bootstrap reply; the link is up when the last one is in.
    fn bootstrapped(&mut self, hub: &mut Hub, now_ms: u64) {
        if let State::Bootstrapping { waiting } = &mut self.state {
            *waiting = waiting.saturating_sub(1);
            if *waiting == 0 {
                self.up(hub, now_ms);
            }
        }
    }

    /// Names held through an outage that turned out to be another node's.
    pub fn take_lost(&mut self) -> Vec<Lost> {
        std::mem::take(&mut self.lost)
    }
}

/// The next value a link has read.
fn next(link: &mut Option<RedisLink>) -> Result<Option<Value>, String> {
    match link {
        Some(link) => link.next_value().map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

/// An `HGETALL` reply as checked pairs.
fn pairs(reply: &Value, check: impl Fn(&str, &str) -> bool) -> Vec<(String, String)> {
    let Value::Array(Some(items)) = reply else {
        return Vec::new();
    };
    items
        .chunks(2)
        .filter_map(|pair| match pair {
            [Value::Bulk(Some(a)), Value::Bulk(Some(b))] => {
                let a = String::from_utf8(a.clone()).ok()?;
                let b = String::from_utf8(b.clone()).ok()?;
                check(&a, &b).then_some((a, b))
            }
            _ => None,
        })
        .collect()
}

/// Applies one record of `node`'s; false if it does not fit this turn.
pub(super) fn apply(
    cluster: &mut Cluster,
    hub: &mut Hub,
    node: &str,
    record: &Record,
    now_ms: u64,
) -> bool {
    match record {
        Record::Say { room, who, text } => return hub.remote_say(room, who, text, false),
        Record::Me { room, who, text } => return hub.remote_say(room, who, text, true),
        Record::Msg { to, from, text } => return hub.remote_msg(to, from, text),
        Record::Arrive { room, who } => hub.remote_arrive(node, room, who, true, now_ms),
        Record::Leave { who, why, .. } => hub.remote_leave(node, who, why.as_deref(), true, now_ms),
        Record::Move { to, who, .. } => hub.remote_move(node, to, who, now_ms),
        Record::Nick { old, new, .. } => hub.remote_nick(node, old, new),
        Record::Topic { room, who, text } => hub.remote_topic(room, who, text),
        Record::Ping => {}
        Record::Hello => {
            debug!("cluster: node {node} (re)joined");
            let users = cluster.users_key(node);
            cluster.command(
                &[b"HGETALL", users.as_bytes()],
                Pending::Users {
                    node: node.to_string(),
                },
            );
        }
        Record::Bye => {
            log::info!("cluster: node {node} shut down: its users leave");
            cluster.forget_node(hub, node, now_ms);
        }
    }
    true
}
