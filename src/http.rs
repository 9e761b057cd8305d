//! The tiny HTTP side of `--metrics`: one request per connection, answered
//! and closed. Parsing is `httparse`'s; this module only decides the answer,
//! so it is tested without sockets.

use crate::limits::MAX_REQUEST;

/// What to do with the bytes of a request received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The request is incomplete; read more.
    NeedMore,
    /// Serve the metrics page.
    Metrics,
    /// Send this complete error response and close.
    Error(&'static str),
}

/// Decides how to answer `request` (all bytes received so far).
pub fn answer(request: &[u8]) -> Answer {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(request) {
        Ok(httparse::Status::Partial) if request.len() >= MAX_REQUEST => {
            Answer::Error("431 Request Header Fields Too Large")
        }
        Ok(httparse::Status::Partial) => Answer::NeedMore,
        Err(httparse::Error::TooManyHeaders) => {
            Answer::Error("431 Request Header Fields Too Large")
        }
        Err(_) => Answer::Error("400 Bad Request"),
        Ok(httparse::Status::Complete(_)) => match (req.method, req.path) {
            (Some("GET"), Some("/metrics")) => Answer::Metrics,
            (Some("GET"), _) => Answer::Error("404 Not Found"),
            _ => Answer::Error("405 Method Not Allowed"),
        },
    }
}

/// A complete response with `status` (e.g. `200 OK`) and `body`.
pub fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The response for an [`Answer::Error`].
pub fn error_response(status: &str) -> Vec<u8> {
    response(status, "text/plain; charset=utf-8", &format!("{status}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(
            answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Answer::Metrics
        );
        assert_eq!(answer(b"GET /metrics HTTP/1.1\r\nHo"), Answer::NeedMore);
        assert_eq!(
            answer(b"GET / HTTP/1.1\r\n\r\n"),
            Answer::Error("404 Not Found")
        );
        assert_eq!(
            answer(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Answer::Error("405 Method Not Allowed")
        );
        assert_eq!(
            answer(b"\x16\x03\x01garbage\r\n\r\n"),
            Answer::Error("400 Bad Request")
        );
        let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
        while big.len() < MAX_REQUEST {
            big.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(matches!(answer(&big), Answer::Error(s) if s.starts_with("431")));
    }

    #[test]
    fn responses_carry_their_length() {
        let r = response("200 OK", "text/plain", "abc");
        assert!(r.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(r.ends_with(b"Content-Length: 3\r\nConnection: close\r\n\r\nabc"));
    }
}
