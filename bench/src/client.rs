//! One connection of the generator: its socket, how far connecting got, the
//! unfinished tail of its input and the bytes queued for it.

use std::io::{ErrorKind, Write};

use mio::net::TcpStream;
use rustls::ClientConnection;

use crate::receive::Framer;
use crate::token;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    Waiting,
    Connecting,
    /// Established, waiting for the first byte from the server (see
    /// `Connections::step`).
    Greeting,
    /// Greeted, sent `/join`, waiting for the room's `*** <n> here:` line.
    Joining,
    Connected,
    Closed,
    Failed,
    /// Connected, then hung up by the generator (the handshakes scenario):
    /// its FIN is sent, and what still arrives is read and dropped until
    /// the server closes too, so that the close is never a reset.
    Done,
}

/// The current connect attempt.
#[derive(Default)]
pub struct Attempt {
    pub count: u32,
    /// When the current step of the attempt (connect, greeting, join) began.
    pub started: u64,
    /// When the current attempt opened its socket.
    pub opened: u64,
    /// An empty line was sent to wake a connection the server never accepted.
    pub poked: bool,
    /// Counted in `connect_failed` while still open, waiting for a greeting.
    pub given_up: bool,
}

pub struct Client {
    pub stream: Option<TcpStream>,
    /// With `--tls`: the connection's TLS state, between `out` and the socket.
    pub tls: Option<Box<ClientConnection>>,
    pub state: State,
    pub attempt: Attempt,
    /// The slow-reader scenario's client that never reads.
    pub slow: bool,
    /// Receiving at the start of the measured interval: its expected lines
    /// count in the loss figure.
    pub receiving: bool,
    pub framer: Framer,
    out: Vec<u8>,
    out_pos: usize,
    /// This client's sender index, if it sends.
    pub sender: Option<usize>,
    /// Hangs up once connected (the handshakes scenario, a burst).
    pub transient: bool,
    /// When it became connected, and how long that took from the opening
    /// of the attempt's socket (TCP, TLS, greeting, join).
    pub connected: Option<(u64, u64)>,
}

impl Client {
    pub fn new(slow: bool, sender: Option<usize>) -> Self {
        Client {
            stream: None,
            tls: None,
            state: State::Waiting,
            attempt: Attempt::default(),
            slow,
            receiving: false,
            framer: Framer::default(),
            out: Vec::new(),
            out_pos: 0,
            sender,
            transient: false,
            connected: None,
        }
    }

    /// Bytes queued and not yet written.
    pub fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Is anything waiting to be written: queued lines, or TLS records
    /// (a handshake message, encrypted lines)?
    pub fn wants_write(&self) -> bool {
        self.pending_out() > 0 || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    pub fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Queue one generated line: `template` stamped with `seq` and `time_ns`.
    #[inline]
    pub fn queue_line(&mut self, template: &[u8], seq: u64, time_ns: u64) {
        let at = self.out.len();
        self.out.extend_from_slice(template);
        token::stamp(&mut self.out[at..], seq, time_ns);
    }

    /// Write what is queued until the socket would block. An error means the
    /// connection is gone; the caller closes it.
    pub fn flush(&mut self) -> Result<(), String> {
        let mut res = Ok(());
        if let (Some(stream), Some(tls)) = (self.stream.as_mut(), self.tls.as_deref_mut()) {
            res = crate::tls::write(tls, stream, &self.out, &mut self.out_pos);
        } else if let Some(stream) = self.stream.as_mut() {
            while self.out_pos < self.out.len() {
                match stream.write(&self.out[self.out_pos..]) {
                    Ok(0) => {
                        res = Err("write returned 0".to_string());
                        break;
                    }
                    Ok(n) => self.out_pos += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        res = Err(e.to_string());
                        break;
                    }
                }
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > 64 * 1024 {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        res
    }
}
