//! The byte stream under a connection.
//!
//! A client speaks plain TCP or TLS. A connection reads, writes and closes
//! through these methods only, and registers with the poller through
//! [`Transport::source`]; the room and the policies never know which.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

use crate::tls::TlsStream;

/// A client's stream.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP: the bytes on the wire are the chat.
    Plain(TcpStream),
    /// TLS (`--tls-listen`): boxed, so a plain client does not pay for it.
    Tls(Box<TlsStream>),
}

impl Transport {
    /// Reads received bytes into `buf` (`Ok(0)` at end of input).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf),
        }
    }

    /// Writes from `bufs`; may take only part of them.
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write_vectored(bufs),
            Transport::Tls(t) => t.write_vectored(bufs),
        }
    }

    /// Ends our side of the stream after the last byte written (a FIN).
    pub fn shutdown_write(&mut self) {
        match self {
            Transport::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            Transport::Tls(t) => t.shutdown_write(),
        }
    }

    /// What the poller watches.
    pub fn source(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => t.socket(),
        }
    }

    /// Offers bytes the transport itself must still send (TLS ciphertext)
    /// to the socket; true if some still wait.
    pub fn flush_pending(&mut self) -> io::Result<bool> {
        match self {
            Transport::Plain(_) => Ok(false),
            Transport::Tls(t) => t.flush_pending(),
        }
    }

    /// True if bytes of the transport's own wait to be sent.
    pub fn has_pending(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.has_pending(),
        }
    }

    /// When a TLS client's handshake must be done by, while it is not.
    pub fn handshake_deadline(&self) -> Option<u64> {
        match self {
            Transport::Tls(t) if t.is_handshaking() => Some(t.handshake_by_ms),
            _ => None,
        }
    }

    /// The TLS stream, for a TLS client.
    pub fn tls(&mut self) -> Option<&mut TlsStream> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(t) => Some(t),
        }
    }
}

/// Lets an [`crate::out_queue::OutQueue`] flush into a transport.
impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Transport::write_vectored(self, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
