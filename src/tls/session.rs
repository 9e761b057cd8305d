//! A sans-IO TLS server session for a single-threaded event loop, built on
//! rustls 0.23's *unbuffered* API (`rustls::server::UnbufferedServerConnection`).
//!
//! Nothing here touches a socket. The caller
//!  * reads ciphertext from the socket into its own (shared) read buffer and hands
//!    it to [`TlsSession::read_tls`], which decrypts in place and appends plaintext
//!    to the caller's vector;
//!  * after every `read_tls` (and before writing application data) moves
//!    [`TlsSession::pending_ciphertext`] into its per-connection "unsent
//!    ciphertext" queue: handshake flights, session tickets, alerts, key updates;
//!  * at flush time, when that queue is empty, calls [`TlsSession::encrypt`] with the
//!    plaintext slices it has queued (shared broadcast chunks, in order) and a budget
//!    of what the socket can take now; it writes the ciphertext and keeps whatever
//!    the socket did not take, and encrypts nothing more until that is gone.
//!
//! Records must reach the wire in the order they were produced (TLS sequence
//! numbers are implicit), so all three producers append to the same caller
//! queue, in call order, and `encrypt`/`close_notify` first hand over anything
//! still pending from `read_tls`.
//!
//! Memory: an idle session holds only rustls's connection state (keys, record
//! layer, a few empty containers). The two buffers of its own, `pending_in` (an
//! incomplete record) and `pending_out` (ciphertext not yet handed over), are
//! `Vec::new()` (no allocation) whenever they are empty.
//!
//! Mapping of the unbuffered API's states (`process_tls_records`):
//!
//! | rustls state        | what TlsSession does                                            |
//! |---------------------|-----------------------------------------------------------------|
//! | `EncodeTlsData`     | encodes into `pending_out` (read_tls) or the caller's `out`     |
//! | `TransmitTlsData`   | `done()` at once: the bytes are already queued for the caller   |
//! | `BlockedHandshake`  | read_tls returns: more bytes from the peer are needed           |
//! | `ReadTraffic`       | plaintext appended to `plaintext_out` (also `ReadEarlyData`)    |
//! | `WriteTraffic`      | read_tls returns; encrypt / close_notify use it                 |
//! | `PeerClosed`/`Closed` | remembered, see `peer_closed()`; later input is dropped       |
//! | `Err(e)`            | session failed for good; the fatal alert rustls queued is put   |
//! |                     | in `pending_out` and `e` is returned                            |

use std::fmt;
use std::mem;
use std::ops::Deref;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError,
    UnbufferedStatus, WriteTraffic,
};

use super::gather::Gather;

/// Largest plaintext payload of one TLS record.
const MAX_RECORD_PLAINTEXT: usize = 16_384;

/// Largest per-record expansion of any AEAD suite rustls offers
/// (TLS 1.2 AES-GCM: 5-byte header, 8-byte explicit nonce, 16-byte tag).
const MAX_RECORD_OVERHEAD: usize = 29;

/// Cap on bytes kept between reads: one maximal TLS 1.2 ciphertext record is
/// 5 + 16384 + 2048 bytes; a handshake message may span several records, and
/// rustls joins handshake messages of up to 64 KiB. Past this the peer is
/// misbehaving.
const MAX_PENDING_IN: usize = 0xffff + 5 + 16_384 + 2048;

/// A plaintext fatal `decode_error` alert record, as rustls sends for junk.
const DECODE_ERROR_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 50];

/// Why a session failed. `Display` gives a one-line reason for the log.
#[derive(Debug, Clone, PartialEq)]
pub enum TlsError {
    /// The first bytes on the connection were not a TLS handshake record
    /// (plain text, HTTP, or garbage). Carries up to 16 leading bytes, escaped.
    NotTls(String),
    /// rustls refused something the peer sent, or failed the handshake.
    Protocol(rustls::Error),
    /// The peer buffered more than `MAX_PENDING_IN` bytes without completing a record.
    TooMuchPending,
    /// The record sequence space of the current keys is used up (practically never).
    EncryptExhausted,
    /// The session failed earlier; it has no further use.
    Failed,
    /// A state the unbuffered API documents as impossible here.
    Internal(&'static str),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotTls(start) => write!(f, "not a TLS handshake (client sent \"{start}\")"),
            Self::Protocol(e) => write!(f, "TLS: {e}"),
            Self::TooMuchPending => f.write_str("TLS: peer sent an oversized record or handshake"),
            Self::EncryptExhausted => f.write_str("TLS: record sequence space exhausted"),
            Self::Failed => f.write_str("TLS: session already failed"),
            Self::Internal(what) => write!(f, "TLS: internal: {what}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        Self::Protocol(e)
    }
}

pub struct TlsSession {
    conn: UnbufferedServerConnection,
    /// Ciphertext received but not yet consumed by rustls (an incomplete record or
    /// handshake message). Empty (unallocated) at a record boundary.
    pending_in: Vec<u8>,
    /// Ciphertext produced while reading (handshake flights, tickets, alerts) that
    /// the caller has not taken yet. Empty (unallocated) once taken.
    pending_out: Vec<u8>,
    /// Per-record expansion (header + tag + content type / explicit nonce) of the
    /// negotiated cipher suite; learnt on first encrypt. 0 = not known yet.
    record_overhead: u16,
    /// Largest plaintext per record (from `ServerConfig::max_fragment_size`).
    max_record_plaintext: u16,
    /// No byte has been seen yet (for the "not TLS" diagnosis).
    fresh: bool,
    /// We have produced a handshake flight: from then on only rustls may
    /// write an alert (it may have to be encrypted).
    spoke: bool,
    peer_closed: bool,
    /// We sent close_notify: nothing may follow it.
    closed: bool,
    failed: bool,
}

impl TlsSession {
    /// A session that will handshake with `config`. Swap the caller's
    /// `Arc<ServerConfig>` on SIGHUP: sessions already created keep the old one.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        let max_record_plaintext = config
            .max_fragment_size
            .map_or(MAX_RECORD_PLAINTEXT, |m| m.saturating_sub(5))
            .clamp(32, MAX_RECORD_PLAINTEXT) as u16;
        let conn = UnbufferedServerConnection::new(config)
            .expect("a ServerConfig without client auth or QUIC cannot fail here");
        Self {
            conn,
            pending_in: Vec::new(),
            pending_out: Vec::new(),
            record_overhead: 0,
            max_record_plaintext,
            fresh: true,
            spoke: false,
            peer_closed: false,
            closed: false,
            failed: false,
        }
    }

    /// Feed ciphertext just read from the socket. Decrypts **in place** (the
    /// caller's buffer is scribbled on) and appends any application plaintext to
    /// `plaintext_out`. Afterwards the caller must take
    /// [`Self::pending_ciphertext`]: the handshake may have produced a flight.
    ///
    /// On error the session is dead: send what `pending_ciphertext` yields (the
    /// fatal alert), then close. The error's `Display` is the log reason.
    pub fn read_tls(
        &mut self,
        ciphertext: &mut [u8],
        plaintext_out: &mut Vec<u8>,
    ) -> Result<(), TlsError> {
        if self.failed {
            return Err(TlsError::Failed);
        }
        if ciphertext.is_empty() {
            return Ok(());
        }
        if self.fresh {
            self.fresh = false;
            // A TLS connection opens with a handshake record (0x16). Anything else
            // is most likely a plain-text client on the TLS port; name it in the log.
            if ciphertext[0] != 0x16 {
                let reason = TlsError::NotTls(escape_prefix(ciphertext));
                // Let rustls see the bytes so that it queues its own fatal alert
                // (it needs a whole 5-byte header to decide).
                if let Ok(used) = self.process(ciphertext, plaintext_out) {
                    self.fail(&mut ciphertext[used..]);
                }
                return Err(reason);
            }
        }
        if self.peer_closed {
            // rustls ignores everything after close_notify; so do we.
            return Ok(());
        }

        if self.pending_in.is_empty() {
            // Common case: whole records in the caller's buffer, decrypted there.
            let used = self.process(ciphertext, plaintext_out)?;
            let rest = &mut ciphertext[used..];
            if !rest.is_empty() && !self.peer_closed {
                if rest.len() > MAX_PENDING_IN {
                    self.fail(rest);
                    return Err(TlsError::TooMuchPending);
                }
                self.pending_in.extend_from_slice(rest);
            }
        } else {
            if self.pending_in.len() + ciphertext.len() > MAX_PENDING_IN {
                self.fail_pending();
                return Err(TlsError::TooMuchPending);
            }
            let mut buf = mem::take(&mut self.pending_in);
            buf.extend_from_slice(ciphertext);
            let used = self.process(&mut buf, plaintext_out)?;
            if used < buf.len() && !self.peer_closed {
                buf.drain(..used);
                buf.shrink_to_fit();
                self.pending_in = buf;
            }
            // else: `buf` is dropped, so an idle session holds no input buffer.
        }
        Ok(())
    }

    /// Drives rustls over `buf` until it needs more input; returns how many
    /// leading bytes of `buf` are consumed. Handshake output goes to
    /// `pending_out`. Any error kills the session (with its alert).
    fn process(&mut self, buf: &mut [u8], plaintext_out: &mut Vec<u8>) -> Result<usize, TlsError> {
        let mut start = 0;
        let result = self.process_from(buf, &mut start, plaintext_out);
        if result.is_err() && !self.failed {
            self.fail(&mut buf[start..]);
        }
        result
    }

    /// [`Self::process`]'s loop; `start` is how much of `buf` rustls has
    /// told us to discard so far.
    fn process_from(
        &mut self,
        buf: &mut [u8],
        start: &mut usize,
        plaintext_out: &mut Vec<u8>,
    ) -> Result<usize, TlsError> {
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut buf[*start..]);
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    *start += discard;
                    return Err(e.into());
                }
            };
            let mut done = false;
            match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(TlsError::Protocol)?;
                        discard += record.discard;
                        plaintext_out.extend_from_slice(record.payload);
                    }
                }
                ConnectionState::ReadEarlyData(mut early) => {
                    // Only reachable if the config enables 0-RTT (natter should not).
                    while let Some(record) = early.next_record() {
                        let record = record.map_err(TlsError::Protocol)?;
                        discard += record.discard;
                        plaintext_out.extend_from_slice(record.payload);
                    }
                }
                ConnectionState::EncodeTlsData(encode) => {
                    self.spoke = true;
                    encode_to_vec(encode, &mut self.pending_out)?;
                }
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::PeerClosed => self.peer_closed = true,
                ConnectionState::Closed => {
                    self.peer_closed = true;
                    done = true;
                }
                ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => done = true,
                _ => done = true, // non_exhaustive: future states need more input too
            }
            *start += discard;
            if done {
                return Ok(if self.peer_closed { buf.len() } else { *start });
            }
        }
    }

    /// [`Self::fail`] with the input kept between reads.
    fn fail_pending(&mut self) {
        let mut rest = mem::take(&mut self.pending_in);
        self.fail(&mut rest);
    }

    /// Marks the session dead and takes the fatal alert rustls queued (if
    /// any) into `pending_out`.
    ///
    /// Exactly one more call into rustls, with `rest`: the input rustls last
    /// saw, from where it said to discard. A queued alert comes out of that
    /// call before any input is looked at. The input must still be offered:
    /// rustls may point into it (a handshake message it was joining), and an
    /// empty buffer then makes rustls 0.23.46 index out of bounds and panic
    /// (found by `fuzz/fuzz_targets/tls_accept.rs`). A second call would
    /// parse the bad input again and queue a second fatal alert.
    fn fail(&mut self, rest: &mut [u8]) {
        self.failed = true;
        let UnbufferedStatus { state, .. } = self.conn.process_tls_records(rest);
        if let Ok(ConnectionState::EncodeTlsData(encode)) = state {
            let _ = encode_to_vec(encode, &mut self.pending_out);
        }
        if self.pending_out.is_empty() && !self.spoke {
            // rustls had no alert to give (fewer than 5 bytes, or a failure
            // it does not answer): before our first flight a plaintext
            // decode_error is what it would send, so every client that
            // sends garbage hears why it is closed.
            self.pending_out.extend_from_slice(&DECODE_ERROR_ALERT);
        }
        self.pending_in = Vec::new();
    }

    /// Appends to `out` the ciphertext the session must send whatever the
    /// application does: handshake messages, tickets, alerts. Returns the
    /// number of bytes appended. Call after every `read_tls`.
    pub fn pending_ciphertext(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.pending_out.len();
        if out.is_empty() {
            mem::swap(out, &mut self.pending_out);
        } else {
            out.extend_from_slice(&self.pending_out);
        }
        self.pending_out = Vec::new();
        n
    }

    /// Encrypts a prefix of the concatenation of `plaintext` (like a writev)
    /// into as few records as possible, appending at most about `max_ciphertext`
    /// bytes to `out`, and returns how many plaintext bytes it consumed.
    ///
    /// Records are filled to the maximum plaintext size (16 KiB) across slice
    /// boundaries, so a flush of many small chat lines becomes one record.
    /// Anything `pending_ciphertext` would have returned is put in `out` first
    /// (it is counted against the budget but always emitted). A budget too
    /// small for one record of at least one byte consumes nothing. Before the
    /// handshake completes this returns `Ok(0)`.
    pub fn encrypt<S: Deref<Target = [u8]>>(
        &mut self,
        plaintext: &[S],
        out: &mut Vec<u8>,
        max_ciphertext: usize,
    ) -> Result<usize, TlsError> {
        if self.failed {
            return Err(TlsError::Failed);
        }
        let start_len = out.len();
        self.pending_ciphertext(out);
        let mut gather = Gather::new(plaintext);
        if gather.remaining() == 0 || self.closed || self.conn.is_handshaking() {
            return Ok(0);
        }
        while gather.remaining() > 0 {
            let budget = max_ciphertext.saturating_sub(out.len() - start_len);
            match self.encrypt_step(&mut gather, out, budget) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.fail_pending();
                    return Err(e);
                }
            }
        }
        Ok(gather.taken())
    }

    /// One step of [`Self::encrypt`]: brings rustls to where it may write
    /// (sending first what it has queued, a key_update say), then encrypts
    /// one record within `budget`. False when nothing more can go now.
    fn encrypt_step<S: Deref<Target = [u8]>>(
        &mut self,
        gather: &mut Gather<'_, S>,
        out: &mut Vec<u8>,
        budget: usize,
    ) -> Result<bool, TlsError> {
        let UnbufferedStatus { discard, state } =
            self.conn.process_tls_records(&mut self.pending_in);
        debug_assert_eq!(discard, 0, "read_tls consumes every complete record");
        let mut traffic = match state {
            Ok(ConnectionState::WriteTraffic(traffic)) => traffic,
            // e.g. a queued key_update: it must precede new records.
            Ok(ConnectionState::EncodeTlsData(encode)) => {
                encode_to_vec(encode, out)?;
                return Ok(true);
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                transmit.done();
                return Ok(true);
            }
            Ok(ConnectionState::PeerClosed) => {
                self.peer_closed = true;
                return Ok(true);
            }
            // Closed (we sent close_notify) or anything else: nothing to write.
            Ok(_) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let overhead = record_overhead(&mut traffic, &mut self.record_overhead)?;
        if budget <= overhead {
            return Ok(false);
        }
        let n = gather
            .remaining()
            .min(usize::from(self.max_record_plaintext))
            .min(budget - overhead);
        let record = gather.take(n);
        let at = out.len();
        out.resize(at + n + overhead, 0);
        let written = match traffic.encrypt(record, &mut out[at..]) {
            Ok(w) => w,
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                // rustls had something queued ahead (a key_update); make room.
                out.resize(at + required_size, 0);
                traffic.encrypt(record, &mut out[at..]).map_err(|_| {
                    out.truncate(at);
                    TlsError::Internal("encrypt refused a sized buffer")
                })?
            }
            Err(EncryptError::EncryptExhausted) => {
                out.truncate(at);
                return Err(TlsError::EncryptExhausted);
            }
        };
        out.truncate(at + written);
        Ok(true)
    }

    /// Appends a close_notify alert (after anything pending) to `out`. During
    /// the handshake there is nothing to say: just close the socket.
    pub fn close_notify(&mut self, out: &mut Vec<u8>) {
        self.pending_ciphertext(out);
        if self.failed || self.closed || self.conn.is_handshaking() {
            return;
        }
        self.closed = true;
        for _ in 0..4 {
            let UnbufferedStatus { state, .. } =
                self.conn.process_tls_records(&mut self.pending_in);
            match state {
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let at = out.len();
                    out.resize(at + 64, 0);
                    let written = match traffic.queue_close_notify(&mut out[at..]) {
                        Ok(w) => w,
                        Err(EncryptError::InsufficientSize(InsufficientSizeError {
                            required_size,
                        })) => {
                            out.resize(at + required_size, 0);
                            traffic.queue_close_notify(&mut out[at..]).unwrap_or(0)
                        }
                        Err(_) => 0,
                    };
                    out.truncate(at + written);
                    break;
                }
                Ok(ConnectionState::EncodeTlsData(encode)) => {
                    if encode_to_vec(encode, out).is_err() {
                        break;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                Ok(ConnectionState::PeerClosed) => self.peer_closed = true,
                _ => break,
            }
        }
    }

    /// True until the handshake has completed in both directions.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The peer sent close_notify: no more plaintext will come.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// A fatal error happened; send the pending ciphertext (alert), then close.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Protocol version and cipher suite, once negotiated (for logging).
    pub fn negotiated(&self) -> Option<(rustls::ProtocolVersion, rustls::CipherSuite)> {
        Some((
            self.conn.protocol_version()?,
            self.conn.negotiated_cipher_suite()?.suite(),
        ))
    }

    /// Memory this session accounts for, best effort: the struct itself (box it
    /// in the connection so that plain clients do not pay for it), our two
    /// buffers, and measured constants for what rustls keeps on the heap.
    pub fn heap_bytes(&self) -> usize {
        let rustls = if self.conn.is_handshaking() {
            RUSTLS_HANDSHAKE_HEAP
        } else {
            RUSTLS_ESTABLISHED_HEAP
        };
        mem::size_of::<Self>() + rustls + self.pending_in.capacity() + self.pending_out.capacity()
    }

    /// `heap_bytes()` of an established session with no bytes in flight.
    pub fn idle_bytes() -> usize {
        mem::size_of::<Self>() + RUSTLS_ESTABLISHED_HEAP
    }
}

/// Heap rustls keeps for one established session beyond `size_of::<TlsSession>()`
/// (1,144 bytes with rustls 0.23.46). Measured with valgrind's dhat and a counting
/// allocator over 5,000 idle TLS 1.3 connections with ring: handshake joiner's
/// `Vec<FragmentSpan>` 640 B (allocated up front, never shrunk), AES-GCM keys
/// 2 x 560 B, key schedule state 224 B, two empty queues 2 x 96 B, SNI name.
/// aws-lc-rs keeps its keys in the C heap, about 600 B more per session.
pub const RUSTLS_ESTABLISHED_HEAP: usize = 2_200;

/// The same during the handshake, measured with 5,000 clients that sent a
/// ClientHello and then nothing (server flight sent, waiting for Finished):
/// transcript hash, handshake secrets and keys, the handshake state object.
pub const RUSTLS_HANDSHAKE_HEAP: usize = 2_700;

/// Moves an `EncodeTlsData` chunk to the end of `out`, sized exactly.
fn encode_to_vec(
    mut encode: EncodeTlsData<'_, ServerConnectionData>,
    out: &mut Vec<u8>,
) -> Result<(), TlsError> {
    let at = out.len();
    let required = match encode.encode(&mut []) {
        Ok(_) => return Ok(()),
        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
            required_size
        }
        Err(EncodeError::AlreadyEncoded) => return Err(TlsError::Internal("already encoded")),
    };
    out.resize(at + required, 0);
    match encode.encode(&mut out[at..]) {
        Ok(written) => {
            out.truncate(at + written);
            Ok(())
        }
        Err(_) => {
            out.truncate(at);
            Err(TlsError::Internal("encode refused a sized buffer"))
        }
    }
}

fn escape_prefix(bytes: &[u8]) -> String {
    bytes[..bytes.len().min(16)].escape_ascii().to_string()
}

/// What one record costs beyond its plaintext, learnt once per session:
/// ask rustls what one byte costs; an empty buffer makes it refuse without
/// encrypting anything. The answer also counts records rustls has queued
/// ahead (a key_update), so only a plausible AEAD overhead (TLS 1.2
/// AES-GCM: 5 + 8 + 16) is remembered in `known`.
fn record_overhead(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    known: &mut u16,
) -> Result<usize, TlsError> {
    if *known != 0 {
        return Ok(usize::from(*known));
    }
    match traffic.encrypt(&[0], &mut []) {
        Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
            let probe = required_size - 1;
            if probe <= MAX_RECORD_OVERHEAD {
                *known = probe as u16;
            }
            Ok(probe)
        }
        Err(EncryptError::EncryptExhausted) => Err(TlsError::EncryptExhausted),
        Ok(_) => Err(TlsError::Internal("encrypt into an empty buffer")),
    }
}

#[cfg(test)]
mod tests;
