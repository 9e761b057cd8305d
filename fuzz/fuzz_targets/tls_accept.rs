//! Arbitrary bytes at the TLS port: what `TlsSession` (the server side of
//! every TLS client) does with them, split into reads where the fuzzer
//! chooses, with the server writing between reads as a flush would. Asserts
//! that it never panics, that a failure is final, that its buffers stay
//! within their caps, and that no plaintext appears before a handshake is
//! done.
//!
//! The first byte picks where the bytes land: at a fresh session (the
//! ClientHello's place), after a real ClientHello from a rustls client (the
//! client's second flight's place), or after a whole handshake (the place of
//! application records); the second how long each read is.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use natter::tls::session::TlsSession;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig};

/// A session's buffers hold at most the bytes of an unfinished record
/// (capped at about 84 KB, `MAX_PENDING_IN` in `session.rs`) and one flight
/// to send (a few KB); more than this is a leak.
const MAX_SESSION_BYTES: usize = 128 * 1024;

/// The server's configuration, from `testdata/` (a self-signed ECDSA P-256
/// certificate for `localhost`, made with the command in `fuzz/README.md`).
fn server_config() -> &'static (Arc<ServerConfig>, Vec<u8>) {
    static CONFIG: OnceLock<(Arc<ServerConfig>, Vec<u8>)> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
        let (cert, key) = (format!("{dir}/cert.pem"), format!("{dir}/key.pem"));
        let now = natter::tls::certs::now_unix();
        let loaded = natter::tls::certs::load_server_config(&cert, &key, natter::tls::provider(), now)
            .expect("fuzz/testdata has a certificate and its key");
        let der = std::fs::read(&cert).unwrap();
        (Arc::new(loaded.config), der)
    })
}

/// A rustls client that accepts the test certificate.
fn client() -> ClientConnection {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let (_, pem) = server_config();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(natter::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap()
}

/// Runs a real handshake (or only its first flight) into `session`.
fn prepare(session: &mut TlsSession, whole: bool) {
    let mut c = client();
    let mut plain = Vec::new();
    for _ in 0..10 {
        let mut c2s = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut c2s).unwrap();
        }
        session.read_tls(&mut c2s, &mut plain).expect("a real client's bytes");
        if !whole {
            return;
        }
        let mut s2c = Vec::new();
        session.pending_ciphertext(&mut s2c);
        let mut rest = &s2c[..];
        while !rest.is_empty() {
            c.read_tls(&mut rest).unwrap();
            c.process_new_packets().unwrap();
        }
        if !session.is_handshaking() && !c.is_handshaking() {
            return;
        }
    }
    panic!("the handshake did not finish");
}

fuzz_target!(|data: &[u8]| {
    let [place, read_len, data @ ..] = data else {
        return;
    };
    let mut session = TlsSession::new(server_config().0.clone());
    match place % 3 {
        0 => {}
        1 => prepare(&mut session, false),
        _ => prepare(&mut session, true),
    }
    let established = !session.is_handshaking();
    let mut plain = Vec::new();
    let mut out = Vec::new();
    for chunk in data.chunks(usize::from(*read_len).max(1) * 7) {
        let mut chunk = chunk.to_vec();
        let result = session.read_tls(&mut chunk, &mut plain);
        session.pending_ciphertext(&mut out);
        assert!(session.heap_bytes() <= MAX_SESSION_BYTES, "{}", session.heap_bytes());
        if result.is_err() {
            assert!(session.is_failed());
            let mut again = chunk.clone();
            assert!(session.read_tls(&mut again, &mut plain).is_err(), "failure is final");
            break;
        }
        // Between reads the server writes: a chat line, as a flush would.
        if !session.is_handshaking() && !session.is_failed() {
            let line: &[&[u8]] = &[b"someone: a chat line\n"];
            let _ = session.encrypt(line, &mut out, 4096);
        }
    }
    if !session.is_failed() {
        session.close_notify(&mut out);
    }
    // Random bytes cannot pass as a client's Finished or forge a record.
    if !established {
        assert!(plain.is_empty(), "plaintext before the handshake: {plain:?}");
    }
});
