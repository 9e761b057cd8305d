//! Nodes that behave as one server, joined through Redis.
//!
//! Two more non-blocking sockets in the same loop ([`RedisLink`]): one
//! subscribed to every channel of the cluster, one for commands. What local
//! members do is published, one message per channel per turn (a room's
//! channel for its news, `<cluster>:ctl` for the rest); what other nodes
//! publish is checked ([`crate::wire`]) and applied to the hub. Names are
//! claimed with `SET … NX`, so two nodes never give out the same one. Each
//! node keeps its users in a hash and pings the others; a node silent for
//! `--cluster-timeout` is taken for dead and its users leave. Across an
//! outage delivery is at most once: what was said while the link was down
//! stays on its node.
//!
//! The reading of replies and messages is in `cluster/incoming.rs`; this
//! file is the link's life: connecting, bootstrapping, publishing, timers.

use std::collections::{HashMap, VecDeque};

use log::{info, warn};
use mio::{Registry, Token};

use crate::hub::Hub;
use crate::log_gate::{LogGate, held_note};
use crate::names::Name;
use crate::redis_link::RedisLink;
use crate::wire::Record;

mod incoming;
mod outgoing;
mod turn;
mod url;

pub use incoming::Lost;
pub use url::{RedisUrl, parse_url};

/// The subscriber connection's token.
pub const SUB: Token = Token(usize::MAX - 3);
/// The command connection's token.
pub const CMD: Token = Token(usize::MAX - 4);
/// The longest wait between two attempts to reach Redis.
pub const MAX_BACKOFF_MS: u64 = 5_000;
/// The first wait after losing Redis.
const FIRST_BACKOFF_MS: u64 = 100;
/// Bytes read from the subscriber per turn at most: other nodes' traffic
/// gets a share of the turn like a client does.
const READ_BUDGET: usize = 64 * 1024;
/// Compare-and-delete: frees a name only if this node still holds it.
pub(crate) const RELEASE: &str =
    "if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end";

/// A reply the command connection is waiting for, in order.
#[derive(Debug)]
pub(crate) enum Pending {
    /// Nothing to do with it (but an error is logged).
    Ignore,
    /// A name claim for a client: `(key, id)` names the connection.
    Claim(Claim),
    /// A name this node held through an outage, claimed again.
    Reclaim { key: usize, who: String },
    /// The list of nodes, during bootstrap.
    Nodes,
    /// A node's users.
    Users { node: String },
    /// The rooms' topics.
    Topics,
}

/// A client waiting for the cluster's answer to its name.
#[derive(Debug, Clone)]
pub struct Claim {
    pub key: usize,
    pub id: u32,
    pub name: Name,
    /// True under `--ask-name` (its first name); false for `/nick`.
    pub first: bool,
}

/// The answer to a [`Claim`].
#[derive(Debug)]
pub struct Answer {
    pub claim: Claim,
    /// `Ok` if the name is this client's; else the refusal line.
    pub result: Result<(), String>,
}

/// Where the link is.
#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Not connected; try again at `retry_at_ms`.
    Down { retry_at_ms: u64, backoff_ms: u64 },
    /// Connected, reading what the cluster holds.
    Bootstrapping { waiting: usize },
    /// Serving.
    Up,
}

/// Another node, as this one knows it.
#[derive(Debug)]
struct Peer {
    last_seen_ms: u64,
    /// The sequence number its next message should carry.
    next_seq: Option<u64>,
}

/// The node's link to the cluster.
pub struct Cluster {
    url: RedisUrl,
    /// The cluster's name: the prefix of its keys and channels.
    name: String,
    node: String,
    timeout_ms: u64,
    max_queue: usize,
    /// Longest text a message may carry.
    max_text: usize,
    sub: Option<RedisLink>,
    cmd: Option<RedisLink>,
    state: State,
    pending: VecDeque<Pending>,
    seq: u64,
    peers: HashMap<String, Peer>,
    /// Records received and checked, not yet applied (they did not fit
    /// the turn); the subscriber is not read while any wait.
    inbox: VecDeque<(String, Record)>,
    /// Answers to name claims, for the sessions to apply.
    answers: Vec<Answer>,
    /// Names held through an outage that another node took meanwhile.
    lost: Vec<incoming::Lost>,
    /// Clients have been told the link is down.
    told_down: bool,
    /// The subscriber dropped while commands went on: lines were lost.
    lost_lines: bool,
    next_ping_ms: u64,
    gate: LogGate,
}

impl Cluster {
    pub fn new(
        url: RedisUrl,
        name: &str,
        node: &str,
        timeout_ms: u64,
        max_queue: usize,
        max_line: usize,
    ) -> Cluster {
        info!("cluster {name} as node {node} through {url:?}");
        Cluster {
            url,
            name: name.to_string(),
            node: node.to_string(),
            timeout_ms,
            max_queue,
            max_text: 4 * max_line + 64,
            sub: None,
            cmd: None,
            state: State::Down {
                retry_at_ms: 0,
                backoff_ms: FIRST_BACKOFF_MS,
            },
            pending: VecDeque::new(),
            seq: 0,
            peers: HashMap::new(),
            inbox: VecDeque::new(),
            answers: Vec::new(),
            lost: Vec::new(),
            told_down: false,
            lost_lines: false,
            next_ping_ms: 0,
            gate: LogGate::new(2),
        }
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// True while news reaches the other nodes.
    pub fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// Bytes queued towards Redis: over `--cluster-max-queue`, reading local
    /// clients pauses, as for `--max-total-output`.
    pub fn over_queue(&self) -> bool {
        self.cmd
            .as_ref()
            .is_some_and(|c| c.queued() > self.max_queue)
    }

    /// Other nodes known alive.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    /// True while received records wait for room in a turn.
    pub fn has_work(&self) -> bool {
        !self.inbox.is_empty()
    }

    /// The answers to name claims that came in.
    pub fn take_answers(&mut self) -> Vec<Answer> {
        std::mem::take(&mut self.answers)
    }

    pub(crate) fn key(&self, what: &str) -> String {
        format!("{}:{what}", self.name)
    }

    /// The hash of `node`'s members and their rooms.
    pub(crate) fn users_key(&self, node: &str) -> String {
        format!("{}:users:{node}", self.name)
    }

    // ----- the link's life -------------------------------------------------------

    /// Connects when it is time to; pings and finds dead nodes while up.
    /// Returns when to be called again.
    pub fn tick(&mut self, hub: &mut Hub, registry: &Registry, now_ms: u64) -> u64 {
        match self.state {
            State::Down { retry_at_ms, .. } if now_ms >= retry_at_ms => {
                self.connect(hub, registry, now_ms)
            }
            State::Up if now_ms >= self.next_ping_ms => {
                self.publish_control(&[Record::Ping]);
                self.next_ping_ms = now_ms + self.timeout_ms / 3;
                self.bury_the_dead(hub, now_ms);
            }
            _ => {}
        }
        match self.state {
            State::Down { retry_at_ms, .. } => retry_at_ms,
            _ => self.next_ping_ms.min(now_ms + self.timeout_ms / 3),
        }
    }

    fn connect(&mut self, hub: &mut Hub, registry: &Registry, now_ms: u64) {
        let sub = RedisLink::connect(self.url.addr, registry, SUB);
        let cmd = RedisLink::connect(self.url.addr, registry, CMD);
        match (sub, cmd) {
            (Ok(mut sub), Ok(mut cmd)) => {
                self.pending.clear();
                // Clients were told the link was down: what the others said
                // meanwhile is not a gap to report again.
                for peer in self.peers.values_mut() {
                    peer.next_seq = None;
                }
                self.login(&mut sub, false);
                self.login(&mut cmd, true);
                sub.send(&[b"PSUBSCRIBE", format!("{}:*", self.name).as_bytes()]);
                self.sub = Some(sub);
                self.cmd = Some(cmd);
                self.bootstrap(hub);
            }
            (Err(e), _) | (_, Err(e)) => {
                self.down(hub, registry, now_ms, &format!("cannot connect: {e}"))
            }
        }
    }

    /// AUTH (and SELECT on the command connection), before anything else.
    fn login(&mut self, link: &mut RedisLink, commands: bool) {
        if let Some(password) = &self.url.password {
            match &self.url.user {
                Some(user) => link.send(&[b"AUTH", user.as_bytes(), password.as_bytes()]),
                None => link.send(&[b"AUTH", password.as_bytes()]),
            }
            if commands {
                self.pending.push_back(Pending::Ignore);
            }
        }
        if commands && self.url.db != 0 {
            link.send(&[b"SELECT", self.url.db.to_string().as_bytes()]);
            self.pending.push_back(Pending::Ignore);
        }
    }

    /// Tells the cluster who is here and reads who is elsewhere.
    fn bootstrap(&mut self, hub: &mut Hub) {
        let nodes = self.key("nodes");
        let users = self.users_key(&self.node);
        let node = self.node.clone();
        self.command(
            &[b"SADD", nodes.as_bytes(), node.as_bytes()],
            Pending::Ignore,
        );
        self.command(&[b"DEL", users.as_bytes()], Pending::Ignore);
        for (who, room) in hub.local_users() {
            self.command(
                &[b"HSET", users.as_bytes(), who.as_bytes(), room.as_bytes()],
                Pending::Ignore,
            );
        }
        for (key, who) in hub.local_names() {
            let name_key = self.name_key(&who);
            let value = format!("{} {who}", self.node);
            let args: [&[u8]; 5] = [b"SET", name_key.as_bytes(), value.as_bytes(), b"NX", b"GET"];
            self.command(&args, Pending::Reclaim { key, who });
        }
        self.command(&[b"SMEMBERS", nodes.as_bytes()], Pending::Nodes);
        self.command(
            &[b"HGETALL", self.key("topics").as_bytes()],
            Pending::Topics,
        );
        self.state = State::Bootstrapping { waiting: 2 };
    }

    /// Queues a command and what to do with its reply.
    pub(crate) fn command(&mut self, args: &[&[u8]], pending: Pending) {
        if let Some(cmd) = &mut self.cmd {
            cmd.send(args);
            self.pending.push_back(pending);
        }
    }

    /// The link is lost: both connections go, pending claims are refused,
    /// clients are told once, and a reconnect is scheduled with backoff.
    pub(crate) fn down(&mut self, hub: &mut Hub, registry: &Registry, now_ms: u64, why: &str) {
        let backoff_ms = match self.state {
            State::Down { backoff_ms, .. } => (backoff_ms * 2).min(MAX_BACKOFF_MS),
            _ => FIRST_BACKOFF_MS,
        };
        if let Some(held) = self.gate.pass(now_ms) {
            warn!(
                "cluster link down: {why}; retrying in {backoff_ms} ms{}",
                held_note(held)
            );
        }
        for link in [self.sub.take(), self.cmd.take()].into_iter().flatten() {
            link.close(registry);
        }
        for pending in std::mem::take(&mut self.pending) {
            if let Pending::Claim(claim) = pending {
                let refusal =
                    "*** names are unavailable while the cluster link is down\n".to_string();
                self.answers.push(Answer {
                    claim,
                    result: Err(refusal),
                });
            }
        }
        hub.set_cluster_up(false);
        if !self.told_down {
            self.told_down = true;
            hub.tell_everyone(b"*** cluster link down: only this node hears you\n");
        }
        self.state = State::Down {
            retry_at_ms: now_ms + backoff_ms,
            backoff_ms,
        };
    }

    /// The subscriber was dropped (Redis closes a subscriber that falls too
    /// far behind) while commands still go through: it subscribes again at
    /// once, the clients are told lines were lost, and who is where is read
    /// again.
    pub(crate) fn resubscribe(&mut self, hub: &mut Hub, registry: &Registry, now_ms: u64) {
        if let Some(held) = self.gate.pass(now_ms) {
            warn!(
                "cluster: Redis dropped the subscriber: subscribing again; lines were lost{}",
                held_note(held)
            );
        }
        if let Some(sub) = self.sub.take() {
            sub.close(registry);
        }
        self.inbox.clear();
        match RedisLink::connect(self.url.addr, registry, SUB) {
            Ok(mut sub) => {
                self.login(&mut sub, false);
                sub.send(&[b"PSUBSCRIBE", format!("{}:*", self.name).as_bytes()]);
                self.sub = Some(sub);
                hub.tell_everyone(b"*** cluster link lost some lines\n");
                let nodes = self.key("nodes");
                self.command(&[b"SMEMBERS", nodes.as_bytes()], Pending::Nodes);
            }
            Err(e) => self.down(hub, registry, now_ms, &format!("cannot connect: {e}")),
        }
    }

    /// Bootstrap is done: the link serves.
    fn up(&mut self, hub: &mut Hub, now_ms: u64) {
        self.state = State::Up;
        hub.set_cluster_up(true);
        self.publish_control(&[Record::Hello]);
        self.next_ping_ms = now_ms + self.timeout_ms / 3;
        if std::mem::take(&mut self.told_down) {
            hub.tell_everyone(b"*** cluster link restored\n");
            info!("cluster link restored");
        } else if std::mem::take(&mut self.lost_lines) {
            hub.tell_everyone(b"*** cluster link lost some lines\n");
        } else {
            info!("cluster link up");
        }
    }

    /// Writes what is queued (called at the end of every turn).
    pub fn flush(&mut self, hub: &mut Hub, registry: &Registry, now_ms: u64) {
        let result = match &mut self.cmd {
            Some(cmd) => cmd.flush(registry),
            None => Ok(()),
        };
        if let Err(e) = result {
            self.down(hub, registry, now_ms, &format!("write: {e}"));
        }
    }

    // ----- other nodes' lives ----------------------------------------------------

    /// Notes that `node` spoke; false if it is this node.
    fn seen(&mut self, node: &str, seq: u64, now_ms: u64) -> Option<bool> {
        if node == self.node {
            return None;
        }
        let peer = self.peers.entry(node.to_string()).or_insert(Peer {
            last_seen_ms: now_ms,
            next_seq: None,
        });
        peer.last_seen_ms = now_ms;
        // A lower number than expected is a restarted node, not a gap.
        let gap = peer.next_seq.is_some_and(|expected| seq > expected);
        peer.next_seq = Some(seq + 1);
        Some(gap)
    }

    /// Nodes silent for `--cluster-timeout` are dead: their users leave, and
    /// their users and names are freed in Redis.
    fn bury_the_dead(&mut self, hub: &mut Hub, now_ms: u64) {
        let dead: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| now_ms >= p.last_seen_ms + self.timeout_ms)
            .map(|(node, _)| node.clone())
            .collect();
        for node in dead {
            warn!(
                "cluster: node {node} silent for {} ms: its users leave",
                self.timeout_ms
            );
            self.forget_node(hub, &node, now_ms);
        }
    }

    fn forget_node(&mut self, hub: &mut Hub, node: &str, now_ms: u64) {
        self.peers.remove(node);
        for who in hub.remote_names_of(node) {
            self.release_name(node, &who);
        }
        hub.drop_node(node, now_ms);
        let users = self.users_key(node);
        let nodes = self.key("nodes");
        self.command(&[b"DEL", users.as_bytes()], Pending::Ignore);
        self.command(
            &[b"SREM", nodes.as_bytes(), node.as_bytes()],
            Pending::Ignore,
        );
    }

    /// Applies received records while they fit in the turn; true if some
    /// wait for the next turn.
    pub fn apply_inbox(&mut self, hub: &mut Hub, now_ms: u64) -> bool {
        while let Some((node, record)) = self.inbox.pop_front() {
            if !incoming::apply(self, hub, &node, &record, now_ms) {
                self.inbox.push_front((node, record));
                return true;
            }
        }
        false
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Cluster({} as {}, {:?})",
            self.name, self.node, self.state
        )
    }
}
