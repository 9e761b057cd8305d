//! Reading the servers' output: one shared buffer for every client, lines
//! cut at `\n`, arrival times from the kernel's receive timestamps when the
//! scenario asks for them. A TLS client's bytes are read into a second
//! shared buffer and decrypted into the first; the arrival time of the
//! plaintext is that of the read that brought its record.

use std::io::{self, ErrorKind, Read};
use std::os::fd::AsRawFd;

use mio::net::TcpStream;
use rustls::ClientConnection;
use socket2::SockRef;

use crate::client::Client;
use crate::procstat::now_ns;
use crate::tls;

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
#[derive(Default)]
pub struct ReadEnd {
    /// At least one byte (of plaintext, with TLS) arrived.
    pub got_data: bool,
    /// End of stream or an error: why.
    pub closed: Option<String>,
    /// The error was TLS's (a certificate refused, an alert): connecting
    /// again would end the same way.
    pub tls_error: bool,
}

pub struct Reader {
    buf: Vec<u8>,
    /// TLS: the bytes as read, before decryption (empty without TLS).
    raw: Vec<u8>,
    /// Take arrival times from the kernel's receive timestamps.
    pub kernel_ts: bool,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC (kernel timestamps are realtime).
    rt_offset: i64,
    quickack: bool,
    pub kernel_ts_missing: u64,
    /// Bytes read from the sockets (with TLS: as sent, encrypted).
    pub bytes_in: u64,
    /// Lines longer than the carry limit (64 KiB), dropped unread: never an
    /// intact generated line, typically a server's long notice.
    pub overlong: u64,
    /// When the last byte arrived from any client.
    pub last_rx: u64,
}

impl Reader {
    pub fn new(kernel_ts: bool, quickack: bool, tls: bool, now: u64) -> Self {
        Reader {
            buf: vec![0u8; READ_BUF],
            raw: if tls { vec![0u8; READ_BUF] } else { Vec::new() },
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
        if c.tls.is_some() {
            return self.read_tls(c, to_end, on_line);
        }
        let mut end = ReadEnd::default();
        let Client { stream, framer, .. } = c;
        let Some(stream) = stream.as_mut() else {
            return end;
        };
        loop {
            let carried = framer.carry.len();
            self.buf[..carried].copy_from_slice(&framer.carry);
            match recv(self.kernel_ts, stream, &mut self.buf[carried..]) {
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
                    let lines = &mut |line: &[u8]| on_line(line, now, rx);
                    split(&self.buf[..filled], framer, &mut self.overlong, lines);
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

    /// `read` for a TLS client: every byte read goes through its rustls
    /// state, and the plaintext that comes out is cut into lines.
    fn read_tls(
        &mut self,
        c: &mut Client,
        to_end: bool,
        mut on_line: impl FnMut(&[u8], u64, u64),
    ) -> ReadEnd {
        let mut end = ReadEnd::default();
        let Client {
            stream,
            framer,
            tls,
            ..
        } = c;
        let (Some(stream), Some(conn)) = (stream.as_mut(), tls.as_deref_mut()) else {
            return end;
        };
        loop {
            let (n, kts) = match recv(self.kernel_ts, stream, &mut self.raw) {
                Ok((0, _)) => {
                    end.closed = Some("end of stream".into());
                    break;
                }
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    end.closed = Some(e.to_string());
                    break;
                }
            };
            let now = now_ns();
            let rx = self.arrival(kts, now);
            self.last_rx = now;
            self.bytes_in += n as u64;
            let Reader {
                raw, buf, overlong, ..
            } = self;
            let lines = &mut |line: &[u8]| on_line(line, now, rx);
            let got = &mut end.got_data;
            let res = tls::decrypt(conn, &raw[..n], |conn| {
                plaintext(conn, buf, framer, overlong, got, lines)
            });
            if let Err(closed) = res {
                end.closed = Some(closed.why);
                end.tls_error = closed.tls_error;
                break;
            }
            if self.quickack {
                let _ = SockRef::from(&*stream).set_tcp_quickack(true);
            }
            if n < self.raw.len() && !to_end {
                break;
            }
        }
        end
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
}

/// One read into `buf`, with the kernel's receive time (CLOCK_REALTIME)
/// when it is wanted and came.
#[inline]
fn recv(
    kernel_ts: bool,
    stream: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<(usize, Option<u64>)> {
    if kernel_ts {
        crate::rxts::recv(stream.as_raw_fd(), buf)
    } else {
        stream.read(buf).map(|n| (n, None))
    }
}

/// Read the plaintext `conn` holds into `buf`, after the tail `framer`
/// carries, and hand its complete lines to `on_line`; `got`: some came.
/// False when the peer closed the TLS session cleanly.
fn plaintext(
    conn: &mut ClientConnection,
    buf: &mut [u8],
    framer: &mut Framer,
    overlong: &mut u64,
    got: &mut bool,
    on_line: &mut impl FnMut(&[u8]),
) -> io::Result<bool> {
    loop {
        let carried = framer.carry.len();
        buf[..carried].copy_from_slice(&framer.carry);
        match conn.reader().read(&mut buf[carried..]) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                *got = true;
                split(&buf[..carried + n], framer, overlong, on_line);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
            Err(e) => return Err(e),
        }
    }
}

/// Hand the complete lines in `buf` to `on_line` and keep the unfinished
/// rest in `framer`; a rest longer than `MAX_CARRY` is dropped and counted
/// in `overlong` once its end arrives.
#[inline]
fn split(buf: &[u8], framer: &mut Framer, overlong: &mut u64, on_line: &mut impl FnMut(&[u8])) {
    let end = buf.len();
    let mut start = 0;
    if framer.discarding {
        match memchr::memchr(b'\n', buf) {
            Some(p) => {
                start = p + 1;
                framer.discarding = false;
                *overlong += 1;
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
