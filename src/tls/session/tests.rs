//! The session against a rustls client, entirely in memory.

use super::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::io::{Read, Write};

struct Pki {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    Pki {
        cert: ck.cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()).into(),
    }
}

fn server_config(pki: &Pki) -> Arc<ServerConfig> {
    Arc::new(
        ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
            .unwrap(),
    )
}

fn client(pki: &Pki, versions: &[&'static rustls::SupportedProtocolVersion]) -> ClientConnection {
    let mut roots = RootCertStore::empty();
    roots.add(pki.cert.clone()).unwrap();
    let config = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap()
}

/// Moves bytes both ways until neither side has anything to say. Returns
/// the plaintext the server received. Client ciphertext is fed in pieces
/// of `chunk` bytes to exercise partial records.
fn pump(c: &mut ClientConnection, s: &mut TlsSession, chunk: usize) -> Result<Vec<u8>, TlsError> {
    let mut server_plain = Vec::new();
    for _ in 0..100 {
        let mut c2s = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut c2s).unwrap();
        }
        for piece in c2s.chunks_mut(chunk.max(1)) {
            s.read_tls(piece, &mut server_plain)?;
        }
        let mut s2c = Vec::new();
        s.pending_ciphertext(&mut s2c);
        if !s2c.is_empty() {
            feed_client(c, &s2c);
        }
        if c2s.is_empty() && s2c.is_empty() {
            return Ok(server_plain);
        }
    }
    panic!("no quiescence");
}

/// Gives the client `bytes`; returns the plaintext it decrypted.
fn feed_client(c: &mut ClientConnection, mut bytes: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    while !bytes.is_empty() {
        c.read_tls(&mut bytes).unwrap();
        c.process_new_packets().unwrap();
        plain.extend(client_plaintext(c));
    }
    plain
}

fn client_plaintext(c: &mut ClientConnection) -> Vec<u8> {
    let mut v = Vec::new();
    match c.reader().read_to_end(&mut v) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => panic!("{e}"),
    }
    v
}

fn established(
    versions: &[&'static rustls::SupportedProtocolVersion],
    chunk: usize,
) -> (ClientConnection, TlsSession) {
    let pki = pki();
    let mut s = TlsSession::new(server_config(&pki));
    let mut c = client(&pki, versions);
    assert!(s.is_handshaking());
    pump(&mut c, &mut s, chunk).unwrap();
    assert!(!c.is_handshaking());
    assert!(!s.is_handshaking());
    (c, s)
}

/// Splits a byte stream into TLS records: (content type, total length).
fn records(bytes: &[u8]) -> Vec<(u8, usize)> {
    let mut v = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 5 {
        let len = 5 + usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        v.push((rest[0], len));
        rest = &rest[len..];
    }
    assert!(rest.is_empty(), "trailing partial record");
    v
}

#[test]
fn tls13_handshake_and_data_both_ways() {
    let (mut c, mut s) = established(&[&rustls::version::TLS13], usize::MAX);
    assert_eq!(s.negotiated().unwrap().0, rustls::ProtocolVersion::TLSv1_3);

    c.writer().write_all(b"hello from client\n").unwrap();
    let got = pump(&mut c, &mut s, usize::MAX).unwrap();
    assert_eq!(got, b"hello from client\n");

    let mut out = Vec::new();
    let n = s
        .encrypt::<&[u8]>(&[b"hello ", b"from ", b"server\n"], &mut out, 1 << 20)
        .unwrap();
    assert_eq!(n, 18);
    assert_eq!(records(&out), vec![(0x17, 5 + 18 + 17)]); // one record: +1 type +16 tag
    assert_eq!(feed_client(&mut c, &out), b"hello from server\n");
}

#[test]
fn tls12_handshake_and_data_both_ways() {
    let (mut c, mut s) = established(&[&rustls::version::TLS12], usize::MAX);
    assert_eq!(s.negotiated().unwrap().0, rustls::ProtocolVersion::TLSv1_2);
    c.writer().write_all(b"ping").unwrap();
    assert_eq!(pump(&mut c, &mut s, usize::MAX).unwrap(), b"ping");
    let mut out = Vec::new();
    assert_eq!(
        s.encrypt::<&[u8]>(&[b"po", b"ng"], &mut out, 4096).unwrap(),
        4
    );
    assert_eq!(feed_client(&mut c, &out), b"pong");
}

#[test]
fn handshake_and_data_fed_one_byte_at_a_time() {
    let (mut c, mut s) = established(&[&rustls::version::TLS13], 1);
    let big: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    c.writer().write_all(&big).unwrap();
    assert_eq!(pump(&mut c, &mut s, 7).unwrap(), big);
    assert_eq!(
        s.heap_bytes(),
        TlsSession::idle_bytes(),
        "idle session holds no buffers"
    );
}

#[test]
fn many_lines_coalesce_into_full_records() {
    let (mut c, mut s) = established(&[&rustls::version::TLS13], usize::MAX);
    let line = b"<alice> a chat line of some length\n";
    let lines: Vec<&[u8]> = std::iter::repeat_n(&line[..], 1000).collect();
    let total = line.len() * 1000; // 35,000 bytes
    let mut out = Vec::new();
    assert_eq!(s.encrypt(&lines, &mut out, usize::MAX).unwrap(), total);
    let recs = records(&out);
    assert_eq!(recs.len(), 3, "16384 + 16384 + rest, not one per line");
    assert_eq!(recs[0].1, 5 + 16_384 + 17);
    assert_eq!(feed_client(&mut c, &out), lines.concat());
}

#[test]
fn budget_limits_ciphertext_and_resumes_where_it_stopped() {
    let (mut c, mut s) = established(&[&rustls::version::TLS13], usize::MAX);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let slices: Vec<&[u8]> = data.chunks(333).collect();
    let mut received = Vec::new();
    let mut done = 0;
    // Budget too small for a byte of payload: nothing consumed, nothing written.
    let mut out = Vec::new();
    assert_eq!(s.encrypt(&slices, &mut out, 22).unwrap(), 0);
    assert!(out.is_empty());
    while done < data.len() {
        let mut out = Vec::new();
        // Re-slice the remaining plaintext the way an OutQueue would.
        let rest = &data[done..];
        let n = s
            .encrypt(
                &[&rest[..rest.len() / 2], &rest[rest.len() / 2..]],
                &mut out,
                1000,
            )
            .unwrap();
        assert!(out.len() <= 1000, "{}", out.len());
        assert_eq!(records(&out).len(), 1);
        done += n;
        received.extend(feed_client(&mut c, &out));
    }
    assert_eq!(received, data);
}

#[test]
fn plain_text_client_gets_alert_and_reason() {
    let pki = pki();
    let mut s = TlsSession::new(server_config(&pki));
    let mut line = b"NICK alice\r\n".to_vec();
    let err = s.read_tls(&mut line, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, TlsError::NotTls(_)));
    assert_eq!(
        err.to_string(),
        "not a TLS handshake (client sent \"NICK alice\\r\\n\")"
    );
    let mut out = Vec::new();
    s.pending_ciphertext(&mut out);
    assert_eq!(out, DECODE_ERROR_ALERT, "fatal decode_error alert");
    assert!(s.is_failed());
    assert_eq!(
        s.read_tls(&mut [0x16], &mut Vec::new()),
        Err(TlsError::Failed)
    );

    // Shorter than a record header: still an alert.
    let mut s = TlsSession::new(server_config(&pki));
    assert!(s.read_tls(&mut b"hi".to_vec(), &mut Vec::new()).is_err());
    let mut out = Vec::new();
    s.pending_ciphertext(&mut out);
    assert_eq!(out, DECODE_ERROR_ALERT);
}

/// A handshake record holding the start of a message, then junk.
const SPLIT_HELLO_THEN_JUNK: &[u8] =
    include_bytes!("../../../tests/testdata/tls-split-hello-then-junk.bin");

#[test]
fn a_bad_record_after_a_partial_handshake_message_is_an_error_not_a_panic() {
    // Found by fuzz/fuzz_targets/tls_accept.rs: the first record holds the
    // start of a handshake message (rustls keeps pointing into it), a later
    // one is refused. Draining the alert with an empty buffer then made
    // rustls index out of bounds.
    let pki = pki();
    let mut s = TlsSession::new(server_config(&pki));
    let mut bytes = SPLIT_HELLO_THEN_JUNK.to_vec();
    let err = s.read_tls(&mut bytes, &mut Vec::new()).unwrap_err();
    assert!(
        err.to_string().contains("HandshakePayloadTooLarge"),
        "{err}"
    );
    assert!(s.is_failed());
    let mut out = Vec::new();
    s.pending_ciphertext(&mut out);
    assert_eq!(out.first(), Some(&0x15), "an alert is sent");
    assert!(s.read_tls(&mut [22, 3, 3, 0, 0], &mut Vec::new()).is_err());
}

#[test]
fn garbage_client_hello_gets_alert() {
    let pki = pki();
    let mut s = TlsSession::new(server_config(&pki));
    // A handshake record whose message is of an unknown type (0xff).
    let mut junk = [0x16, 0x03, 0x01, 0x00, 0x04, 0xff, 0x00, 0x00, 0x00];
    let err = s.read_tls(&mut junk, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, TlsError::Protocol(_)), "{err:?}");
    assert!(err.to_string().starts_with("TLS: "), "{err}");
    let mut out = Vec::new();
    s.pending_ciphertext(&mut out);
    assert_eq!(records(&out), vec![(0x15, 7)], "one plaintext alert record");
    assert_eq!(out[5], 2, "fatal");

    // A ClientHello offering nothing we support: handshake_failure alert.
    let mut s = TlsSession::new(server_config(&pki));
    let mut c = client(&pki, &[&rustls::version::TLS13]);
    let mut hello = Vec::new();
    c.write_tls(&mut hello).unwrap();
    // Corrupt the cipher suite list: find TLS_AES_128_GCM_SHA256 (13 01) etc.
    for w in hello
        .windows(2)
        .collect::<Vec<_>>()
        .iter()
        .enumerate()
        .map(|(i, _)| i)
        .collect::<Vec<_>>()
    {
        if hello[w] == 0x13 && (1..=3).contains(&hello[w + 1]) {
            hello[w] = 0x7a;
        }
    }
    let err = s.read_tls(&mut hello, &mut Vec::new()).unwrap_err();
    let mut out = Vec::new();
    s.pending_ciphertext(&mut out);
    assert_eq!(out.first(), Some(&0x15), "alert sent for {err}");
}

#[test]
fn close_notify_both_ways() {
    let (mut c, mut s) = established(&[&rustls::version::TLS13], usize::MAX);
    // Client closes: the session notices, and later input is ignored.
    c.send_close_notify();
    pump(&mut c, &mut s, usize::MAX).unwrap();
    assert!(s.peer_closed());
    // Server answers with its own close_notify after a last message.
    let mut out = Vec::new();
    s.encrypt::<&[u8]>(&[b"bye\n"], &mut out, 4096).unwrap();
    s.close_notify(&mut out);
    assert_eq!(
        s.encrypt::<&[u8]>(&[b"after close"], &mut out, 4096)
            .unwrap(),
        0
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1], (0x17, 5 + 2 + 17), "encrypted alert under TLS 1.3");
    let mut bytes = &out[..];
    while !bytes.is_empty() {
        c.read_tls(&mut bytes).unwrap();
    }
    let state = c.process_new_packets().unwrap();
    assert!(state.peer_has_closed());
    assert_eq!(client_plaintext(&mut c), b"bye\n");
}

#[test]
fn tickets_and_handshake_output_precede_application_data() {
    // TLS 1.3 servers send tickets after the client's Finished; if the caller
    // has not taken them yet, encrypt() must emit them first.
    let pki = pki();
    let mut s = TlsSession::new(server_config(&pki));
    let mut c = client(&pki, &[&rustls::version::TLS13]);
    let mut plain = Vec::new();
    let mut flight = Vec::new();
    c.write_tls(&mut flight).unwrap();
    s.read_tls(&mut flight, &mut plain).unwrap();
    let mut s2c = Vec::new();
    s.pending_ciphertext(&mut s2c);
    feed_client(&mut c, &s2c);
    let mut fin = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut fin).unwrap();
    }
    s.read_tls(&mut fin, &mut plain).unwrap();
    assert!(!s.is_handshaking());
    // Do not take pending_ciphertext: encrypt must put the tickets first.
    let mut out = Vec::new();
    s.encrypt::<&[u8]>(&[b"welcome\n"], &mut out, usize::MAX)
        .unwrap();
    assert!(records(&out).len() >= 2);
    assert_eq!(feed_client(&mut c, &out), b"welcome\n");
}

#[test]
fn tampered_record_is_fatal_with_encrypted_alert() {
    let (mut c, mut s) = established(&[&rustls::version::TLS13], usize::MAX);
    c.writer().write_all(b"secret").unwrap();
    let mut wire = Vec::new();
    c.write_tls(&mut wire).unwrap();
    let last = wire.len() - 1;
    wire[last] ^= 1; // break the AEAD tag
    let err = s.read_tls(&mut wire, &mut Vec::new()).unwrap_err();
    assert_eq!(err, TlsError::Protocol(rustls::Error::DecryptError));
    assert_eq!(err.to_string(), "TLS: cannot decrypt peer's message");
    let mut out = Vec::new();
    s.pending_ciphertext(&mut out);
    assert_eq!(
        records(&out),
        vec![(0x17, 5 + 2 + 17)],
        "bad_record_mac, encrypted"
    );
    assert!(s.encrypt::<&[u8]>(&[b"x"], &mut Vec::new(), 4096).is_err());
}

#[test]
fn data_sent_with_client_finished_is_not_lost() {
    let pki = pki();
    let mut s = TlsSession::new(server_config(&pki));
    let mut c = client(&pki, &[&rustls::version::TLS13]);
    // Written before the handshake: the client sends it right after Finished,
    // so the server sees Finished and application data in one read.
    c.writer().write_all(b"NICK alice\n").unwrap();
    let got = pump(&mut c, &mut s, usize::MAX).unwrap();
    assert_eq!(got, b"NICK alice\n");
}

#[test]
fn idle_session_frees_its_buffers() {
    let (mut c, mut s) = established(&[&rustls::version::TLS13], usize::MAX);
    // A partial record is held...
    c.writer().write_all(&[7u8; 3000]).unwrap();
    let mut wire = Vec::new();
    c.write_tls(&mut wire).unwrap();
    let mut plain = Vec::new();
    let (a, b) = wire.split_at_mut(1000);
    s.read_tls(a, &mut plain).unwrap();
    assert!(plain.is_empty());
    assert!(s.heap_bytes() > TlsSession::idle_bytes() + 900);
    // ...and released once the record completes.
    s.read_tls(b, &mut plain).unwrap();
    assert_eq!(plain.len(), 3000);
    assert_eq!(s.heap_bytes(), TlsSession::idle_bytes());
}

#[test]
fn client_key_update_is_answered_before_new_data() {
    let (mut c, mut s) = established(&[&rustls::version::TLS13], usize::MAX);
    // The client updates its keys and asks us to update ours.
    c.refresh_traffic_keys().unwrap();
    c.writer().write_all(b"after update\n").unwrap();
    assert_eq!(pump(&mut c, &mut s, usize::MAX).unwrap(), b"after update\n");
    let mut out = Vec::new();
    s.encrypt::<&[u8]>(&[b"reply\n"], &mut out, usize::MAX)
        .unwrap();
    assert_eq!(records(&out).len(), 2, "our key_update, then the data");
    assert_eq!(
        s.record_overhead, 0,
        "probe polluted by the key_update is not kept"
    );
    assert_eq!(feed_client(&mut c, &out), b"reply\n");
    // And again, to be sure both sides now use the new keys.
    let mut out = Vec::new();
    s.encrypt::<&[u8]>(&[b"again\n"], &mut out, usize::MAX)
        .unwrap();
    assert_eq!(s.record_overhead, 22);
    assert_eq!(feed_client(&mut c, &out), b"again\n");
}

#[test]
fn encrypt_before_handshake_is_zero() {
    let pki = pki();
    let mut s = TlsSession::new(server_config(&pki));
    let mut out = Vec::new();
    assert_eq!(s.encrypt::<&[u8]>(&[b"early"], &mut out, 4096).unwrap(), 0);
    assert!(out.is_empty());
}
