//! Kernel receive timestamps (SO_TIMESTAMPNS) on TCP reads.
//!
//! The latency scenario measures when a line reached the receiving socket,
//! not when this one thread got round to reading it: a burst of one line to
//! a thousand clients takes the generator a while to read, and that delay is
//! the generator's, not the server's. For TCP, the timestamp that comes with
//! a read is that of the last segment it consumed.
//!
//! This is the generator's only unsafe code: neither socket2 nor rustix
//! offers SO_TIMESTAMPNS or its control message, so both go through libc.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::os::fd::RawFd;

pub fn enable(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: valid descriptor, option value is a c_int.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Read into `buf`; also returns the kernel receive time (CLOCK_REALTIME,
/// nanoseconds) when the kernel attached one.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    // Room for one cmsghdr carrying a timespec, suitably aligned.
    let mut cbuf = [MaybeUninit::<u64>::uninit(); 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: zeroed msghdr is valid; we fill in the pointers below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 8]>() as _;
    // SAFETY: msg points at live buffers for the duration of the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut ts = None;
    // SAFETY: standard CMSG iteration over the control buffer the kernel
    // filled in; lengths are bounded by msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let t: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                ts = Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, ts))
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds, taken as tightly as
/// possible (the smallest bracket of three tries).
pub fn realtime_offset() -> i64 {
    let mut best = (u64::MAX, 0i64);
    for _ in 0..3 {
        let a = crate::procstat::now_ns();
        let r = crate::procstat::realtime_ns();
        let b = crate::procstat::now_ns();
        if b - a < best.0 {
            best = (b - a, r as i64 - (a + (b - a) / 2) as i64);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn loopback_read_carries_a_timestamp() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        enable(b.as_raw_fd()).unwrap();
        // The kernel turns receive timestamping on globally a moment later
        // (deferred work), so the very first segment may come without one.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let before = crate::procstat::now_ns() as i64 + realtime_offset();
        a.write_all(b"hello\n").unwrap();
        let mut buf = [0u8; 64];
        let mut got = None;
        for _ in 0..1000 {
            match recv(b.as_raw_fd(), &mut buf) {
                Ok((n, ts)) => {
                    got = Some((n, ts));
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        let (n, ts) = got.expect("data");
        assert_eq!(&buf[..n], b"hello\n");
        let ts = ts.expect("timestamp") as i64;
        let after = crate::procstat::now_ns() as i64 + realtime_offset();
        assert!(ts >= before - 1_000_000 && ts <= after + 1_000_000);
    }
}
