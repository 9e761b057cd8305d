//! Loading a certificate chain and key for the server, with the two checks
//! natter wants at startup and on SIGHUP: the key matches the certificate, and
//! the certificate is within its validity period.
//!
//! Key/cert mismatch costs no code: `ConfigBuilder::with_single_cert` (rustls
//! 0.23) calls `CertifiedKey::from_der`, which compares the key's SPKI with the
//! leaf certificate's and fails with `Error::InconsistentKeys(KeyMismatch)`.
//!
//! Validity: rustls/webpki do not expose a certificate's notBefore/notAfter, so
//! `validity` below walks the DER (about 60 lines, no dependency, no size cost
//! worth measuring) instead of pulling in an X.509 parser.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, crypto::CryptoProvider};

/// notBefore / notAfter of a certificate, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

/// Reads `Certificate.tbsCertificate.validity` from a DER certificate.
/// Returns `None` if the DER is not shaped like an X.509 certificate.
pub fn validity(cert_der: &[u8]) -> Option<Validity> {
    let (tag, cert, _) = tlv(cert_der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = tbs;
    // version [0] EXPLICIT (absent for v1)
    let (tag, _, after) = tlv(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    // serialNumber INTEGER, signature AlgorithmIdentifier, issuer Name
    for expect in [0x02, 0x30, 0x30] {
        let (tag, _, after) = tlv(rest)?;
        if tag != expect {
            return None;
        }
        rest = after;
    }
    let (tag, validity, _) = tlv(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, nb, after) = tlv(validity)?;
    let not_before = time(tag, nb)?;
    let (tag, na, _) = tlv(after)?;
    let not_after = time(tag, na)?;
    Some(Validity {
        not_before,
        not_after,
    })
}

/// One DER tag-length-value: (tag, value, rest). Low tag numbers only, definite lengths.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as RFC 5280 requires them.
fn time(tag: u8, v: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let (year, rest) = match (tag, v.len()) {
        (0x17, 13) => {
            let yy = digits(&v[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &v[2..])
        }
        (0x18, 15) => (digits(&v[..4])?, &v[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let [mo, d, h, mi, s] = [0, 2, 4, 6, 8].map(|i| digits(&rest[i..i + 2]));
    let (mo, d, h, mi, s) = (mo?, d?, h?, mi?, s?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD HH:MM:SS UTC` for log lines.
pub fn format_utc(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A server configuration, and a warning if the certificate is outside its
/// validity period (natter still starts: a stale certificate is the
/// operator's to renew, and clients decide whether to accept it).
pub struct Loaded {
    pub config: ServerConfig,
    pub warning: Option<String>,
}

/// Reads a PEM chain and a PEM key (PKCS#8, SEC1 or PKCS#1) and builds a
/// `ServerConfig` offering TLS 1.2 and 1.3. Errors are one-line reasons
/// naming the file.
pub fn load_server_config(
    cert_path: &str,
    key_path: &str,
    provider: Arc<CryptoProvider>,
    now: i64,
) -> Result<Loaded, String> {
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| format!("--tls-cert {cert_path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--tls-cert {cert_path}: {e}"))?;
    let leaf = chain
        .first()
        .ok_or_else(|| format!("--tls-cert {cert_path}: no certificate in the file"))?;
    let v = validity(leaf)
        .ok_or_else(|| format!("--tls-cert {cert_path}: the first certificate is not X.509"))?;
    let warning = if now > v.not_after {
        Some(format!(
            "--tls-cert {cert_path}: the certificate expired on {}",
            format_utc(v.not_after)
        ))
    } else if now < v.not_before {
        Some(format!(
            "--tls-cert {cert_path}: the certificate is not valid before {}",
            format_utc(v.not_before)
        ))
    } else {
        None
    };
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "--tls-key {key_path}: no private key in the file (PEM: PKCS#8, SEC1 or PKCS#1)"
        ),
        e => format!("--tls-key {key_path}: {e}"),
    })?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                format!(
                    "--tls-key {key_path}: the key does not match the certificate in {cert_path}"
                )
            }
            e => format!("--tls-cert {cert_path}, --tls-key {key_path}: {e}"),
        })?;
    Ok(Loaded { config, warning })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, body: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    }

    use crate::tls::provider;

    #[test]
    fn dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(0x18, b"20500101000000Z"), Some(2_524_608_000));
        assert_eq!(time(0x17, b"4912312359Z"), None);
    }

    #[test]
    fn reads_validity_utc_and_generalized() {
        for (from, to) in [((2020, 1, 2), (2030, 3, 4)), ((1999, 12, 31), (2051, 6, 7))] {
            let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
            params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
            params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            let v = validity(cert.der()).unwrap();
            assert_eq!(
                v.not_before,
                days_from_civil(from.0.into(), from.1.into(), from.2.into()) * 86_400
            );
            assert_eq!(
                v.not_after,
                days_from_civil(to.0.into(), to.1.into(), to.2.into()) * 86_400
            );
        }
        assert_eq!(validity(b"\x30\x03\x02\x01\x00"), None);
    }

    #[test]
    fn load_detects_mismatch_and_expiry_and_all_key_formats() {
        let dir = std::env::temp_dir().join(format!("natter-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2040, 1, 1);
        let cert = write(&dir, "cert.pem", &params.self_signed(&key).unwrap().pem());
        let good = write(&dir, "key.pem", &key.serialize_pem());
        let bad = write(&dir, "other.pem", &other.serialize_pem());
        let now = now_unix();

        assert!(
            load_server_config(&cert, &good, provider(), now)
                .unwrap()
                .warning
                .is_none()
        );
        let err = load_server_config(&cert, &bad, provider(), now)
            .err()
            .unwrap();
        assert!(err.contains("does not match"), "{err}");
        assert!(err.contains("--tls-key"), "{err}");
        let later = days_from_civil(2041, 1, 1) * 86_400;
        let expired = load_server_config(&cert, &good, provider(), later).unwrap();
        let warning = expired.warning.unwrap();
        assert!(
            warning.contains("expired on 2040-01-01 00:00:00 UTC"),
            "{warning}"
        );
        let err = load_server_config("/nonexistent.pem", &good, provider(), now)
            .err()
            .unwrap();
        assert!(err.starts_with("--tls-cert /nonexistent.pem: "), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
