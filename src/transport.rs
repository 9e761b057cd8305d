//! The byte stream under a connection.
//!
//! Today every client speaks plain TCP. The seam is here so that a
//! transport that is not a plain `TcpStream` (TLS) can be added as one more
//! variant, without touching the room or the policies: a connection reads,
//! writes and closes through these methods only, and registers with the
//! poller through [`Transport::source`].

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

/// A client's stream.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP: the bytes on the wire are the chat.
    Plain(TcpStream),
}

impl Transport {
    /// Reads received bytes into `buf` (`Ok(0)` at end of input).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
        }
    }

    /// Writes from `bufs`; may take only part of them.
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write_vectored(bufs),
        }
    }

    /// Ends our side of the stream after the last byte written (a FIN).
    pub fn shutdown_write(&mut self) {
        match self {
            Transport::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
        }
    }

    /// What the poller watches.
    pub fn source(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
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
