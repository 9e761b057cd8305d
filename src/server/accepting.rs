//! The doors: the plain listener, the TLS one, and who may come in.
//!
//! Both listeners lead to the same sessions; a TLS newcomer differs only in
//! its transport, which holds a fresh handshake with a deadline. Admission
//! counts a handshake like any client, so half-open handshakes cannot hold
//! the server beyond `--max-clients` and `--max-per-ip`.

use std::io;
use std::net::SocketAddr;

use log::warn;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::Server;
use crate::admission::Refusal;
use crate::config::Config;
use crate::deadlines::Timer;
use crate::limits::{ACCEPT_RETRY_MS, ARRIVAL_BYTES};
use crate::listener::{Accepted, Listener};
use crate::log_gate::held_note;
use crate::member::who_from_addr;
use crate::stats::CloseReason;
use crate::tls::TlsConfig;

pub(super) const LISTENER: Token = Token(usize::MAX);
pub(super) const TLS_LISTENER: Token = Token(usize::MAX - 5);

/// Which listener a connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Door {
    Plain,
    Tls,
}

/// The TLS listener and the certificate its handshakes use.
pub(super) struct TlsDoor {
    /// `None` once a shutdown has begun.
    pub listener: Option<Listener>,
    pub addr: SocketAddr,
    pub config: TlsConfig,
}

/// Binds `--listen` unless it is `none`.
pub(super) fn bind_plain(config: &Config) -> io::Result<Option<Listener>> {
    if !config.plain_listener() {
        return Ok(None);
    }
    let addr = crate::config::resolve("--listen", &config.listen)?;
    let listener = Listener::bind(addr, config.reuseport)
        .map_err(|e| crate::config::flag_error("--listen", &config.listen, e, ""))?;
    Ok(Some(listener))
}

/// Loads the certificate and key and binds `--tls-listen`, if given. A
/// certificate outside its validity is logged and the server still starts.
pub(super) fn open_tls(config: &Config, registry: &Registry) -> io::Result<Option<TlsDoor>> {
    let (Some(value), Some(cert), Some(key)) =
        (&config.tls_listen, &config.tls_cert, &config.tls_key)
    else {
        return Ok(None);
    };
    let timeout = config.tls_handshake_timeout;
    let (tls, warning) = TlsConfig::load(cert.clone(), key.clone(), timeout)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if let Some(warning) = warning {
        warn!("{warning}");
    }
    let addr = crate::config::resolve("--tls-listen", value)?;
    let mut listener = Listener::bind(addr, config.reuseport)
        .map_err(|e| crate::config::flag_error("--tls-listen", value, e, ""))?;
    registry.register(&mut listener.socket, TLS_LISTENER, Interest::READABLE)?;
    Ok(Some(TlsDoor {
        addr: listener.local_addr()?,
        listener: Some(listener),
        config: tls,
    }))
}

impl Server {
    /// Accepts at both doors (a retry after a pause or a failure).
    pub(super) fn accept_all(&mut self) {
        self.accept_at(Door::Plain);
        self.accept_at(Door::Tls);
    }

    /// Accepts at one door until nobody waits. Every newcomer is announced
    /// to everyone, so accepting produces output as reading does: it stops
    /// while reading is paused (the kernel's backlog holds the newcomers)
    /// and once the turn's budget is used, and goes on when that ends.
    pub(super) fn accept_at(&mut self, door: Door) {
        let now = self.sessions.now_ms;
        loop {
            let listener = match door {
                Door::Plain => self.listener.as_mut(),
                Door::Tls => self.tls.as_mut().and_then(|t| t.listener.as_mut()),
            };
            let Some(listener) = listener else {
                return;
            };
            if self.sessions.total.paused() {
                return; // Resuming accepts again.
            }
            let hub = &self.sessions.hub;
            if !hub.fits_everyone(hub.rooms.default_id(), ARRIVAL_BYTES) {
                self.deadlines.at(now, Timer::AcceptRetry);
                return;
            }
            match listener.accept() {
                Accepted::Client(socket, addr) => self.admit(socket, addr, door),
                Accepted::Empty => return,
                Accepted::Shed { closed, retry } => return self.shed(closed, retry),
                Accepted::Failed(e) => {
                    if let Some(held) = self.gate_accept.pass(now) {
                        warn!("accept failed: {e}; retrying shortly{}", held_note(held));
                    }
                    self.deadlines.at(now + ACCEPT_RETRY_MS, Timer::AcceptRetry);
                    return;
                }
            }
        }
    }

    /// Descriptors ran out and `closed` waiting connections were shed.
    fn shed(&mut self, closed: u64, retry: bool) {
        let now = self.sessions.now_ms;
        let stats = &mut self.sessions.hub.stats;
        stats.fd_exhausted += 1;
        stats.accepted += closed;
        stats.closed[CloseReason::Busy as usize] += closed;
        if retry {
            self.deadlines.at(now + ACCEPT_RETRY_MS, Timer::AcceptRetry);
        }
        if let Some(held) = self.gate_fd.pass(now) {
            warn!(
                "descriptor limit reached with {} clients: closed {closed} new connections{}",
                self.sessions.conns.len(),
                held_note(held)
            );
        }
    }

    /// Decides whether a new connection may stay; the sessions take it in.
    /// A TLS newcomer gets a session and a handshake deadline.
    fn admit(&mut self, socket: TcpStream, addr: SocketAddr, door: Door) {
        self.sessions.hub.stats.accepted += 1;
        let refusal = match self.admission.admit(addr.ip()) {
            Ok(slot) => {
                let config = &self.sessions.config;
                if let Err(e) = crate::connection::configure(&socket, config.sndbuf) {
                    log::debug!("{addr}: socket options: {e}");
                }
                let now = self.sessions.now_ms;
                let tls = match (door, &self.tls) {
                    (Door::Tls, Some(tls)) => {
                        let timeout = tls.config.handshake_timeout.as_millis() as u64;
                        Some((tls.config.session(), now + timeout))
                    }
                    _ => None,
                };
                let registry = self.poll.registry();
                return self
                    .sessions
                    .add(socket, addr, slot, tls, registry, &mut self.deadlines);
            }
            Err(refusal) => refusal,
        };
        let (reason, notice) = match refusal {
            Refusal::Full => (CloseReason::Full, &b"*** server full\n"[..]),
            Refusal::PerSource => (
                CloseReason::PerIp,
                &b"*** too many connections from your address\n"[..],
            ),
        };
        // Best effort: a fresh socket's buffer takes a short line. A TLS
        // client would take plain text for garbage, so it is just closed.
        if door == Door::Plain {
            let _ = io::Write::write(&mut { socket }, notice);
        }
        self.sessions.hub.stats.close(reason);
        if let Some(held) = self.gate_accept.pass(self.sessions.now_ms) {
            warn!(
                "refused {}: {} ({} clients){}",
                who_from_addr(addr),
                reason.label(),
                self.sessions.conns.len(),
                held_note(held)
            );
        }
    }
}
