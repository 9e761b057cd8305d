//! The single-threaded event loop: connects, reads, sends, measures.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::mem;
use std::num::NonZeroU64;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::args::{Opts, Scenario};
use crate::json::Obj;
use crate::procstat::{
    MemWatch, busy_between, cpu_jiffies, now_ns, pinned_cpu, proc_cpu_ns, self_cpu_ns,
};
use crate::token::{self, Line, Scanner};

const TIMER: Token = Token(usize::MAX - 1);
/// One shared read buffer for all clients; big reads keep syscalls per line low.
const READ_BUF: usize = 256 * 1024;
/// A partial line longer than this is dropped (and counted malformed once its
/// end arrives).
const MAX_CARRY: usize = 64 * 1024;
/// Pending output per sender beyond which the latency scenario stops queueing
/// (the server is not reading; the lines are counted as not sent).
const MAX_BACKLOG: usize = 4 << 20;
/// A full window with no acknowledgement for this long is reopened (the
/// missing lines were lost or mangled and nothing later acknowledged them).
const ACK_TIMEOUT: u64 = 1_000_000_000;
/// Connect attempts per client, and how long one attempt may take.
const CONNECT_ATTEMPTS: u32 = 20;
const CONNECT_ATTEMPT_TIMEOUT: u64 = 5_000_000_000;
/// How long an established connection waits for the server's greeting (the
/// first byte) before it is taken for a "ghost" the server never accepted
/// and poked with an empty line, and how long after the poke before it is
/// given up (closed and retried).
const GREETING_POKE: u64 = 1_000_000_000;
const GREETING_TIMEOUT: u64 = 4_000_000_000;
/// A poked connection still without a greeting stops holding a connect slot
/// ("stale") but stays open and read (see `connect_all`); the connect phase
/// waits at most this long for stale connections once all else is done.
const STALE_MAX: u64 = 15_000_000_000;
/// How long the first connection waits to find out whether the server greets.
const GREETING_PROBE: u64 = 2_000_000_000;
/// Drain ends early after this long without any byte from the server.
const DRAIN_QUIET: u64 = 2_000_000_000;
/// How long the slow client is read at the end to see whether it was closed.
const SLOW_CHECK: u64 = 3_000_000_000;
/// Generator CPU over wall time at or above this means generator-bound.
const GENERATOR_BOUND: f64 = 0.90;
/// …or when it spent less than this share of the interval waiting in poll:
/// it always had work waiting (its own CPU time may leave out the loopback
/// network processing done on its core, and other processes may take the
/// core from it; either way the number then measures the generator).
const GENERATOR_IDLE_MIN: f64 = 0.05;

const SEC: f64 = 1e9;
/// While connecting and settling, turns of the loop are at least this long,
/// so that the servers' notices pile up and are read many to a syscall: on
/// loopback every read of a socket with fresh data also sends an ACK through
/// the whole stack, and reading each notice line on its own makes the
/// generator, not the server, the bottleneck (N² notices for N clients).
const COALESCE: u64 = 2_000_000;
/// No delivery for this long at the end of the measured interval: stalled.
const STALL_GAP: u64 = 500_000_000;

fn secs_ns(s: f64) -> u64 {
    (s * SEC) as u64
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Waiting,
    Connecting,
    /// Established, waiting for the first byte from the server (see
    /// `connect_all`).
    Greeting,
    Connected,
    Closed,
    Failed,
}

struct Client {
    stream: Option<TcpStream>,
    state: State,
    attempts: u32,
    attempt_started: u64,
    /// An empty line was sent to wake a connection the server never accepted.
    poked: bool,
    /// Counted in `connect_failed` while still open, waiting for a greeting.
    given_up: bool,
    slow: bool,
    /// Receiving at the start of the measured interval: its expected lines
    /// count in the loss figure.
    receiving: bool,
    carry: Vec<u8>,
    discarding: bool,
    out: Vec<u8>,
    out_pos: usize,
    /// Distinct measured lines received.
    uniq_measured: u64,
    closed_at: Option<u64>,
    /// This client's sender index, if it sends.
    sender: Option<usize>,
}

impl Client {
    fn new(slow: bool, sender: Option<usize>) -> Self {
        Client {
            stream: None,
            state: State::Waiting,
            attempts: 0,
            attempt_started: 0,
            poked: false,
            given_up: false,
            slow,
            receiving: false,
            carry: Vec::new(),
            discarding: false,
            out: Vec::new(),
            out_pos: 0,
            uniq_measured: 0,
            closed_at: None,
            sender,
        }
    }

    fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }
}

struct Sender {
    client: usize,
    /// Next sequence number (= lines queued so far).
    sent: u64,
    /// Lines acknowledged by the observer (cumulative: seeing `q` acknowledges
    /// everything before it, which per-sender ordering makes sound).
    acked: u64,
    last_progress: u64,
    /// First and one-past-last measured sequence numbers.
    mstart: u64,
    mend: u64,
    /// Latency scenario: intended time of the next line.
    next_due: u64,
    template: Vec<u8>,
}

/// Per (receiver, sender): highest sequence seen + 1 and a bitmap of the 64
/// sequence numbers below it, for duplicate and order detection.
#[derive(Clone, Copy, Default)]
struct Track {
    hi: u64,
    bits: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Connect,
    Settle,
    Warmup,
    Measure,
    Drain,
}

#[derive(Default)]
struct Stats {
    noise: u64,
    malformed: u64,
    /// Lines longer than the carry limit (64 KiB), dropped unread: never an
    /// intact generated line, typically a server's long notice.
    overlong: u64,
    duplicates: u64,
    order_violations: u64,
    self_seen: u64,
    /// Distinct valid lines received during the measured interval.
    delivered: u64,
    bytes_in: u64,
    connect_retries: u64,
    pokes: u64,
    stale: u64,
    connect_failed: u64,
    connect_not_attempted: u64,
    /// The connect phase ran out of time (after this many seconds).
    connect_timed_out: Option<f64>,
    connected_ever: u64,
    closed_by_server: u64,
    window_resets: u64,
    backlog_dropped: u64,
    last_error: Option<String>,
}

/// The clock that paces the latency schedule: a timerfd armed at absolute
/// CLOCK_MONOTONIC times. epoll's own timeout has millisecond resolution;
/// the timer wakes the loop on time and the epoll timeout is a backstop.
struct Timer {
    fd: OwnedFd,
    armed: u64,
}

impl Timer {
    fn new() -> io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // Precise wake-ups for the latency schedule (best effort, as the
        // default 50 µs slack only blurs them).
        let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1));
        Ok(Timer { fd, armed: 0 })
    }

    /// Register with mio like any other source: `SourceFd` (mio's
    /// `os-ext` feature, which the daemon's mio already has through
    /// signal-hook-mio) adds the descriptor to the poller, edge-triggered.
    fn register(&self, poll: &Poll) -> io::Result<()> {
        poll.registry().register(
            &mut SourceFd(&self.fd.as_raw_fd()),
            TIMER,
            Interest::READABLE,
        )
    }

    /// Arm at an absolute CLOCK_MONOTONIC time.
    fn arm(&mut self, at_ns: u64) {
        if self.armed == at_ns {
            return;
        }
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: (at_ns / 1_000_000_000) as i64,
                tv_nsec: (at_ns % 1_000_000_000) as i64,
            },
        };
        let _ = timerfd_settime(&self.fd, TimerfdTimerFlags::ABSTIME, &spec);
        self.armed = at_ns;
    }

    fn clear(&mut self) {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut b);
        self.armed = 0;
    }
}

pub struct Bench {
    o: Opts,
    poll: Poll,
    events: Option<Events>,
    timer: Timer,
    clients: Vec<Client>,
    senders: Vec<Sender>,
    observer: usize,
    slow: Option<usize>,
    tracks: Vec<Track>,
    scanner: Scanner,
    buf: Vec<u8>,
    base: u64,
    phase: Phase,
    queue: VecDeque<usize>,
    retries: Vec<(u64, usize)>,
    in_flight: Vec<usize>,
    /// Poked connections still waiting for a greeting, and since when.
    stale: Vec<(usize, u64)>,
    st: Stats,
    /// Latency histogram (ns): from send (intended send) time to arrival.
    hist: Histogram<u64>,
    /// Latency scenario: the same, up to when this thread read the line.
    hist_user: Histogram<u64>,
    /// Take arrival times from the kernel's receive timestamps.
    kernel_ts: bool,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC (kernel timestamps are realtime).
    rt_offset: i64,
    kernel_ts_missing: u64,
    /// Latency scenario: how late (ns) each measured line was queued after
    /// its intended time — the generator's own lateness.
    send_lag: Histogram<u64>,
    mem: MemWatch,
    next_sample: u64,
    last_rx: u64,
    last_delivery: u64,
    longest_gap: u64,
    interval_ns: u64,
    slow_closed_during_run: Option<u64>,
    /// Does the server send something to every newcomer? `None` until the
    /// first connection tells.
    greets: Option<bool>,
    last_turn: u64,
    /// Time spent inside poll during the measured interval: the generator's
    /// idle time (a generator that always finds work waiting is the limit).
    poll_wait: u64,
}

fn log(msg: std::fmt::Arguments) {
    eprintln!("natter-bench: {msg}");
}

impl Bench {
    pub fn new(o: Opts) -> io::Result<Self> {
        let n = o.clients;
        let extra = usize::from(o.scenario == Scenario::SlowReader);
        let need = (n + extra + 64) as u64;
        let limit = rlimit::increase_nofile_limit(u64::MAX)?;
        if limit < need {
            return Err(io::Error::other(format!(
                "need about {need} file descriptors, RLIMIT_NOFILE hard limit allows {limit}"
            )));
        }
        let s = if o.scenario == Scenario::Idle {
            0
        } else {
            o.senders
        };
        let mut clients = Vec::with_capacity(n + extra);
        for i in 0..n {
            clients.push(Client::new(false, (i < s).then_some(i)));
        }
        let slow = (extra == 1).then(|| {
            clients.push(Client::new(true, None));
            n
        });
        let base = now_ns();
        let senders = (0..s)
            .map(|i| Sender {
                client: i,
                sent: 0,
                acked: 0,
                last_progress: base,
                mstart: u64::MAX,
                mend: u64::MAX,
                next_due: 0,
                template: token::template(i as u64, o.line_bytes),
            })
            .collect();
        let poll = Poll::new()?;
        let timer = Timer::new()?;
        timer.register(&poll)?;
        let hist = Histogram::new_with_bounds(1_000, 3_600_000_000_000, 3)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let interval_ns = ((s.max(1) as f64) * SEC / o.rate).max(1.0) as u64;
        Ok(Bench {
            poll,
            events: Some(Events::with_capacity(4096)),
            timer,
            clients,
            senders,
            observer: s,
            slow,
            tracks: vec![Track::default(); n * s],
            scanner: Scanner::new(o.line_bytes),
            buf: vec![0u8; READ_BUF],
            base,
            phase: Phase::Connect,
            queue: VecDeque::new(),
            retries: Vec::new(),
            in_flight: Vec::new(),
            stale: Vec::new(),
            st: Stats::default(),
            hist_user: hist.clone(),
            send_lag: Histogram::new_with_bounds(1_000, 3_600_000_000_000, 3)
                .map_err(|e| io::Error::other(e.to_string()))?,
            hist,
            kernel_ts: o.scenario == Scenario::Latency,
            rt_offset: crate::rxts::realtime_offset(),
            kernel_ts_missing: 0,
            mem: MemWatch::new(o.server_pid),
            next_sample: base,
            last_rx: base,
            last_delivery: base,
            longest_gap: 0,
            interval_ns,
            slow_closed_during_run: None,
            greets: None,
            last_turn: 0,
            poll_wait: 0,
            o,
        })
    }

    // ---------------------------------------------------------------- loop

    /// Wait for events until `deadline` at the latest (or the next internal
    /// deadline: RSS sample, latency schedule, connect retry), and handle them.
    fn turn(&mut self, deadline: u64) -> io::Result<()> {
        if matches!(self.phase, Phase::Connect | Phase::Settle) {
            let since = now_ns() - self.last_turn;
            if since < COALESCE {
                std::thread::sleep(Duration::from_nanos(COALESCE - since));
            }
            self.last_turn = now_ns();
        }
        let now = now_ns();
        let mut next = deadline.min(self.next_sample);
        if self.sending() && self.o.scenario == Scenario::Latency {
            for s in &self.senders {
                next = next.min(s.next_due);
            }
        }
        if self.phase == Phase::Connect {
            for &(at, _) in &self.retries {
                next = next.min(at);
            }
            for &i in &self.in_flight {
                next = next.min(self.attempt_deadline(i));
            }
            for &(_, since) in &self.stale {
                next = next.min(since + STALE_MAX);
            }
        }
        let timeout = if next <= now {
            Duration::ZERO
        } else {
            let wait = next - now;
            if wait < 20_000_000 {
                // epoll's timeout has millisecond resolution; the timerfd
                // wakes us on time, the epoll timeout is only a backstop.
                self.timer.arm(next);
            }
            Duration::from_nanos(wait + 1_000_000)
        };
        let mut events = self.events.take().expect("events");
        let res = self.poll.poll(&mut events, Some(timeout));
        if self.phase == Phase::Measure {
            self.poll_wait += now_ns() - now;
        }
        if let Err(e) = res {
            self.events = Some(events);
            if e.kind() == ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        let paced = self.sending() && self.o.scenario == Scenario::Latency;
        for (k, ev) in events.iter().enumerate() {
            // A long batch of reads must not hold back lines that are due.
            if paced && k % 32 == 31 {
                self.schedule(now_ns());
            }
            let tok = ev.token();
            if tok == TIMER {
                self.timer.clear();
                continue;
            }
            let idx = tok.0;
            match self.clients[idx].state {
                State::Connecting
                    if ev.is_writable()
                        || ev.is_error()
                        || ev.is_read_closed()
                        || ev.is_write_closed() =>
                {
                    self.check_connect(idx, ev.is_error() || ev.is_write_closed());
                }
                State::Greeting if self.clients[idx].slow => {
                    if ev.is_readable() {
                        self.promote(idx);
                    } else if ev.is_error() || ev.is_read_closed() {
                        self.connect_failed(
                            idx,
                            io::Error::from(ErrorKind::ConnectionReset),
                            true,
                            now_ns(),
                        );
                    }
                }
                State::Connected | State::Greeting => {
                    if self.clients[idx].slow {
                        if (ev.is_error() || ev.is_read_closed())
                            && self.slow_closed_during_run.is_none()
                        {
                            let t = now_ns();
                            log(format_args!(
                                "slow client: connection closed by the server ({:.2} s into the run)",
                                (t - self.base) as f64 / SEC
                            ));
                            self.slow_closed_during_run = Some(t);
                        }
                        continue;
                    }
                    if ev.is_writable() && self.clients[idx].pending_out() > 0 {
                        self.flush(idx);
                    }
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        // With the peer's FIN already in, read to the end
                        // of stream: no later edge would announce it.
                        self.read_client(idx, ev.is_read_closed() || ev.is_error());
                    }
                }
                _ => {}
            }
        }
        self.events = Some(events);
        let now = now_ns();
        if now >= self.next_sample {
            self.mem.sample();
            self.next_sample = now + self.o.sample_ms * 1_000_000;
        }
        Ok(())
    }

    fn sending(&self) -> bool {
        matches!(self.phase, Phase::Warmup | Phase::Measure)
    }

    // ------------------------------------------------------------- connect

    fn start_connect(&mut self, idx: usize, now: u64) {
        let c = &mut self.clients[idx];
        c.attempts += 1;
        c.attempt_started = now;
        let res = (|| -> io::Result<TcpStream> {
            let addr = self.o.addr;
            let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            sock.set_nonblocking(true)?;
            sock.set_tcp_nodelay(true)?;
            if c.slow {
                sock.set_recv_buffer_size(self.o.slow_rcvbuf)?;
            }
            if self.kernel_ts {
                crate::rxts::enable(sock.as_raw_fd())?;
            }
            match sock.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            let mut stream = TcpStream::from_std(sock.into());
            self.poll.registry().register(
                &mut stream,
                Token(idx),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(stream)
        })();
        match res {
            Ok(stream) => {
                c.stream = Some(stream);
                c.state = State::Connecting;
                self.in_flight.push(idx);
            }
            Err(e) => {
                // Descriptor exhaustion and the like are not worth retrying.
                let retry = matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                );
                self.connect_failed(idx, e, retry, now);
            }
        }
    }

    fn connect_failed(&mut self, idx: usize, e: io::Error, retry: bool, now: u64) {
        let c = &mut self.clients[idx];
        if let Some(mut s) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        if let Some(p) = self.in_flight.iter().position(|&i| i == idx) {
            self.in_flight.swap_remove(p);
        }
        if retry && c.attempts < CONNECT_ATTEMPTS {
            c.state = State::Waiting;
            self.st.connect_retries += 1;
            let backoff = (10_000_000u64 << c.attempts.min(6)).min(500_000_000);
            self.retries.push((now + backoff, idx));
        } else {
            c.state = State::Failed;
            self.st.connect_failed += 1;
            if self.st.connect_failed <= 3 {
                log(format_args!("client {idx}: connect failed: {e}"));
            }
            self.st.last_error = Some(e.to_string());
        }
    }

    fn check_connect(&mut self, idx: usize, hard_error: bool) {
        let now = now_ns();
        let stream = self.clients[idx]
            .stream
            .as_ref()
            .expect("connecting stream");
        let outcome = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == ErrorKind::NotConnected && !hard_error => Ok(false),
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(false) => {}
            Ok(true) => {
                let c = &mut self.clients[idx];
                c.state = State::Greeting;
                c.attempt_started = now;
                if self.greets == Some(false) {
                    self.promote(idx);
                }
                let c = &mut self.clients[idx];
                if self.o.name_first {
                    let name = format!("bench{idx}\n");
                    c.out.extend_from_slice(name.as_bytes());
                    self.flush(idx);
                }
                // Edge-triggered: a greeting may already be waiting.
                if !self.clients[idx].slow {
                    self.read_client(idx, true);
                } else if self.clients[idx].state == State::Greeting {
                    let mut b = [0u8; 1];
                    let waiting = self.clients[idx]
                        .stream
                        .as_ref()
                        .is_some_and(|s| s.peek(&mut b).is_ok_and(|n| n > 0));
                    if waiting {
                        self.promote(idx);
                    }
                }
            }
            Err(e) => self.connect_failed(idx, e, true, now),
        }
    }

    /// When the current attempt of in-flight client `idx` times out.
    fn attempt_deadline(&self, idx: usize) -> u64 {
        let c = &self.clients[idx];
        c.attempt_started
            + match (c.state, self.greets) {
                (State::Greeting, None) => GREETING_PROBE,
                (State::Greeting, _) if self.clients[idx].poked => GREETING_TIMEOUT,
                (State::Greeting, _) => GREETING_POKE,
                _ => CONNECT_ATTEMPT_TIMEOUT,
            }
    }

    /// The server has this connection: it is done connecting.
    fn promote(&mut self, idx: usize) {
        if self.clients[idx].state != State::Greeting {
            return;
        }
        if let Some(p) = self.in_flight.iter().position(|&i| i == idx) {
            self.in_flight.swap_remove(p);
        }
        if let Some(p) = self.stale.iter().position(|&(i, _)| i == idx) {
            self.stale.swap_remove(p);
        }
        let c = &mut self.clients[idx];
        c.state = State::Connected;
        if c.given_up {
            c.given_up = false;
            self.st.connect_failed -= 1;
            log(format_args!("client {idx}: greeted after all"));
        }
        self.st.connected_ever += 1;
        if self.greets.is_none() {
            self.greets = Some(true);
            log(format_args!(
                "the server greets newcomers: a connection counts once its first byte arrives"
            ));
        }
    }

    /// Connect every client, at most `--connect-parallel` at once. A
    /// connection counts as made only when the server has visibly accepted
    /// it: when the server greets newcomers (all three servers compared do),
    /// when its first byte arrives. A server with a short accept backlog
    /// (ncat: 10) and SYN cookies otherwise leaves "ghost" connections that
    /// look established to the client but that the server never accepted;
    /// they get no greeting, time out and are retried. Whether the server
    /// greets is found out with the first connection, made alone.
    fn connect_all(&mut self) -> io::Result<()> {
        self.phase = Phase::Connect;
        let start = now_ns();
        let deadline = start + secs_ns(self.o.connect_timeout);
        // The slow client connects last, after every healthy one.
        self.queue = (0..self.clients.len()).collect();
        let total = self.clients.len();
        let mut next_report = start + 2_000_000_000;
        loop {
            let now = now_ns();
            // Retries whose backoff has passed go to the front of the queue.
            let mut k = 0;
            while k < self.retries.len() {
                if self.retries[k].0 <= now {
                    let (_, idx) = self.retries.swap_remove(k);
                    self.queue.push_front(idx);
                } else {
                    k += 1;
                }
            }
            // Attempts that have hung too long are retried.
            let hung: Vec<usize> = self
                .in_flight
                .iter()
                .copied()
                .filter(|&i| now >= self.attempt_deadline(i))
                .collect();
            for idx in hung {
                let c = &mut self.clients[idx];
                if c.state == State::Greeting && self.greets.is_none() {
                    self.greets = Some(false);
                    log(format_args!(
                        "no greeting from the server: a connection counts once established"
                    ));
                    self.promote(idx);
                } else if c.state == State::Greeting && !c.poked {
                    // Established on our side, no greeting: most likely a
                    // SYN-cookie connection that met a full accept queue. Data
                    // makes the server's kernel create it (retransmitted until
                    // the queue has room); closing it instead can kill a
                    // server that fails on a connection reset before accept()
                    // (ncat quits on that).
                    c.poked = true;
                    c.attempt_started = now;
                    c.out.push(b'\n');
                    self.st.pokes += 1;
                    self.flush(idx);
                } else if c.state == State::Greeting {
                    // Poked and still nothing. Closing it could still kill
                    // ncat, so it stays open and read, but stops holding a
                    // connect slot.
                    if let Some(p) = self.in_flight.iter().position(|&i| i == idx) {
                        self.in_flight.swap_remove(p);
                    }
                    self.stale.push((idx, now));
                    self.st.stale += 1;
                    if self.st.stale <= 3 {
                        log(format_args!(
                            "client {idx}: established but no greeting even after a poke; waiting on"
                        ));
                    }
                } else {
                    self.connect_failed(idx, io::Error::from(ErrorKind::TimedOut), true, now);
                }
            }
            // A server that refuses everything: stop after a few rounds of
            // failures instead of grinding through every client.
            let give_up = self.st.connect_failed as usize >= 3 * self.o.connect_parallel;
            if now >= deadline || give_up {
                let why = if give_up {
                    "too many failed connects"
                } else {
                    "connect timeout"
                };
                let mut left = 0;
                for idx in self
                    .queue
                    .drain(..)
                    .chain(self.retries.drain(..).map(|r| r.1))
                {
                    self.clients[idx].state = State::Failed;
                    left += 1;
                }
                let pending: Vec<usize> = mem::take(&mut self.in_flight)
                    .into_iter()
                    .chain(self.stale.drain(..).map(|s| s.0))
                    .collect();
                for idx in pending {
                    let c = &mut self.clients[idx];
                    if c.state == State::Greeting {
                        // Established, not greeted: leave it open (see above).
                        c.given_up = true;
                        self.st.connect_failed += 1;
                        continue;
                    }
                    if let Some(mut s) = c.stream.take() {
                        let _ = self.poll.registry().deregister(&mut s);
                    }
                    c.state = State::Failed;
                    left += 1;
                }
                self.st.connect_not_attempted += left;
                if !give_up {
                    self.st.connect_timed_out = Some((now - start) as f64 / SEC);
                }
                log(format_args!(
                    "{why}: {} connected, {} failed, {left} abandoned",
                    self.st.connected_ever, self.st.connect_failed
                ));
                break;
            }
            let parallel = if self.greets.is_some() {
                self.o.connect_parallel
            } else {
                1
            };
            while self.in_flight.len() < parallel {
                let Some(idx) = self.queue.pop_front() else {
                    break;
                };
                self.start_connect(idx, now);
            }
            if self.queue.is_empty()
                && self.retries.is_empty()
                && self.in_flight.is_empty()
                && self
                    .stale
                    .iter()
                    .all(|&(_, since)| now >= since + STALE_MAX)
            {
                for (idx, _) in mem::take(&mut self.stale) {
                    self.clients[idx].given_up = true;
                    self.st.connect_failed += 1;
                }
                break;
            }
            if now >= next_report {
                log(format_args!(
                    "connecting: {}/{total} connected",
                    self.st.connected_ever
                ));
                next_report = now + 2_000_000_000;
            }
            self.turn(deadline)?;
        }
        log(format_args!(
            "connected {}/{total} in {:.2} s ({} retries, {} failed)",
            self.alive(),
            (now_ns() - start) as f64 / SEC,
            self.st.connect_retries,
            self.st.connect_failed + self.st.connect_not_attempted
        ));
        Ok(())
    }

    fn alive(&self) -> usize {
        self.clients
            .iter()
            .filter(|c| c.state == State::Connected)
            .count()
    }

    /// Read every socket until nothing has arrived for `--settle` seconds.
    fn settle(&mut self) -> io::Result<bool> {
        self.phase = Phase::Settle;
        let start = now_ns();
        self.last_rx = self.last_rx.max(start);
        let quiet = secs_ns(self.o.settle);
        let deadline = start + secs_ns(self.o.settle_max);
        loop {
            let now = now_ns();
            if now - self.last_rx.min(now) >= quiet {
                log(format_args!(
                    "settled in {:.2} s ({} notice lines so far)",
                    (now - start) as f64 / SEC,
                    self.st.noise
                ));
                return Ok(true);
            }
            if now >= deadline {
                log(format_args!("settle: still receiving after --settle-max"));
                return Ok(false);
            }
            self.turn((self.last_rx + quiet).min(deadline))?;
        }
    }

    // ------------------------------------------------------------ receive

    fn close_client(&mut self, idx: usize, why: &str) {
        let now = now_ns();
        let c = &mut self.clients[idx];
        if let Some(mut s) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        c.state = State::Closed;
        c.closed_at = Some(now);
        self.st.closed_by_server += 1;
        if self.st.closed_by_server <= 3 {
            log(format_args!("client {idx}: closed by the server ({why})"));
        }
    }

    /// Read what client `idx` has. `to_end`: keep reading until the socket
    /// says WouldBlock or end of stream, even after a short read.
    fn read_client(&mut self, idx: usize, to_end: bool) {
        let mut buf = mem::take(&mut self.buf);
        let mut carry = mem::take(&mut self.clients[idx].carry);
        let mut discarding = self.clients[idx].discarding;
        let mut closed: Option<String> = None;
        loop {
            let c = carry.len();
            buf[..c].copy_from_slice(&carry);
            let res = match self.clients[idx].stream.as_mut() {
                Some(stream) if self.kernel_ts => {
                    crate::rxts::recv(stream.as_raw_fd(), &mut buf[c..])
                }
                Some(stream) => stream.read(&mut buf[c..]).map(|n| (n, None)),
                None => break,
            };
            match res {
                Ok((0, _)) => {
                    closed = Some("end of stream".into());
                    break;
                }
                Ok((n, kts)) => {
                    let now = now_ns();
                    let rx = match kts {
                        Some(t) => ((t as i64 - self.rt_offset).max(0) as u64).min(now),
                        None => {
                            if self.kernel_ts {
                                self.kernel_ts_missing += 1;
                            }
                            now
                        }
                    };
                    self.last_rx = now;
                    if self.clients[idx].state == State::Greeting {
                        self.promote(idx);
                    }
                    self.st.bytes_in += n as u64;
                    let end = c + n;
                    let mut start = 0;
                    if discarding {
                        match memchr::memchr(b'\n', &buf[..end]) {
                            Some(p) => {
                                start = p + 1;
                                discarding = false;
                                self.st.overlong += 1;
                            }
                            None => start = end,
                        }
                    }
                    let mut line_start = start;
                    for nl in memchr::memchr_iter(b'\n', &buf[start..end]) {
                        let nl = start + nl;
                        self.on_line(idx, &buf[line_start..nl], now, rx);
                        line_start = nl + 1;
                    }
                    carry.clear();
                    if end - line_start > MAX_CARRY {
                        discarding = true;
                    } else {
                        carry.extend_from_slice(&buf[line_start..end]);
                    }
                    if self.o.quickack
                        && let Some(stream) = self.clients[idx].stream.as_ref()
                    {
                        let _ = SockRef::from(stream).set_tcp_quickack(true);
                    }
                    // A short read drained the socket; on Linux a later
                    // arrival (data or FIN) raises a new edge, so no extra
                    // read is needed unless the FIN is already known.
                    if end < buf.len() && !to_end {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    closed = Some(e.to_string());
                    break;
                }
            }
        }
        self.buf = buf;
        let c = &mut self.clients[idx];
        c.carry = carry;
        c.discarding = discarding;
        if let Some(why) = closed {
            if self.clients[idx].state == State::Greeting {
                let e = io::Error::new(ErrorKind::ConnectionReset, why);
                self.connect_failed(idx, e, true, now_ns());
            } else {
                self.close_client(idx, &why);
            }
        }
    }

    #[inline]
    fn on_line(&mut self, idx: usize, line: &[u8], now: u64, rx: u64) {
        match self.scanner.classify(line) {
            Line::Noise => self.st.noise += 1,
            Line::Malformed => self.st.malformed += 1,
            Line::Token {
                sender,
                seq,
                time_ns,
            } => self.on_token(idx, sender as usize, seq, time_ns, now, rx),
        }
    }

    #[inline]
    /// `now`: when this thread read the line; `rx`: when it arrived (the
    /// kernel's timestamp in the latency scenario, else `now`).
    fn on_token(&mut self, idx: usize, s: usize, seq: u64, time_ns: u64, now: u64, rx: u64) {
        let nsend = self.senders.len();
        if s >= nsend || seq >= self.senders[s].sent {
            // Not a line this run sent: as good as mangled.
            self.st.malformed += 1;
            return;
        }
        let snd = &mut self.senders[s];
        if snd.client == idx {
            self.st.self_seen += 1;
        }
        if idx == self.observer && seq >= snd.acked {
            snd.acked = seq + 1;
            snd.last_progress = now;
        }
        let mstart = snd.mstart;
        let t = &mut self.tracks[idx * nsend + s];
        let fresh = if seq >= t.hi {
            let shift = seq + 1 - t.hi;
            t.bits = if shift >= 64 { 0 } else { t.bits << shift };
            t.bits |= 1;
            t.hi = seq + 1;
            true
        } else {
            let back = t.hi - 1 - seq;
            if back >= 64 {
                // Too far back to tell a duplicate from a late line.
                self.st.order_violations += 1;
                true
            } else if t.bits & (1 << back) != 0 {
                self.st.duplicates += 1;
                false
            } else {
                t.bits |= 1 << back;
                self.st.order_violations += 1;
                true
            }
        };
        if !fresh {
            return;
        }
        if self.phase == Phase::Measure {
            self.st.delivered += 1;
            self.longest_gap = self.longest_gap.max(now - self.last_delivery.min(now));
            self.last_delivery = now;
        }
        if seq >= mstart {
            self.clients[idx].uniq_measured += 1;
            let sent_at = self.base + time_ns;
            self.hist
                .saturating_record(rx.saturating_sub(sent_at).max(1_000));
            if self.kernel_ts {
                self.hist_user
                    .saturating_record(now.saturating_sub(sent_at).max(1_000));
            }
        }
    }

    // --------------------------------------------------------------- send

    fn flush(&mut self, idx: usize) {
        let c = &mut self.clients[idx];
        let mut err = None;
        if let Some(stream) = c.stream.as_mut() {
            while c.out_pos < c.out.len() {
                match stream.write(&c.out[c.out_pos..]) {
                    Ok(0) => {
                        err = Some("write returned 0".to_string());
                        break;
                    }
                    Ok(n) => c.out_pos += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        err = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        if c.out_pos == c.out.len() {
            c.out.clear();
            c.out_pos = 0;
        } else if c.out_pos > 64 * 1024 {
            c.out.drain(..c.out_pos);
            c.out_pos = 0;
        }
        if let Some(e) = err {
            self.close_client(idx, &e);
        }
    }

    /// Throughput: top every sender's window up.
    fn fill_windows(&mut self, now: u64) {
        let w = self.o.window;
        for s in 0..self.senders.len() {
            let snd = &mut self.senders[s];
            let ci = snd.client;
            if self.clients[ci].state != State::Connected {
                continue;
            }
            if snd.sent - snd.acked >= w {
                if now - snd.last_progress.min(now) < ACK_TIMEOUT {
                    continue;
                }
                snd.acked = snd.sent;
                snd.last_progress = now;
                self.st.window_resets += 1;
            }
            let n = w - (snd.sent - snd.acked);
            let c = &mut self.clients[ci];
            let t = now - self.base;
            for _ in 0..n {
                let at = c.out.len();
                c.out.extend_from_slice(&snd.template);
                token::stamp(&mut c.out[at..], snd.sent, t);
                snd.sent += 1;
            }
            self.flush(ci);
        }
    }

    /// Latency: queue every line whose intended time has come.
    fn schedule(&mut self, now: u64) {
        let iv = self.interval_ns;
        for s in 0..self.senders.len() {
            let snd = &mut self.senders[s];
            if snd.next_due > now {
                continue;
            }
            let ci = snd.client;
            let c = &mut self.clients[ci];
            if c.state != State::Connected {
                continue;
            }
            while snd.next_due <= now {
                if c.pending_out() > MAX_BACKLOG {
                    self.st.backlog_dropped += 1;
                } else {
                    if self.phase == Phase::Measure {
                        self.send_lag.saturating_record(now - snd.next_due);
                    }
                    let at = c.out.len();
                    c.out.extend_from_slice(&snd.template);
                    token::stamp(&mut c.out[at..], snd.sent, snd.next_due - self.base);
                    snd.sent += 1;
                }
                snd.next_due += iv;
            }
            self.flush(ci);
        }
    }

    fn send(&mut self, now: u64) {
        match self.o.scenario {
            Scenario::Latency => self.schedule(now),
            _ => self.fill_windows(now),
        }
    }

    fn run_until(&mut self, end: u64) -> io::Result<()> {
        loop {
            let now = now_ns();
            if now >= end {
                return Ok(());
            }
            self.send(now);
            self.turn(end)?;
        }
    }

    // ---------------------------------------------------------- accounting

    fn echo(&self) -> bool {
        self.st.self_seen > 0
    }

    fn measured(&self, s: usize) -> u64 {
        let snd = &self.senders[s];
        snd.mend
            .min(snd.sent)
            .saturating_sub(snd.mstart.min(snd.sent))
    }

    /// Lines client `idx` should receive: every measured line, less its own
    /// when the server does not echo.
    fn expected_for(&self, idx: usize, total: u64) -> u64 {
        match self.clients[idx].sender {
            Some(s) if !self.echo() => total - self.measured(s),
            _ => total,
        }
    }

    /// (expected, received) over the receivers still connected.
    fn drain_progress(&self) -> (u64, u64) {
        let total: u64 = (0..self.senders.len()).map(|s| self.measured(s)).sum();
        let mut exp = 0;
        let mut got = 0;
        for (i, c) in self.clients.iter().enumerate() {
            if c.receiving && c.state == State::Connected {
                exp += self.expected_for(i, total);
                got += c.uniq_measured;
            }
        }
        (exp, got)
    }

    /// After the run: was the slow client disconnected? Reads it (bounded in
    /// time) until end of stream, an error, or a quiet socket.
    fn check_slow(&mut self) -> (bool, u64, &'static str) {
        let Some(idx) = self.slow else {
            return (false, 0, "none");
        };
        if self.slow_closed_during_run.is_some() {
            return (true, 0, "closed (reset or hang-up seen during the run)");
        }
        let Some(stream) = self.clients[idx].stream.as_mut() else {
            return (false, 0, "never connected");
        };
        let start = now_ns();
        let mut drained = 0u64;
        let mut last_data = start;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let now = now_ns();
            match stream.read(&mut buf) {
                Ok(0) => return (true, drained, "closed (end of stream after its backlog)"),
                Ok(n) => {
                    drained += n as u64;
                    last_data = now;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if now - last_data > 300_000_000 {
                        return (false, drained, "open (quiet after reading its backlog)");
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return (true, drained, "closed (reset)"),
            }
            if now - start > SLOW_CHECK {
                return (false, drained, "open (still sending after 3 s of reading)");
            }
        }
    }

    // ----------------------------------------------------------- scenarios

    pub fn run(mut self) -> io::Result<String> {
        log(format_args!(
            "{} against {} with {} clients",
            self.o.scenario.name(),
            self.o.addr,
            self.o.clients
        ));
        let rss_before = self.mem.sample();
        self.connect_all()?;
        let settled = self.settle()?;
        if self.o.scenario == Scenario::Idle {
            return Ok(self.report_idle(rss_before.map(|m| m.rss), settled));
        }
        if self.alive() == 0 {
            log(format_args!("no client connected"));
        }

        // Warm-up.
        self.phase = Phase::Warmup;
        let now = now_ns();
        let nsend = self.senders.len() as u64;
        for (i, s) in self.senders.iter_mut().enumerate() {
            s.last_progress = now;
            // Stagger the senders evenly over one period.
            s.next_due = now + i as u64 * self.interval_ns / nsend;
        }
        log(format_args!("warm-up {:.1} s", self.o.warmup));
        self.run_until(now + secs_ns(self.o.warmup))?;

        // Measured interval.
        let srv_core = self.o.server_pid.and_then(|p| pinned_cpu(Some(p)));
        let gen_core = pinned_cpu(None);
        let srv_j0 = srv_core.and_then(cpu_jiffies);
        let gen_j0 = gen_core.and_then(cpu_jiffies);
        let t0 = now_ns();
        let srv0 = self.o.server_pid.and_then(proc_cpu_ns);
        let gen0 = self_cpu_ns();
        self.phase = Phase::Measure;
        self.last_delivery = t0;
        for s in &mut self.senders {
            s.mstart = s.sent;
        }
        for c in &mut self.clients {
            c.receiving = c.state == State::Connected && !c.slow;
        }
        let receivers_at_start = self.clients.iter().filter(|c| c.receiving).count();
        log(format_args!("measuring {:.1} s", self.o.duration));
        self.run_until(t0 + secs_ns(self.o.duration))?;
        let t1 = now_ns();
        let srv1 = self.o.server_pid.and_then(proc_cpu_ns);
        let gen1 = self_cpu_ns();
        let srv_core_busy = busy_between(srv_j0, srv_core.and_then(cpu_jiffies));
        let gen_core_busy = busy_between(gen_j0, gen_core.and_then(cpu_jiffies));
        self.longest_gap = self.longest_gap.max(t1 - self.last_delivery.min(t1));
        let final_gap = t1 - self.last_delivery.min(t1);
        self.phase = Phase::Drain;
        for s in &mut self.senders {
            s.mend = s.sent;
        }

        // Drain: no more sending; wait for every receiver to get every line.
        let dstart = now_ns();
        let ddead = dstart + secs_ns(self.o.drain);
        let mut drain_complete = false;
        loop {
            let now = now_ns();
            let (exp, got) = self.drain_progress();
            if got >= exp {
                drain_complete = true;
                break;
            }
            if now >= ddead || now - self.last_rx.min(now) >= DRAIN_QUIET {
                break;
            }
            self.turn((now + 10_000_000).min(ddead))?;
        }
        let drain_s = (now_ns() - dstart) as f64 / SEC;
        log(format_args!(
            "drained in {drain_s:.2} s (complete: {drain_complete})"
        ));
        let slow = self.check_slow();
        self.mem.sample();

        let m = Measured {
            t0,
            t1,
            srv_cpu: srv0.zip(srv1).map(|(a, b)| b.saturating_sub(a)),
            gen_cpu: gen1.saturating_sub(gen0),
            srv_core: srv_core.filter(|c| Some(*c) != gen_core),
            srv_core_busy: srv_core_busy.filter(|_| srv_core != gen_core),
            gen_core,
            gen_core_busy,
            final_gap,
            receivers_at_start,
            drain_s,
            drain_complete,
            slow,
        };
        Ok(self.report_traffic(&m))
    }

    fn common(&self, o: &mut Obj) {
        o.str("scenario", self.o.scenario.name())
            .opt_str("label", self.o.label.as_deref())
            .str("addr", &self.o.addr.to_string())
            .opt_u64("server_pid", self.o.server_pid.map(u64::from))
            .u64("clients", self.o.clients as u64);
    }

    fn connection_fields(&self, o: &mut Obj) {
        o.u64("connected_ever", self.st.connected_ever)
            .u64("connected_at_end", self.alive_healthy() as u64)
            .u64("connect_retries", self.st.connect_retries)
            .u64("connect_pokes", self.st.pokes)
            .u64("connect_stale", self.st.stale)
            .u64(
                "connect_failed",
                self.st.connect_failed + self.st.connect_not_attempted,
            )
            .opt_f64("connect_timed_out_after_s", self.st.connect_timed_out, 1)
            .u64("closed_by_server", self.st.closed_by_server)
            .opt_str("last_connect_error", self.st.last_error.as_deref());
    }

    fn alive_healthy(&self) -> usize {
        self.clients
            .iter()
            .filter(|c| c.state == State::Connected && !c.slow)
            .count()
    }

    fn connection_status(&self) -> Option<String> {
        let failed = self.st.connect_failed + self.st.connect_not_attempted;
        if let Some(t) = self.st.connect_timed_out {
            return Some(format!(
                "connect timeout: {} of {} connected after {t:.0} s",
                self.st.connected_ever,
                self.clients.len()
            ));
        }
        if failed > 0 {
            return Some(format!(
                "refused after {} clients ({failed} of {} could not connect)",
                self.st.connected_ever,
                self.clients.len()
            ));
        }
        let closed = self
            .clients
            .iter()
            .filter(|c| !c.slow && c.state == State::Closed)
            .count();
        if closed > 0 {
            return Some(format!(
                "server closed {closed} of {} clients",
                self.o.clients
            ));
        }
        None
    }

    fn report_idle(&mut self, rss_before: Option<u64>, settled: bool) -> String {
        let after = self.mem.sample();
        let alive = self.alive_healthy() as u64;
        let mut o = Obj::new();
        self.common(&mut o);
        self.connection_fields(&mut o);
        let per = match (rss_before, after) {
            (Some(b), Some(a)) if alive > 0 => Some((a.rss as f64 - b as f64) / alive as f64),
            _ => None,
        };
        o.bool("settled", settled)
            .f64("settle_quiet_s", self.o.settle, 2)
            .u64("notice_lines", self.st.noise)
            .u64("malformed_lines", self.st.malformed)
            .u64("overlong_lines", self.st.overlong)
            .u64("bytes_received", self.st.bytes_in)
            .opt_u64("server_rss_before_bytes", rss_before)
            .opt_u64("server_rss_connected_bytes", after.map(|m| m.rss))
            .opt_f64("server_rss_per_client_bytes", per, 1)
            .opt_u64("server_peak_rss_bytes", self.mem.peak())
            .str(
                "status",
                &self.connection_status().unwrap_or_else(|| "ok".to_string()),
            );
        o.finish()
    }

    fn report_traffic(&mut self, m: &Measured) -> String {
        let dur = (m.t1 - m.t0) as f64 / SEC;
        let nsend = self.senders.len();
        let total_measured: u64 = (0..nsend).map(|s| self.measured(s)).sum();
        let lines_sent: u64 = self.senders.iter().map(|s| s.sent).sum();
        let mut expected = 0u64;
        let mut unique = 0u64;
        for (i, c) in self.clients.iter().enumerate() {
            if c.receiving {
                expected += self.expected_for(i, total_measured);
                unique += c.uniq_measured;
            }
        }
        let lost = expected.saturating_sub(unique);
        if std::env::var_os("NATTER_BENCH_DEBUG").is_some() {
            for (i, c) in self.clients.iter().enumerate() {
                log(format_args!(
                    "client {i}: state {:?} receiving {} got {} bytes-carry {}",
                    c.state,
                    c.receiving,
                    c.uniq_measured,
                    c.carry.len()
                ));
            }
        }
        let delivered_ps = self.st.delivered as f64 / dur;
        let gen_util = m.gen_cpu as f64 / (m.t1 - m.t0) as f64;
        let gen_idle = self.poll_wait as f64 / (m.t1 - m.t0) as f64;
        let srv_cpu_s = m.srv_cpu.map(|c| c as f64 / SEC);

        let mut o = Obj::new();
        self.common(&mut o);
        o.u64("senders", nsend as u64);
        match self.o.scenario {
            Scenario::Latency => {
                o.f64("rate_lines_per_sec", self.o.rate, 1);
            }
            _ => {
                o.u64("window", self.o.window);
            }
        }
        o.u64("line_bytes", self.o.line_bytes as u64)
            .f64("warmup_s", self.o.warmup, 2)
            .f64("duration_s", dur, 3)
            .bool("quickack", self.o.quickack)
            .bool("name_first", self.o.name_first)
            .bool("echo", self.echo());
        self.connection_fields(&mut o);
        o.u64("receivers", m.receivers_at_start as u64)
            .u64("lines_sent", lines_sent)
            .u64("lines_sent_measured", total_measured)
            .f64("sent_lines_per_sec", total_measured as f64 / dur, 1)
            .u64("delivered_lines", self.st.delivered)
            .f64("delivered_lines_per_sec", delivered_ps, 1)
            .u64("expected_deliveries", expected)
            .u64("unique_deliveries", unique)
            .u64("lost", lost)
            .f64(
                "loss_ratio",
                if expected > 0 {
                    lost as f64 / expected as f64
                } else {
                    0.0
                },
                6,
            )
            .u64("duplicates", self.st.duplicates)
            .u64("order_violations", self.st.order_violations)
            .u64("malformed_lines", self.st.malformed)
            .u64("notice_lines", self.st.noise)
            .u64("overlong_lines", self.st.overlong)
            .u64("window_resets", self.st.window_resets)
            .u64("backlog_dropped", self.st.backlog_dropped)
            .f64("drain_s", m.drain_s, 3)
            .bool("drain_complete", m.drain_complete)
            .f64("longest_delivery_gap_s", self.longest_gap as f64 / SEC, 3)
            .f64("final_delivery_gap_s", m.final_gap as f64 / SEC, 3);

        o.obj("latency_us", percentiles(&self.hist)).str(
            "latency_measured_at",
            match self.o.scenario {
                Scenario::Latency => {
                    "every receiving client (senders included), from each line's intended send time to its arrival at the client's socket (kernel receive timestamp, SO_TIMESTAMPNS)"
                }
                _ => "every receiving client (senders included), from each line's actual send time to the generator's read",
            },
        );
        if self.kernel_ts {
            o.obj("latency_read_us", percentiles(&self.hist_user))
                .str(
                    "latency_read_measured_at",
                    "the same lines, up to when the generator read them (adds the generator's own reading delay)",
                )
                .u64("reads_without_kernel_timestamp", self.kernel_ts_missing)
                .obj("send_lag_us", percentiles(&self.send_lag))
                .str(
                    "send_lag_measured_at",
                    "how late the generator queued each measured line after its intended send time (part of the latency above; large values mean the generator, not the server, was slow)",
                );
        }

        o.opt_f64("server_cpu_s", srv_cpu_s, 4)
            .opt_f64("server_cpu_util", srv_cpu_s.map(|c| c / dur), 3)
            .opt_f64(
                "server_cpu_ns_per_line",
                srv_cpu_s.and_then(|c| {
                    (self.st.delivered > 0).then(|| c * SEC / self.st.delivered as f64)
                }),
                1,
            )
            .opt_u64("server_peak_rss_bytes", self.mem.peak())
            .opt_u64("server_rss_end_bytes", self.mem.last.map(|m| m.rss))
            .u64("rss_samples", self.mem.samples)
            .opt_u64("server_core", m.srv_core.map(|c| c as u64))
            .opt_f64("server_core_busy", m.srv_core_busy, 3)
            .f64("generator_cpu_s", m.gen_cpu as f64 / SEC, 4)
            .f64("generator_cpu_util", gen_util, 3)
            .opt_u64("generator_core", m.gen_core.map(|c| c as u64))
            .opt_f64("generator_core_busy", m.gen_core_busy, 3)
            .f64("generator_idle_fraction", gen_idle, 3)
            .bool(
                "generator_bound",
                gen_util >= GENERATOR_BOUND || gen_idle < GENERATOR_IDLE_MIN,
            );

        if self.o.scenario == Scenario::SlowReader {
            o.bool("slow_client_disconnected", m.slow.0)
                .str("slow_client_state", m.slow.2)
                .u64("slow_client_bytes_read_at_end", m.slow.1)
                .opt_f64(
                    "slow_client_closed_at_s",
                    self.slow_closed_during_run
                        .map(|t| (t as f64 - m.t0 as f64) / SEC),
                    3,
                )
                .u64("slow_client_rcvbuf", self.o.slow_rcvbuf as u64);
        }

        // Healthy servers deliver many lines a second in every scenario here;
        // half a second without one at the end of the interval is a stall.
        let stall_gap = (secs_ns(self.o.duration) / 2).min(STALL_GAP);
        let status = if let Some(s) = self.connection_status() {
            s
        } else if self.st.delivered == 0 {
            "stalled: 0 lines/s".to_string()
        } else if m.final_gap >= stall_gap {
            format!(
                "stalled: no line delivered in the last {:.1} s of the interval",
                m.final_gap as f64 / SEC
            )
        } else {
            "ok".to_string()
        };
        o.str("status", &status);
        o.finish()
    }
}

fn percentiles(h: &Histogram<u64>) -> Obj {
    let mut lat = Obj::new();
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1e3;
    lat.u64("count", h.len());
    if h.is_empty() {
        for k in ["p50", "p90", "p99", "p999", "max", "mean"] {
            lat.null(k);
        }
    } else {
        lat.f64("p50", q(0.5), 1)
            .f64("p90", q(0.9), 1)
            .f64("p99", q(0.99), 1)
            .f64("p999", q(0.999), 1)
            .f64("max", h.max() as f64 / 1e3, 1)
            .f64("mean", h.mean() / 1e3, 1);
    }
    lat
}

struct Measured {
    t0: u64,
    t1: u64,
    srv_cpu: Option<u64>,
    gen_cpu: u64,
    srv_core: Option<usize>,
    srv_core_busy: Option<f64>,
    gen_core: Option<usize>,
    gen_core_busy: Option<f64>,
    final_gap: u64,
    receivers_at_start: usize,
    drain_s: f64,
    drain_complete: bool,
    slow: (bool, u64, &'static str),
}
