//! Nodes joined through Redis, against a real `redis-server` that each test
//! starts on a free loopback port (persistence off) and stops by its PID.
//! A test that cannot start one fails: `.ci/run` installs `redis-server`.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Daemon};

/// A `redis-server` of the test's own.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = free_port();
        Redis::on(port)
    }

    fn on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs it)");
        let redis = Redis { child, port };
        common::eventually("redis-server to answer", || redis.cli(&["PING"]) == "PONG");
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli` against it; its answer, trimmed.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli must be installed");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node of the cluster at `redis`, with its metrics endpoint.
struct Node {
    daemon: Daemon,
    metrics: SocketAddr,
}

impl std::ops::Deref for Node {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.daemon
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Daemon {
        &mut self.daemon
    }
}

impl Node {
    /// Waits until this node knows `n` members of other nodes: a newcomer
    /// here then sees only what happens after it, as on one node.
    fn knows(&self, n: u64) {
        common::eventually("the node to learn the others' members", || {
            common::scrape(self.metrics)["natter_cluster_remote_members"] == n
        });
    }
}

fn node(redis: &Redis, name: &str, extra: &[&str]) -> Node {
    let url = redis.url();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics_flag = metrics.to_string();
    let mut args = vec!["--cluster", &url, "--node-name", name, "--rate", "0"];
    args.extend_from_slice(&["--metrics", &metrics_flag]);
    args.extend_from_slice(extra);
    let mut daemon = Daemon::start(&args);
    daemon.log_until("cluster link up");
    Node { daemon, metrics }
}

/// A client of `node`, with its greeting read, once `node` knows
/// `remote` members of the other nodes.
fn client_after(node: &Node, remote: u64) -> Client {
    node.knows(remote);
    Client::join(node.addr)
}

/// A client of a node no other member is on yet.
fn client(node: &Node) -> Client {
    Client::join(node.addr)
}

#[test]
fn the_transcript_across_two_and_three_nodes() {
    let redis = Redis::start();
    let a = node(&redis, "a", &[]);
    let b = node(&redis, "b", &[]);
    let c = node(&redis, "c", &[]);
    let mut x = client(&a);
    assert!(x.who.ends_with("@a"), "{}", x.who);
    let mut y = client_after(&b, 1);
    x.expect(&format!("{} has arrived", y.who));
    let mut z = client_after(&c, 2);
    x.expect(&format!("{} has arrived", z.who));
    y.expect(&format!("{} has arrived", z.who));
    x.say("Hi!");
    let line = format!("{}: Hi!", x.who);
    for c in [&mut x, &mut y, &mut z] {
        c.expect(&line);
    }
    y.say("Hi yourself.");
    let line = format!("{}: Hi yourself.", y.who);
    for c in [&mut x, &mut y, &mut z] {
        c.expect(&line);
    }
    z.say("/quit bye");
    x.expect(&format!("{} has left (bye)", z.who));
    y.expect(&format!("{} has left (bye)", z.who));
}

#[test]
fn who_rooms_msg_and_nick_cross_nodes() {
    let redis = Redis::start();
    let a = node(&redis, "a", &[]);
    let b = node(&redis, "b", &[]);
    let mut x = client(&a);
    let mut y = client_after(&b, 1);
    x.expect(&format!("{} has arrived", y.who));
    x.nick("alice");
    y.expect(&format!("{} is now known as alice", x_addr(&x, "a")));
    y.nick("bob");
    x.expect(&format!("{} is now known as bob", x_addr(&y, "b")));
    x.say("/who");
    x.expect("*** 2 here: alice, bob");
    y.say("/nick ALICE");
    y.expect("*** name taken: ALICE");
    y.say("/nick аlice");
    y.expect("*** name taken: аlice (looks like alice)");
    x.say("/msg bob across nodes");
    x.expect("-> bob: across nodes");
    y.expect("alice (private): across nodes");
    y.say("/join #help");
    y.expect("*** you are in #help");
    y.expect("*** 1 here: bob");
    x.expect("bob has gone to #help");
    x.say("/rooms");
    x.expect("*** rooms: #lobby (1), #help (1)");
    x.say("/who #help");
    x.expect("*** 1 here: bob");
    x.say("/join #help");
    x.expect("*** you are in #help");
    x.expect("*** 2 here: bob, alice");
    y.expect("alice has arrived");
    y.say("/me waves");
    x.expect("* bob waves");
    y.expect("* bob waves");
}

/// What others saw as `c`'s identity before its `/nick`: its address and
/// node.
fn x_addr(c: &Client, node: &str) -> String {
    format!("{}@{node}", c.stream().local_addr().unwrap())
}

/// Two clients on two nodes take the same name at the same moment, fifty
/// times: exactly one wins each time, and the other is told.
#[test]
fn the_name_race_has_exactly_one_winner() {
    let redis = Redis::start();
    let a = node(&redis, "a", &[]);
    let b = node(&redis, "b", &[]);
    for round in 0..50 {
        let mut x = client(&a);
        let mut y = client_after(&b, 1);
        x.until(|l| l == format!("{} has arrived", y.who));
        let name = format!("racer{round}");
        let both = format!("/nick {name}\n");
        // As close to the same moment as two writes can be.
        x.stream()
            .try_clone()
            .unwrap()
            .write_all(both.as_bytes())
            .unwrap();
        y.stream()
            .try_clone()
            .unwrap()
            .write_all(both.as_bytes())
            .unwrap();
        // Its own answer: the rename, or the refusal (the other's rename,
        // announced too, is skipped).
        let won = |c: &mut Client| {
            let mine = format!("{} is now known as {name}", c.who);
            let refused = format!("*** name taken: {name}");
            let line = c.until(|l| l == mine || l == refused);
            line == mine
        };
        let (wx, wy) = (won(&mut x), won(&mut y));
        assert!(wx ^ wy, "round {round}: exactly one winner ({wx}, {wy})");
        x.say("/quit");
        y.say("/quit");
        // Both gone from both nodes before the next round.
        x.read_to_end();
        y.read_to_end();
        a.knows(0);
        b.knows(0);
    }
}

#[test]
fn a_killed_nodes_users_leave_within_the_timeout() {
    let redis = Redis::start();
    let a = node(&redis, "a", &["--cluster-timeout", "2s"]);
    let b = node(&redis, "b", &["--cluster-timeout", "2s"]);
    let mut x = client(&a);
    let mut y = client_after(&b, 1);
    x.expect(&format!("{} has arrived", y.who));
    y.nick("doomed");
    x.expect(&format!("{} is now known as doomed", x_addr(&y, "b")));
    let killed = Instant::now();
    b.signal("KILL");
    x.expect("doomed has left");
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    // The name is free again.
    x.say("/nick doomed");
    x.expect(&format!("{} is now known as doomed", x.who));
}

#[test]
fn redis_down_and_back_mid_chat() {
    let redis = Redis::start();
    let a = node(&redis, "a", &[]);
    let b = node(&redis, "b", &[]);
    let mut x = client(&a);
    let mut x2 = client(&a);
    x.expect(&format!("{} has arrived", x2.who));
    let mut y = client_after(&b, 2);
    x.expect(&format!("{} has arrived", y.who));
    x2.expect(&format!("{} has arrived", y.who));
    let port = redis.stop();
    x.expect("*** cluster link down: only this node hears you");
    x2.expect("*** cluster link down: only this node hears you");
    y.expect("*** cluster link down: only this node hears you");
    // Local chat goes on; names wait.
    x.say("still here");
    x.expect(&format!("{}: still here", x.who));
    x2.expect(&format!("{}: still here", x.who));
    x.say("/nick later");
    x.expect("*** names are unavailable while the cluster link is down");
    let redis = Redis::on(port);
    x.expect("*** cluster link restored");
    y.expect("*** cluster link restored");
    // /who converges: both nodes' users, within 2 s of the restoring.
    let started = Instant::now();
    loop {
        x.say("/who");
        let who = x.until(|l| l.starts_with("*** ") && l.contains(" here: "));
        if who.starts_with("*** 3 here: ") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "{who}");
    }
    x.say("across again");
    y.expect(&format!("{}: across again", x.who));
    drop(redis);
}

/// Redis stops answering for 3 s while a node's clients talk: local chat
/// goes on, the node's memory stays bounded, and the other node gets the
/// lines once Redis resumes.
#[test]
fn redis_paused_under_load_leaves_local_chat_alone() {
    let redis = Redis::start();
    let a = node(&redis, "a", &[]);
    let b = node(&redis, "b", &[]);
    let mut x = client(&a);
    let mut x2 = client(&a);
    x.expect(&format!("{} has arrived", x2.who));
    let mut y = client_after(&b, 2);
    x.expect(&format!("{} has arrived", y.who));
    x2.expect(&format!("{} has arrived", y.who));
    let rss_before = a.rss_kib();
    redis.signal("STOP");
    let stopped = Instant::now();
    let mut n = 0;
    while stopped.elapsed() < Duration::from_secs(3) {
        let line = format!("line {n} {}", "x".repeat(200));
        x.say(&line);
        x2.expect(&format!("{}: {line}", x.who));
        x.expect(&format!("{}: {line}", x.who));
        n += 1;
    }
    let rss_paused = a.rss_kib();
    redis.signal("CONT");
    assert!(n > 100, "local chat went on: {n} lines in 3 s");
    assert!(
        rss_paused < rss_before + 32 * 1024,
        "RSS from {rss_before} KiB to {rss_paused} KiB"
    );
    // The other node hears them after all (or is told some were lost).
    let first = y.until(|l| l.contains(": line ") || l.contains("lost some lines"));
    assert!(
        first.contains("line 0") || first.contains("lost"),
        "{first}"
    );
}

#[test]
fn two_nodes_share_one_port_with_reuseport() {
    let redis = Redis::start();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = redis.url();
    let start = |name: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_natter"));
        cmd.args([
            "--listen",
            &listen,
            "--reuseport",
            "--cluster",
            &url,
            "--node-name",
            name,
        ]);
        let mut d = Daemon::spawn(cmd);
        d.log_until("cluster link up");
        d
    };
    let a = start("a");
    let b = start("b");
    let addr: SocketAddr = listen.parse().unwrap();
    assert_eq!(a.addr, addr);
    assert_eq!(b.addr, addr);
    // The kernel spreads connections over both: keep connecting until
    // both nodes have served one; everyone hears everyone.
    let mut seen = std::collections::HashSet::new();
    let mut clients = Vec::new();
    for _ in 0..40 {
        let c = Client::join(addr);
        seen.insert(c.who.rsplit('@').next().unwrap().to_string());
        clients.push(c);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "both nodes serve the port");
    let last = clients.len() - 1;
    clients[last].say("one port, two nodes");
    let line = format!("{}: one port, two nodes", clients[last].who);
    for c in &mut clients {
        c.until(|l| l == line);
    }
}

#[test]
fn malformed_messages_in_the_channel_are_dropped_and_logged() {
    let redis = Redis::start();
    let mut a = node(&redis, "a", &[]);
    let mut x = client(&a);
    for payload in [
        "garbage",
        "natter1 evil 1\nsay #lobby alice \u{1b}[2J",
        "natter1 evil 2\nsay lobby alice hi",
        "natter1 evil/node 3\nping",
        "natter1 evil 4\nexec rm -rf /",
        "natter1 evil 5\nsay #lobby аlice look-alike",
    ] {
        let answer = redis.cli(&["PUBLISH", "natter:room:#lobby", payload]);
        assert_eq!(answer, "1", "node a is subscribed");
    }
    a.log_until("dropped a malformed message");
    // A well-formed one from a made-up node still works, and cleaned text
    // is required: this line was cleaned at its origin.
    redis.cli(&[
        "PUBLISH",
        "natter:room:#lobby",
        "natter1 friend 1\nsay #lobby carol hi ^[[2J",
    ]);
    x.expect("carol: hi ^[[2J");
}
