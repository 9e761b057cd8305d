//! Every client's connection, from the first connect attempt to the close:
//! how many are in flight, which are retried and when, whether the server
//! greets newcomers, and the counts the report gives.
//!
//! At most `--connect-parallel` connects are in flight, and a connection
//! counts as made only when the server has visibly accepted it: when the
//! server greets newcomers (all the servers compared do), when its first
//! byte arrives. A server with a short accept backlog (ncat: 10) and SYN
//! cookies otherwise leaves "ghost" connections that look established to the
//! client but that the server never accepted; they get no greeting, are
//! poked with an empty line, and then wait without holding a connect slot.
//! Whether the server greets is found out with the first connection, made
//! alone.

mod phase;

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read};
use std::os::fd::AsRawFd;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::args::Opts;
use crate::client::{Client, State};
use crate::log;
use crate::procstat::now_ns;
use crate::rooms::Layout;
use crate::sites::Sites;
use crate::tls::{self, TlsSetup};

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
/// ("stale") but stays open and read; the connect phase waits at most this
/// long for stale connections once all else is done.
const STALE_MAX: u64 = 15_000_000_000;
/// How long the first connection waits to find out whether the server greets.
const GREETING_PROBE: u64 = 2_000_000_000;
/// How long a greeted client waits for the answer to its `/join`.
const JOIN_TIMEOUT: u64 = 5_000_000_000;

#[derive(Default)]
pub struct ConnectStats {
    pub retries: u64,
    pub pokes: u64,
    pub stale: u64,
    pub failed: u64,
    pub not_attempted: u64,
    /// The connect phase ran out of time (after this many seconds).
    pub timed_out: Option<f64>,
    pub connected_ever: u64,
    pub closed_by_server: u64,
    pub last_error: Option<String>,
    /// TLS: what the first connection negotiated.
    pub tls: Option<String>,
}

pub struct Connections {
    registry: Registry,
    /// Which address each client connects to.
    sites: Sites,
    slow_rcvbuf: usize,
    kernel_ts: bool,
    name_first: bool,
    layout: Layout,
    tls: Option<TlsSetup>,
    parallel: usize,
    clients: Vec<Client>,
    queue: VecDeque<usize>,
    retries: Vec<(u64, usize)>,
    in_flight: Vec<usize>,
    /// Poked connections still waiting for a greeting, and since when.
    stale: Vec<(usize, u64)>,
    /// Does the server send something to every newcomer? `None` until the
    /// first connection tells.
    greets: Option<bool>,
    pub st: ConnectStats,
}

impl Connections {
    /// `registry`: the poller's (a clone of it), for the clients' sockets.
    pub fn new(
        registry: Registry,
        o: &Opts,
        (clients, layout, tls, sites): (Vec<Client>, Layout, Option<TlsSetup>, Sites),
        kernel_ts: bool,
    ) -> Self {
        Connections {
            tls,
            registry,
            sites,
            slow_rcvbuf: o.slow_rcvbuf,
            kernel_ts,
            name_first: o.name_first,
            layout,
            parallel: o.connect_parallel,
            clients,
            queue: VecDeque::new(),
            retries: Vec::new(),
            in_flight: Vec::new(),
            stale: Vec::new(),
            greets: None,
            st: ConnectStats::default(),
        }
    }

    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    pub fn clients_mut(&mut self) -> &mut [Client] {
        &mut self.clients
    }

    pub fn client(&self, idx: usize) -> &Client {
        &self.clients[idx]
    }

    pub fn client_mut(&mut self, idx: usize) -> &mut Client {
        &mut self.clients[idx]
    }

    /// Clients connected now.
    pub fn alive(&self) -> usize {
        self.count(|c| c.state == State::Connected)
    }

    /// Clients connected now, the slow reader left out.
    pub fn alive_healthy(&self) -> usize {
        self.count(|c| c.state == State::Connected && !c.slow)
    }

    fn count(&self, f: impl Fn(&Client) -> bool) -> usize {
        self.clients.iter().filter(|c| f(c)).count()
    }

    /// Connects that failed or were never tried.
    pub fn failed(&self) -> u64 {
        self.st.failed + self.st.not_attempted
    }

    // ------------------------------------------------------------- one client

    fn start(&mut self, idx: usize, now: u64) {
        let c = &mut self.clients[idx];
        c.attempt.count += 1;
        c.attempt.started = now;
        c.attempt.opened = now;
        match self.open(idx) {
            Ok((stream, tls)) => {
                let c = &mut self.clients[idx];
                c.stream = Some(stream);
                c.tls = tls.map(Box::new);
                c.state = State::Connecting;
                self.in_flight.push(idx);
            }
            Err(e) => {
                // Descriptor exhaustion and the like are not worth retrying.
                let retry = matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                );
                self.fail(idx, e, retry, now);
            }
        }
    }

    /// A non-blocking socket for client `idx`, connecting and registered,
    /// and its TLS state with `--tls`.
    fn open(&self, idx: usize) -> io::Result<(TcpStream, Option<rustls::ClientConnection>)> {
        let tls = self.tls.as_ref().map(TlsSetup::connection).transpose()?;
        let addr = self.sites.addr(idx);
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_nonblocking(true)?;
        sock.set_tcp_nodelay(true)?;
        if self.clients[idx].slow {
            sock.set_recv_buffer_size(self.slow_rcvbuf)?;
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
        self.registry.register(
            &mut stream,
            Token(idx),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok((stream, tls))
    }

    /// The attempt of client `idx` failed: retry it after a backoff, or
    /// give it up.
    pub fn fail(&mut self, idx: usize, e: io::Error, retry: bool, now: u64) {
        self.bury(idx);
        let c = &mut self.clients[idx];
        c.tls = None;
        if let Some(p) = self.in_flight.iter().position(|&i| i == idx) {
            self.in_flight.swap_remove(p);
        }
        if retry && c.attempt.count < CONNECT_ATTEMPTS {
            c.state = State::Waiting;
            self.st.retries += 1;
            let backoff = (10_000_000u64 << c.attempt.count.min(6)).min(500_000_000);
            self.retries.push((now + backoff, idx));
        } else {
            c.state = State::Failed;
            self.st.failed += 1;
            if self.st.failed <= 3 {
                log(format_args!("client {idx}: connect failed: {e}"));
            }
            self.st.last_error = Some(e.to_string());
        }
    }

    /// The connecting socket of client `idx` reported; `hard_error`: an
    /// error or hang-up came with it. True when it is now established (and
    /// waits for a greeting, or is connected when the server does not greet).
    pub fn check(&mut self, idx: usize, hard_error: bool, now: u64) -> bool {
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
            Ok(false) => false,
            Ok(true) => {
                let c = &mut self.clients[idx];
                c.state = State::Greeting;
                c.attempt.started = now;
                if self.greets == Some(false) && self.clients[idx].tls.is_none() {
                    self.promote(idx);
                }
                if self.name_first {
                    let name = format!("bench{idx}\n");
                    self.clients[idx].queue(name.as_bytes());
                }
                // The name, and with TLS the ClientHello.
                self.flush(idx);
                true
            }
            Err(e) => {
                self.fail(idx, e, true, now);
                false
            }
        }
    }

    /// The slow client (which is never read) is established: promote it if
    /// the greeting is already waiting in its socket.
    pub fn peek_greeting(&mut self, idx: usize) {
        if self.clients[idx].state != State::Greeting {
            return;
        }
        let mut b = [0u8; 1];
        let waiting = self.clients[idx]
            .stream
            .as_ref()
            .is_some_and(|s| s.peek(&mut b).is_ok_and(|n| n > 0));
        if waiting {
            self.promote(idx);
        }
    }

    /// Client `idx` was read; `got_data`: plaintext came. The first is the
    /// greeting; from a server that does not greet, a TLS connection is
    /// made once its handshake is done.
    pub fn read_progress(&mut self, idx: usize, got_data: bool) {
        if got_data || (self.greets == Some(false) && self.handshake_done(idx)) {
            self.promote(idx);
        }
    }

    /// Is client `idx` past its TLS handshake (or without TLS)?
    pub fn handshake_done(&self, idx: usize) -> bool {
        let c = &self.clients[idx];
        c.stream.is_some() && c.tls.as_ref().is_none_or(|t| !t.is_handshaking())
    }

    /// The server has this connection (it sent something, or does not greet
    /// at all): it is done connecting, or, with rooms, goes to its room.
    pub fn promote(&mut self, idx: usize) {
        if self.clients[idx].state != State::Greeting {
            return;
        }
        if self.greets.is_none() {
            self.greets = Some(true);
            log(format_args!(
                "the server greets newcomers: a connection counts once its first byte arrives"
            ));
        }
        if self.layout.joins() {
            let line = self.layout.join_line(idx);
            let c = &mut self.clients[idx];
            c.queue(&line);
            c.state = State::Joining;
            c.attempt.started = now_ns();
            self.flush(idx);
            // The slow client never reads the answer.
            if !self.clients[idx].slow {
                return;
            }
        }
        self.connected(idx);
    }

    /// Client `idx` read the answer to its `/join`: it is in its room.
    pub fn joined(&mut self, idx: usize) {
        if self.clients[idx].state == State::Joining {
            self.connected(idx);
        }
    }

    /// The server refused client `idx`'s `/join` with `line`.
    pub fn join_refused(&mut self, idx: usize, line: &str) {
        if self.clients[idx].state == State::Joining {
            let e = io::Error::other(format!("/join refused: {line}"));
            self.fail(idx, e, false, now_ns());
        }
    }

    /// Client `idx` is connected (and in its room): its slot is free.
    fn connected(&mut self, idx: usize) {
        if let Some(p) = self.in_flight.iter().position(|&i| i == idx) {
            self.in_flight.swap_remove(p);
        }
        if let Some(p) = self.stale.iter().position(|&(i, _)| i == idx) {
            self.stale.swap_remove(p);
        }
        let now = now_ns();
        let c = &mut self.clients[idx];
        c.state = State::Connected;
        c.connected = Some((now, now.saturating_sub(c.attempt.opened)));
        if self.st.tls.is_none() {
            self.st.tls = c.tls.as_deref().map(tls::describe);
        }
        if c.attempt.given_up {
            c.attempt.given_up = false;
            self.st.failed -= 1;
            log(format_args!("client {idx}: greeted after all"));
        }
        self.st.connected_ever += 1;
        if self.clients[idx].transient {
            self.hang_up(idx);
        }
    }

    /// Hang up client `idx` (with TLS, after a close_notify): send a FIN
    /// and wait for the server's. Closing with unread data would send a
    /// reset instead, and ncat quits when a connection it has not
    /// announced yet is reset.
    fn hang_up(&mut self, idx: usize) {
        let c = &mut self.clients[idx];
        if let Some(tls) = c.tls.as_deref_mut() {
            tls.send_close_notify();
        }
        let _ = c.flush();
        c.tls = None;
        c.state = State::Done;
        let shut = c
            .stream
            .as_ref()
            .map(|s| s.shutdown(std::net::Shutdown::Write));
        if !matches!(shut, Some(Ok(()))) {
            self.bury(idx);
        }
    }

    /// A hung-up client: read and drop what arrives; at the server's close,
    /// close the socket.
    pub fn drain_done(&mut self, idx: usize) {
        let Some(stream) = self.clients[idx].stream.as_mut() else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.bury(idx);
    }

    /// Close the socket of client `idx` for good.
    fn bury(&mut self, idx: usize) {
        if let Some(mut s) = self.clients[idx].stream.take() {
            let _ = self.registry.deregister(&mut s);
        }
    }

    /// The server closed client `idx` (or writing to it failed).
    pub fn close(&mut self, idx: usize, why: &str) {
        self.bury(idx);
        let c = &mut self.clients[idx];
        c.tls = None;
        c.state = State::Closed;
        self.st.closed_by_server += 1;
        if self.st.closed_by_server <= 3 {
            log(format_args!("client {idx}: closed by the server ({why})"));
        }
    }

    /// Write what is queued for client `idx`; close it if that fails.
    pub fn flush(&mut self, idx: usize) {
        if let Err(e) = self.clients[idx].flush() {
            self.close(idx, &e);
        }
    }

    /// Reading client `idx` ended with `why` (end of stream or an error):
    /// a failed attempt while it waited for its greeting, else a close.
    /// `retry`: worth another attempt (not after a TLS failure).
    pub fn lost(&mut self, idx: usize, why: String, retry: bool, now: u64) {
        match self.clients[idx].state {
            State::Greeting | State::Joining => {
                let e = io::Error::new(ErrorKind::ConnectionReset, why);
                self.fail(idx, e, retry, now);
            }
            // Closed by the generator itself once connected.
            State::Done => {}
            _ => self.close(idx, &why),
        }
    }
}
