//! Who may connect: `--max-clients` and `--max-per-ip`.
//!
//! An admitted connection holds a [`Slot`]; dropping the slot gives the
//! place back, to the total and to its source. There is no hand-written
//! decrement to forget: whatever path a connection leaves by, its slot goes
//! with it.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-clients` connections are held.
    Full,
    /// Its source holds `--max-per-ip` connections.
    PerSource,
}

/// The counts a [`Slot`] is part of.
#[derive(Debug)]
pub struct Admission {
    max_clients: usize,
    /// 0: no per-source limit.
    max_per_source: usize,
    per_ip_prefix_v6: u8,
    total: Rc<Cell<usize>>,
    /// Connections per source, only with a per-source limit. Entries whose
    /// count fell to zero are pruned as the map grows.
    per_source: HashMap<IpAddr, Rc<Cell<usize>>>,
}

/// One admitted connection's place; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    total: Rc<Cell<usize>>,
    source: Option<Rc<Cell<usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.total.set(self.total.get() - 1);
        if let Some(source) = &self.source {
            source.set(source.get() - 1);
        }
    }
}

impl Admission {
    pub fn new(max_clients: usize, max_per_source: usize, per_ip_prefix_v6: u8) -> Admission {
        Admission {
            max_clients,
            max_per_source,
            per_ip_prefix_v6,
            total: Rc::default(),
            per_source: HashMap::new(),
        }
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.total.get()
    }

    /// The most connections held at once.
    pub fn max_clients(&self) -> usize {
        self.max_clients
    }

    /// A place for a connection from `ip`, or why there is none.
    pub fn admit(&mut self, ip: IpAddr) -> Result<Slot, Refusal> {
        if self.total.get() >= self.max_clients {
            return Err(Refusal::Full);
        }
        let source = if self.max_per_source > 0 {
            if self.per_source.len() > 2 * self.total.get() + 64 {
                // Only the map holds these: their count is zero.
                self.per_source.retain(|_, n| Rc::strong_count(n) > 1);
            }
            let key = source_key(ip, self.per_ip_prefix_v6);
            let count = self.per_source.entry(key).or_default();
            if count.get() >= self.max_per_source {
                return Err(Refusal::PerSource);
            }
            count.set(count.get() + 1);
            Some(count.clone())
        } else {
            None
        };
        self.total.set(self.total.get() + 1);
        Ok(Slot {
            total: self.total.clone(),
            source,
        })
    }
}

/// The source a connection from `ip` is counted under for `--max-per-ip`:
/// an IPv4 address (IPv4-mapped IPv6 included) is its own source; an IPv6
/// address is grouped by its first `v6_prefix` bits, because one host or
/// one customer usually holds a whole /64 and could otherwise open as many
/// connections as it has addresses.
pub fn source_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = match v6_prefix {
                0 => 0,
                p => u128::MAX << (128 - u32::from(p.min(128))),
            };
            IpAddr::V6((bits & mask).into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn slots_are_given_back_when_dropped() {
        let mut a = Admission::new(2, 0, 64);
        let one = a.admit(ip("10.0.0.1")).unwrap();
        let two = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.admit(ip("10.0.0.2")).unwrap_err(), Refusal::Full);
        drop(one);
        assert_eq!(a.held(), 1);
        let three = a.admit(ip("10.0.0.2")).unwrap();
        drop((two, three));
        assert_eq!(a.held(), 0);
    }

    #[test]
    fn each_source_has_its_share() {
        let mut a = Admission::new(100, 2, 64);
        let _x = [
            a.admit(ip("10.0.0.1")).unwrap(),
            a.admit(ip("10.0.0.1")).unwrap(),
        ];
        assert_eq!(a.admit(ip("10.0.0.1")).unwrap_err(), Refusal::PerSource);
        assert!(a.admit(ip("10.0.0.2")).is_ok());
        // IPv6: one /64 is one source.
        let _y = [
            a.admit(ip("2001:db8:1:2::1")).unwrap(),
            a.admit(ip("2001:db8:1:2::ffff")).unwrap(),
        ];
        assert_eq!(
            a.admit(ip("2001:db8:1:2:aaaa::9")).unwrap_err(),
            Refusal::PerSource
        );
        assert!(a.admit(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn sources_that_left_do_not_pile_up() {
        let mut a = Admission::new(10, 1, 64);
        for i in 0..10_000u32 {
            let slot = a.admit(IpAddr::V4(i.into())).unwrap();
            drop(slot);
        }
        assert!(a.per_source.len() <= 66, "{}", a.per_source.len());
    }

    #[test]
    fn sources_group_ipv6_by_prefix_and_keep_ipv4_whole() {
        let key = |s: &str, p| source_key(ip(s), p);
        assert_eq!(
            key("2001:db8:1:2:aaaa::1", 64),
            key("2001:db8:1:2:ffff::9", 64)
        );
        assert_ne!(key("2001:db8:1:2::1", 64), key("2001:db8:1:3::1", 64));
        assert_eq!(key("2001:db8:1:2::1", 48), key("2001:db8:1:3::1", 48));
        assert_ne!(key("2001:db8::1", 128), key("2001:db8::2", 128));
        assert_eq!(key("2001:db8::1", 0), key("::", 0));
        assert_ne!(key("10.0.0.1", 64), key("10.0.0.2", 64));
        assert_eq!(key("::ffff:10.0.0.1", 64), key("10.0.0.1", 64));
    }
}
