//! The server side of the HTTP/1.1 upgrade: reading the request head, writing the response.
//!
//! The server reads the request itself instead of using tungstenite's synchronous callback so that
//! [`Handler::on_upgrade`](crate::ws::Handler::on_upgrade) can be async (an auth check may need a
//! database) and can refuse with any status. The head is bounded by
//! [`Config::max_request_head_size`](crate::ws::Config::max_request_head_size); bytes that arrive
//! after it (a client may send its first frame without waiting for the `101`) are kept and handed to
//! the WebSocket codec.

use std::io;

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ws::Rejection;

/// Headers beyond this many get `431` (as hyper's default).
pub(crate) const MAX_HEADERS: usize = 100;

/// Why a request head could not be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// The peer closed or the socket failed; there is nobody to answer.
    Io(io::Error),
    /// Answer with this and close.
    Reject(Rejection),
}

/// Reads one HTTP/1.1 request head. Returns the request and any bytes read past it.
pub(crate) async fn read_request<S>(
    io: &mut S,
    max_head_size: usize,
) -> Result<(Request<()>, Vec<u8>), HeadError>
where
    S: AsyncRead + Unpin,
{
    read_head(io, max_head_size, parse).await
}

/// Reads from `io` until `parse` recognises a complete head, within `max_head_size` bytes.
pub(crate) async fn read_head<S, T>(
    io: &mut S,
    max_head_size: usize,
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, HeadError>,
) -> Result<(T, Vec<u8>), HeadError>
where
    S: AsyncRead + Unpin,
{
    let mut buffer = BytesMut::with_capacity(1024.min(max_head_size.max(64)));
    loop {
        if buffer.len() >= max_head_size {
            return Err(HeadError::Reject(Rejection::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "http head too large\n",
            )));
        }
        let room = max_head_size - buffer.len();
        let read = (&mut *io)
            .take(room as u64)
            .read_buf(&mut buffer)
            .await
            .map_err(HeadError::Io)?;
        if read == 0 {
            return Err(HeadError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        if let Some((head, head_len)) = parse(&buffer)? {
            return Ok((head, buffer[head_len..].to_vec()));
        }
    }
}

pub(crate) fn bad_request(body: &'static str) -> HeadError {
    HeadError::Reject(Rejection::new(StatusCode::BAD_REQUEST, body))
}

fn parse(buffer: &[u8]) -> Result<Option<(Request<()>, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::Reject(Rejection::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many request headers\n",
            )));
        }
        Err(_) => return Err(bad_request("malformed http request\n")),
    };
    let mut request = Request::builder()
        .method(parsed.method.unwrap_or("GET"))
        .uri(parsed.path.unwrap_or("/"))
        .version(if parsed.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        });
    let header_map: &mut HeaderMap = request
        .headers_mut()
        .ok_or_else(|| bad_request("malformed request line\n"))?;
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| bad_request("malformed header name\n"))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| bad_request("malformed header value\n"))?;
        header_map.append(name, value);
    }
    let request = request
        .body(())
        .map_err(|_| bad_request("malformed request target\n"))?;
    Ok(Some((request, head_len)))
}

fn write_head(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes the `101` response.
pub(crate) async fn write_response<S: AsyncWrite + Unpin>(
    io: &mut S,
    response: &Response<()>,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(256);
    write_head(&mut out, response.status(), response.headers());
    out.extend_from_slice(b"\r\n");
    io.write_all(&out).await?;
    io.flush().await
}

/// Writes a refusal and closes the write side; the connection is not reused.
pub(crate) async fn write_rejection<S: AsyncWrite + Unpin>(
    io: &mut S,
    rejection: &Rejection,
) -> io::Result<()> {
    crate::metrics::ws_handshake_refused(rejection.status());
    let mut out = Vec::with_capacity(256 + rejection.body().len());
    write_head(&mut out, rejection.status(), rejection.headers());
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            rejection.body().len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(rejection.body());
    io.write_all(&out).await?;
    io.flush().await?;
    io.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_head_and_read_ahead_are_split() {
        let mut input: &[u8] =
            b"GET /ws?room=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n\x81\x80";
        let (request, rest) = read_request(&mut input, 4096).await.expect("complete head");
        assert_eq!(request.uri().path(), "/ws");
        assert_eq!(request.uri().query(), Some("room=1"));
        assert_eq!(request.headers()["upgrade"], "websocket");
        assert_eq!(rest, b"\x81\x80");
    }

    #[tokio::test]
    async fn oversize_head_is_refused_with_431() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(5000));
        let mut input = big.as_bytes();
        match read_request(&mut input, 1024).await {
            Err(HeadError::Reject(rejection)) => assert_eq!(
                rejection.status(),
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            ),
            other => panic!("expected 431, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn garbage_is_refused_with_400() {
        let mut input: &[u8] = b"\x16\x03\x01 not http\r\n\r\n";
        match read_request(&mut input, 1024).await {
            Err(HeadError::Reject(rejection)) => {
                assert_eq!(rejection.status(), StatusCode::BAD_REQUEST)
            }
            other => panic!("expected 400, got {other:?}"),
        }
    }
}
