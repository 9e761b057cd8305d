//! The slow-reader scenario's verdict: was the client that never reads
//! disconnected by the server?

use std::io::{ErrorKind, Read};
use std::time::Duration;

use mio::net::TcpStream;

use crate::procstat::now_ns;

/// How long the slow client is read at the end to see whether it was closed.
const SLOW_CHECK: u64 = 3_000_000_000;
/// Its socket quiet for this long after its backlog: still open.
const QUIET: u64 = 300_000_000;

pub struct SlowEnd {
    pub disconnected: bool,
    /// Bytes of its backlog read at the end.
    pub bytes_read: u64,
    pub state: &'static str,
}

impl SlowEnd {
    pub fn new(disconnected: bool, bytes_read: u64, state: &'static str) -> Self {
        SlowEnd {
            disconnected,
            bytes_read,
            state,
        }
    }
}

/// Read the slow client's socket (bounded in time) until end of stream, an
/// error, or quiet.
pub fn read_out(stream: &mut TcpStream) -> SlowEnd {
    let start = now_ns();
    let mut drained = 0u64;
    let mut last_data = start;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let now = now_ns();
        match stream.read(&mut buf) {
            Ok(0) => {
                return SlowEnd::new(true, drained, "closed (end of stream after its backlog)");
            }
            Ok(n) => {
                drained += n as u64;
                last_data = now;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if now - last_data > QUIET {
                    return SlowEnd::new(false, drained, "open (quiet after reading its backlog)");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return SlowEnd::new(true, drained, "closed (reset)"),
        }
        if now - start > SLOW_CHECK {
            return SlowEnd::new(false, drained, "open (still sending after 3 s of reading)");
        }
    }
}
