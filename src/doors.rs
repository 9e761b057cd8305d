//! The doors: the plain listener, the TLS one, and who may come in.
//!
//! Both listeners lead to the same sessions; a TLS newcomer differs only in
//! its transport, which holds a fresh handshake with a deadline. Admission
//! counts a handshake like any client, so half-open handshakes cannot hold
//! the server beyond `--max-clients` and `--max-per-ip`. [`Doors`] owns the
//! listeners, the admission counts and their log gates; the server hands it
//! the sessions, the timers and the registry when an event comes.

use std::io;
use std::net::SocketAddr;

use log::warn;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::admission::{Admission, Refusal};
use crate::config::Config;
use crate::deadlines::{Deadlines, Timer};
use crate::limits::{ACCEPT_RETRY_MS, ARRIVAL_BYTES, LOG_WARNINGS_PER_SEC};
use crate::listener::{Accepted, Listener};
use crate::log_gate::{LogGate, held_note};
use crate::member::who_from_addr;
use crate::sessions::Sessions;
use crate::stats::CloseReason;
use crate::tls::TlsConfig;

/// The plain listener's token.
pub const LISTENER: Token = Token(usize::MAX);
/// The TLS listener's token.
pub const TLS_LISTENER: Token = Token(usize::MAX - 5);

/// Which listener a connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Plain,
    Tls,
}

/// The TLS listener and the certificate its handshakes use.
struct TlsDoor {
    /// `None` once the doors are closed.
    listener: Option<Listener>,
    addr: SocketAddr,
    config: TlsConfig,
}

/// The listeners, and who may come in through them.
pub struct Doors {
    /// `None` with `--listen none`, and once the doors are closed.
    plain: Option<Listener>,
    /// The plain listener's address, while there is one.
    plain_addr: Option<SocketAddr>,
    /// With `--tls-listen`.
    tls: Option<TlsDoor>,
    admission: Admission,
    gate_accept: LogGate,
    gate_fd: LogGate,
}

impl Doors {
    /// Registers `plain` (already bound, or `None` with `--listen none`)
    /// and, with `--tls-listen`, loads the certificate and key and binds
    /// the TLS listener. A certificate outside its validity is logged and
    /// the server still starts; anything else wrong is an error naming the
    /// flag and the file.
    pub fn open(
        mut plain: Option<Listener>,
        config: &Config,
        admission: Admission,
        registry: &Registry,
    ) -> io::Result<Doors> {
        if let Some(listener) = &mut plain {
            registry.register(&mut listener.socket, LISTENER, Interest::READABLE)?;
        }
        let plain_addr = plain.as_ref().map(Listener::local_addr).transpose()?;
        Ok(Doors {
            plain,
            plain_addr,
            tls: open_tls(config, registry)?,
            admission,
            gate_accept: LogGate::new(LOG_WARNINGS_PER_SEC),
            gate_fd: LogGate::new(1),
        })
    }

    /// The plain listener's address, unless `--listen none`.
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain_addr
    }

    /// The TLS listener's address, with `--tls-listen`.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|t| t.addr)
    }

    /// The most clients served at once.
    pub fn max_clients(&self) -> usize {
        self.admission.max_clients()
    }

    /// Accepts at both doors (a retry after a pause or a failure).
    pub fn accept_all(
        &mut self,
        sessions: &mut Sessions,
        deadlines: &mut Deadlines,
        registry: &Registry,
    ) {
        self.accept_at(Door::Plain, sessions, deadlines, registry);
        self.accept_at(Door::Tls, sessions, deadlines, registry);
    }

    /// Accepts at one door until nobody waits. Every newcomer is announced
    /// to everyone, so accepting produces output as reading does: it stops
    /// while reading is paused (the kernel's backlog holds the newcomers)
    /// and once the turn's budget is used, and goes on when that ends.
    pub fn accept_at(
        &mut self,
        door: Door,
        sessions: &mut Sessions,
        deadlines: &mut Deadlines,
        registry: &Registry,
    ) {
        let now = sessions.now_ms;
        loop {
            let listener = match door {
                Door::Plain => self.plain.as_mut(),
                Door::Tls => self.tls.as_mut().and_then(|t| t.listener.as_mut()),
            };
            let Some(listener) = listener else {
                return;
            };
            if sessions.total.paused() {
                return; // Resuming accepts again.
            }
            let hub = &sessions.hub;
            if !hub.fits_everyone(hub.rooms.default_id(), ARRIVAL_BYTES) {
                deadlines.at(now, Timer::AcceptRetry);
                return;
            }
            match listener.accept() {
                Accepted::Client(socket, addr) => {
                    self.admit(socket, addr, door, sessions, deadlines, registry)
                }
                Accepted::Empty => return,
                Accepted::Shed { closed, retry } => {
                    return self.shed(closed, retry, sessions, deadlines);
                }
                Accepted::Failed(e) => {
                    if let Some(held) = self.gate_accept.pass(now) {
                        warn!("accept failed: {e}; retrying shortly{}", held_note(held));
                    }
                    deadlines.at(now + ACCEPT_RETRY_MS, Timer::AcceptRetry);
                    return;
                }
            }
        }
    }

    /// Descriptors ran out and `closed` waiting connections were shed.
    fn shed(
        &mut self,
        closed: u64,
        retry: bool,
        sessions: &mut Sessions,
        deadlines: &mut Deadlines,
    ) {
        let now = sessions.now_ms;
        let stats = &mut sessions.hub.stats;
        stats.fd_exhausted += 1;
        stats.accepted += closed;
        stats.closed[CloseReason::Busy as usize] += closed;
        if retry {
            deadlines.at(now + ACCEPT_RETRY_MS, Timer::AcceptRetry);
        }
        if let Some(held) = self.gate_fd.pass(now) {
            warn!(
                "descriptor limit reached with {} clients: closed {closed} new connections{}",
                sessions.conns.len(),
                held_note(held)
            );
        }
    }

    /// Decides whether a new connection may stay; the sessions take it in.
    /// A TLS newcomer gets a session and a handshake deadline.
    fn admit(
        &mut self,
        socket: TcpStream,
        addr: SocketAddr,
        door: Door,
        sessions: &mut Sessions,
        deadlines: &mut Deadlines,
        registry: &Registry,
    ) {
        sessions.hub.stats.accepted += 1;
        let refusal = match self.admission.admit(addr.ip()) {
            Ok(slot) => {
                if let Err(e) = crate::connection::configure(&socket, sessions.config.sndbuf) {
                    log::debug!("{addr}: socket options: {e}");
                }
                let tls = match (door, &self.tls) {
                    (Door::Tls, Some(tls)) => {
                        let timeout = tls.config.handshake_timeout.as_millis() as u64;
                        Some((tls.config.session(), sessions.now_ms + timeout))
                    }
                    _ => None,
                };
                return sessions.add(socket, addr, slot, tls, registry, deadlines);
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
        sessions.hub.stats.close(reason);
        if let Some(held) = self.gate_accept.pass(sessions.now_ms) {
            warn!(
                "refused {}: {} ({} clients){}",
                who_from_addr(addr),
                reason.label(),
                sessions.conns.len(),
                held_note(held)
            );
        }
    }

    /// Reads the TLS certificate and key again (SIGHUP). Returns the
    /// certificate's path and what came of it: a warning for a certificate
    /// outside its validity, or why the old pair stays. `None` without TLS.
    pub fn reload_tls(&mut self) -> Option<(String, Result<Option<String>, String>)> {
        let tls = self.tls.as_mut()?;
        let path = tls.config.cert_path().display().to_string();
        Some((path, tls.config.reload()))
    }

    /// Closes both listeners (shutdown): new connections are refused.
    pub fn close(&mut self, registry: &Registry) {
        let tls = self.tls.as_mut().and_then(|t| t.listener.take());
        for mut listener in self.plain.take().into_iter().chain(tls) {
            let _ = registry.deregister(&mut listener.socket);
        }
    }
}

/// Binds `--listen` unless it is `none`.
pub fn bind_plain(config: &Config) -> io::Result<Option<Listener>> {
    if !config.plain_listener() {
        return Ok(None);
    }
    let addr = crate::config::resolve("--listen", &config.listen)?;
    let listener = Listener::bind(addr, config.reuseport)
        .map_err(|e| crate::config::flag_error("--listen", &config.listen, e, ""))?;
    Ok(Some(listener))
}

/// Loads the certificate and key and binds `--tls-listen`, if given.
fn open_tls(config: &Config, registry: &Registry) -> io::Result<Option<TlsDoor>> {
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
