//! The cluster's part of each turn, and how a node is set up from its flags.

use std::io;
use std::net::SocketAddr;

use mio::Registry;

use super::{Claim, Cluster, parse_url};
use crate::config::Config;
use crate::sessions::Sessions;

impl Cluster {
    /// The link `--cluster` asks for, if any; errors name the flag but
    /// never the password.
    pub fn from_config(config: &Config, addr: SocketAddr) -> io::Result<Option<Cluster>> {
        let Some(url) = &config.cluster else {
            return Ok(None);
        };
        let password = std::env::var("NATTER_REDIS_PASSWORD").ok();
        let url =
            parse_url(url, password).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Some(Cluster::new(
            url,
            &config.cluster_name,
            &node_id(config, addr),
            config.cluster_timeout.as_millis() as u64,
            config.cluster_max_queue,
            config.max_line,
        )))
    }

    /// Before the flush: the names asked for this turn go out; what came in
    /// is applied — other nodes' news into the rooms, answers to names.
    pub fn turn_in(&mut self, sessions: &mut Sessions, registry: &Registry) {
        for (key, name, first) in sessions.hub.take_claims() {
            if let Some(id) = sessions.conn_id(key) {
                self.claim(Claim {
                    key,
                    id,
                    name,
                    first,
                });
            }
        }
        self.pump(&mut sessions.hub, registry, sessions.now_ms);
        for answer in self.take_answers() {
            sessions.answer(answer);
        }
        for lost in self.take_lost() {
            sessions.lose_name(lost);
        }
    }

    /// After the flush: this turn's news is published and what is queued
    /// towards Redis written; over `--cluster-max-queue`, reading pauses.
    pub fn turn_out(&mut self, sessions: &mut Sessions, registry: &Registry) {
        self.publish_news(sessions.hub.take_news());
        self.flush(&mut sessions.hub, registry, sessions.now_ms);
        let full = self.over_queue();
        if sessions.cluster_full && !full {
            // Read again whoever waited.
            let waiting: Vec<usize> = sessions.conns.iter().map(|(key, _)| key).collect();
            sessions.ready.extend(waiting);
        }
        sessions.cluster_full = full;
    }
}

/// This node's id: `--node-name`, or the host name and the port.
fn node_id(config: &Config, addr: SocketAddr) -> String {
    if let Some(name) = &config.node_name {
        return name.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(crate::wire::MAX_NODE_ID - 6)
        .collect();
    let host = if host.is_empty() {
        "natter".into()
    } else {
        host
    };
    format!("{host}:{}", addr.port())
}
