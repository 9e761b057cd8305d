//! The connected clients: each one's connection and its member of the hub,
//! under one key, from admission to removal.
//!
//! [`Sessions`] owns what one client's life touches — the connections, the
//! [`Hub`], the total-output policy — and the lists a turn works through.
//! Its work is split by concern: this file is a client's life (admitted,
//! leaving, closed, removed), `reading.rs` the read path, `flushing.rs` the
//! write path, `sweep.rs` the timers that walk every client. The event loop
//! (`server.rs`) hands it the registry and the deadlines when it needs them.

use std::net::SocketAddr;

use log::info;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::admission::Slot;
use crate::config::Config;
use crate::connection::Connection;
use crate::deadlines::{Deadlines, Timer};
use crate::hub::{Hub, HubConfig};
use crate::limits::{LINGER, LOG_CONNECTS_PER_SEC, LOG_WARNINGS_PER_SEC, READ_CHUNK};
use crate::log_gate::{LogGate, held_note};
use crate::member::{Phase, who_from_addr};
use crate::pressure::{QueueCap, TotalCap};
use crate::rate::TokenBucket;
use crate::stats::CloseReason;
use crate::tls::TlsStream;
use crate::tls::session::TlsSession;
use crate::transport::Transport;

/// Every client, and what a turn does with them.
pub struct Sessions {
    /// Every connection, keyed by its poll token; the hub's members share
    /// the keys.
    pub conns: Slab<Connection>,
    pub hub: Hub,
    /// `--max-total-output`: the pause of reading for everyone.
    pub total: TotalCap,
    pub config: Config,
    /// Milliseconds on the server clock, taken once per turn.
    pub now_ms: u64,
    /// Where reads land before they are appended to a line buffer.
    pub(crate) scratch: Box<[u8]>,
    /// Clients to read next turn without waiting for an event.
    pub ready: Vec<usize>,
    /// Clients to remove after this turn.
    pub(crate) doomed: Vec<usize>,
    /// Reused lists, so a turn allocates nothing.
    pub(crate) visit: Vec<usize>,
    pub(crate) backlog: Vec<usize>,
    /// True while queues are being flushed: a departure then waits until
    /// the client is removed, so its notice is not half-delivered.
    pub(crate) flushing: bool,
    /// TLS handshakes served this turn.
    pub(crate) handshakes: usize,
    /// During a shutdown: bytes dropped with clients closed before they
    /// drained.
    pub unsent_at_shutdown: Option<usize>,
    /// In a cluster: the queue towards Redis passed `--cluster-max-queue`,
    /// so reading pauses as for `--max-total-output`.
    pub cluster_full: bool,
    next_id: u32,
    pub(crate) gate_connect: LogGate,
    pub(crate) gate_warn: LogGate,
}

impl Sessions {
    /// Sessions for `config`; `node` is this node's id in a cluster.
    pub fn new(config: Config, node: Option<String>) -> Sessions {
        Sessions {
            conns: Slab::new(),
            hub: Hub::new(HubConfig {
                cap: QueueCap {
                    max_output: config.max_output,
                    policy: config.slow_client,
                },
                who_on_join: config.who_on_join,
                history_lines: config.history,
                history_bytes: config.history_limit(),
                notice_rate: config.notice_rate,
                default_room: config.default_room.clone(),
                max_rooms: config.max_rooms,
                node,
            }),
            total: TotalCap::new(config.max_total_output),
            config,
            now_ms: 0,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            ready: Vec::new(),
            doomed: Vec::new(),
            visit: Vec::new(),
            backlog: Vec::new(),
            flushing: false,
            handshakes: 0,
            unsent_at_shutdown: None,
            cluster_full: false,
            next_id: 0,
            gate_connect: LogGate::new(LOG_CONNECTS_PER_SEC),
            gate_warn: LogGate::new(LOG_WARNINGS_PER_SEC),
        }
    }

    /// True if something was queued or carried over for the next turn.
    pub fn has_work(&self) -> bool {
        !self.ready.is_empty() || self.hub.has_work()
    }

    /// Takes in an admitted connection: registers it, greets it (or asks its
    /// name) and reads it next turn, when bytes may already be waiting. A
    /// TLS client (`tls` holds its session and handshake deadline) is
    /// greeted only once its handshake is done: until then nobody hears of
    /// it, so garbage on the TLS port goes unnoticed.
    pub fn add(
        &mut self,
        mut socket: TcpStream,
        addr: SocketAddr,
        slot: Slot,
        tls: Option<(TlsSession, u64)>,
        registry: &Registry,
        deadlines: &mut Deadlines,
    ) {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = registry.register(&mut socket, Token(key), Interest::READABLE) {
            if let Some(held) = self.gate_warn.pass(self.now_ms) {
                log::warn!("cannot register {addr}: {e}{}", held_note(held));
            }
            self.hub.stats.close(CloseReason::Error);
            return;
        }
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let bucket = TokenBucket::full(self.config.rate, self.now_ms);
        let handshaking = tls.is_some();
        let transport = match tls {
            Some((session, by)) => {
                deadlines.at(by, Timer::Handshake { key, id });
                Transport::Tls(Box::new(TlsStream::new(socket, session, by)))
            }
            None => Transport::Plain(socket),
        };
        let conn = Connection::new(transport, slot, id, bucket, self.now_ms);
        entry.insert(conn);
        let mut who = who_from_addr(addr);
        if let Some(node) = self.hub.node() {
            // In a cluster an address identity names its node, so two
            // machines' clients cannot share one.
            who = format!("{who}@{node}");
        }
        self.hub.add(key, who.into_boxed_str());
        if let Some(held) = self.gate_connect.pass(self.now_ms) {
            let who = &self.hub.member(key).who;
            let how = if handshaking { " (TLS handshake)" } else { "" };
            info!(
                "{who} connected{how} ({} clients){}",
                self.conns.len(),
                held_note(held)
            );
        }
        if !handshaking {
            self.welcome(key);
        }
        self.ready.push(key);
        if let Some(idle) = self.config.idle_timeout {
            let at = self.now_ms + idle.as_millis() as u64;
            deadlines.at(at.max(self.now_ms + crate::sweep::gap(idle)), Timer::Sweep);
        }
    }

    /// A newcomer is ready for the room: it is asked its name, or joins.
    pub(crate) fn welcome(&mut self, key: usize) {
        if self.config.ask_name {
            self.hub.send(key, b"What is your name?\n");
        } else {
            self.hub.join(key, self.now_ms);
        }
    }

    /// The client has left the room (or never joined): its remaining output
    /// is flushed before the connection closes, for at most [`LINGER`].
    pub fn begin_leaving(&mut self, key: usize, reason: CloseReason, deadlines: &mut Deadlines) {
        let by = self.now_ms + LINGER.as_millis() as u64;
        let conn = &mut self.conns[key];
        conn.leave_by_ms = Some(by);
        conn.close_reason = Some(reason);
        self.hub.mark_dirty(key);
        deadlines.at(by, Timer::Sweep);
        self.log_leave(key, reason);
    }

    /// Closes a client after this turn; its output is dropped. Outside a
    /// flush it leaves the room at once; during one, when it is removed.
    pub fn doom(&mut self, key: usize, reason: CloseReason) {
        let conn = &mut self.conns[key];
        if conn.doomed {
            return;
        }
        conn.doomed = true;
        conn.close_reason.get_or_insert(reason);
        let unsent = self.hub.drop_output(key);
        if let Some(total) = &mut self.unsent_at_shutdown {
            *total += unsent;
        }
        if !self.flushing {
            self.depart_on_close(key);
        }
        self.doomed.push(key);
    }

    /// A closed client that is still in the room leaves it, announced.
    fn depart_on_close(&mut self, key: usize) {
        if self.hub.member(key).phase == Phase::Gone {
            return;
        }
        self.hub.depart(key, None, true, self.now_ms);
        let reason = self.conns[key].close_reason.unwrap_or(CloseReason::Error);
        self.log_leave(key, reason);
    }

    /// Removes the clients closed during this turn; a leaving announced now
    /// goes out next turn, so no broadcast is ever half-delivered.
    pub fn remove_doomed(&mut self, registry: &Registry) {
        let doomed = std::mem::take(&mut self.doomed);
        for &key in &doomed {
            self.depart_on_close(key);
            let reason = self.conns[key].close_reason.unwrap_or(CloseReason::Error);
            let mut conn = self.conns.remove(key);
            let _ = registry.deregister(conn.transport.source());
            self.hub.remove(key);
            self.hub.stats.close(reason);
        }
        self.doomed = doomed;
        self.doomed.clear();
    }

    pub(crate) fn log_leave(&mut self, key: usize, reason: CloseReason) {
        if let Some(held) = self.gate_connect.pass(self.now_ms) {
            info!(
                "{} left: {} ({} clients){}",
                self.hub.member(key).who,
                reason.label(),
                self.conns.len() - 1,
                held_note(held)
            );
        }
    }

    /// Shutdown: every client is told, leaves the room without a notice each
    /// (everyone is told the server is going), and has until `by_ms` to
    /// take what is queued for it.
    pub fn shut_down(&mut self, by_ms: u64) {
        self.unsent_at_shutdown = Some(0);
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            let conn = &mut self.conns[key];
            if conn.doomed {
                continue;
            }
            if let Some(leave_by) = &mut conn.leave_by_ms {
                // Already leaving: no further line, only a shorter deadline.
                *leave_by = (*leave_by).min(by_ms);
                continue;
            }
            conn.leave_by_ms = Some(by_ms);
            conn.close_reason = Some(CloseReason::Shutdown);
            self.hub.send(key, b"*** server shutting down\n");
            self.hub.depart(key, None, false, self.now_ms);
        }
    }

    /// In a cluster: the answer to a name a client asked for. The client
    /// gets the name (and, under `--ask-name`, joins) or the refusal, and
    /// is read again.
    pub fn answer(&mut self, answer: crate::cluster::Answer) {
        let claim = answer.claim;
        match self.conns.get_mut(claim.key) {
            Some(conn) if conn.id == claim.id && conn.awaiting && !conn.doomed => {
                conn.awaiting = false;
            }
            _ => return, // Gone meanwhile; its claim is freed when it leaves.
        }
        self.ready.push(claim.key);
        match (answer.result, claim.first) {
            (Ok(()), true) => {
                self.hub.roster.take_name(claim.key, claim.name);
                self.hub.join(claim.key, self.now_ms);
            }
            (Ok(()), false) => self.hub.rename(claim.key, claim.name),
            (Err(refusal), true) => self.hub.send(
                claim.key,
                format!("{refusal}What is your name?\n").as_bytes(),
            ),
            (Err(refusal), false) => self.hub.send(claim.key, refusal.as_bytes()),
        }
    }

    /// In a cluster: a name held through an outage was another node's; the
    /// client goes back to its address identity.
    pub fn lose_name(&mut self, lost: crate::cluster::Lost) {
        let Some(conn) = self.conns.get_mut(lost.key) else {
            return;
        };
        let Some(node) = self.hub.node().map(str::to_string) else {
            return;
        };
        if *self.hub.member(lost.key).who != *lost.who {
            return;
        }
        let Ok(addr) = conn.transport.source().peer_addr() else {
            return;
        };
        let address = format!("{}@{node}", who_from_addr(addr));
        self.hub.lose_name(lost.key, &address);
    }

    /// The connection id under `key`, for a name claim.
    pub fn conn_id(&self, key: usize) -> Option<u32> {
        self.conns.get(key).map(|c| c.id)
    }

    /// Bytes queued for all clients now.
    pub fn unsent(&self) -> usize {
        self.hub.roster.iter().map(|(_, m)| m.output.len()).sum()
    }
}
