//! Which server address each client connects to, and the latency split by
//! whether a line crossed from one address to another.
//!
//! With one address everything is one site. With k addresses (a cluster's
//! nodes) client i connects to address i mod k, so the senders (clients
//! 0..S), the observer (client S) and the receivers are spread evenly and
//! most lines reach most of their receivers through the cluster's link
//! between nodes. With `--sender-addr` every sender connects there and the
//! others are spread over the `--addr` addresses as before. A delivery is
//! "same" when the receiver is connected to the address its line's sender
//! is on, "cross" otherwise: in a cluster, the line went through Redis.

use std::io;
use std::net::SocketAddr;

use hdrhistogram::Histogram;

use crate::args::Opts;
use crate::tally::histogram;

pub struct Sites {
    /// The distinct addresses: the `--addr` ones in order, then the
    /// senders' if it is not among them.
    addrs: Vec<SocketAddr>,
    /// Per client, its index in `addrs`.
    of: Vec<u8>,
}

impl Sites {
    /// The sites of `clients` clients, the first `senders` of them sending.
    pub fn new(o: &Opts, senders: usize, clients: usize) -> Self {
        let mut addrs = o.addrs.clone();
        let sender_site = o
            .sender_addr
            .map(|a| match addrs.iter().position(|&b| b == a) {
                Some(p) => p,
                None => {
                    addrs.push(a);
                    addrs.len() - 1
                }
            });
        let k = o.addrs.len().max(1);
        let of = (0..clients)
            .map(|i| match sender_site {
                Some(s) if i < senders => s,
                _ => i % k,
            })
            .map(|s| u8::try_from(s).expect("at most MAX_ADDRS addresses"))
            .collect();
        Sites { addrs, of }
    }

    /// The address client `idx` connects to.
    #[inline]
    pub fn addr(&self, idx: usize) -> SocketAddr {
        self.addrs[usize::from(self.of[idx])]
    }

    /// Are the clients on more than one address?
    pub fn several(&self) -> bool {
        self.addrs.len() > 1
    }

    /// The latency split by site, when there is more than one.
    pub fn split(&self) -> io::Result<Option<Box<SiteSplit>>> {
        if !self.several() {
            return Ok(None);
        }
        Ok(Some(Box::new(SiteSplit {
            of: self.of.clone(),
            same: histogram()?,
            cross: histogram()?,
        })))
    }
}

/// The latency of the deliveries to a receiver on its line's sender's
/// address, and of the others.
pub struct SiteSplit {
    of: Vec<u8>,
    pub same: Histogram<u64>,
    pub cross: Histogram<u64>,
}

impl SiteSplit {
    /// Client `receiver` got a line of client `sender` after `latency` ns.
    #[inline]
    pub fn record(&mut self, receiver: usize, sender: usize, latency: u64) {
        let h = if self.of[receiver] == self.of[sender] {
            &mut self.same
        } else {
            &mut self.cross
        };
        h.saturating_record(latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::tests::run;

    fn sites(args: &[&str], senders: usize, clients: usize) -> Sites {
        let mut a = vec!["throughput"];
        a.extend_from_slice(args);
        Sites::new(&run(&a).unwrap(), senders, clients)
    }

    #[test]
    fn one_address_is_one_site() {
        let s = sites(&["--addr", "127.0.0.1:9"], 8, 100);
        assert!(!s.several());
        assert!(s.split().unwrap().is_none());
        assert!((0..100).all(|i| s.addr(i) == "127.0.0.1:9".parse().unwrap()));
    }

    #[test]
    fn spread_evenly_in_turn() {
        let s = sites(&["--addrs", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"], 8, 10);
        let ports: Vec<u16> = (0..10).map(|i| s.addr(i).port()).collect();
        assert_eq!(ports, [1, 2, 3, 1, 2, 3, 1, 2, 3, 1]);
        assert!(s.several());
    }

    #[test]
    fn senders_apart() {
        // Senders 0..4 on :1, the rest spread over :2 and :3.
        let s = sites(
            &[
                "--sender-addr",
                "127.0.0.1:1",
                "--addrs",
                "127.0.0.1:2,127.0.0.1:3",
            ],
            4,
            8,
        );
        let ports: Vec<u16> = (0..8).map(|i| s.addr(i).port()).collect();
        assert_eq!(ports, [1, 1, 1, 1, 2, 3, 2, 3]);
        // The senders' address may be a receivers' one as well.
        let s = sites(
            &[
                "--sender-addr",
                "127.0.0.1:2",
                "--addrs",
                "127.0.0.1:1,127.0.0.1:2",
            ],
            2,
            5,
        );
        let ports: Vec<u16> = (0..5).map(|i| s.addr(i).port()).collect();
        assert_eq!(ports, [2, 2, 1, 2, 1]);
        // Two sites even with one --addr.
        let s = sites(
            &["--sender-addr", "127.0.0.1:1", "--addr", "127.0.0.1:2"],
            1,
            3,
        );
        assert!(s.several());
    }

    #[test]
    fn split_by_site() {
        let s = sites(
            &["--sender-addr", "127.0.0.1:1", "--addr", "127.0.0.1:2"],
            2,
            5,
        );
        let mut x = s.split().unwrap().unwrap();
        x.record(1, 0, 5_000);
        x.record(3, 0, 7_000);
        x.record(4, 1, 9_000);
        assert_eq!((x.same.len(), x.cross.len()), (1, 2));
    }
}
