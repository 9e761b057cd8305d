//! `natter-bench floor-server`: the smallest fan-out server on natter's loop
//! design, the floor natter is measured against.
//!
//! One thread, one `mio::Poll`, a slab of clients, edge-triggered sockets.
//! It greets each newcomer with one line (the generator waits for a first
//! byte from each connection) and then relays what it reads to every
//! client, the sender included. Like natter, a turn of the loop reads every
//! readable client and then writes the turn's bytes to each client with one
//! write, written until the socket would block; what a socket does not take
//! waits in that client's queue for its writable event. Nothing else: no
//! names, no notices, no framing beyond one concession — a batch ends at
//! the last newline read from a client, and the rest waits for that
//! client's next read, so a line cut by a short read is never interleaved
//! with another client's line. No limits either: a client that does not
//! read makes its queue grow without bound.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

pub const HELP: &str = "\
natter-bench floor-server: the smallest fan-out server on natter's loop design

USAGE:
    natter-bench floor-server --listen 127.0.0.1:PORT

Prints the address it listens on (useful with port 0), greets every
newcomer with one line and relays every line it reads to all clients, the
sender included, until it is killed. Loopback addresses only.
";

const LISTENER: Token = Token(usize::MAX);
const GREETING: &[u8] = b"floor: welcome\n";
const READ_CHUNK: usize = 64 * 1024;

/// `natter-bench floor-server ARGS`.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let addr = match parse(args) {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("natter-bench floor-server: {e}");
            return ExitCode::from(2);
        }
    };
    let floor = Floor::bind(addr).and_then(|f| {
        // The address, for whoever started it with port 0.
        let mut stdout = io::stdout();
        writeln!(stdout, "{}", f.listener.local_addr()?)?;
        stdout.flush()?;
        Ok(f)
    });
    match floor.and_then(Floor::run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("natter-bench floor-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The listen address, or `None` for help.
fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Option<SocketAddr>, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut addr: Option<SocketAddr> = None;
    let e = |e: lexopt::Error| e.to_string();
    while let Some(arg) = p.next().map_err(e)? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("listen") => addr = Some(p.value().map_err(e)?.parse().map_err(e)?),
            other => return Err(other.unexpected().to_string()),
        }
    }
    let addr = addr.ok_or("missing --listen (see --help)")?;
    if !addr.ip().is_loopback() {
        return Err(format!("refusing {addr}: loopback addresses only"));
    }
    Ok(Some(addr))
}

struct Conn {
    stream: TcpStream,
    /// Bytes after the last newline read, waiting for the rest of the line.
    carry: Vec<u8>,
    /// Bytes the socket did not take yet.
    out: Vec<u8>,
    /// Closed during this turn; removed at its end.
    dead: bool,
}

struct Floor {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Conn>,
    scratch: Vec<u8>,
    /// This turn's complete lines, from every client that sent some.
    batch: Vec<u8>,
    dead: Vec<usize>,
}

impl Floor {
    fn bind(addr: SocketAddr) -> io::Result<Self> {
        rlimit::increase_nofile_limit(u64::MAX)?;
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(addr)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Floor {
            poll,
            listener,
            conns: Slab::new(),
            scratch: vec![0; READ_CHUNK],
            batch: Vec::new(),
            dead: Vec::new(),
        })
    }

    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    Token(k) => {
                        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                            self.flush(k);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.read(k);
                        }
                    }
                }
            }
            self.relay();
            self.bury();
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    eprintln!("natter-bench floor-server: accept: {e}");
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let k = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self
            .poll
            .registry()
            .register(&mut stream, Token(k), interest)
            .is_err()
        {
            return;
        }
        entry.insert(Conn {
            stream,
            carry: Vec::new(),
            out: GREETING.to_vec(),
            dead: false,
        });
        self.flush(k);
    }

    /// Read client `k` until it would block; its complete lines join the
    /// turn's batch.
    fn read(&mut self, k: usize) {
        let Some(c) = self.conns.get_mut(k).filter(|c| !c.dead) else {
            return;
        };
        loop {
            match c.stream.read(&mut self.scratch) {
                Ok(0) => {
                    kill(c, k, &mut self.dead);
                    break;
                }
                Ok(n) => {
                    let got = &self.scratch[..n];
                    match memchr::memrchr(b'\n', got) {
                        Some(nl) => {
                            self.batch.append(&mut c.carry);
                            self.batch.extend_from_slice(&got[..=nl]);
                            c.carry.extend_from_slice(&got[nl + 1..]);
                        }
                        None => c.carry.extend_from_slice(got),
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    kill(c, k, &mut self.dead);
                    break;
                }
            }
        }
    }

    /// The turn's batch to every client: one write each, straight from the
    /// batch when nothing is queued before it.
    fn relay(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        for (k, c) in self.conns.iter_mut() {
            if c.dead {
                continue;
            }
            if !c.out.is_empty() {
                // Still blocked: its writable event writes this too.
                c.out.extend_from_slice(&self.batch);
                continue;
            }
            match write_until_blocked(&mut c.stream, &self.batch) {
                Ok(n) => c.out.extend_from_slice(&self.batch[n..]),
                Err(_) => kill(c, k, &mut self.dead),
            }
        }
        self.batch.clear();
    }

    /// Write client `k`'s queue until the socket would block.
    fn flush(&mut self, k: usize) {
        let Some(c) = self.conns.get_mut(k).filter(|c| !c.dead) else {
            return;
        };
        if c.out.is_empty() {
            return;
        }
        match write_until_blocked(&mut c.stream, &c.out) {
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(_) => kill(c, k, &mut self.dead),
        }
    }

    /// Remove the clients closed during the turn.
    fn bury(&mut self) {
        for k in self.dead.drain(..) {
            let mut c = self.conns.remove(k);
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }
}

fn kill(c: &mut Conn, k: usize, dead: &mut Vec<usize>) {
    if !c.dead {
        c.dead = true;
        dead.push(k);
    }
}

/// Write `buf` until done or the socket would block; how much it took.
fn write_until_blocked(stream: &mut TcpStream, buf: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match stream.write(&buf[done..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpStream as StdStream;
    use std::time::Duration;

    fn start() -> SocketAddr {
        let floor = Floor::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = floor.listener.local_addr().unwrap();
        std::thread::spawn(move || floor.run());
        addr
    }

    fn client(addr: SocketAddr) -> (StdStream, BufReader<StdStream>) {
        let s = StdStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut greeting = String::new();
        r.read_line(&mut greeting).unwrap();
        assert_eq!(greeting.as_bytes(), GREETING);
        (s, r)
    }

    #[test]
    fn relays_whole_lines_to_everyone_including_the_sender() {
        let addr = start();
        let (mut a, mut ra) = client(addr);
        let (mut b, mut rb) = client(addr);
        // A line in two writes: nobody sees half of it.
        a.write_all(b"hello ").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        b.write_all(b"from b\n").unwrap();
        a.write_all(b"from a\n").unwrap();
        for r in [&mut ra, &mut rb] {
            let mut got = vec![String::new(), String::new()];
            r.read_line(&mut got[0]).unwrap();
            r.read_line(&mut got[1]).unwrap();
            got.sort();
            assert_eq!(got, ["from b\n", "hello from a\n"]);
        }
        drop(b);
        a.write_all(b"still here\n").unwrap();
        let mut line = String::new();
        ra.read_line(&mut line).unwrap();
        assert_eq!(line, "still here\n");
    }

    #[test]
    fn only_loopback() {
        let p = |a: &str| parse(["--listen", a].iter().map(std::ffi::OsString::from));
        assert!(matches!(p("127.0.0.1:0"), Ok(Some(_))));
        assert!(matches!(p("[::1]:9000"), Ok(Some(_))));
        assert!(p("0.0.0.0:9000").is_err());
        assert!(p("10.1.2.3:9000").is_err());
        assert!(parse(std::iter::empty()).is_err());
    }
}
