//! TLS clients, on the same loop and in the same rooms as plain ones.
//!
//! A TLS client is a [`crate::transport::Transport`] like any other: what it
//! reads is plaintext, what it writes is plaintext, and its queue holds the
//! same shared broadcast bytes as a plain client's. The difference is here:
//! [`TlsStream`] decrypts what the socket brings, and at flush time encrypts
//! only what the socket can take now, coalescing everything queued into as
//! few records as possible (not one record per chat line). A slow TLS client
//! therefore holds at most one flush of ciphertext beyond its share of the
//! shared chunks, and `--max-output` means for it what it means for anyone.
//!
//! The session is rustls's *unbuffered* API ([`session::TlsSession`]), so an
//! idle TLS client keeps no handshake or record buffers: about 3.6 KB of
//! rustls state (keys, record layer) and nothing else. The crypto provider is
//! `ring`: it builds with a C compiler alone, in about a third of aws-lc-rs's
//! time, adds 2 MiB less to the binary, and keeps the least memory per
//! session; its ECDSA handshakes (about 9,000 a second per core) and its
//! bulk encryption are as fast as natter needs.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;

pub mod certs;
mod gather;
pub mod session;

use session::TlsSession;

/// Ciphertext produced per flush at most: four full records. The socket is
/// offered it at once; what it does not take waits, and nothing more is
/// encrypted until it is gone.
const FLUSH_CIPHERTEXT: usize = 4 * (16 * 1024 + 64);
/// Ciphertext read per call.
const READ_CIPHERTEXT: usize = 16 * 1024;

/// The crypto natter's TLS uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS listener's settings: the certificate and key, loaded into a
/// configuration that new handshakes use and SIGHUP replaces.
pub struct TlsConfig {
    cert: PathBuf,
    key: PathBuf,
    config: Arc<ServerConfig>,
    /// How long a handshake may take (`--tls-handshake-timeout`).
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// Loads `cert` and `key`; a certificate outside its validity is a
    /// warning (returned), anything else that is wrong an error naming the
    /// file.
    pub fn load(
        cert: PathBuf,
        key: PathBuf,
        handshake_timeout: Duration,
    ) -> Result<(TlsConfig, Option<String>), String> {
        let loaded = load(&cert, &key)?;
        let config = TlsConfig {
            cert,
            key,
            config: Arc::new(loaded.config),
            handshake_timeout,
        };
        Ok((config, loaded.warning))
    }

    /// Reads the certificate and key again (SIGHUP): new handshakes use the
    /// new pair, established clients are untouched. On error the old pair
    /// stays. Returns a warning for a certificate outside its validity.
    pub fn reload(&mut self) -> Result<Option<String>, String> {
        let loaded = load(&self.cert, &self.key)?;
        let mut config = loaded.config;
        // Resumption survives a reload.
        config.session_storage = self.config.session_storage.clone();
        self.config = Arc::new(config);
        Ok(loaded.warning)
    }

    /// A session for a new client.
    pub fn session(&self) -> TlsSession {
        TlsSession::new(self.config.clone())
    }

    /// The certificate's path, for logs.
    pub fn cert_path(&self) -> &std::path::Path {
        &self.cert
    }
}

fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<certs::Loaded, String> {
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    certs::load_server_config(&cert, &key, provider(), certs::now_unix())
}

/// A TLS client's stream.
pub struct TlsStream {
    socket: TcpStream,
    session: TlsSession,
    /// Ciphertext the socket has not taken yet: `cipher_out[written..]`.
    /// Unallocated while empty.
    cipher_out: Vec<u8>,
    written: usize,
    /// Plaintext decrypted and not read yet: `plain_in[plain_at..]`.
    /// Unallocated while empty.
    plain_in: Vec<u8>,
    plain_at: usize,
    /// The end of the handshake has been reported.
    reported: bool,
    /// When the handshake must be done by (`--tls-handshake-timeout`).
    pub handshake_by_ms: u64,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsStream({:?}, {})", self.socket, self.describe())
    }
}

impl TlsStream {
    pub fn new(socket: TcpStream, session: TlsSession, handshake_by_ms: u64) -> TlsStream {
        TlsStream {
            handshake_by_ms,
            socket,
            session,
            cipher_out: Vec::new(),
            written: 0,
            plain_in: Vec::new(),
            plain_at: 0,
            reported: false,
        }
    }

    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.socket
    }

    /// True until the handshake is done.
    pub fn is_handshaking(&self) -> bool {
        self.session.is_handshaking()
    }

    /// True once, when the handshake has completed.
    pub fn take_established(&mut self) -> bool {
        if self.reported || self.session.is_handshaking() || self.session.is_failed() {
            return false;
        }
        self.reported = true;
        true
    }

    /// The negotiated version and cipher suite, for the log.
    pub fn describe(&self) -> String {
        match self.session.negotiated() {
            Some((version, suite)) => format!("{version:?} {suite:?}"),
            None => "TLS".into(),
        }
    }

    /// Reads plaintext: decrypts what the socket brings, sending at once what
    /// the handshake answers. A TLS failure is `InvalidData` with the reason;
    /// its alert has been offered to the socket.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.plain_at < self.plain_in.len() {
                let n = buf.len().min(self.plain_in.len() - self.plain_at);
                buf[..n].copy_from_slice(&self.plain_in[self.plain_at..self.plain_at + n]);
                self.plain_at += n;
                if self.plain_at == self.plain_in.len() {
                    self.plain_in = Vec::new();
                    self.plain_at = 0;
                }
                return Ok(n);
            }
            if self.session.peer_closed() {
                return Ok(0);
            }
            let mut cipher = [0u8; READ_CIPHERTEXT];
            let n = match self.socket.read(&mut cipher) {
                Ok(0) => return Ok(0),
                Ok(n) => n,
                Err(e) => return Err(e),
            };
            let result = self.session.read_tls(&mut cipher[..n], &mut self.plain_in);
            self.session.pending_ciphertext(&mut self.cipher_out);
            let flushed = self.flush_pending();
            if let Err(e) = result {
                return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
            }
            flushed?;
        }
    }

    /// Writes plaintext: first what ciphertext waits, then encrypts as much
    /// of `bufs` as one flush allows, in as few records as it can, and
    /// offers that to the socket. Returns the plaintext taken (its
    /// ciphertext may still partly wait). `WouldBlock` while ciphertext
    /// waits or the handshake is not done.
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.flush_pending()? || self.session.is_handshaking() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = self
            .session
            .encrypt(bufs, &mut self.cipher_out, FLUSH_CIPHERTEXT)
            .map_err(|e| io::Error::other(e.to_string()))?;
        if taken == 0 && bufs.iter().any(|s| !s.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.flush_pending()?;
        Ok(taken)
    }

    /// True if ciphertext waits for the socket.
    pub fn has_pending(&self) -> bool {
        self.written < self.cipher_out.len()
    }

    /// Offers waiting ciphertext to the socket; true if some still waits.
    pub fn flush_pending(&mut self) -> io::Result<bool> {
        while self.written < self.cipher_out.len() {
            match self.socket.write(&self.cipher_out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Nothing waits: an idle client keeps no buffer.
        self.cipher_out = Vec::new();
        self.written = 0;
        Ok(false)
    }

    /// Says goodbye (close_notify) after the last byte, then ends our side.
    pub fn shutdown_write(&mut self) {
        self.session.close_notify(&mut self.cipher_out);
        let _ = self.flush_pending();
        let _ = self.socket.shutdown(Shutdown::Write);
    }
}
