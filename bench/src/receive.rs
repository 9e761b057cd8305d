//! Reading the servers' output: one shared buffer for every client, lines
//! cut at `\n`, arrival times from the kernel's receive timestamps when the
//! scenario asks for them.

use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;

use mio::net::TcpStream;
use socket2::SockRef;

use crate::client::Client;
use crate::procstat::now_ns;

/// One shared read buffer for all clients; big reads keep syscalls per line low.
const READ_BUF: usize = 256 * 1024;
/// A partial line longer than this is dropped (and counted as overlong once
/// its end arrives).
const MAX_CARRY: usize = 64 * 1024;

/// The unfinished tail of one client's input, kept between reads.
#[derive(Default)]
pub struct Framer {
    carry: Vec<u8>,
    /// Inside a line longer than `MAX_CARRY`: skip to its end.
    discarding: bool,
}

impl Framer {
    pub fn carried(&self) -> usize {
        self.carry.len()
    }
}

/// How a read of one client ended.
pub struct ReadEnd {
    /// At least one byte arrived.
    pub got_data: bool,
    /// End of stream or an error: why.
    pub closed: Option<String>,
}

pub struct Reader {
    buf: Vec<u8>,
    /// Take arrival times from the kernel's receive timestamps.
    pub kernel_ts: bool,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC (kernel timestamps are realtime).
    rt_offset: i64,
    quickack: bool,
    pub kernel_ts_missing: u64,
    pub bytes_in: u64,
    /// Lines longer than the carry limit (64 KiB), dropped unread: never an
    /// intact generated line, typically a server's long notice.
    pub overlong: u64,
    /// When the last byte arrived from any client.
    pub last_rx: u64,
}

impl Reader {
    pub fn new(kernel_ts: bool, quickack: bool, now: u64) -> Self {
        Reader {
            buf: vec![0u8; READ_BUF],
            kernel_ts,
            rt_offset: crate::rxts::realtime_offset(),
            quickack,
            kernel_ts_missing: 0,
            bytes_in: 0,
            overlong: 0,
            last_rx: now,
        }
    }

    /// Read what client `c` has and hand every complete line to `on_line`
    /// with (when this thread read it, when it arrived). `to_end`: keep
    /// reading until the socket says WouldBlock or end of stream, even after
    /// a short read.
    pub fn read(
        &mut self,
        c: &mut Client,
        to_end: bool,
        mut on_line: impl FnMut(&[u8], u64, u64),
    ) -> ReadEnd {
        let mut end = ReadEnd {
            got_data: false,
            closed: None,
        };
        let Client { stream, framer, .. } = c;
        let Some(stream) = stream.as_mut() else {
            return end;
        };
        loop {
            let carried = framer.carry.len();
            self.buf[..carried].copy_from_slice(&framer.carry);
            match self.recv(stream, carried) {
                Ok((0, _)) => {
                    end.closed = Some("end of stream".into());
                    break;
                }
                Ok((n, kts)) => {
                    let now = now_ns();
                    let rx = self.arrival(kts, now);
                    self.last_rx = now;
                    end.got_data = true;
                    self.bytes_in += n as u64;
                    let filled = carried + n;
                    self.split(framer, filled, |line| on_line(line, now, rx));
                    if self.quickack {
                        let _ = SockRef::from(&*stream).set_tcp_quickack(true);
                    }
                    // A short read drained the socket; on Linux a later
                    // arrival (data or FIN) raises a new edge, so no extra
                    // read is needed unless the FIN is already known.
                    if filled < self.buf.len() && !to_end {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    end.closed = Some(e.to_string());
                    break;
                }
            }
        }
        end
    }

    /// One read after the `carried` bytes already in the buffer, with the
    /// kernel's receive time (CLOCK_REALTIME) when it is wanted and came.
    #[inline]
    fn recv(
        &mut self,
        stream: &mut TcpStream,
        carried: usize,
    ) -> std::io::Result<(usize, Option<u64>)> {
        if self.kernel_ts {
            crate::rxts::recv(stream.as_raw_fd(), &mut self.buf[carried..])
        } else {
            stream.read(&mut self.buf[carried..]).map(|n| (n, None))
        }
    }

    /// When data read at `now` arrived: the kernel timestamp on the
    /// monotonic clock, or `now`.
    #[inline]
    fn arrival(&mut self, kts: Option<u64>, now: u64) -> u64 {
        match kts {
            Some(t) => ((t as i64 - self.rt_offset).max(0) as u64).min(now),
            None => {
                if self.kernel_ts {
                    self.kernel_ts_missing += 1;
                }
                now
            }
        }
    }

    /// Hand the complete lines in `buf[..end]` to `on_line` and keep the
    /// unfinished rest in `framer`.
    #[inline]
    fn split(&mut self, framer: &mut Framer, end: usize, mut on_line: impl FnMut(&[u8])) {
        let buf = &self.buf[..end];
        let mut start = 0;
        if framer.discarding {
            match memchr::memchr(b'\n', buf) {
                Some(p) => {
                    start = p + 1;
                    framer.discarding = false;
                    self.overlong += 1;
                }
                None => start = end,
            }
        }
        let mut line_start = start;
        for nl in memchr::memchr_iter(b'\n', &buf[start..]) {
            let nl = start + nl;
            on_line(&buf[line_start..nl]);
            line_start = nl + 1;
        }
        framer.carry.clear();
        if end - line_start > MAX_CARRY {
            framer.discarding = true;
        } else {
            framer.carry.extend_from_slice(&buf[line_start..end]);
        }
    }
}
