//! TLS clients (`--tls`): the rustls client configuration, the check of the
//! server's certificate, and moving bytes between a connection's rustls
//! state and its socket.
//!
//! The crypto provider is *ring*, the one natter uses. TLS 1.2 and 1.3 are
//! offered (rustls prefers 1.3) and session resumption is off, so every
//! handshake is a full one: what a handshake costs the server is what is
//! measured. Each connection keeps its own `ClientConnection`; the
//! generator's memory does not matter.
//!
//! The certificate check (`--tls-ca FILE`): a certificate in FILE that the
//! server presents as it is is trusted as such ("pinned"; a self-signed test
//! certificate is usually marked as a CA, which WebPKI refuses as a
//! server's own certificate); otherwise the certificates in FILE are trust
//! anchors and the chain and name are checked (WebPKI). In both cases the
//! handshake's signature is verified with the certificate's key.
//! `--tls-insecure` checks nothing, not even that signature: loopback only.

use std::io::{self, ErrorKind, Write};
use std::path::Path;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};

/// What every TLS connection of a run is made from.
pub struct TlsSetup {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsSetup {
    /// `ca`: the PEM file of certificates to trust (`None`: trust anything);
    /// `name`: the server name sent (SNI) and checked.
    pub fn new(ca: Option<&Path>, name: &str) -> Result<Self, String> {
        let pem = ca
            .map(|path| {
                std::fs::read(path).map_err(|e| format!("--tls-ca {}: {e}", path.display()))
            })
            .transpose()?;
        Self::with_ca(pem.as_deref(), name)
    }

    /// `new` with the certificates' PEM text instead of a file.
    fn with_ca(ca: Option<&[u8]>, name: &str) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algs = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = match ca {
            Some(pem) => Arc::new(Pinned::from_pem(pem, provider.clone())?),
            None => Arc::new(Anything(algs)),
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("--tls-name {name:?}: {e}"))?;
        Ok(TlsSetup {
            config: Arc::new(config),
            name,
        })
    }

    /// A fresh client connection (nothing sent yet).
    pub fn connection(&self) -> io::Result<ClientConnection> {
        ClientConnection::new(Arc::clone(&self.config), self.name.clone()).map_err(io::Error::other)
    }
}

/// What a connection negotiated: protocol version, cipher suite, key
/// exchange group.
pub fn describe(c: &ClientConnection) -> String {
    let version = c
        .protocol_version()
        .map_or("?".to_string(), |v| format!("{v:?}"));
    let suite = c
        .negotiated_cipher_suite()
        .map_or("?".to_string(), |s| format!("{:?}", s.suite()));
    let group = c
        .negotiated_key_exchange_group()
        .map_or("?".to_string(), |g| format!("{:?}", g.name()));
    format!("{version} {suite} {group}")
}

/// Hand `out[*pos..]` to the connection as far as it takes it, and write
/// what it has to send until the socket would block. An error means the
/// connection is gone.
pub fn write(
    conn: &mut ClientConnection,
    stream: &mut TcpStream,
    out: &[u8],
    pos: &mut usize,
) -> Result<(), String> {
    loop {
        let mut progress = false;
        if *pos < out.len() {
            // Before the handshake ends, rustls keeps up to 64 KiB of
            // plaintext; after it, it encrypts into its send buffer.
            let n = conn
                .writer()
                .write(&out[*pos..])
                .map_err(|e| e.to_string())?;
            *pos += n;
            progress = n > 0;
        }
        if conn.wants_write() {
            match conn.write_tls(stream) {
                Ok(0) => return Err("write returned 0".to_string()),
                Ok(_) => progress = true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => progress = true,
                Err(e) => return Err(e.to_string()),
            }
        }
        if !progress {
            return Ok(());
        }
    }
}

/// How feeding received bytes to a connection ended it.
pub struct Closed {
    pub why: String,
    /// A TLS failure (certificate, alert, bad record), not an ordinary close:
    /// connecting again would fail the same way.
    pub tls_error: bool,
}

/// Feed the received bytes `raw` to `conn` and hand every piece of
/// plaintext it yields to `plain`.
pub fn decrypt(
    conn: &mut ClientConnection,
    mut raw: &[u8],
    mut plain: impl FnMut(&mut ClientConnection) -> io::Result<bool>,
) -> Result<(), Closed> {
    let tls_error = |e: &dyn std::fmt::Display| Closed {
        why: format!("TLS: {e}"),
        tls_error: true,
    };
    while !raw.is_empty() {
        match conn.read_tls(&mut raw) {
            Ok(0) => {
                return Err(Closed {
                    why: "TLS: close_notify received".into(),
                    tls_error: false,
                });
            }
            Ok(_) => {}
            Err(e) => return Err(tls_error(&e)),
        }
        conn.process_new_packets().map_err(|e| tls_error(&e))?;
        // `plain` reads the plaintext; false: the peer closed cleanly.
        match plain(conn) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Closed {
                    why: "end of stream (close_notify)".into(),
                    tls_error: false,
                });
            }
            Err(e) => return Err(tls_error(&e)),
        }
    }
    Ok(())
}

/// `--tls-ca FILE`: its certificates pinned, or as trust anchors.
#[derive(Debug)]
struct Pinned {
    certs: Vec<CertificateDer<'static>>,
    chain: Option<Arc<WebPkiServerVerifier>>,
    algs: WebPkiSupportedAlgorithms,
}

impl Pinned {
    fn from_pem(pem: &[u8], provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let what = |e: &dyn std::fmt::Display| format!("--tls-ca: {e}");
        let certs = CertificateDer::pem_slice_iter(pem)
            .map(|c| c.map(CertificateDer::into_owned))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| what(&e))?;
        if certs.is_empty() {
            return Err(what(&"no certificate in it"));
        }
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs.iter().cloned());
        let algs = provider.signature_verification_algorithms;
        let chain = if added > 0 {
            let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| what(&e))?;
            Some(v)
        } else {
            None
        };
        Ok(Pinned { certs, chain, algs })
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.certs.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.chain {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// `--tls-insecure`: any certificate, any signature.
#[derive(Debug)]
struct Anything(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Anything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::{ServerConfig, ServerConnection, StreamOwned};
    use std::io::{BufRead, BufReader, Read};
    use std::time::{Duration, Instant};

    const CERT: &[u8] = include_bytes!("../testdata/cert.pem");
    const KEY: &[u8] = include_bytes!("../testdata/key.pem");
    const OTHER: &[u8] = include_bytes!("../testdata/other-cert.pem");

    /// A one-connection TLS server on loopback (blocking, in a thread): it
    /// greets, then echoes one line back. Returns its address.
    fn server() -> std::net::SocketAddr {
        let certs = CertificateDer::pem_slice_iter(CERT)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (tcp, _) = l.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let conn = ServerConnection::new(Arc::new(config)).unwrap();
            let mut tls = BufReader::new(StreamOwned::new(conn, tcp));
            if tls.get_mut().write_all(b"welcome\n").is_err() {
                return; // the client refused the certificate
            }
            let mut line = String::new();
            if tls.read_line(&mut line).is_ok() {
                let _ = tls.get_mut().write_all(line.as_bytes());
            }
        });
        addr
    }

    /// Connect with `setup`, send `ping`, and collect plaintext until two
    /// lines arrived (or the connection ended: the error).
    fn exchange(setup: &TlsSetup) -> Result<String, String> {
        let std_tcp = std::net::TcpStream::connect(server()).unwrap();
        std_tcp.set_nonblocking(true).unwrap();
        let mut tcp = TcpStream::from_std(std_tcp);
        let mut conn = setup.connection().unwrap();
        let (out, mut pos) = (b"ping\n".to_vec(), 0);
        let (mut got, mut raw) = (Vec::new(), vec![0u8; 64 * 1024]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.iter().filter(|&&b| b == b'\n').count() < 2 {
            assert!(Instant::now() < deadline, "no answer");
            write(&mut conn, &mut tcp, &out, &mut pos)?;
            match tcp.read(&mut raw) {
                Ok(0) => return Err("end of stream".into()),
                Ok(n) => decrypt(&mut conn, &raw[..n], |c| {
                    let mut b = [0u8; 256];
                    while let Ok(k) = c.reader().read(&mut b) {
                        got.extend_from_slice(&b[..k]);
                        if k == 0 {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                })
                .map_err(|c| c.why)?,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        assert!(conn.protocol_version().is_some());
        Ok(String::from_utf8(got).unwrap())
    }

    #[test]
    fn pinned_certificate_talks_and_others_are_refused() {
        let pinned = TlsSetup::with_ca(Some(CERT), "localhost").unwrap();
        assert_eq!(exchange(&pinned).unwrap(), "welcome\nping\n");
        let wrong = TlsSetup::with_ca(Some(OTHER), "localhost").unwrap();
        let err = exchange(&wrong).unwrap_err();
        assert!(err.starts_with("TLS: invalid peer certificate"), "{err}");
        let insecure = TlsSetup::with_ca(None, "localhost").unwrap();
        assert_eq!(exchange(&insecure).unwrap(), "welcome\nping\n");
        assert!(TlsSetup::with_ca(Some(b"not pem"), "localhost").is_err());
    }
}
