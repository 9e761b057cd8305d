//! The event loop. This is the only module that owns the `mio::Poll`.
//!
//! One turn of the loop:
//!
//! 1. `poll` for events (with a timeout from the nearest timer, or zero when
//!    work was carried over from the last turn);
//! 2. for each event: accept new clients, or read a client's socket and handle
//!    its complete lines (a client's reads are capped per turn; one that had
//!    more to give is remembered in `ready` and served next turn without a new
//!    event, because mio is edge-triggered); a writable event only marks the
//!    client for flushing;
//! 3. serve the clients carried over, and the timers (rate-limit wake-ups,
//!    idle and linger deadlines);
//! 4. flush: every client with something new gets one `writev`, straight
//!    from the turn's arena; what the socket did not take stays queued, and
//!    `WRITABLE` interest is installed only while it does;
//! 5. remove the clients that were closed during the turn, and announce
//!    their leaving (which is queued for the next turn).
//!
//! Lines become output in `chat.rs`; this file moves bytes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::chat::Outcome;
use crate::client::{Client, Phase, source_key, who_from_addr};
use crate::config::{Config, RESERVED_FDS, SlowClient};
use crate::line_buffer::{Frame, LineBuffer};
use crate::log_gate::{LogGate, held_note};
use crate::metrics::MetricsEndpoint;
use crate::notice::{Movement, NoticeGate};
use crate::out_queue::{
    Chunk, Entry, Flushed, Meter, OutQueue, SharedText, WriteLimits, count_newlines,
};
use crate::rate::TokenBucket;
use crate::stats::{CloseReason, Gauges, Stats};

const LISTENER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
const METRICS: Token = Token(usize::MAX - 2);
/// Tokens from here up belong to metrics connections; clients' tokens are
/// their slab keys, far below.
pub(crate) const METRICS_CONN_BASE: usize = usize::MAX / 2;

/// Events taken from the poller per turn.
const EVENTS_PER_TURN: usize = 1024;
/// Bytes asked for in one read call.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes read from one client per turn at most, so one busy client cannot
/// monopolise a turn; it is served again next turn.
pub const READ_BUDGET: usize = 32 * 1024;
/// Output queued for any one client per turn at most, from every source
/// (broadcasts, private lines, `/who`, notices): a sender whose next line
/// would pass it for some recipient is not read further this turn, and TCP
/// holds it back. This bounds the arena, and it keeps what one turn gives a
/// client within half of `--max-output` (it is lowered to that when smaller),
/// so a client that keeps up is never cut by what others send it.
pub const TURN_BUDGET: usize = 256 * 1024;
/// The turn budget is never lowered below this.
const MIN_TURN_BUDGET: usize = 4 * 1024;
/// Arena capacity kept between turns; anything grown beyond is given back.
const ARENA_KEEP: usize = 64 * 1024;
/// Bytes written to one client per turn at most.
pub const WRITE_BUDGET: usize = 1024 * 1024;
/// How long a leaving client's last output may take to flush before the
/// connection is closed anyway.
pub const LINGER: Duration = Duration::from_secs(10);
/// Connections the kernel completes for us before we accept them. The
/// standard library's 128 overflows in a connect storm while one turn serves
/// thousands of clients, and each overflow costs the client a one-second SYN
/// retry; Redis and nginx use 511, the kernel caps it at `somaxconn`.
const LISTEN_BACKLOG: i32 = 1024;
/// What one arrival may add to everyone's share of a turn: the longest
/// address (`[ffff:…]:65535`) and ` has arrived`.
const ARRIVAL_BYTES: usize = 64;
/// While reading is paused for everyone, a client whose socket has taken no
/// byte for this long is closed as slow (the biggest first) until the total
/// is below half: it holds the room up and shows no sign of reading.
pub const PAUSE_STALL: Duration = Duration::from_secs(1);
/// Delay before accepting again after a resource error.
const ACCEPT_RETRY_MS: u64 = 100;
/// Shortest gap between two sweeps of the client list for idle timeouts:
/// this, or a hundredth of the timeout if longer, so a sweep (which visits
/// every client) runs at most a hundred times per timeout period and an
/// idle client is closed at most 1% late.
const MIN_SWEEP_GAP_MS: u64 = 10;

/// How [`Server::run`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// Shut down by SIGTERM/SIGINT after flushing.
    Graceful,
    /// A second signal arrived during shutdown.
    Forced,
}

/// The chat server: a listener, its clients, and the loop that serves them.
pub struct Server {
    pub(crate) poll: Poll,
    pub(crate) listener: Option<TcpListener>,
    local_addr: SocketAddr,
    pub(crate) config: Config,
    max_clients: usize,
    /// Output allowed per client per turn: [`TURN_BUDGET`], or less with a
    /// small `--max-output`.
    turn_budget: usize,
    /// The most bytes queued for one client alone (not broadcasts) this turn,
    /// over all clients: a broadcast may add at most `turn_budget` minus this.
    pub(crate) turn_max_private: usize,
    /// Every connected client, keyed by its poll token.
    pub(crate) clients: Slab<Client>,
    /// This turn's formatted broadcasts. Receivers' queues point into it; at
    /// the end of the turn the part still needed is copied into a shared chunk
    /// and the arena is cleared for the next turn.
    pub(crate) arena: Vec<u8>,
    /// Turn counter; tells current client marks from stale ones.
    pub(crate) turn: u32,
    /// Bytes held by queued output: shared chunks and entry arrays. What
    /// `--max-total-output` bounds.
    pub(crate) meter: Meter,
    /// Bytes held by the motd, history and `/who` texts: bounded by their
    /// own limits, so they do not count against `--max-total-output`.
    pub(crate) fixed_meter: Meter,
    /// Where reads land before they are copied to a client's line buffer.
    scratch: Box<[u8]>,
    /// Clients to read next turn without waiting for an event.
    ready: Vec<usize>,
    /// Clients with something to flush this turn.
    pub(crate) dirty: Vec<usize>,
    /// Clients to remove after this turn.
    doomed: Vec<usize>,
    /// Reused lists, so a turn allocates nothing.
    visit: Vec<usize>,
    backlog: Vec<usize>,
    /// Rate-limited clients and when to read them again: (ms, key, id).
    throttled: BinaryHeap<Reverse<(u64, usize, u64)>>,
    /// Names taken with `/nick` or `--ask-name`, by [`crate::names::name_key`].
    pub(crate) names: HashMap<String, usize>,
    /// The same names by [`crate::names::name_skeleton`], to refuse
    /// look-alikes of them.
    pub(crate) skeletons: HashMap<String, usize>,
    /// Clients per source address, kept only with `--max-per-ip`.
    per_ip: HashMap<IpAddr, usize>,
    /// The last `--history` chat lines, formatted.
    pub(crate) history: std::collections::VecDeque<Box<[u8]>>,
    /// Bytes in `history`, at most `Config::history_limit`.
    pub(crate) history_bytes: usize,
    /// `history` as one shared text, built when a newcomer needs it after a
    /// change.
    pub(crate) history_text: Option<SharedText>,
    /// The `--motd` lines, cleaned, each ending in `\n`.
    pub(crate) motd: Option<SharedText>,
    /// The `/who` answer, built when asked for after a change of membership.
    pub(crate) who_text: Option<SharedText>,
    /// `--notice-rate`: which arrivals and departures are announced.
    pub(crate) notices: NoticeGate,
    pub(crate) stats: Stats,
    /// Clients in [`Phase::Joined`].
    pub(crate) joined: usize,
    next_id: u64,
    pub(crate) next_joined_seq: u64,
    clock: Instant,
    /// Milliseconds since `clock`, taken once per turn.
    pub(crate) now_ms: u64,
    /// Reading is paused for everyone until queued output drains.
    reading_paused: bool,
    /// When the current pause began.
    paused_at_ms: u64,
    next_sweep_ms: Option<u64>,
    accept_retry_ms: Option<u64>,
    /// A descriptor held back so that, when accept fails with EMFILE, one can
    /// be freed to accept and close the waiting connections.
    reserve: Option<File>,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    metrics: Option<MetricsEndpoint>,
    shutdown_by_ms: Option<u64>,
    /// Bytes dropped with clients closed during shutdown before they drained.
    unsent_at_shutdown: usize,
    pub(crate) gate_connect: LogGate,
    pub(crate) gate_warn: LogGate,
    gate_fd: LogGate,
    gate_pause: LogGate,
    gate_resume: LogGate,
    gate_signal: LogGate,
}

impl Server {
    /// Binds `config.listen` and prepares the server.
    pub fn bind(config: Config) -> io::Result<Server> {
        let addr = crate::config::resolve("--listen", &config.listen)?;
        let listener = listen(addr)
            .map_err(|e| crate::config::flag_error("--listen", &config.listen, e, ""))?;
        Server::with_listener(listener, config)
    }

    /// Serves on an already bound listener (socket activation, tests).
    pub fn from_std(listener: std::net::TcpListener, config: Config) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        Server::with_listener(TcpListener::from_std(listener), config)
    }

    fn with_listener(mut listener: TcpListener, config: Config) -> io::Result<Server> {
        config
            .check()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let local_addr = listener.local_addr()?;
        let max_clients = config.max_clients.unwrap_or_else(|| {
            (crate::sys::fd_limit() as usize)
                .saturating_sub(RESERVED_FDS)
                .max(1)
        });
        let metrics = match &config.metrics {
            Some(value) => {
                let addr = crate::config::resolve("--metrics", value)?;
                let endpoint = MetricsEndpoint::bind(addr, poll.registry(), METRICS)
                    .map_err(|e| crate::config::flag_error("--metrics", value, e, ""))?;
                Some(endpoint)
            }
            None => None,
        };
        let turn_budget = TURN_BUDGET.min((config.max_output / 2).max(MIN_TURN_BUDGET));
        let notices = NoticeGate::new(config.notice_rate);
        let mut server = Server {
            poll,
            listener: Some(listener),
            local_addr,
            config,
            max_clients,
            turn_budget,
            turn_max_private: 0,
            clients: Slab::new(),
            arena: Vec::with_capacity(ARENA_KEEP),
            turn: 0,
            meter: Meter::default(),
            fixed_meter: Meter::default(),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            ready: Vec::new(),
            dirty: Vec::new(),
            doomed: Vec::new(),
            visit: Vec::new(),
            backlog: Vec::new(),
            throttled: BinaryHeap::new(),
            names: HashMap::new(),
            skeletons: HashMap::new(),
            per_ip: HashMap::new(),
            history: Default::default(),
            history_bytes: 0,
            history_text: None,
            motd: None,
            who_text: None,
            notices,
            stats: Stats::default(),
            joined: 0,
            next_id: 0,
            next_joined_seq: 0,
            clock: Instant::now(),
            now_ms: 0,
            reading_paused: false,
            paused_at_ms: 0,
            next_sweep_ms: None,
            accept_retry_ms: None,
            reserve: File::open("/dev/null").ok(),
            signals: None,
            metrics,
            shutdown_by_ms: None,
            unsent_at_shutdown: 0,
            gate_connect: LogGate::new(20),
            gate_warn: LogGate::new(5),
            gate_fd: LogGate::new(1),
            gate_pause: LogGate::new(2),
            gate_resume: LogGate::new(2),
            gate_signal: LogGate::new(2),
        };
        if server.config.max_total_output / 2 < server.config.max_output {
            warn!(
                "--max-total-output {} is below twice --max-output {}: one client that \
                 stops reading can pause reading for everyone",
                server.config.max_total_output, server.config.max_output
            );
        }
        server.load_motd().map_err(|e| {
            let path = server
                .config
                .motd
                .as_deref()
                .unwrap_or(std::path::Path::new(""));
            io::Error::new(e.kind(), format!("--motd {}: {e}", path.display()))
        })?;
        server.schedule_sweep();
        Ok(server)
    }

    /// The address actually bound (with the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the metrics endpoint, if `--metrics` was given.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.local_addr())
    }

    /// The most clients served at once.
    pub fn max_clients(&self) -> usize {
        self.max_clients
    }

    /// Handles SIGTERM and SIGINT (graceful shutdown) and SIGHUP (re-read the
    /// motd) inside the loop, and ignores SIGUSR1 and SIGUSR2. Only the daemon does this; tests that run many
    /// servers in one process do not.
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
            self.now_ms = self.clock.elapsed().as_millis() as u64;
            // Checked before the timers: the sweep would close the clients
            // whose deadline is the same, and their unsent bytes would go
            // unreported ("all output delivered").
            if self.grace_over() {
                return Ok(Exit::Graceful);
            }
            // The clients carried over from earlier turns. Whatever is put
            // on `ready` from here on (a read that used up its budget, a
            // rate-limit wake-up, a newcomer) is served next turn.
            let carried = std::mem::take(&mut self.ready);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    SIGNALS => {
                        if let Some(exit) = self.take_signals() {
                            return Ok(exit);
                        }
                    }
                    METRICS => self.accept_metrics(),
                    Token(t) if t >= METRICS_CONN_BASE => self.metrics_event(t - METRICS_CONN_BASE),
                    Token(key) => self.client_event(key, event),
                }
            }
            self.fire_timers();
            self.serve_ready(carried);
            self.flush_all();
            self.remove_doomed();
            if self.shutdown_by_ms.is_some() && self.shutdown_done() {
                return Ok(Exit::Graceful);
            }
        }
    }

    /// How long `poll` may sleep: zero when work was carried over, else until
    /// the nearest timer, else forever.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.ready.is_empty() || !self.dirty.is_empty() || !self.arena.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = self.clock.elapsed().as_millis() as u64;
        let timers = [
            self.throttled.peek().map(|Reverse((at, _, _))| *at),
            self.next_sweep_ms,
            self.accept_retry_ms,
            self.shutdown_by_ms,
            self.metrics.as_ref().and_then(|m| m.next_deadline()),
            self.notices.due_ms(),
            // Stalled holders are looked for every tenth of PAUSE_STALL.
            self.reading_paused
                .then(|| now + PAUSE_STALL.as_millis() as u64 / 10),
        ];
        timers
            .into_iter()
            .flatten()
            .min()
            .map(|at| Duration::from_millis(at.saturating_sub(now)))
    }

    // ----- accepting -------------------------------------------------------

    /// Accepts until `WouldBlock`. One failed accept never stops the server.
    ///
    /// Every newcomer is announced to everyone, so accepting produces output
    /// as reading does: it stops while reading is paused (the kernel's
    /// backlog holds the newcomers) and once the turn's budget is used, and
    /// goes on when that ends.
    fn accept_all(&mut self) {
        self.accept_retry_ms = None;
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            if self.reading_paused {
                return; // Resuming accepts again.
            }
            if !self.fits_everyone(ARRIVAL_BYTES) {
                self.accept_retry_ms = Some(self.now_ms);
                return;
            }
            match listener.accept() {
                Ok((socket, addr)) => self.admit(socket, addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_fd_exhaustion(&e) => {
                    self.shed_connections();
                    return;
                }
                Err(e) if is_transient_accept_error(&e) => {
                    debug!("accept: {e}");
                }
                Err(e) => {
                    if let Some(held) = self.gate_warn.pass(self.now_ms) {
                        warn!("accept failed: {e}; retrying shortly{}", held_note(held));
                    }
                    self.accept_retry_ms = Some(self.now_ms + ACCEPT_RETRY_MS);
                    return;
                }
            }
        }
    }

    /// Out of descriptors: free the reserve, accept and close everything that
    /// waits (with a best-effort notice), then take the reserve back. Without
    /// this an edge-triggered listener would either stall (the backlog never
    /// drains) or, level-triggered, spin.
    fn shed_connections(&mut self) {
        self.stats.fd_exhausted += 1;
        self.reserve = None;
        let mut shed = 0u64;
        if let Some(listener) = &self.listener {
            loop {
                match listener.accept() {
                    Ok((mut socket, _)) => {
                        let _ = socket.write(b"*** server busy\n");
                        self.stats.accepted += 1;
                        self.stats.close(CloseReason::Busy);
                        shed += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if is_transient_accept_error(&e) => {}
                    Err(_) => {
                        // Still no descriptor (something else holds them):
                        // try again shortly rather than spin.
                        self.accept_retry_ms = Some(self.now_ms + ACCEPT_RETRY_MS);
                        break;
                    }
                }
            }
        }
        self.reserve = File::open("/dev/null").ok();
        if self.reserve.is_none() {
            self.accept_retry_ms = Some(self.now_ms + ACCEPT_RETRY_MS);
        }
        if let Some(held) = self.gate_fd.pass(self.now_ms) {
            warn!(
                "descriptor limit reached with {} clients: closed {shed} new connections{}",
                self.clients.len(),
                held_note(held)
            );
        }
    }

    /// Decides whether a new connection may stay, and sets it up.
    fn admit(&mut self, mut socket: TcpStream, addr: SocketAddr) {
        self.stats.accepted += 1;
        let ip = source_key(addr.ip(), self.config.per_ip_prefix_v6);
        let refusal = if self.shutdown_by_ms.is_some() {
            Some((CloseReason::Shutdown, &b"*** server shutting down\n"[..]))
        } else if self.clients.len() >= self.max_clients {
            Some((CloseReason::Full, &b"*** server full\n"[..]))
        } else if self.config.max_per_ip > 0
            && self.per_ip.get(&ip).copied().unwrap_or(0) >= self.config.max_per_ip
        {
            Some((
                CloseReason::PerIp,
                &b"*** too many connections from your address\n"[..],
            ))
        } else {
            None
        };
        if let Some((reason, notice)) = refusal {
            // Best effort: a fresh socket's buffer takes a short line.
            let _ = socket.write(notice);
            self.stats.close(reason);
            if let Some(held) = self.gate_warn.pass(self.now_ms) {
                warn!(
                    "refused {}: {} ({} clients){}",
                    who_from_addr(addr),
                    reason.label(),
                    self.clients.len(),
                    held_note(held)
                );
            }
            return;
        }
        if let Err(e) = self.configure(&socket) {
            debug!("{addr}: socket options: {e}");
        }
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut socket, Token(key), Interest::READABLE)
        {
            warn!("cannot register {addr}: {e}");
            self.stats.close(CloseReason::Error);
            return;
        }
        let who = who_from_addr(addr).into_boxed_str();
        self.next_id += 1;
        let bucket = TokenBucket::full(self.config.rate, self.now_ms);
        let output = OutQueue::new(&self.meter);
        let mut client = Client::new(socket, ip, who, self.next_id, bucket, self.now_ms, output);
        client.read_turn = self.turn.wrapping_sub(1);
        client.mark = self.arena.len() as u32;
        client.mark_turn = self.turn;
        // Bytes may already be waiting; edge-triggered readiness may have fired
        // before registration, so read it this turn.
        client.readable = true;
        entry.insert(client);
        if self.config.max_per_ip > 0 {
            *self.per_ip.entry(ip).or_insert(0) += 1;
        }
        if let Some(held) = self.gate_connect.pass(self.now_ms) {
            info!(
                "{} connected ({} clients){}",
                self.clients[key].who,
                self.clients.len(),
                held_note(held)
            );
        }
        if self.config.ask_name {
            self.send(key, b"What is your name?\n");
        } else {
            self.join(key);
        }
        self.ready.push(key);
    }

    fn configure(&self, socket: &TcpStream) -> io::Result<()> {
        // Chat lines are small and latency matters more than packet count;
        // our own coalescing already batches a turn's output into one write.
        socket.set_nodelay(true)?;
        if let Some(size) = self.config.sndbuf {
            socket2::SockRef::from(socket).set_send_buffer_size(size)?;
        }
        Ok(())
    }

    // ----- reading ---------------------------------------------------------

    fn client_event(&mut self, key: usize, event: &mio::event::Event) {
        let Some(client) = self.clients.get_mut(key) else {
            return; // A stale event for a client removed earlier.
        };
        if client.doomed {
            return;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            client.write_blocked = false;
            self.mark_dirty(key);
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.clients[key].readable = true;
            self.serve_read(key);
        }
    }

    /// Serves the clients that had more to read than one turn allows, or were
    /// waiting for a rate-limit token or for the total-output pause to end.
    fn serve_ready(&mut self, carried: Vec<usize>) {
        for &key in &carried {
            if self.clients.contains(key) {
                self.serve_read(key);
            }
        }
        // Keep the allocation if nothing new was queued meanwhile.
        if self.ready.is_empty() {
            self.ready = carried;
            self.ready.clear();
        }
    }

    /// Handles what is buffered, then reads until `WouldBlock`, the per-turn
    /// budget, or a stop (rate limit, turn budget, total-output pause).
    fn serve_read(&mut self, key: usize) {
        let client = &mut self.clients[key];
        if client.doomed
            || client.phase == Phase::Closing
            || client.throttled
            || self.reading_paused
        {
            // Whatever paused it puts it back on the ready list when it ends.
            return;
        }
        if client.read_turn == self.turn {
            // Already had its share this turn (an event came before the entry
            // carried over): that read put it back on `ready` if it had more.
            return;
        }
        client.read_turn = self.turn;
        let mut input = std::mem::take(&mut client.input);
        let mut stopped = self.handle_lines(key, &mut input);
        let mut budget = READ_BUDGET;
        let mut failure = None;
        while !stopped && self.clients[key].readable {
            if budget == 0 {
                self.ready.push(key);
                break;
            }
            let client = &mut self.clients[key];
            match client.socket.read(&mut self.scratch) {
                Ok(0) => {
                    client.readable = false;
                    client.eof = true;
                    if !input.is_empty() {
                        // The last line may lack its newline; it still counts.
                        input.push(b"\n");
                        stopped = self.handle_lines(key, &mut input);
                    }
                    break;
                }
                Ok(n) => {
                    input.push(&self.scratch[..n]);
                    budget = budget.saturating_sub(n);
                    stopped = self.handle_lines(key, &mut input);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    client.readable = false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    client.readable = false;
                    failure = Some(e);
                    break;
                }
            }
        }
        let client = &mut self.clients[key];
        input.release_if_empty();
        client.input = input;
        if let Some(e) = failure {
            debug!("{}: read: {e}", client.who);
            self.doom(key, CloseReason::Error);
        } else if client.eof && !stopped && client.phase != Phase::Closing && !client.doomed {
            // Every line it sent is handled: now it leaves.
            self.leave(key, CloseReason::Eof, None);
        }
    }

    /// Handles complete lines from `input` until none is left or something
    /// says stop. Returns true if it stopped early (input may remain).
    ///
    /// A line is looked at before it is taken: if what it would queue does
    /// not fit in this turn's budget, it stays in the buffer and the client
    /// is read again next turn; TCP holds the rest back meanwhile.
    fn handle_lines(&mut self, key: usize, input: &mut LineBuffer) -> bool {
        let max = self.config.max_line;
        loop {
            let client = &self.clients[key];
            if client.doomed || client.phase == Phase::Closing || self.reading_paused {
                return true;
            }
            let held = self.queued_bytes();
            if held > self.config.max_total_output {
                self.pause_reading(held);
                return true;
            }
            let Some(frame) = input.peek(max) else {
                return false;
            };
            let client = &mut self.clients[key];
            let rate = self.config.rate;
            if rate > 0 && !client.bucket.ready(rate, self.now_ms) {
                let wake = self.now_ms + client.bucket.wait_ms(rate);
                client.throttled = true;
                self.throttled.push(Reverse((wake, key, client.id)));
                self.stats.rate_limited += 1;
                return true;
            }
            if self.handle_frame(key, frame) == Outcome::Held {
                self.stats.budget_holds += 1;
                self.ready.push(key);
                return true;
            }
            if rate > 0 {
                self.clients[key].bucket.take();
            }
            input.next(max);
        }
    }

    /// Handles one frame, unless what it would queue does not fit this turn.
    fn handle_frame(&mut self, key: usize, frame: Frame<'_>) -> Outcome {
        let (line, cut) = match frame {
            Frame::Line(line) => (line, false),
            Frame::Cut(kept) => (kept, true),
        };
        if self.handle_line(key, line) == Outcome::Held {
            return Outcome::Held;
        }
        self.stats.lines_in += 1;
        self.clients[key].last_heard_ms = self.now_ms;
        if cut {
            self.stats.cut_lines += 1;
            if self.clients[key].phase != Phase::Closing {
                // (A cut `/quit REASON` has already left.)
                let notice = format!("*** line too long: cut to {} bytes\n", line.len());
                self.send(key, notice.as_bytes());
            }
            if let Some(held) = self.gate_warn.pass(self.now_ms) {
                warn!(
                    "{}: line over {} bytes cut{}",
                    self.clients[key].who,
                    self.config.max_line,
                    held_note(held)
                );
            }
        }
        Outcome::Done
    }

    /// True if `bytes` more for every member fit in this turn's budget: the
    /// arena plus the most any one client got privately this turn. A turn
    /// that has queued nothing yet takes any one line, however long.
    pub(crate) fn fits_everyone(&self, bytes: usize) -> bool {
        self.budget_allows(self.arena.len() + self.turn_max_private, bytes)
    }

    /// True if `bytes` more for `key` alone fit in this turn's budget.
    pub(crate) fn fits_one(&self, key: usize, bytes: usize) -> bool {
        self.budget_allows(
            self.clients[key].private_in(self.turn) + self.arena.len(),
            bytes,
        )
    }

    /// True if `bytes` may follow `used` bytes already queued for a client in
    /// this turn.
    pub(crate) fn budget_allows(&self, used: usize, bytes: usize) -> bool {
        used == 0 || used + bytes <= self.turn_budget
    }

    /// Stops reading from everyone until queued output falls below half of
    /// `--max-total-output`. Nothing is dropped: TCP holds the senders back.
    fn pause_reading(&mut self, held: usize) {
        if !self.reading_paused {
            self.reading_paused = true;
            self.paused_at_ms = self.now_ms;
            self.stats.total_pauses += 1;
            if let Some(held_back) = self.gate_pause.pass(self.now_ms) {
                warn!(
                    "{held} bytes queued for clients, over --max-total-output {}: pausing reads{}",
                    self.config.max_total_output,
                    held_note(held_back)
                );
            }
        }
    }

    fn maybe_resume_reading(&mut self) {
        if self.reading_paused && self.meter.get() >= self.config.max_total_output / 2 {
            self.evict_stalled();
        }
        if self.reading_paused && self.meter.get() < self.config.max_total_output / 2 {
            self.reading_paused = false;
            if let Some(held_back) = self.gate_resume.pass(self.now_ms) {
                warn!(
                    "queued output down to {} bytes: reading again{}",
                    self.meter.get(),
                    held_note(held_back)
                );
            }
            for (key, client) in &self.clients {
                if client.readable || !client.input.is_empty() {
                    self.ready.push(key);
                }
            }
            // Newcomers waited in the backlog meanwhile.
            self.accept_retry_ms = Some(self.now_ms);
        }
    }

    /// A pause that does not end by itself is held by readers that have
    /// stopped: their queues no longer grow, so the per-client cap never
    /// catches them, and everyone else waits. So during a pause a client
    /// whose socket has taken nothing for [`PAUSE_STALL`] is closed as slow,
    /// the biggest first, until the total is below half; after [`LINGER`] of
    /// pause, the biggest holders go whether they move or not.
    fn evict_stalled(&mut self) {
        let stall = PAUSE_STALL.as_millis() as u64;
        let all = self.now_ms >= self.paused_at_ms + LINGER.as_millis() as u64;
        let mut holders: Vec<(usize, usize)> = self
            .clients
            .iter()
            .filter(|(_, c)| !c.doomed && !c.output.is_empty())
            .filter(|(_, c)| all || self.now_ms >= c.last_write_ms + stall)
            .map(|(key, c)| (c.output.cost(), key))
            .collect();
        holders.sort_unstable_by(|a, b| b.cmp(a));
        for (cost, key) in holders {
            if self.meter.get() < self.config.max_total_output / 2 {
                break;
            }
            if let Some(held) = self.gate_warn.pass(self.now_ms) {
                warn!(
                    "{}: {cost} bytes queued while reading is paused: disconnecting{}",
                    self.clients[key].who,
                    held_note(held)
                );
            }
            self.doom(key, CloseReason::Slow);
        }
    }

    // ----- timers ----------------------------------------------------------

    fn fire_timers(&mut self) {
        while let Some(&Reverse((at, key, id))) = self.throttled.peek() {
            if at > self.now_ms {
                break;
            }
            self.throttled.pop();
            if let Some(client) = self.clients.get_mut(key)
                && client.id == id
            {
                client.throttled = false;
                self.ready.push(key);
            }
        }
        if self.accept_retry_ms.is_some_and(|at| at <= self.now_ms) {
            self.accept_all();
        }
        if self.next_sweep_ms.is_some_and(|at| at <= self.now_ms) {
            self.sweep();
        }
        if let Some(metrics) = &mut self.metrics {
            metrics.expire(self.poll.registry(), self.now_ms);
        }
        if let Some(summary) = self.notices.summary(self.now_ms) {
            self.arena.extend_from_slice(summary.as_bytes());
            self.stats.lines_out += self.joined as u64;
        }
    }

    /// Walks all clients for the idle timeout and for leaving clients whose
    /// linger ran out, then schedules the next walk at the earliest deadline.
    fn sweep(&mut self) {
        let now = self.now_ms;
        let mut idle = Vec::new();
        let mut expired = Vec::new();
        for (key, client) in &self.clients {
            match self.due_ms(client) {
                _ if client.doomed => {}
                Some(due) if due <= now && client.phase == Phase::Closing => expired.push(key),
                // While reading is paused for everyone, nobody's lines are
                // read, so silence proves nothing.
                Some(due) if due <= now && !self.reading_paused => idle.push(key),
                _ => {}
            }
        }
        for key in idle {
            self.send(key, b"*** idle timeout\n");
            self.leave(key, CloseReason::Idle, None);
        }
        for key in expired {
            let client = &self.clients[key];
            debug!(
                "{}: closing with {} bytes unsent after linger",
                client.who,
                client.output.len()
            );
            self.doom(key, CloseReason::Error);
        }
        self.schedule_sweep();
    }

    /// When the sweep must next look at `client`: the end of its linger
    /// while it is leaving, else the end of its idle time (with
    /// `--idle-timeout`).
    fn due_ms(&self, client: &Client) -> Option<u64> {
        match (client.phase, self.config.idle_timeout) {
            (Phase::Closing, _) => Some(client.close_by_ms),
            (_, Some(idle)) => Some(client.last_heard_ms.saturating_add(idle.as_millis() as u64)),
            (_, None) => None,
        }
    }

    /// Sets the next sweep to the earliest idle or linger deadline.
    fn schedule_sweep(&mut self) {
        let idle_ms = self.config.idle_timeout.map(|d| d.as_millis() as u64);
        // The gap spaces out idle sweeps only; a linger deadline (10 s) must
        // not be pushed back by a hundredth of a long idle timeout.
        let gap = MIN_SWEEP_GAP_MS.max(idle_ms.unwrap_or(0) / 100);
        let mut next: Option<u64> = None;
        for (_, client) in &self.clients {
            let due = match self.due_ms(client) {
                Some(due) if client.phase != Phase::Closing => Some(due.max(self.now_ms + gap)),
                due => due,
            };
            next = match (next, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if let (None, Some(ms)) = (next, idle_ms) {
            // No clients: the next newcomer cannot expire sooner than this.
            next = Some(self.now_ms.saturating_add(ms));
        }
        self.next_sweep_ms = next.map(|at| at.max(self.now_ms + MIN_SWEEP_GAP_MS));
    }

    // ----- queueing --------------------------------------------------------

    /// Queues the broadcasts of this turn that `key` has not been given yet.
    /// Called before anything is queued for the client alone, so its private
    /// lines and the broadcasts around them stay in order, and before the
    /// client stops receiving.
    pub(crate) fn catch_up(&mut self, key: usize) {
        let client = &mut self.clients[key];
        let from = client.region_start(self.turn);
        let to = self.arena.len();
        client.mark = to as u32;
        client.mark_turn = self.turn;
        if !client.receives() || from >= to {
            return;
        }
        if client.skipping {
            if client.output.cost() < self.config.max_output / 2 {
                // Drained enough: say what was lost before the next line.
                client.skipping = false;
                let notice = format!("*** {} lines skipped\n", client.skipped_unreported);
                client.skipped_unreported = 0;
                client
                    .output
                    .push(Entry::whole(Chunk::new(notice.as_bytes(), &self.meter)));
            } else {
                let lines = count_newlines(&self.arena[from..to]);
                client.skip(lines);
                self.stats.skipped_lines += lines;
                return;
            }
        }
        client.output.push(Entry::arena(from, to));
    }

    /// Queues `bytes` (whole lines) for one client only.
    pub(crate) fn send(&mut self, key: usize, bytes: &[u8]) {
        let lines = count_newlines(bytes);
        self.send_entry(key, Entry::whole(Chunk::new(bytes, &self.meter)), lines);
    }

    /// Queues a shared text (motd, history, `/who`) for one client, by
    /// reference.
    pub(crate) fn send_shared(&mut self, key: usize, text: &SharedText) {
        self.send_entry(key, Entry::whole(text.chunk.clone()), text.lines);
    }

    fn send_entry(&mut self, key: usize, entry: Entry, lines: u64) {
        self.catch_up(key);
        let client = &mut self.clients[key];
        let before = client.output.len();
        client.output.push(entry);
        let added = client.output.len() - before;
        let private = client.add_private(self.turn, added);
        self.turn_max_private = self.turn_max_private.max(private);
        self.stats.lines_out += lines;
        self.mark_dirty(key);
    }

    pub(crate) fn mark_dirty(&mut self, key: usize) {
        let client = &mut self.clients[key];
        if !client.dirty {
            client.dirty = true;
            self.dirty.push(key);
        }
    }

    // ----- flushing --------------------------------------------------------

    /// Gives every client with new output one flush, seals what is still
    /// unsent, compacts and caps the queues that keep a backlog, and readies
    /// the arena for next turn.
    fn flush_all(&mut self) {
        let mut visit = std::mem::take(&mut self.visit);
        visit.clear();
        if self.arena.is_empty() {
            visit.append(&mut self.dirty);
        } else {
            // A broadcast happened: everyone may have something.
            self.dirty.clear();
            visit.extend(self.clients.iter().map(|(key, _)| key));
        }
        // The clients left with a backlog after their flush.
        let mut backlog = std::mem::take(&mut self.backlog);
        backlog.clear();
        let mut low = usize::MAX;
        for &key in &visit {
            let Some(client) = self.clients.get_mut(key) else {
                continue;
            };
            client.dirty = false;
            if client.doomed {
                continue;
            }
            self.catch_up(key);
            self.flush_client(key);
            let output = &self.clients[key].output;
            if !self.clients[key].doomed && !output.is_empty() {
                backlog.push(key);
                if let Some(at) = output.arena_low() {
                    low = low.min(at);
                }
            }
        }
        if low != usize::MAX {
            // One copy of the still-needed tail of the arena, shared by all.
            let chunk = Chunk::new(&self.arena[low..], &self.meter);
            for &key in &backlog {
                self.clients[key].output.seal(low, &chunk);
            }
        }
        for &key in &backlog {
            self.clients[key].output.compact();
            self.enforce_output_cap(key);
        }
        self.arena.clear();
        if self.arena.capacity() > ARENA_KEEP {
            self.arena.shrink_to(ARENA_KEEP);
        }
        self.turn = self.turn.wrapping_add(1);
        self.turn_max_private = 0;
        self.visit = visit;
        self.backlog = backlog;
        self.maybe_resume_reading();
    }

    /// Writes what the client's socket takes now.
    fn flush_client(&mut self, key: usize) {
        let client = &mut self.clients[key];
        if client.write_blocked && !client.output.is_empty() {
            return; // Waiting for a writable event.
        }
        let limits = WriteLimits {
            max_write: self.config.max_write,
            budget: WRITE_BUDGET,
        };
        let report = client
            .output
            .write_to(&mut client.socket, &self.arena, limits);
        self.stats.bytes_out += report.written as u64;
        self.stats.short_writes += report.short_writes as u64;
        if report.written > 0 || client.output.is_empty() {
            client.last_write_ms = self.now_ms;
        }
        match report.how {
            Flushed::Drained => {
                if client.write_interest {
                    client.write_interest = false;
                    let _ = self.poll.registry().reregister(
                        &mut client.socket,
                        Token(key),
                        Interest::READABLE,
                    );
                }
                if client.phase == Phase::Closing {
                    // Everything said: close our side cleanly. Input we never
                    // read (a throttled paste, lines sent after /quit or
                    // during a pause) must be drained first: closing a socket
                    // with unread input sends an RST instead of a FIN, and
                    // the kernel then discards whatever it has not yet
                    // delivered of the output we just "flushed".
                    let _ = client.socket.shutdown(std::net::Shutdown::Write);
                    let mut budget = 4 * READ_BUDGET;
                    while budget > 0 {
                        match client.socket.read(&mut self.scratch) {
                            Ok(n) if n > 0 => budget = budget.saturating_sub(n),
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            _ => break, // EOF, WouldBlock or an error.
                        }
                    }
                    let reason = client.close_reason.unwrap_or(CloseReason::Eof);
                    self.doom(key, reason);
                }
            }
            Flushed::Blocked => {
                client.write_blocked = true;
                if !client.write_interest {
                    client.write_interest = true;
                    let _ = self.poll.registry().reregister(
                        &mut client.socket,
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                }
            }
            Flushed::OutOfBudget => {
                client.dirty = true;
                self.dirty.push(key);
            }
            Flushed::Failed(e) => {
                debug!("{}: write: {e}", client.who);
                self.doom(key, CloseReason::Error);
            }
        }
    }

    /// Applies `--max-output` to what is left after the flush: the queue's
    /// cost, its bytes and the entries that hold them.
    fn enforce_output_cap(&mut self, key: usize) {
        let cap = self.config.max_output;
        let client = &mut self.clients[key];
        if client.output.cost() <= cap {
            return;
        }
        match self.config.slow_client {
            SlowClient::Disconnect => {
                if let Some(held) = self.gate_warn.pass(self.now_ms) {
                    warn!(
                        "{}: {} bytes queued, over --max-output {cap}: disconnecting{}",
                        client.who,
                        client.output.cost(),
                        held_note(held)
                    );
                }
                self.doom(key, CloseReason::Slow);
            }
            SlowClient::Drop => {
                let lines = client.output.truncate_cost(cap, &self.arena);
                client.skip(lines);
                self.stats.skipped_lines += lines;
                if !client.skipping {
                    client.skipping = true;
                    if let Some(held) = self.gate_warn.pass(self.now_ms) {
                        warn!(
                            "{}: output over --max-output {cap}: skipping lines{}",
                            client.who,
                            held_note(held)
                        );
                    }
                }
            }
        }
    }

    // ----- leaving ---------------------------------------------------------

    /// The client leaves: others are told, and its remaining output is flushed
    /// before the connection closes (for at most [`LINGER`]).
    pub(crate) fn leave(&mut self, key: usize, reason: CloseReason, why: Option<&[u8]>) {
        let linger = LINGER.as_millis() as u64;
        self.begin_closing(key, reason, self.now_ms + linger, true, why);
    }

    fn begin_closing(
        &mut self,
        key: usize,
        reason: CloseReason,
        close_by_ms: u64,
        announce: bool,
        why: Option<&[u8]>,
    ) {
        self.catch_up(key);
        let client = &mut self.clients[key];
        let was_joined = client.phase == Phase::Joined;
        client.phase = Phase::Closing;
        client.close_reason = Some(reason);
        client.close_by_ms = close_by_ms;
        if was_joined {
            self.depart(key, announce, why);
        }
        self.mark_dirty(key);
        self.next_sweep_ms = Some(
            self.next_sweep_ms
                .map_or(close_by_ms, |t| t.min(close_by_ms)),
        );
        self.log_leave(key, reason);
    }

    /// Takes a joined client out of the room: its name is freed and, if
    /// `announce`, the others get `<who> has left`.
    fn depart(&mut self, key: usize, announce: bool, why: Option<&[u8]>) {
        self.joined -= 1;
        self.who_text = None;
        let who = self.clients[key].who.clone();
        self.release_name(key);
        if announce && self.notices.pass(Movement::Departure, self.now_ms) {
            self.arena.extend_from_slice(who.as_bytes());
            self.arena.extend_from_slice(b" has left");
            if let Some(why) = why {
                self.arena.extend_from_slice(b" (");
                crate::clean::clean_into(&mut self.arena, why);
                self.arena.push(b')');
            }
            self.arena.push(b'\n');
            self.stats.lines_out += self.joined as u64;
        }
    }

    /// Marks a client for removal after this turn; its output is dropped.
    pub(crate) fn doom(&mut self, key: usize, reason: CloseReason) {
        let client = &mut self.clients[key];
        if client.doomed {
            return;
        }
        client.doomed = true;
        client.close_reason.get_or_insert(reason);
        if self.shutdown_by_ms.is_some() {
            self.unsent_at_shutdown += client.output.len();
        }
        client.output.clear();
        self.doomed.push(key);
    }

    /// Removes the clients closed during this turn. Their leaving is announced
    /// here, after the flush, so no broadcast is ever half-delivered; the
    /// announcement goes out next turn.
    fn remove_doomed(&mut self) {
        let doomed = std::mem::take(&mut self.doomed);
        for &key in &doomed {
            let reason = self.clients[key].close_reason.unwrap_or(CloseReason::Error);
            if self.clients[key].phase == Phase::Joined {
                self.clients[key].phase = Phase::Closing;
                self.depart(key, true, None);
                self.log_leave(key, reason);
            } else if self.clients[key].phase == Phase::Naming {
                self.log_leave(key, reason);
            }
            let mut client = self.clients.remove(key);
            let _ = self.poll.registry().deregister(&mut client.socket);
            if self.config.max_per_ip > 0
                && let Some(n) = self.per_ip.get_mut(&client.ip)
            {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&client.ip);
                }
            }
            self.stats.close(reason);
        }
        self.doomed = doomed;
        self.doomed.clear();
    }

    fn log_leave(&mut self, key: usize, reason: CloseReason) {
        if let Some(held) = self.gate_connect.pass(self.now_ms) {
            info!(
                "{} left: {} ({} clients){}",
                self.clients[key].who,
                reason.label(),
                self.clients.len() - 1,
                held_note(held)
            );
        }
    }

    // ----- signals and shutdown ---------------------------------------------

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
                    if let Some(held) = self.gate_signal.pass(self.now_ms) {
                        info!("signal {signal} ignored{}", held_note(held));
                    }
                }
                SIGTERM | SIGINT if self.shutdown_by_ms.is_some() => {
                    let unsent: usize = self.clients.iter().map(|(_, c)| c.output.len()).sum();
                    warn!(
                        "second signal: exiting now with {} clients and {unsent} bytes unsent",
                        self.clients.len()
                    );
                    return Some(Exit::Forced);
                }
                SIGTERM | SIGINT => self.begin_shutdown(),
                _ => {}
            }
        }
        None
    }

    /// SIGHUP: re-reads the motd; a bad new one is logged and the old kept.
    /// Logged through a gate, so a flood of SIGHUPs cannot flood the log.
    fn reload(&mut self) {
        let result = self.load_motd();
        let Some(held) = self.gate_signal.pass(self.now_ms) else {
            return;
        };
        let held = held_note(held);
        match (result, &self.config.motd) {
            (Err(e), Some(path)) => warn!(
                "SIGHUP: cannot re-read motd {}: {e}; keeping the old one{held}",
                path.display()
            ),
            (_, Some(path)) => info!(
                "SIGHUP: re-read motd {} ({} bytes){held}",
                path.display(),
                self.motd.as_ref().map_or(0, SharedText::len)
            ),
            (_, None) => info!("SIGHUP: no --motd to re-read{held}"),
        }
    }

    /// Stops accepting, tells everyone, and keeps flushing until every queue
    /// is empty or `--shutdown-grace` has passed.
    pub(crate) fn begin_shutdown(&mut self) {
        let grace = self.config.shutdown_grace.as_millis() as u64;
        let by = self.now_ms.saturating_add(grace);
        info!(
            "shutting down: {} clients, up to {:?} to flush",
            self.clients.len(),
            self.config.shutdown_grace
        );
        let _ = crate::sys::notify_systemd("STOPPING=1");
        self.shutdown_by_ms = Some(by);
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        if let Some(metrics) = self.metrics.take() {
            metrics.close_all(self.poll.registry());
        }
        let keys: Vec<usize> = self.clients.iter().map(|(k, _)| k).collect();
        for key in keys {
            if self.clients[key].doomed {
                continue;
            }
            if self.clients[key].phase == Phase::Closing {
                // Already left (/quit, end of input, idle): it gets no
                // further line, only a shorter deadline.
                let client = &mut self.clients[key];
                client.close_by_ms = client.close_by_ms.min(by);
                continue;
            }
            self.send(key, b"*** server shutting down\n");
            let client = &mut self.clients[key];
            if client.phase == Phase::Joined {
                self.joined -= 1;
                self.who_text = None;
            }
            client.phase = Phase::Closing;
            client.close_reason = Some(CloseReason::Shutdown);
            client.close_by_ms = by;
        }
        self.next_sweep_ms = Some(by);
    }

    fn shutdown_done(&mut self) -> bool {
        if self.clients.is_empty() {
            if self.unsent_at_shutdown == 0 {
                info!("shutdown complete: all output delivered");
            } else {
                warn!(
                    "shutdown complete: {} bytes could not be delivered (clients that \
                     failed or stopped reading)",
                    self.unsent_at_shutdown
                );
            }
            return true;
        }
        self.grace_over()
    }

    /// True once `--shutdown-grace` has passed during shutdown; logs what is
    /// left.
    fn grace_over(&self) -> bool {
        if self.shutdown_by_ms.is_none_or(|by| self.now_ms < by) {
            return false;
        }
        let unsent: usize = self.clients.iter().map(|(_, c)| c.output.len()).sum();
        warn!(
            "shutdown grace over: closing {} clients with {unsent} bytes unsent",
            self.clients.len()
        );
        true
    }

    // ----- metrics -----------------------------------------------------------

    fn accept_metrics(&mut self) {
        if let Some(metrics) = &mut self.metrics {
            metrics.accept_all(self.poll.registry(), self.now_ms);
        }
    }

    fn metrics_event(&mut self, conn: usize) {
        let gauges = self.gauges();
        if let Some(metrics) = &mut self.metrics {
            metrics.serve(conn, self.poll.registry(), &self.stats, &gauges);
        }
    }

    /// Output bytes held for all clients: shared chunks plus this turn's
    /// arena. What `--max-total-output` is checked against.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.meter.get() + self.arena.len()
    }

    /// What the server holds right now.
    pub(crate) fn gauges(&self) -> Gauges {
        Gauges {
            clients: self.clients.len(),
            queued_bytes: self.queued_bytes(),
            reading_paused: self.reading_paused,
            rss_bytes: crate::stats::rss_bytes(),
        }
    }

    /// Re-reads the `--motd` file into cleaned lines. Reading stops at
    /// `--max-motd`, so even `/dev/zero` costs no more than that.
    fn load_motd(&mut self) -> io::Result<()> {
        let Some(path) = &self.config.motd else {
            return Ok(());
        };
        let cap = self.config.max_motd;
        let mut text = Vec::new();
        File::open(path)?
            .take(cap as u64 + 1)
            .read_to_end(&mut text)?;
        if text.len() > cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than --max-motd {cap} bytes"),
            ));
        }
        let mut motd = Vec::with_capacity(text.len());
        let mut lines = LineBuffer::default();
        lines.push(&text);
        let max = self.config.max_line;
        while let Some(Frame::Line(line) | Frame::Cut(line)) = lines.next(max) {
            crate::clean::clean_into(&mut motd, line);
            motd.push(b'\n');
        }
        if let Some(Frame::Line(line) | Frame::Cut(line)) = lines.finish(max) {
            crate::clean::clean_into(&mut motd, line);
            motd.push(b'\n');
        }
        if motd.len() > cap {
            // Control characters are shown in a longer, visible form.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} bytes once control characters are made visible, over --max-motd {cap}",
                    motd.len()
                ),
            ));
        }
        self.motd = (!motd.is_empty()).then(|| SharedText::new(motd, &self.fixed_meter));
        Ok(())
    }
}

/// Binds a listening socket with a backlog of [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // As every server does: a restarted daemon can bind at once.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE (24): this process is out of descriptors; ENFILE (23): the system is.
    matches!(e.raw_os_error(), Some(23) | Some(24))
}

/// Errors that concern one connection only (it was aborted or reset before we
/// took it): skip it and keep accepting.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::PermissionDenied
    ) || matches!(e.raw_os_error(), Some(71)) // EPROTO
}
