//! The `--metrics` endpoint: Prometheus text over HTTP, served by the same
//! event loop as the chat. Each connection sends one request, gets one
//! response, and is closed. Requests are capped in size, connections in
//! number and in time, so a scraper (or anyone else) cannot hold resources.
//!
//! The server owns the `Poll`; this module registers its sockets through the
//! registry it is handed, under tokens the server routes back to it.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};

use log::{debug, info};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::http::{Answer, answer, error_response, response};
use crate::limits::MAX_REQUEST;
use crate::server::METRICS_CONN_BASE;
use crate::stats::{Gauges, Stats, render_prometheus};

use crate::limits::{
    ACCEPT_RETRY_MS, MAX_METRICS_CONNS, MAX_METRICS_PER_SOURCE, METRICS_CONN_TIMEOUT_MS,
    METRICS_HEAD_TIMEOUT_MS,
};

struct HttpConn {
    socket: TcpStream,
    /// The peer's address, grouped as `--max-per-ip` groups them.
    source: IpAddr,
    /// The request bytes received so far (at most [`MAX_REQUEST`]).
    request: Vec<u8>,
    /// The response, once decided, and how much of it was written.
    response: Vec<u8>,
    written: usize,
    /// When the request head must be complete.
    head_by_ms: u64,
    close_by_ms: u64,
}

impl HttpConn {
    /// When this connection is closed if it is still open: the head deadline
    /// until the request is read, then the overall one.
    fn deadline_ms(&self) -> u64 {
        if self.response.is_empty() {
            self.head_by_ms.min(self.close_by_ms)
        } else {
            self.close_by_ms
        }
    }

    /// Reads what the socket has, up to `MAX_REQUEST` bytes in all; false
    /// when the connection is over (closed by the peer, or an error).
    fn read_request(&mut self) -> bool {
        let mut buf = [0u8; 2048];
        loop {
            match self.socket.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    let room = MAX_REQUEST - self.request.len();
                    self.request.extend_from_slice(&buf[..n.min(room)]);
                    if room <= n {
                        return true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Writes as much of the answer as the socket takes; false when the
    /// connection is over (answered in full, or it cannot go on).
    fn write_answer(&mut self, registry: &Registry, token: Token) -> bool {
        loop {
            match self.socket.write(&self.response[self.written..]) {
                Ok(n) => {
                    self.written += n;
                    if self.written == self.response.len() {
                        let _ = self.socket.shutdown(std::net::Shutdown::Write);
                        return false;
                    }
                }
                // Without write interest the rest of the answer would wait
                // for the request deadline: close now instead.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return registry
                        .reregister(&mut self.socket, token, Interest::WRITABLE)
                        .is_ok();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

/// The metrics listener and its open connections.
pub struct MetricsEndpoint {
    listener: TcpListener,
    conns: Slab<HttpConn>,
    /// Set when accept failed for want of descriptors: the backlog is not
    /// drained, so no new event will come; accept again at this time.
    retry_at_ms: Option<u64>,
}

impl MetricsEndpoint {
    pub fn bind(
        addr: SocketAddr,
        registry: &Registry,
        token: Token,
    ) -> io::Result<MetricsEndpoint> {
        let mut listener = TcpListener::bind(addr)?;
        registry.register(&mut listener, token, Interest::READABLE)?;
        info!("metrics on http://{}/metrics", listener.local_addr()?);
        Ok(MetricsEndpoint {
            listener,
            conns: Slab::new(),
            retry_at_ms: None,
        })
    }

    /// Binds the address `--metrics` gives; errors name the flag and value.
    pub fn bind_flag(
        value: &str,
        registry: &Registry,
        token: Token,
    ) -> io::Result<MetricsEndpoint> {
        let addr = crate::config::resolve("--metrics", value)?;
        MetricsEndpoint::bind(addr, registry, token)
            .map_err(|e| crate::config::flag_error("--metrics", value, e, ""))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Accepts until `WouldBlock`; over the connection caps (in all, or
    /// from one source), closes at once.
    pub fn accept_all(&mut self, registry: &Registry, now_ms: u64) {
        self.retry_at_ms = None;
        loop {
            match self.listener.accept() {
                Ok((mut socket, addr)) => {
                    let source = crate::admission::source_key(addr.ip(), 64);
                    let from_source = self
                        .conns
                        .iter()
                        .filter(|(_, c)| c.source == source)
                        .count();
                    if self.conns.len() >= MAX_METRICS_CONNS
                        || from_source >= MAX_METRICS_PER_SOURCE
                    {
                        debug!("metrics: refused {addr}: too many connections");
                        continue; // Dropped: closed.
                    }
                    let entry = self.conns.vacant_entry();
                    let token = Token(METRICS_CONN_BASE + entry.key());
                    if registry
                        .register(&mut socket, token, Interest::READABLE)
                        .is_ok()
                    {
                        entry.insert(HttpConn {
                            socket,
                            source,
                            request: Vec::new(),
                            response: Vec::new(),
                            written: 0,
                            head_by_ms: now_ms + METRICS_HEAD_TIMEOUT_MS,
                            close_by_ms: now_ms + METRICS_CONN_TIMEOUT_MS,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // Out of descriptors, most likely: the waiting connections
                    // stay in the backlog and edge-triggered readiness will
                    // not fire again for them, so try again shortly.
                    debug!("metrics accept: {e}; retrying in {ACCEPT_RETRY_MS} ms");
                    self.retry_at_ms = Some(now_ms + ACCEPT_RETRY_MS);
                    return;
                }
            }
        }
    }

    /// Reads the request, answers it, and closes when the answer is out.
    /// `gauges` is called only for a request that is answered with them.
    pub fn serve(
        &mut self,
        key: usize,
        registry: &Registry,
        stats: &Stats,
        gauges: impl FnOnce() -> Gauges,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.response.is_empty() {
            if !conn.read_request() {
                self.close(key, registry);
                return;
            }
            conn.response = match answer(&conn.request) {
                Answer::NeedMore => return,
                Answer::Metrics => response(
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    &render_prometheus(stats, &gauges()),
                ),
                Answer::Error(status) => error_response(status),
            };
        }
        let token = Token(METRICS_CONN_BASE + key);
        if !conn.write_answer(registry, token) {
            self.close(key, registry);
        }
    }

    fn close(&mut self, key: usize, registry: &Registry) {
        let mut conn = self.conns.remove(key);
        let _ = registry.deregister(&mut conn.socket);
    }

    /// The earliest deadline (a connection's, or the accept retry), for
    /// the poll timeout.
    pub fn next_deadline(&self) -> Option<u64> {
        let conns = self.conns.iter().map(|(_, c)| c.deadline_ms());
        conns.chain(self.retry_at_ms).min()
    }

    /// Closes connections that overstayed their deadline, and accepts again
    /// if an accept was put off.
    pub fn expire(&mut self, registry: &Registry, now_ms: u64) {
        let late: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline_ms() <= now_ms)
            .map(|(key, _)| key)
            .collect();
        for key in late {
            debug!("metrics: connection timed out");
            self.close(key, registry);
        }
        if self.retry_at_ms.is_some_and(|at| at <= now_ms) {
            self.accept_all(registry, now_ms);
        }
    }

    /// Closes the listener and every connection (at shutdown).
    pub fn close_all(mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.listener);
        for (_, conn) in &mut self.conns {
            let _ = registry.deregister(&mut conn.socket);
        }
    }
}
