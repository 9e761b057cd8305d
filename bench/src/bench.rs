//! One run of a scenario: its phases (connect, settle, warm-up, measured
//! interval, drain) on one event loop, and what each event means. The
//! parts keep their own state: `Connections` the clients' sockets,
//! `Senders` what is sent, `Reader` and `Tally` what arrives, `Reactor` the
//! poller and the clock.

use std::io::{self, ErrorKind};

use mio::Events;
use mio::event::Event;

mod burst;
mod handshakes;

use crate::args::{Opts, Scenario};
use crate::client::{Client, State};
use crate::connect::Connections;
use crate::log;
use crate::procstat::{MemWatch, SEC, Usage, now_ns, secs_ns};
use crate::reactor::{Reactor, TIMER};
use crate::receive::Reader;
use crate::report::{Measured, Report};
use crate::rooms::{self, JoinReply, Layout};
use crate::senders::Senders;
use crate::sites::Sites;
use crate::slow::{self, SlowEnd};
use crate::tally::Tally;
use crate::tls::TlsSetup;
use burst::Burst;

/// Drain ends early after this long without any byte from the server.
const DRAIN_QUIET: u64 = 2_000_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Connect,
    Settle,
    Warmup,
    Measure,
    Drain,
}

pub struct Bench {
    o: Opts,
    reactor: Reactor,
    conns: Connections,
    senders: Senders,
    reader: Reader,
    tally: Tally,
    mem: MemWatch,
    next_sample: u64,
    phase: Phase,
    /// The run's time zero.
    base: u64,
    /// The slow-reader scenario's client that never reads.
    slow: Option<usize>,
    /// When the server closed the slow client during the run.
    slow_closed: Option<u64>,
    /// The latency scenario's burst of connections.
    burst: Option<Burst>,
}

/// The clients of a run: `o.clients`, the first `senders` of them sending,
/// then the burst's (which hang up once connected) or the slow reader; and
/// the slow reader's index.
fn make_clients(o: &Opts, senders: usize) -> io::Result<(Vec<Client>, Option<usize>)> {
    let n = o.clients;
    let slow = (o.scenario == Scenario::SlowReader).then_some(n);
    let total = n + o.burst + usize::from(slow.is_some());
    let need = (total + 64) as u64;
    let limit = rlimit::increase_nofile_limit(u64::MAX)?;
    if limit < need {
        return Err(io::Error::other(format!(
            "need about {need} file descriptors, RLIMIT_NOFILE hard limit allows {limit}"
        )));
    }
    let handshakes = o.scenario == Scenario::Handshakes;
    let clients = (0..total)
        .map(|i| {
            let mut c = Client::new(Some(i) == slow, (i < senders).then_some(i));
            c.transient = handshakes || (i >= n && slow.is_none());
            c
        })
        .collect();
    Ok((clients, slow))
}

impl Bench {
    pub fn new(o: Opts) -> io::Result<Self> {
        let n = o.clients;
        let s = if o.scenario.silent() { 0 } else { o.senders };
        let (clients, slow) = make_clients(&o, s)?;
        let total = clients.len();
        let base = now_ns();
        let kernel_ts = o.scenario == Scenario::Latency;
        let reactor = Reactor::new()?;
        let registry = reactor.registry().try_clone()?;
        let layout = Layout::new(o.rooms, s);
        let tls = o
            .tls
            .then(|| TlsSetup::new(o.tls_ca.as_deref(), &o.tls_name))
            .transpose()
            .map_err(io::Error::other)?;
        let mut tally = Tally::new(o.line_bytes, (n, total, layout), base, kernel_ts)?;
        if o.burst > 0 {
            tally.split_burst()?;
        }
        let sites = Sites::new(&o, s, total);
        tally.sites = sites.split()?;
        Ok(Bench {
            conns: Connections::new(registry, &o, (clients, layout, tls, sites), kernel_ts),
            senders: Senders::new(s, o.line_bytes, (o.window, o.rate), base)?,
            reader: Reader::new(kernel_ts, o.quickack, o.tls, base),
            tally,
            reactor,
            mem: MemWatch::new(o.first_pid()),
            next_sample: base,
            phase: Phase::Connect,
            base,
            slow,
            slow_closed: None,
            burst: (o.burst > 0).then(|| Burst::new(n..n + o.burst, o.burst_at.unwrap_or(0.0))),
            o,
        })
    }

    // ---------------------------------------------------------------- loop

    /// Wait for events until `deadline` at the latest (or the next internal
    /// deadline: RSS sample, latency schedule, connect retry), and handle them.
    fn turn(&mut self, deadline: u64) -> io::Result<()> {
        let handshakes = self.o.scenario == Scenario::Handshakes;
        if matches!(self.phase, Phase::Connect | Phase::Settle) && !handshakes {
            self.reactor.coalesce();
        }
        let now = now_ns();
        self.burst_step(now);
        let mut next = deadline.min(self.next_sample).min(self.burst_deadline());
        if self.paced() {
            next = next.min(self.senders.next_due());
        }
        if self.phase == Phase::Connect {
            next = next.min(self.conns.next_deadline());
        }
        // The handshakes scenario measures its connect phase.
        let measuring = self.phase == Phase::Measure || handshakes;
        let Some(events) = self.reactor.wait(now, next, measuring)? else {
            return Ok(());
        };
        self.dispatch(&events);
        self.reactor.done(events);
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

    /// Lines go out by the clock (the latency scenario, while sending).
    fn paced(&self) -> bool {
        self.sending() && self.o.scenario == Scenario::Latency
    }

    fn dispatch(&mut self, events: &Events) {
        let paced = self.paced();
        for (k, ev) in events.iter().enumerate() {
            // A long batch of reads must not hold back lines that are due.
            if paced && k % 32 == 31 {
                self.schedule(now_ns());
            }
            if ev.token() == TIMER {
                self.reactor.timer_fired();
                continue;
            }
            self.on_event(ev);
        }
    }

    fn on_event(&mut self, ev: &Event) {
        let idx = ev.token().0;
        let c = self.conns.client(idx);
        match (c.state, c.slow) {
            (State::Connecting, _)
                if ev.is_writable()
                    || ev.is_error()
                    || ev.is_read_closed()
                    || ev.is_write_closed() =>
            {
                self.on_connected(idx, ev.is_error() || ev.is_write_closed());
            }
            (State::Greeting, true) => {
                if ev.is_readable() {
                    self.conns.promote(idx);
                } else if ev.is_error() || ev.is_read_closed() {
                    let e = io::Error::from(ErrorKind::ConnectionReset);
                    self.conns.fail(idx, e, true, now_ns());
                }
            }
            (State::Connected, true) => self.watch_slow(ev),
            (State::Done, _) => self.conns.drain_done(idx),
            (State::Connected | State::Greeting | State::Joining, false) => {
                if ev.is_writable() && self.conns.client(idx).wants_write() {
                    self.conns.flush(idx);
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    // With the peer's FIN already in, read to the end of
                    // stream: no later edge would announce it.
                    self.read_client(idx, ev.is_read_closed() || ev.is_error());
                }
            }
            _ => {}
        }
    }

    /// A connect attempt reported: once established, look for a greeting
    /// that may already be waiting (edge-triggered: no later event for it).
    fn on_connected(&mut self, idx: usize, hard_error: bool) {
        if !self.conns.check(idx, hard_error, now_ns()) {
            return;
        }
        if self.conns.client(idx).slow {
            self.conns.peek_greeting(idx);
        } else {
            self.read_client(idx, true);
        }
    }

    /// The slow client is never read; only a reset or hang-up is noted.
    fn watch_slow(&mut self, ev: &Event) {
        if (ev.is_error() || ev.is_read_closed()) && self.slow_closed.is_none() {
            let t = now_ns();
            log(format_args!(
                "slow client: connection closed by the server ({:.2} s into the run)",
                (t - self.base) as f64 / SEC
            ));
            self.slow_closed = Some(t);
        }
    }

    /// Read what client `idx` has. `to_end`: keep reading until the socket
    /// says WouldBlock or end of stream, even after a short read.
    fn read_client(&mut self, idx: usize, to_end: bool) {
        let Bench {
            reader,
            conns,
            tally,
            senders,
            ..
        } = self;
        let mut joining = conns.client(idx).state == State::Joining;
        let mut reply = (JoinReply::Other, String::new());
        let end = reader.read(conns.client_mut(idx), to_end, |line, now, rx| {
            if joining {
                reply.0 = rooms::join_reply(line);
                if reply.0 != JoinReply::Other {
                    joining = false;
                    reply.1 = String::from_utf8_lossy(line).into_owned();
                }
            }
            tally.on_line(idx, line, (now, rx), senders)
        });
        if end.closed.is_none() && self.conns.client(idx).wants_write() {
            // TLS: the handshake's next message, or an answer to the server.
            self.conns.flush(idx);
        }
        // The first byte is the greeting: the server has it.
        self.conns.read_progress(idx, end.got_data);
        match reply.0 {
            JoinReply::Joined => self.conns.joined(idx),
            JoinReply::Refused => self.conns.join_refused(idx, &reply.1),
            JoinReply::Other => {}
        }
        if let Some(why) = end.closed {
            self.conns.lost(idx, why, !end.tls_error, now_ns());
        }
    }

    // ----------------------------------------------------------- scenarios

    pub fn run(mut self) -> io::Result<String> {
        log(format_args!(
            "{} against {} with {} clients",
            self.o.scenario.name(),
            self.o.describe_addrs(),
            self.o.clients
        ));
        if self.o.scenario == Scenario::Handshakes {
            return self.handshakes();
        }
        let rss_before = self.mem.sample();
        self.connect_all()?;
        let settled = self.settle()?;
        if self.o.scenario == Scenario::Idle {
            let after = self.mem.sample();
            return Ok(self
                .report()
                .idle(rss_before.map(|m| m.rss), after, settled));
        }
        if self.conns.alive() == 0 {
            log(format_args!("no client connected"));
        }
        self.warm_up()?;
        let mut m = self.measure()?;
        (m.drain_s, m.drain_complete) = self.drain()?;
        self.finish_burst()?;
        m.slow = self.check_slow();
        self.mem.sample();
        self.debug_dump();
        Ok(self.report().traffic(&m, |o| self.burst_fields(o)))
    }

    fn report(&self) -> Report<'_> {
        Report {
            o: &self.o,
            conns: &self.conns,
            senders: &self.senders,
            tally: &self.tally,
            reader: &self.reader,
            mem: &self.mem,
            poll_wait: self.reactor.poll_wait,
            slow_closed: self.slow_closed,
        }
    }

    fn connect_all(&mut self) -> io::Result<()> {
        self.phase = Phase::Connect;
        let start = now_ns();
        let deadline = start + secs_ns(self.o.connect_timeout);
        let n = self.o.clients;
        let total = n + usize::from(self.slow.is_some());
        self.conns.begin((0..n).chain(self.slow));
        let mut next_report = start + 2_000_000_000;
        loop {
            let now = now_ns();
            if self.conns.step(now, start, deadline) {
                break;
            }
            if now >= next_report {
                log(format_args!(
                    "connecting: {}/{total} connected",
                    self.conns.st.connected_ever
                ));
                next_report = now + 2_000_000_000;
            }
            self.turn(deadline)?;
        }
        log(format_args!(
            "connected {}/{total} in {:.2} s ({} retries, {} failed)",
            self.conns.st.connected_ever,
            (now_ns() - start) as f64 / SEC,
            self.conns.st.retries,
            self.conns.failed()
        ));
        Ok(())
    }

    /// Read every socket until nothing has arrived for `--settle` seconds.
    fn settle(&mut self) -> io::Result<bool> {
        self.phase = Phase::Settle;
        let start = now_ns();
        self.reader.last_rx = self.reader.last_rx.max(start);
        let quiet = secs_ns(self.o.settle);
        let deadline = start + secs_ns(self.o.settle_max);
        loop {
            let now = now_ns();
            if now - self.reader.last_rx.min(now) >= quiet {
                log(format_args!(
                    "settled in {:.2} s ({} notice lines so far)",
                    (now - start) as f64 / SEC,
                    self.tally.st.noise
                ));
                return Ok(true);
            }
            if now >= deadline {
                log(format_args!("settle: still receiving after --settle-max"));
                return Ok(false);
            }
            self.turn((self.reader.last_rx + quiet).min(deadline))?;
        }
    }

    fn warm_up(&mut self) -> io::Result<()> {
        self.phase = Phase::Warmup;
        let now = now_ns();
        self.senders.start(now);
        log(format_args!("warm-up {:.1} s", self.o.warmup));
        self.run_until(now + secs_ns(self.o.warmup))
    }

    /// The measured interval, with the CPU readings around it.
    fn measure(&mut self) -> io::Result<Measured> {
        let usage = Usage::start(self.o.pids());
        self.phase = Phase::Measure;
        self.burst_schedule(usage.t0());
        self.tally.start_measuring(usage.t0());
        self.senders.mark_start();
        for c in self.conns.clients_mut() {
            c.receiving = c.state == State::Connected && !c.slow;
        }
        let receivers_at_start = self.conns.clients().iter().filter(|c| c.receiving).count();
        log(format_args!("measuring {:.1} s", self.o.duration));
        self.run_until(usage.t0() + secs_ns(self.o.duration))?;
        let used = usage.end();
        let final_gap = self.tally.stop_measuring(used.t1);
        self.phase = Phase::Drain;
        self.senders.mark_end();
        Ok(Measured {
            used,
            final_gap,
            receivers_at_start,
            drain_s: 0.0,
            drain_complete: false,
            slow: SlowEnd::new(false, 0, "none"),
        })
    }

    /// No more sending; wait for every receiver to get every line. Returns
    /// how long that took and whether all arrived.
    fn drain(&mut self) -> io::Result<(f64, bool)> {
        let dstart = now_ns();
        let ddead = dstart + secs_ns(self.o.drain);
        let mut complete = false;
        loop {
            let now = now_ns();
            let (exp, got) = self
                .tally
                .deliveries(&self.senders, self.conns.clients(), true);
            if got >= exp {
                complete = true;
                break;
            }
            if now >= ddead || now - self.reader.last_rx.min(now) >= DRAIN_QUIET {
                break;
            }
            self.turn((now + 10_000_000).min(ddead))?;
        }
        let drain_s = (now_ns() - dstart) as f64 / SEC;
        log(format_args!(
            "drained in {drain_s:.2} s (complete: {complete})"
        ));
        Ok((drain_s, complete))
    }

    fn run_until(&mut self, end: u64) -> io::Result<()> {
        loop {
            let now = now_ns();
            if now >= end {
                return Ok(());
            }
            match self.o.scenario {
                Scenario::Latency => self.schedule(now),
                _ => self.senders.fill_windows(&mut self.conns, now),
            }
            self.turn(end)?;
        }
    }

    fn schedule(&mut self, now: u64) {
        let measuring = self.phase == Phase::Measure;
        self.senders.schedule(&mut self.conns, now, measuring);
    }

    /// After the run: was the slow client disconnected?
    fn check_slow(&mut self) -> SlowEnd {
        let Some(idx) = self.slow else {
            return SlowEnd::new(false, 0, "none");
        };
        if self.slow_closed.is_some() {
            return SlowEnd::new(true, 0, "closed (reset or hang-up seen during the run)");
        }
        match self.conns.client_mut(idx).stream.as_mut() {
            Some(stream) => slow::read_out(stream),
            None => SlowEnd::new(false, 0, "never connected"),
        }
    }

    /// `NATTER_BENCH_DEBUG=1`: every client's state and count on stderr.
    fn debug_dump(&self) {
        if std::env::var_os("NATTER_BENCH_DEBUG").is_none() {
            return;
        }
        for (i, c) in self.conns.clients().iter().enumerate() {
            log(format_args!(
                "client {i}: state {:?} receiving {} got {} bytes-carry {}",
                c.state,
                c.receiving,
                self.tally.uniq[i],
                c.framer.carried()
            ));
        }
    }
}
