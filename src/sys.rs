//! The operating-system chores of a daemon: the descriptor limit, systemd's
//! readiness and socket-activation protocols. All of it through safe APIs
//! (`rlimit`, `listenfd`, std's Unix datagram socket).

use std::io;
use std::net::TcpListener;

/// The soft and hard `RLIMIT_NOFILE` before and after [`raise_fd_limit`].
#[derive(Clone, Copy, Debug)]
pub struct FdLimits {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft descriptor limit to the hard one, so `--max-clients`'
/// default is as high as the administrator allows.
pub fn raise_fd_limit() -> io::Result<FdLimits> {
    let (soft_before, hard) = rlimit::Resource::NOFILE.get()?;
    if soft_before < hard {
        rlimit::Resource::NOFILE.set(hard, hard)?;
    }
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    Ok(FdLimits {
        soft_before,
        soft,
        hard,
    })
}

/// The current soft descriptor limit.
pub fn fd_limit() -> u64 {
    rlimit::Resource::NOFILE
        .get()
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
}

/// Takes the listening socket systemd passed (`LISTEN_FDS`/`LISTEN_PID`), if
/// any. It comes back non-blocking, ready for mio.
pub fn inherited_listener() -> io::Result<Option<TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    let listener = fds.take_tcp_listener(0)?;
    if let Some(l) = &listener {
        // A bound but not listening socket, or a connection as systemd passes
        // with `Accept=yes`, would be accepted from forever in vain.
        if !socket2::SockRef::from(l).is_listener()? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the socket passed by systemd (LISTEN_FDS) is not a listening socket: \
                 use a .socket unit with ListenStream= and Accept=no",
            ));
        }
        l.set_nonblocking(true)?;
    }
    Ok(listener)
}

/// Tells systemd about our state (`READY=1`, `STOPPING=1`, ...) when it asked
/// for it with `NOTIFY_SOCKET`; does nothing otherwise.
pub fn notify_systemd(state: &str) -> io::Result<()> {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket: '@' stands for the leading NUL byte.
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        socket.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}
