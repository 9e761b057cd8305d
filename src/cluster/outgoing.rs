//! What this node tells the cluster: its members' news, one message per
//! channel per turn, with the users hash, names and topics kept in step.

use super::{Answer, Claim, Cluster, Pending, RELEASE};
use crate::hub::Hub;
use crate::wire::{self, Record};

impl Cluster {
    /// Publishes this turn's news: one message per channel, in order, and
    /// keeps the node's users and names in Redis up to date.
    pub fn publish_news(&mut self, news: Vec<Record>) {
        if !self.is_up() || news.is_empty() {
            return; // At most once: news from an outage stays here.
        }
        let mut by_channel: Vec<(String, Vec<Record>)> = Vec::new();
        for record in news {
            self.record_in_redis(&record);
            let channel = self.channel_of(&record);
            match by_channel.iter_mut().find(|(c, _)| *c == channel) {
                Some((_, records)) => records.push(record),
                None => by_channel.push((channel, vec![record])),
            }
        }
        for (channel, records) in by_channel {
            self.publish(&channel, &records);
        }
    }

    pub(super) fn publish_control(&mut self, records: &[Record]) {
        let channel = self.key("ctl");
        self.publish(&channel, records);
    }

    fn publish(&mut self, channel: &str, records: &[Record]) {
        self.seq += 1;
        let mut payload = Vec::new();
        wire::encode_header(&mut payload, &self.node, self.seq);
        for record in records {
            wire::encode_record(&mut payload, record);
        }
        self.command(&[b"PUBLISH", channel.as_bytes(), &payload], Pending::Ignore);
    }

    /// A room's news goes on the room's channel, the rest on the control
    /// channel.
    fn channel_of(&self, record: &Record) -> String {
        let room = match record {
            Record::Say { room, .. }
            | Record::Me { room, .. }
            | Record::Arrive { room, .. }
            | Record::Leave { room, .. }
            | Record::Nick { room, .. }
            | Record::Topic { room, .. } => room,
            Record::Move { from, .. } => from,
            _ => return self.key("ctl"),
        };
        self.key(&format!("room:{}", room.to_ascii_lowercase()))
    }

    /// Keeps the users hash, the names and the topics in step with a local
    /// member's news.
    fn record_in_redis(&mut self, record: &Record) {
        // Chat lines, the bulk of the news, touch none of it.
        if matches!(record, Record::Say { .. } | Record::Me { .. }) {
            return;
        }
        let users = self.users_key(&self.node);
        match record {
            Record::Arrive { room, who } | Record::Move { to: room, who, .. } => self.command(
                &[b"HSET", users.as_bytes(), who.as_bytes(), room.as_bytes()],
                Pending::Ignore,
            ),
            Record::Leave { who, .. } => {
                self.command(
                    &[b"HDEL", users.as_bytes(), who.as_bytes()],
                    Pending::Ignore,
                );
                self.release_name(&self.node.clone(), who);
            }
            Record::Nick { room, old, new } => {
                self.command(
                    &[b"HDEL", users.as_bytes(), old.as_bytes()],
                    Pending::Ignore,
                );
                self.command(
                    &[b"HSET", users.as_bytes(), new.as_bytes(), room.as_bytes()],
                    Pending::Ignore,
                );
                self.release_name(&self.node.clone(), old);
            }
            Record::Topic { room, text, .. } => {
                let topics = self.key("topics");
                let room = room.to_ascii_lowercase();
                self.command(
                    &[b"HSET", topics.as_bytes(), room.as_bytes(), text.as_bytes()],
                    Pending::Ignore,
                )
            }
            _ => {}
        }
    }

    /// The Redis key of a name: its look-alike skeleton, so a name and its
    /// look-alikes are one key.
    pub(super) fn name_key(&self, who: &str) -> String {
        let skeleton = crate::names::name_skeleton(&crate::names::name_key(who));
        self.key(&format!("name:{skeleton}"))
    }

    /// Frees `who`'s name if `node` holds it (an address identity has none).
    pub(super) fn release_name(&mut self, node: &str, who: &str) {
        if who.contains('@') {
            return;
        }
        let key = self.name_key(who);
        let value = format!("{node} {who}");
        let args: [&[u8]; 5] = [
            b"EVAL",
            RELEASE.as_bytes(),
            b"1",
            key.as_bytes(),
            value.as_bytes(),
        ];
        self.command(&args, Pending::Ignore);
    }

    /// Asks the cluster for a name; the answer comes back through
    /// [`Cluster::take_answers`]. While the link is down, it is refused at
    /// once rather than risk a duplicate.
    pub fn claim(&mut self, claim: Claim) {
        if !self.is_up() {
            let refusal = "*** names are unavailable while the cluster link is down\n".to_string();
            self.answers.push(Answer {
                claim,
                result: Err(refusal),
            });
            return;
        }
        let key = self.name_key(&claim.name.display);
        let value = format!("{} {}", self.node, claim.name.display);
        let args: [&[u8]; 5] = [b"SET", key.as_bytes(), value.as_bytes(), b"NX", b"GET"];
        self.command(&args, Pending::Claim(claim));
    }

    /// Shutdown: the others are told this node's users leave, and its
    /// names and users are freed.
    pub fn say_goodbye(&mut self, hub: &Hub) {
        if !self.is_up() {
            return;
        }
        self.publish_control(&[Record::Bye]);
        for (_, who) in hub.local_names() {
            self.release_name(&self.node.clone(), &who);
        }
        let users = self.users_key(&self.node);
        let nodes = self.key("nodes");
        let node = self.node.clone();
        self.command(&[b"DEL", users.as_bytes()], Pending::Ignore);
        self.command(
            &[b"SREM", nodes.as_bytes(), node.as_bytes()],
            Pending::Ignore,
        );
    }
}
