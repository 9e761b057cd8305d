//! The `--metrics` endpoint: Prometheus text over HTTP, served by the same
//! event loop as the chat. Each connection sends one request, gets one
//! response, and is closed. Requests are capped in size, connections in
//! number and in time, so a scraper (or anyone else) cannot hold resources.
//!
//! The server owns the `Poll`; this module registers its sockets through the
//! registry it is handed, under tokens the server routes back to it.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use log::{debug, info};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::http::{Answer, MAX_REQUEST, answer, error_response, response};
use crate::server::METRICS_CONN_BASE;
use crate::stats::{Gauges, Stats, render_prometheus};

/// Metrics connections open at once at most; more are closed on accept.
pub const MAX_METRICS_CONNS: usize = 16;
/// How long one metrics connection may stay open.
pub const METRICS_CONN_TIMEOUT_MS: u64 = 5_000;

struct HttpConn {
    socket: TcpStream,
    /// The request bytes received so far (at most [`MAX_REQUEST`]).
    request: Vec<u8>,
    /// The response, once decided, and how much of it was written.
    response: Vec<u8>,
    written: usize,
    close_by_ms: u64,
}

/// The metrics listener and its open connections.
pub struct MetricsEndpoint {
    listener: TcpListener,
    conns: Slab<HttpConn>,
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
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Accepts until `WouldBlock`; over the connection cap, closes at once.
    pub fn accept_all(&mut self, registry: &Registry, now_ms: u64) {
        loop {
            match self.listener.accept() {
                Ok((mut socket, _)) => {
                    if self.conns.len() >= MAX_METRICS_CONNS {
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
                            request: Vec::new(),
                            response: Vec::new(),
                            written: 0,
                            close_by_ms: now_ms + METRICS_CONN_TIMEOUT_MS,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!("metrics accept: {e}");
                    return;
                }
            }
        }
    }

    /// Reads the request, answers it, and closes when the answer is out.
    pub fn serve(&mut self, key: usize, registry: &Registry, stats: &Stats, gauges: &Gauges) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.response.is_empty() {
            let mut buf = [0u8; 2048];
            loop {
                match conn.socket.read(&mut buf) {
                    Ok(0) => {
                        self.close(key, registry);
                        return;
                    }
                    Ok(n) => {
                        let room = MAX_REQUEST - conn.request.len();
                        conn.request.extend_from_slice(&buf[..n.min(room)]);
                        if room <= n {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.close(key, registry);
                        return;
                    }
                }
            }
            conn.response = match answer(&conn.request) {
                Answer::NeedMore => return,
                Answer::Metrics => response(
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    &render_prometheus(stats, gauges),
                ),
                Answer::Error(status) => error_response(status),
            };
        }
        loop {
            match conn.socket.write(&conn.response[conn.written..]) {
                Ok(n) => {
                    conn.written += n;
                    if conn.written == conn.response.len() {
                        let _ = conn.socket.shutdown(std::net::Shutdown::Write);
                        self.close(key, registry);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let token = Token(METRICS_CONN_BASE + key);
                    let _ = registry.reregister(&mut conn.socket, token, Interest::WRITABLE);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close(key, registry);
                    return;
                }
            }
        }
    }

    fn close(&mut self, key: usize, registry: &Registry) {
        let mut conn = self.conns.remove(key);
        let _ = registry.deregister(&mut conn.socket);
    }

    /// The earliest connection deadline, for the poll timeout.
    pub fn next_deadline(&self) -> Option<u64> {
        self.conns.iter().map(|(_, c)| c.close_by_ms).min()
    }

    /// Closes connections that overstayed [`METRICS_CONN_TIMEOUT_MS`].
    pub fn expire(&mut self, now_ms: u64) {
        self.conns.retain(|_, c| c.close_by_ms > now_ms);
    }

    /// Closes the listener and every connection (at shutdown).
    pub fn close_all(mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.listener);
        for (_, conn) in &mut self.conns {
            let _ = registry.deregister(&mut conn.socket);
        }
    }
}
