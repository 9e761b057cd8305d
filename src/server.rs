//! The event loop: the only module that owns the `mio::Poll`.
//!
//! One turn of the loop:
//!
//! 1. `poll` for events, with a timeout from the nearest deadline (or zero
//!    when work was carried over from the last turn);
//! 2. for each event: accept newcomers, or read a client's socket and hand
//!    its complete lines to [`crate::chat`] (a client's reads are capped per
//!    turn; one that had more to give is remembered in `ready` and served
//!    next turn without a new event, because mio is edge-triggered); a
//!    writable event only marks the client for flushing (readable before
//!    writable, as Redis does);
//! 3. fire the timers that are due, and serve the clients carried over;
//! 4. flush: every member with something new gets one `writev`, straight
//!    from the turn's arena; what a socket did not take stays queued and is
//!    sealed into a shared chunk; caps are applied;
//! 5. remove the clients closed during the turn, and announce their leaving
//!    (which goes out next turn).
//!
//! The parts own their state: [`Doors`] (the plain and TLS listeners, and
//! [`Admission`]) decide who gets in, [`Sessions`] holds the clients (their connections and the hub),
//! [`Deadlines`] every timer. This file routes events and timers between
//! them, and runs signals and shutdown.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::{Events, Interest, Poll, Token};

use crate::admission::Admission;
use crate::cluster::{self, Cluster};
use crate::config::Config;
use crate::deadlines::{Deadlines, Timer};
use crate::doors::{Door, Doors, LISTENER, TLS_LISTENER};
use crate::limits::{EVENTS_PER_TURN, RESERVED_FDS};
use crate::listener::Listener;
use crate::log_gate::{LogGate, held_note};
use crate::metrics::MetricsEndpoint;
use crate::sessions::Sessions;
use crate::stats::{ClusterGauges, Gauges};

const SIGNALS: Token = Token(usize::MAX - 1);
const METRICS: Token = Token(usize::MAX - 2);
/// Tokens from here up belong to metrics connections; clients' tokens are
/// their slab keys, far below.
pub(crate) const METRICS_CONN_BASE: usize = usize::MAX / 2;

/// How [`Server::run`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// Shut down by SIGTERM/SIGINT after flushing.
    Graceful,
    /// A second signal arrived during shutdown.
    Forced,
}

/// The chat server: its doors, its clients, and the loop that serves them.
pub struct Server {
    poll: Poll,
    /// The listeners and who may come in.
    doors: Doors,
    /// The plain listener's address, or the TLS one's with `--listen none`.
    local_addr: SocketAddr,
    sessions: Sessions,
    deadlines: Deadlines,
    /// The timers firing this turn (kept to reuse its allocation).
    due: Vec<Timer>,
    clock: Instant,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    metrics: Option<MetricsEndpoint>,
    /// The link to the other nodes, with `--cluster`.
    cluster: Option<Cluster>,
    /// When the shutdown grace is over, once a shutdown has begun.
    shutdown_by_ms: Option<u64>,
    gate_signal: LogGate,
}

impl Server {
    /// Binds `config.listen` (unless it is `none`) and `--tls-listen`, and
    /// prepares the server.
    pub fn bind(config: Config) -> io::Result<Server> {
        let listener = crate::doors::bind_plain(&config)?;
        Server::with_listener(listener, config)
    }

    /// Serves on an already bound listener (socket activation, tests); a
    /// TLS listener is still bound from `--tls-listen`.
    pub fn from_std(listener: std::net::TcpListener, config: Config) -> io::Result<Server> {
        Server::with_listener(Some(Listener::from_std(listener)?), config)
    }

    fn with_listener(listener: Option<Listener>, config: Config) -> io::Result<Server> {
        config
            .check()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let poll = Poll::new()?;
        let max_clients = config.max_clients.unwrap_or_else(|| {
            (crate::sys::fd_limit() as usize)
                .saturating_sub(RESERVED_FDS)
                .max(1)
        });
        let admission = Admission::new(max_clients, config.max_per_ip, config.per_ip_prefix_v6);
        let doors = Doors::open(listener, &config, admission, poll.registry())?;
        let metrics = match &config.metrics {
            Some(value) => Some(MetricsEndpoint::bind_flag(value, poll.registry(), METRICS)?),
            None => None,
        };
        if config.max_total_output / 2 < config.max_output {
            warn!(
                "--max-total-output {} is below twice --max-output {}: one client that \
                 stops reading can pause reading for everyone",
                config.max_total_output, config.max_output
            );
        }
        let local_addr = doors
            .plain_addr()
            .or(doors.tls_addr())
            .ok_or_else(|| io::Error::other("no listener"))?;
        let cluster = Cluster::from_config(&config, local_addr)?;
        let node = cluster.as_ref().map(|c| c.node().to_string());
        let mut server = Server {
            poll,
            local_addr,
            doors,
            sessions: Sessions::new(config, node),
            deadlines: Deadlines::default(),
            due: Vec::new(),
            clock: Instant::now(),
            signals: None,
            metrics,
            cluster,
            shutdown_by_ms: None,
            gate_signal: LogGate::new(2),
        };
        server.deadlines.at(0, Timer::Cluster);
        server.load_motd().map_err(|e| {
            let config = &server.sessions.config;
            let path = config.motd.as_deref().unwrap_or(std::path::Path::new(""));
            io::Error::new(e.kind(), format!("--motd {}: {e}", path.display()))
        })?;
        Ok(server)
    }

    /// The address actually bound (with the real port when asked for port
    /// 0): the plain listener's, or with `--listen none` the TLS one's.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The plain listener's address, unless `--listen none`.
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.doors.plain_addr()
    }

    /// The TLS listener's address, with `--tls-listen`.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.doors.tls_addr()
    }

    /// The address of the metrics endpoint, if `--metrics` was given.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.local_addr())
    }

    /// The most clients served at once.
    pub fn max_clients(&self) -> usize {
        self.doors.max_clients()
    }

    /// Handles SIGTERM and SIGINT (graceful shutdown) and SIGHUP (re-read the
    /// motd) inside the loop, and ignores SIGUSR1 and SIGUSR2. Only the
    /// daemon does this; tests that run many servers in one process do not.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
        let mut signals =
            signal_hook_mio::v1_0::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Serves until shut down by a signal. Errors are returned only if the
    /// poller itself fails; trouble with one client never ends the loop.
    pub fn run(mut self) -> io::Result<Exit> {
        let mut events = Events::with_capacity(EVENTS_PER_TURN);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.sessions.now_ms = self.clock.elapsed().as_millis() as u64;
            // Checked before the timers: the sweep would close the clients
            // whose deadline is the same, and their unsent bytes would go
            // unreported.
            if self.grace_over() {
                return Ok(Exit::Graceful);
            }
            // The clients carried over from earlier turns. Whatever is put on
            // `ready` from here on is served next turn.
            let carried = std::mem::take(&mut self.sessions.ready);
            for event in events.iter() {
                if let Some(exit) = self.route(event) {
                    return Ok(exit);
                }
            }
            self.fire_timers();
            self.sessions.serve_ready(carried, &mut self.deadlines);
            if let Some(cluster) = &mut self.cluster {
                cluster.turn_in(&mut self.sessions, self.poll.registry());
            }
            self.sessions
                .flush_all(self.poll.registry(), &mut self.deadlines);
            self.sessions.remove_doomed(self.poll.registry());
            if let Some(cluster) = &mut self.cluster {
                cluster.turn_out(&mut self.sessions, self.poll.registry());
            }
            if self.shutdown_done() {
                return Ok(Exit::Graceful);
            }
        }
    }

    /// Hands one event to whoever owns its token.
    fn route(&mut self, event: &mio::event::Event) -> Option<Exit> {
        match event.token() {
            token @ (LISTENER | TLS_LISTENER) => {
                let door = if token == LISTENER {
                    Door::Plain
                } else {
                    Door::Tls
                };
                let registry = self.poll.registry();
                let (sessions, deadlines) = (&mut self.sessions, &mut self.deadlines);
                self.doors.accept_at(door, sessions, deadlines, registry);
            }
            SIGNALS => return self.take_signals(),
            METRICS => {
                if let Some(metrics) = &mut self.metrics {
                    metrics.accept_all(self.poll.registry(), self.sessions.now_ms);
                }
            }
            token @ (cluster::SUB | cluster::CMD) => {
                if let Some(cluster) = &mut self.cluster {
                    let (hub, now) = (&mut self.sessions.hub, self.sessions.now_ms);
                    cluster.on_event(token, event.is_writable(), hub, self.poll.registry(), now);
                }
            }
            Token(t) if t >= METRICS_CONN_BASE => self.metrics_event(t - METRICS_CONN_BASE),
            Token(key) => self.client_event(key, event),
        }
        None
    }

    /// How long `poll` may sleep: zero when work was carried over, else until
    /// the nearest deadline, else forever.
    fn poll_timeout(&mut self) -> Option<Duration> {
        if self.sessions.has_work() || self.cluster.as_ref().is_some_and(Cluster::has_work) {
            return Some(Duration::ZERO);
        }
        if let Some(due) = self.sessions.hub.notices_due() {
            self.deadlines.at(due, Timer::Notices);
        }
        if let Some(due) = self
            .metrics
            .as_ref()
            .and_then(MetricsEndpoint::next_deadline)
        {
            self.deadlines.at(due, Timer::Metrics);
        }
        let now = self.clock.elapsed().as_millis() as u64;
        let next = self.deadlines.earliest()?;
        Some(Duration::from_millis(next.saturating_sub(now)))
    }

    fn client_event(&mut self, key: usize, event: &mio::event::Event) {
        let sessions = &mut self.sessions;
        let Some(conn) = sessions.conns.get_mut(key) else {
            return; // A stale event for a client removed earlier.
        };
        if conn.doomed {
            return;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            conn.write_blocked = false;
            sessions.hub.mark_dirty(key);
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            sessions.conns[key].readable = true;
            sessions.serve_read(key, &mut self.deadlines);
        }
    }

    /// Fires the timers due now. One scheduled while they fire (an accept
    /// retry for the next turn, say) waits for the next turn, even if it is
    /// due at once.
    fn fire_timers(&mut self) {
        let now = self.sessions.now_ms;
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        due.extend(std::iter::from_fn(|| self.deadlines.pop_due(now)));
        for &timer in &due {
            match timer {
                Timer::Wake { key, id } => {
                    if let Some(conn) = self.sessions.conns.get_mut(key)
                        && conn.id == id
                    {
                        conn.throttled = false;
                        self.sessions.ready.push(key);
                    }
                }
                Timer::Handshake { key, id } => self.sessions.handshake_due(key, id),
                Timer::Sweep => self.sessions.sweep(&mut self.deadlines),
                Timer::AcceptRetry => {
                    let registry = self.poll.registry();
                    let (sessions, deadlines) = (&mut self.sessions, &mut self.deadlines);
                    self.doors.accept_all(sessions, deadlines, registry);
                }
                // Noticed by `grace_over` at the top of the turn.
                Timer::ShutdownGrace => {}
                // Pressure is relieved at the end of every turn.
                Timer::PauseCheck => {}
                Timer::Metrics => {
                    if let Some(metrics) = &mut self.metrics {
                        metrics.expire(self.poll.registry(), now);
                    }
                }
                Timer::Notices => self.sessions.hub.sum_up_notices(now),
                Timer::Cluster => {
                    if let Some(cluster) = &mut self.cluster {
                        let hub = &mut self.sessions.hub;
                        let next = cluster.tick(hub, self.poll.registry(), now);
                        self.deadlines.at(next, Timer::Cluster);
                    }
                }
            }
        }
        self.due = due;
    }

    // ----- signals, reloading and shutdown ---------------------------------------

    fn take_signals(&mut self) -> Option<Exit> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
        let pending: Vec<i32> = match &mut self.signals {
            Some(signals) => signals.pending().collect(),
            None => return None,
        };
        for signal in pending {
            match signal {
                SIGHUP => self.reload(),
                SIGUSR1 | SIGUSR2 => {
                    // Their default action would end the daemon; a stray
                    // `kill -USR1` should not.
                    if let Some(held) = self.gate_signal.pass(self.sessions.now_ms) {
                        info!("signal {signal} ignored{}", held_note(held));
                    }
                }
                SIGTERM | SIGINT if self.shutdown_by_ms.is_some() => {
                    warn!(
                        "second signal: exiting now with {} clients and {} bytes unsent",
                        self.sessions.conns.len(),
                        self.sessions.unsent()
                    );
                    return Some(Exit::Forced);
                }
                SIGTERM | SIGINT => self.begin_shutdown(),
                _ => {}
            }
        }
        None
    }

    /// SIGHUP: re-reads the motd, and the TLS certificate and key; a bad new
    /// one is logged and the old kept. New handshakes use the new pair,
    /// established TLS clients keep theirs. Logged through a gate, so a
    /// flood of SIGHUPs cannot flood the log.
    fn reload(&mut self) {
        let result = self.load_motd();
        let tls = self.doors.reload_tls();
        let Some(held) = self.gate_signal.pass(self.sessions.now_ms) else {
            return;
        };
        let held = held_note(held);
        match (result, &self.sessions.config.motd) {
            (Err(e), Some(path)) => warn!(
                "SIGHUP: cannot re-read motd {}: {e}; keeping the old one{held}",
                path.display()
            ),
            (_, Some(path)) => info!(
                "SIGHUP: re-read motd {} ({} bytes){held}",
                path.display(),
                self.sessions.hub.motd_len()
            ),
            (_, None) => info!("SIGHUP: no --motd to re-read{held}"),
        }
        match tls {
            Some((path, Ok(warning))) => {
                info!("SIGHUP: re-read the TLS certificate {path} and its key{held}");
                if let Some(warning) = warning {
                    warn!("{warning}");
                }
            }
            Some((_, Err(e))) => {
                warn!("SIGHUP: cannot re-read the TLS pair: {e}; keeping the old one{held}")
            }
            None => {}
        }
    }

    /// Reads the `--motd` file into the hub.
    fn load_motd(&mut self) -> io::Result<()> {
        let config = &self.sessions.config;
        let Some(path) = &config.motd else {
            return Ok(());
        };
        let motd = crate::motd::read_motd(path, config.max_motd, config.max_line)?;
        self.sessions.hub.set_motd(motd);
        Ok(())
    }

    /// Stops accepting, tells everyone, and keeps flushing until every queue
    /// is empty or `--shutdown-grace` has passed.
    fn begin_shutdown(&mut self) {
        let grace = self.sessions.config.shutdown_grace;
        let by = self
            .sessions
            .now_ms
            .saturating_add(grace.as_millis() as u64);
        info!(
            "shutting down: {} clients, up to {grace:?} to flush",
            self.sessions.conns.len()
        );
        let _ = crate::sys::notify_systemd("STOPPING=1");
        self.shutdown_by_ms = Some(by);
        self.deadlines.at(by, Timer::ShutdownGrace);
        self.deadlines.at(by, Timer::Sweep);
        self.doors.close(self.poll.registry());
        if let Some(metrics) = self.metrics.take() {
            metrics.close_all(self.poll.registry());
        }
        self.sessions.shut_down(by);
        if let Some(cluster) = &mut self.cluster {
            cluster.say_goodbye(&self.sessions.hub);
        }
    }

    /// True once a shutdown has nobody left to serve (logging how it went),
    /// or its grace is over.
    fn shutdown_done(&mut self) -> bool {
        if self.shutdown_by_ms.is_none() {
            return false;
        }
        if !self.sessions.conns.is_empty() {
            return self.grace_over();
        }
        match self.sessions.unsent_at_shutdown.unwrap_or(0) {
            0 => info!("shutdown complete: all output delivered"),
            unsent => warn!(
                "shutdown complete: {unsent} bytes could not be delivered (clients that \
                 failed or stopped reading)"
            ),
        }
        true
    }

    /// True once `--shutdown-grace` has passed during shutdown; logs what is
    /// left.
    fn grace_over(&self) -> bool {
        if self
            .shutdown_by_ms
            .is_none_or(|by| self.sessions.now_ms < by)
        {
            return false;
        }
        warn!(
            "shutdown grace over: closing {} clients with {} bytes unsent",
            self.sessions.conns.len(),
            self.sessions.unsent()
        );
        true
    }

    // ----- metrics ---------------------------------------------------------------

    fn metrics_event(&mut self, conn: usize) {
        let sessions = &self.sessions;
        let cluster = &self.cluster;
        // Built only when a request is answered, not for every read or
        // write event of a metrics connection: it reads /proc and walks the
        // rooms.
        let gauges = || {
            let (rooms, biggest_room) = sessions.hub.room_gauges();
            Gauges {
                clients: sessions.conns.len(),
                rooms,
                biggest_room,
                queued_bytes: sessions.hub.queued_bytes(),
                reading_paused: sessions.total.paused(),
                rss_bytes: crate::stats::rss_bytes(),
                cluster: cluster.as_ref().map(|c| ClusterGauges {
                    remote_members: sessions.hub.remotes.len(),
                    peers: c.peers(),
                    up: c.is_up(),
                }),
            }
        };
        if let Some(metrics) = &mut self.metrics {
            metrics.serve(conn, self.poll.registry(), &sessions.hub.stats, gauges);
        }
    }
}
