//! The listening socket, and what to do when descriptors run out.
//!
//! When `accept` fails with `EMFILE`, an edge-triggered listener would stall
//! (the backlog never drains and no new event comes) and a level-triggered
//! one would spin. So a reserve descriptor is kept: it is freed to accept
//! and close every waiting connection, with a best-effort notice, and then
//! taken back ([`Listener::accept`] reports it as [`Accepted::Shed`]).

use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;

use log::debug;
use mio::net::{TcpListener, TcpStream};

use crate::limits::LISTEN_BACKLOG;

/// The listener and its reserve descriptor.
#[derive(Debug)]
pub struct Listener {
    pub socket: TcpListener,
    /// Held back so that, when accept fails for want of descriptors, one can
    /// be freed to accept and close the waiting connections.
    reserve: Option<File>,
}

/// What one accept brought.
#[derive(Debug)]
pub enum Accepted {
    /// A new connection.
    Client(TcpStream, SocketAddr),
    /// Nobody waits (`WouldBlock`).
    Empty,
    /// Descriptors ran out: this many waiting connections were accepted and
    /// closed with `*** server busy`; `retry` if accepting must be tried
    /// again shortly (the reserve could not be used or taken back).
    Shed { closed: u64, retry: bool },
    /// Accepting failed for another reason; try again shortly.
    Failed(io::Error),
}

impl Listener {
    /// Binds a listening socket on `addr` with a backlog of
    /// [`LISTEN_BACKLOG`]; with `reuse_port`, other processes may bind the
    /// same port (`SO_REUSEPORT`) and the kernel spreads connections over
    /// them: one natter process per core.
    pub fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<Listener> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        // As every server does: a restarted daemon can bind at once.
        socket.set_reuse_address(true)?;
        if reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        socket.set_nonblocking(true)?;
        Ok(Listener::new(TcpListener::from_std(socket.into())))
    }

    /// Serves on an already bound listener (socket activation, tests).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<Listener> {
        listener.set_nonblocking(true)?;
        Ok(Listener::new(TcpListener::from_std(listener)))
    }

    fn new(socket: TcpListener) -> Listener {
        Listener {
            socket,
            reserve: File::open("/dev/null").ok(),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Accepts one connection. Errors that concern one connection only (it
    /// was reset before we took it) are skipped.
    pub fn accept(&mut self) -> Accepted {
        loop {
            return match self.socket.accept() {
                Ok((socket, addr)) => Accepted::Client(socket, addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Accepted::Empty,
                Err(e) if is_fd_exhaustion(&e) => self.shed(),
                Err(e) if is_transient(&e) => {
                    debug!("accept: {e}");
                    continue;
                }
                Err(e) => Accepted::Failed(e),
            };
        }
    }

    /// Out of descriptors: frees the reserve, accepts and closes everything
    /// that waits (with a best-effort notice), then takes the reserve back.
    fn shed(&mut self) -> Accepted {
        self.reserve = None;
        let mut closed = 0;
        let mut retry = false;
        loop {
            match self.socket.accept() {
                Ok((mut socket, _)) => {
                    let _ = socket.write(b"*** server busy\n");
                    closed += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if is_transient(&e) => {}
                Err(_) => {
                    // Still no descriptor (something else holds them):
                    // try again shortly rather than spin.
                    retry = true;
                    break;
                }
            }
        }
        self.reserve = File::open("/dev/null").ok();
        retry |= self.reserve.is_none();
        Accepted::Shed { closed, retry }
    }
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE (24): this process is out of descriptors; ENFILE (23): the system is.
    matches!(e.raw_os_error(), Some(23) | Some(24))
}

/// Errors that concern one connection only (it was aborted or reset before
/// we took it): skip it and keep accepting.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::PermissionDenied
    ) || matches!(e.raw_os_error(), Some(71)) // EPROTO
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_until_nobody_waits() {
        let mut listener = Listener::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(matches!(listener.accept(), Accepted::Empty));
        let _a = std::net::TcpStream::connect(addr).unwrap();
        let _b = std::net::TcpStream::connect(addr).unwrap();
        let mut got = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got < 2 && std::time::Instant::now() < deadline {
            if let Accepted::Client(..) = listener.accept() {
                got += 1;
            }
        }
        assert_eq!(got, 2);
        assert!(matches!(listener.accept(), Accepted::Empty));
    }
}
