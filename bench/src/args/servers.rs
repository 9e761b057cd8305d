//! Where the clients connect and which processes make up the server. One
//! address is one server; several are the nodes of a cluster, and the
//! clients are spread evenly over them (client i to address i mod k), so
//! that a line said on one node is delivered to the others' clients too.
//! `--sender-addr` puts every sender on one address and leaves the others
//! to the receivers, which makes every delivery but the senders' own a
//! cross-node one. A cluster is several processes (each node, and Redis):
//! `--server-pid` may name each, with a label, and the CPU of each is read.

use std::net::SocketAddr;

use super::{Opts, check_loopback};

/// At most this many addresses: each client's is kept as a byte, and a
/// one-thread generator has no business spreading over more nodes.
pub const MAX_ADDRS: usize = 64;

/// A process whose CPU (and memory) is read around the measured interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPid {
    pub pid: u32,
    /// What it is (`n1`, `redis`), copied into the JSON.
    pub label: Option<String>,
}

/// `--addr A` (repeatable) or `--addrs A,B,…`: the addresses in `v`, in
/// order, appended to `list`. Every one must be loopback, and none given
/// twice (two entries of one address would only skew the spread).
pub fn push_addrs(list: &mut Vec<SocketAddr>, v: &str) -> Result<(), String> {
    for part in v.split(',') {
        let a = parse_addr(part)?;
        if list.contains(&a) {
            return Err(format!("address {a} is given twice"));
        }
        if list.len() == MAX_ADDRS {
            return Err(format!("at most {MAX_ADDRS} server addresses"));
        }
        list.push(a);
    }
    Ok(())
}

/// One address: a numeric `IP:PORT` on loopback (host names are refused, so
/// that nothing resolves to another machine).
pub fn parse_addr(v: &str) -> Result<SocketAddr, String> {
    let v = v.trim();
    let a: SocketAddr = v
        .parse()
        .map_err(|_| format!("refusing {v:?}: expected a numeric loopback IP:PORT"))?;
    check_loopback(a)?;
    Ok(a)
}

/// `--server-pid PID` or `--server-pid LABEL=PID`, appended to `list`
/// unless that PID is there already (its CPU would be counted twice).
pub fn push_pid(list: &mut Vec<ServerPid>, v: &str) -> Result<(), String> {
    let p = parse_pid(v)?;
    if list.iter().any(|q| q.pid == p.pid) {
        return Err(format!("--server-pid {} is given twice", p.pid));
    }
    list.push(p);
    Ok(())
}

fn parse_pid(v: &str) -> Result<ServerPid, String> {
    let (label, pid) = match v.rsplit_once('=') {
        Some((l, p)) => (Some(l), p),
        None => (None, v),
    };
    let pid = pid
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("--server-pid {v:?}: expected PID or LABEL=PID"))?;
    // Labels land in JSON keys' values and in the report's tables: short
    // and plain.
    let plain = |l: &str| {
        (1..=32).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    };
    if let Some(l) = label.filter(|l| !plain(l)) {
        return Err(format!(
            "--server-pid label {l:?}: 1 to 32 letters, digits, '-', '_', '.', ':'"
        ));
    }
    Ok(ServerPid {
        pid,
        label: label.map(str::to_string),
    })
}

/// The checks that need the whole command line.
pub fn check(o: &Opts) -> Result<(), String> {
    if o.addrs.is_empty() {
        return Err("missing --addr (see --help)".into());
    }
    if o.sender_addr.is_some() && o.scenario.silent() {
        return Err(format!(
            "--sender-addr needs senders: {} has none",
            o.scenario.name()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::tests::run;

    #[test]
    fn several_addresses_in_order() {
        let o = run(&[
            "throughput",
            "--addr",
            "127.0.0.1:9000",
            "--addr",
            "127.0.0.2:9001",
        ])
        .unwrap();
        let want: Vec<SocketAddr> = vec![
            "127.0.0.1:9000".parse().unwrap(),
            "127.0.0.2:9001".parse().unwrap(),
        ];
        assert_eq!(o.addrs, want);
        let o = run(&["throughput", "--addrs", "127.0.0.1:9000, 127.0.0.2:9001"]).unwrap();
        assert_eq!(o.addrs, want);
        // Both spellings add to one list.
        let o = run(&[
            "throughput",
            "--addrs",
            "127.0.0.1:9000,127.0.0.2:9001",
            "--addr",
            "[::1]:9002",
        ])
        .unwrap();
        assert_eq!(o.addrs.len(), 3);
        assert_eq!(o.sender_addr, None);
    }

    #[test]
    fn every_address_loopback_and_distinct() {
        for bad in [
            &["--addrs", "127.0.0.1:9000,10.0.0.1:9000"][..],
            &["--addr", "127.0.0.1:9000", "--addr", "192.168.1.1:9000"],
            &["--addrs", "127.0.0.1:9000,"],
            &["--addrs", "127.0.0.1:9000,localhost:9001"],
            &["--addr", "127.0.0.1:9000", "--addr", "127.0.0.1:9000"],
            &["--addr", "127.0.0.1:9000", "--sender-addr", "8.8.8.8:53"],
            &["--addr", "127.0.0.1:9000", "--sender-addr", "127.0.0.1:0"],
            &["--sender-addr", "127.0.0.1:9000"],
        ] {
            let mut a = vec!["throughput"];
            a.extend_from_slice(bad);
            assert!(run(&a).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (1..=MAX_ADDRS + 1)
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        assert!(run(&["idle", "--addrs", &many[..MAX_ADDRS].join(",")]).is_ok());
        assert!(run(&["idle", "--addrs", &many.join(",")]).is_err());
    }

    #[test]
    fn sender_address() {
        let o = run(&[
            "latency",
            "--sender-addr",
            "127.0.0.1:9000",
            "--addr",
            "127.0.0.1:9001",
        ])
        .unwrap();
        assert_eq!(o.sender_addr, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(o.addrs, vec!["127.0.0.1:9001".parse().unwrap()]);
        // It may be one of the receivers' addresses too.
        let same = ["throughput", "--addr", "127.0.0.1:1", "--sender-addr"];
        assert!(run(&[&same[..], &["127.0.0.1:1"]].concat()).is_ok());
        for silent in ["idle", "handshakes"] {
            let a = [
                silent,
                "--addr",
                "127.0.0.1:1",
                "--sender-addr",
                "127.0.0.1:2",
            ];
            assert!(run(&a).is_err(), "{silent}");
        }
    }

    #[test]
    fn server_pids_with_labels() {
        let o = run(&[
            "throughput",
            "--addr",
            "127.0.0.1:1",
            "--server-pid",
            "n1=100",
            "--server-pid",
            "200",
            "--server-pid",
            "redis=300",
        ])
        .unwrap();
        let pids: Vec<(u32, Option<&str>)> = o
            .server_pids
            .iter()
            .map(|p| (p.pid, p.label.as_deref()))
            .collect();
        assert_eq!(
            pids,
            vec![(100, Some("n1")), (200, None), (300, Some("redis"))]
        );
        assert_eq!(o.first_pid(), Some(100));
        for bad in ["0", "x", "n1=", "=5", "a b=5", "n1=-3", "n1=5x"] {
            let a = ["throughput", "--addr", "127.0.0.1:1", "--server-pid", bad];
            assert!(run(&a).is_err(), "{bad}");
        }
        let twice = [
            "throughput",
            "--addr",
            "127.0.0.1:1",
            "--server-pid",
            "7",
            "--server-pid",
            "b=7",
        ];
        assert!(run(&twice).is_err());
        let none = run(&["throughput", "--addr", "127.0.0.1:1"]).unwrap();
        assert!(none.server_pids.is_empty() && none.first_pid().is_none());
    }
}
