//! natter: a chat server for netcat and telnet users, on one thread.
//!
//! The behaviour is the chat server of "The Go Programming Language", ch. 8
//! (`You are <addr>`, `<addr> has arrived`, `<addr>: <line>`, `<addr> has
//! left`); the design is one `mio::Poll`, a `slab` of clients each with its own
//! read and write buffer, and broadcasts formatted once and queued by
//! reference. A client that stops reading can never stall the others.
//!
//! Start with `docs/architecture.md`. The modules, from the socket inwards:
//!
//! - [`server`]: the event loop, the only owner of the `Poll`: accepting,
//!   reading, flushing, timers, signals, removing clients.
//! - [`chat`] (private): what a line means: joining, chat lines, names and
//!   commands.
//! - [`client`]: one connection's state.
//! - [`line_buffer`]: bytes in, lines out; the `--max-line` cut.
//! - [`out_queue`]: bytes waiting for one client; shared chunks; partial writes.
//! - [`clean`]: user text made safe for other people's terminals.
//! - [`command`]: parsing `/commands`.
//! - [`names`]: which names may be taken, and when two are one or look alike.
//! - [`rate`]: the per-client token bucket.
//! - [`notice`]: `--notice-rate`, summing up arrivals in a connect storm.
//! - [`config`]: every flag, limit and default.
//! - [`stats`], [`metrics`], [`http`]: counters, `/stats`, Prometheus.
//! - [`log_gate`]: keeping repeated warnings from flooding the log.
//! - [`sys`]: descriptor limit and systemd integration.
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

mod chat;
pub mod clean;
pub mod client;
pub mod command;
pub mod config;
pub mod http;
pub mod line_buffer;
pub mod log_gate;
pub mod metrics;
pub mod names;
pub mod notice;
pub mod out_queue;
pub mod rate;
pub mod server;
pub mod stats;
pub mod sys;

pub use config::{Config, PER_CLIENT_BYTES, SLACK_BYTES, SlowClient};
pub use server::{Exit, Server};
