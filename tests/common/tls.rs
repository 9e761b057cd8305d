//! TLS for the tests: certificates made at test time (rcgen, ECDSA P-256),
//! a server with a TLS listener, and a rustls client speaking lines.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use natter::Config;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{Client, LineStream, PATIENCE};

/// A client's TLS stream over TCP.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;
/// A line client over TLS.
pub type TlsClient = Client<TlsStream>;

impl LineStream for TlsStream {
    /// Sends close_notify, then half-closes, as `ncat --ssl` does at the end
    /// of its input.
    fn finish_sending(&mut self) {
        self.conn.send_close_notify();
        self.flush().expect("send close_notify");
        self.sock.shutdown(Shutdown::Write).unwrap();
    }
}

/// A directory of its own for one test, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("natter-tls-{}-{tag}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate and its key, written as PEM files.
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: CertificateDer<'static>,
}

/// An ECDSA P-256 certificate for `localhost`, self-signed, with `name` as
/// its common name and `serial` as its serial number, valid 2020–2100,
/// written into `dir` as `<name>.crt` and `<name>.key`.
pub fn pair(dir: &Path, name: &str, serial: u8) -> Pair {
    pair_valid(dir, name, serial, (2020, 2100))
}

/// Like [`pair`], valid from the start of one year to the start of another.
pub fn pair_valid(dir: &Path, name: &str, serial: u8, years: (i32, i32)) -> Pair {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.serial_number = Some(rcgen::SerialNumber::from(vec![serial]));
    params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pair = Pair {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
        der: cert.der().clone(),
    };
    std::fs::write(&pair.cert, cert.pem()).unwrap();
    std::fs::write(&pair.key, key.serialize_pem()).unwrap();
    pair
}

/// A test config with a plain and a TLS listener on ephemeral loopback
/// ports, serving `pair`.
pub fn config(pair: &Pair) -> Config {
    Config {
        tls_listen: Some("127.0.0.1:0".into()),
        tls_cert: Some(pair.cert.clone()),
        tls_key: Some(pair.key.clone()),
        ..super::config()
    }
}

/// Starts a server on its own thread; returns its plain and TLS addresses.
pub fn start(config: Config) -> (SocketAddr, SocketAddr) {
    super::start_and(config, |server| {
        let tls = server.tls_addr().expect("config.tls_listen is set");
        (server.local_addr(), tls)
    })
}

/// A client that trusts `trusted` only (TLS 1.2 and 1.3).
pub fn client_config(trusted: &Pair) -> Arc<ClientConfig> {
    client_config_at(
        trusted,
        Arc::new(rustls::time_provider::DefaultTimeProvider),
    )
}

/// A client whose clock reads `unix` seconds: one that accepts a
/// certificate expired by now.
pub fn client_config_in(trusted: &Pair, unix: u64) -> Arc<ClientConfig> {
    #[derive(Debug)]
    struct Clock(u64);
    impl rustls::time_provider::TimeProvider for Clock {
        fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
            Some(rustls::pki_types::UnixTime::since_unix_epoch(
                std::time::Duration::from_secs(self.0),
            ))
        }
    }
    client_config_at(trusted, Arc::new(Clock(unix)))
}

fn client_config_at(
    trusted: &Pair,
    clock: Arc<dyn rustls::time_provider::TimeProvider>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.der.clone()).unwrap();
    let config = ClientConfig::builder_with_details(natter::tls::provider(), clock)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Connects over TLS, trusting `trusted`; the handshake happens on the first
/// read or write.
pub fn connect(addr: SocketAddr, trusted: &Pair) -> TlsClient {
    connect_with(addr, client_config(trusted))
}

/// Connects over TLS with a client configuration of the test's choosing.
pub fn connect_with(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsClient {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config, name).expect("client session");
    Client::over(StreamOwned::new(conn, tcp))
}

/// Connects over TLS and reads the greeting.
pub fn join(addr: SocketAddr, trusted: &Pair) -> TlsClient {
    connect(addr, trusted).greeted()
}

/// The certificate the server presented.
pub fn server_cert(client: &TlsClient) -> CertificateDer<'static> {
    let certs = client.reader.get_ref().conn.peer_certificates();
    certs.expect("handshake done")[0].clone().into_owned()
}
