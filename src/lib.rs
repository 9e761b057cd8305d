//! natter: a chat server for netcat and telnet users, on one thread.
//!
//! The behaviour is the chat server of "The Go Programming Language", ch. 8
//! (`You are <addr>`, `<addr> has arrived`, `<addr>: <line>`, `<addr> has
//! left`); the design is one `mio::Poll`, a `slab` of connections each with
//! its own read buffer and output queue, and broadcasts formatted once and
//! queued by reference. A client that stops reading can never stall the
//! others.
//!
//! Start with `docs/architecture.md`. The modules, from the socket inwards:
//!
//! - [`server`]: the event loop, the only owner of the `Poll`: routes
//!   events and timers, runs signals and shutdown.
//! - [`doors`] with [`listener`], [`admission`]: the plain and TLS
//!   listeners, accepting, shedding when descriptors run out,
//!   `--max-clients` and `--max-per-ip` (a slot given back on drop).
//! - [`sessions`] with [`reading`], [`flushing`], [`sweep`]: the connected
//!   clients and what a turn does with them.
//! - [`connection`], [`transport`], [`tls`]: one client's I/O, over plain
//!   TCP or TLS (rustls's unbuffered API; the session has no mio).
//! - [`hub`], [`room`], [`roster`], [`member`]: the members, their names,
//!   the room and its arena, and every queue (no mio).
//! - [`chat`], [`command`], [`names`]: what a line means (no mio).
//! - [`pressure`]: the per-client and total output caps (no mio).
//! - [`line_buffer`], [`out_queue`], [`clean`], [`rate`], [`notice`]: bytes
//!   in, bytes out, text made safe, lines per second, arrivals per second.
//! - [`deadlines`]: every timer in one place.
//! - [`config`], [`limits`]: every flag, and every limit that is not one.
//! - [`stats`], [`metrics`], [`http`]: counters, `/stats`, Prometheus.
//! - [`log_gate`], [`motd`], [`sys`]: quiet logs, the motd file, systemd.
//! - [`cluster`] with [`redis_link`], [`resp`], [`wire`], [`remotes`]:
//!   several nodes as one server, through Redis.
//!
//! ```no_run
//! let server = natter::Server::bind(natter::Config {
//!     listen: "127.0.0.1:0".into(),
//!     ..natter::Config::default()
//! })?;
//! println!("listening on {}", server.local_addr());
//! server.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod admission;
pub mod chat;
pub mod chunk;
pub mod clean;
pub mod cluster;
pub mod command;
pub mod config;
pub mod connection;
pub mod deadlines;
pub mod doors;
pub mod flushing;
pub mod http;
pub mod hub;
pub mod limits;
pub mod line_buffer;
pub mod listener;
pub mod log_gate;
pub mod member;
pub mod metrics;
pub mod motd;
pub mod names;
pub mod notice;
pub mod out_queue;
pub mod pressure;
pub mod rate;
pub mod reading;
pub mod redis_link;
pub mod remotes;
pub mod resp;
pub mod room;
pub mod rooms;
pub mod roster;
pub mod server;
pub mod sessions;
pub mod stats;
pub mod sweep;
pub mod sys;
pub mod tls;
pub mod transport;
pub mod wire;

pub use config::{Config, SlowClient};
pub use limits::{PER_CLIENT_BYTES, SLACK_BYTES};
pub use server::{Exit, Server};
