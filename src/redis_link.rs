//! One non-blocking connection to Redis, in the same loop as the clients:
//! commands are queued as RESP and written when the socket takes them,
//! replies and pushed messages are read and decoded as they arrive.
//!
//! No client library and no thread: the connection is a mio `TcpStream`
//! registered under a token the server routes here, with a write buffer
//! (whose size is what `--cluster-max-queue` bounds) and a read buffer.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::resp::{self, Value};

/// Bytes asked for in one read.
const READ_CHUNK: usize = 16 * 1024;

/// A connection to Redis.
#[derive(Debug)]
pub struct RedisLink {
    socket: TcpStream,
    token: Token,
    /// Bytes to write; `out[written..]` are not written yet.
    out: Vec<u8>,
    written: usize,
    /// Bytes read; `input[consumed..]` are not decoded yet. Decoding moves
    /// `consumed` on, and the buffer is compacted once per run of decoding,
    /// not once per value, so a turn's many small messages cost no more
    /// than their bytes.
    input: Vec<u8>,
    consumed: usize,
    /// The connect has completed (the first writable event came).
    connected: bool,
    /// `WRITABLE` interest is registered.
    write_interest: bool,
}

impl RedisLink {
    /// Starts connecting to `addr`; the link is usable once
    /// [`RedisLink::ready`] says so.
    pub fn connect(addr: SocketAddr, registry: &Registry, token: Token) -> io::Result<RedisLink> {
        let mut socket = TcpStream::connect(addr)?;
        registry.register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(RedisLink {
            socket,
            token,
            out: Vec::new(),
            written: 0,
            input: Vec::new(),
            consumed: 0,
            connected: false,
            write_interest: true,
        })
    }

    /// Queues a command.
    pub fn send(&mut self, args: &[&[u8]]) {
        resp::encode_command(&mut self.out, args);
    }

    /// Bytes queued and not written yet.
    pub fn queued(&self) -> usize {
        self.out.len() - self.written
    }

    /// True once the connect completed.
    pub fn ready(&self) -> bool {
        self.connected
    }

    /// Handles a writable event: completes the connect, then writes.
    pub fn on_writable(&mut self, registry: &Registry) -> io::Result<()> {
        if !self.connected {
            if let Some(e) = self.socket.take_error()? {
                return Err(e);
            }
            self.socket.peer_addr()?;
            self.connected = true;
            let _ = self.socket.set_nodelay(true);
        }
        self.flush(registry)
    }

    /// Writes what the socket takes; asks for `WRITABLE` only while bytes
    /// remain.
    pub fn flush(&mut self, registry: &Registry) -> io::Result<()> {
        if !self.connected {
            return Ok(());
        }
        while self.written < self.out.len() {
            match self.socket.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
            if self.out.capacity() > 64 * 1024 {
                self.out.shrink_to(64 * 1024);
            }
        }
        let want = self.written < self.out.len();
        if want != self.write_interest {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(&mut self.socket, self.token, interest)?;
            self.write_interest = want;
        }
        Ok(())
    }

    /// Reads what has arrived, at most `budget` bytes; `Ok(false)` at end of
    /// input.
    pub fn read(&mut self, budget: usize) -> io::Result<bool> {
        let mut chunk = [0u8; READ_CHUNK];
        let mut read = 0;
        while read < budget {
            match self.socket.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.input.extend_from_slice(&chunk[..n]);
                    read += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// The next complete value read, if one has arrived.
    pub fn next_value(&mut self) -> Result<Option<Value>, resp::Malformed> {
        match resp::decode(&self.input[self.consumed..], resp::LIMITS)? {
            Some((value, used)) => {
                self.consumed += used;
                if self.consumed == self.input.len() {
                    self.input.clear();
                    self.consumed = 0;
                    if self.input.capacity() > 64 * 1024 {
                        self.input = Vec::new();
                    }
                }
                Ok(Some(value))
            }
            None => {
                // Keep only the incomplete value for the next read.
                self.input.drain(..self.consumed);
                self.consumed = 0;
                Ok(None)
            }
        }
    }

    /// Stops watching the socket (it is dropped with the link).
    pub fn close(mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.socket);
    }
}
