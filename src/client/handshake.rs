//! The client side of the HTTP/1.1 upgrade (RFC 6455 section 4.1): send the request (with a
//! permessage-deflate offer, RFC 7692 section 5, unless [`Config::deflate`] is disabled), check
//! the `101` answer, keep any frame bytes that arrived with it.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, StatusCode, Uri};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::ws::Config;
use crate::ws::deflate::{self, PerMessageDeflate};
use crate::ws::handshake::{HeadError, MAX_HEADERS, bad_request, read_head};
use crate::ws::upgrade::header_has_token;

/// What the server agreed to.
pub(crate) struct Accepted {
    /// The request as sent (the client-side session shows it).
    pub(crate) request: Request<()>,
    pub(crate) protocol: Option<HeaderValue>,
    pub(crate) read_ahead: Vec<u8>,
    /// permessage-deflate, when the server accepted the offer.
    pub(crate) compression: Option<PerMessageDeflate>,
}

pub(crate) async fn handshake<S>(
    io: &mut S,
    uri: &Uri,
    extra_headers: &HeaderMap,
    protocols: &[String],
    config: &Config,
) -> Result<Accepted>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let key = tungstenite::handshake::client::generate_key();
    let authority = uri
        .authority()
        .map(|authority| authority.as_str())
        .unwrap_or_default();
    let target = uri.path_and_query().map_or("/", |target| target.as_str());

    let mut request = Request::get(uri.clone())
        .body(())
        .map_err(|_| Error::InvalidUrl(uri.to_string()))?;
    let headers = request.headers_mut();
    let host = HeaderValue::from_str(authority).map_err(|_| Error::InvalidUrl(uri.to_string()))?;
    headers.insert(header::HOST, host);
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    let key_value = HeaderValue::from_str(&key).map_err(|_| handshake_error("bad key"))?;
    headers.insert(header::SEC_WEBSOCKET_KEY, key_value);
    if !protocols.is_empty() {
        let offered = HeaderValue::from_str(&protocols.join(", "))
            .map_err(|_| Error::InvalidHeader("sec-websocket-protocol".to_owned()))?;
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, offered);
    }
    if let Some(offer) = deflate::offer(&config.deflate) {
        let offer = HeaderValue::from_str(&offer).map_err(|_| handshake_error("bad offer"))?;
        headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, offer);
    }
    for (name, value) in extra_headers {
        headers.append(name, value.clone());
    }

    let mut head = format!("GET {target} HTTP/1.1\r\n").into_bytes();
    for (name, value) in request.headers() {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    io.write_all(&head).await?;
    io.flush().await?;

    let ((status, response_headers), read_ahead) =
        match read_head(io, config.max_request_head_size, parse_response).await {
            Ok(response) => response,
            Err(HeadError::Io(error)) => return Err(Error::Io(error)),
            Err(HeadError::Reject(_)) => {
                return Err(handshake_error("malformed response from server"));
            }
        };
    if status != StatusCode::SWITCHING_PROTOCOLS {
        return Err(Error::Refused { status });
    }
    let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
    if response_headers
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .map(HeaderValue::as_bytes)
        != Some(expected.as_bytes())
    {
        return Err(handshake_error("wrong Sec-WebSocket-Accept"));
    }
    if !header_has_token(&response_headers, header::UPGRADE, "websocket")
        || !header_has_token(&response_headers, header::CONNECTION, "upgrade")
    {
        return Err(handshake_error("101 without websocket upgrade headers"));
    }
    let protocol = response_headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .cloned();
    if let Some(chosen) = &protocol {
        // RFC 6455 4.1: a protocol the client did not offer fails the connection.
        if !protocols
            .iter()
            .any(|offered| offered.as_bytes() == chosen.as_bytes())
        {
            return Err(handshake_error(
                "server chose a subprotocol that was not offered",
            ));
        }
    }
    // RFC 7692 section 5: an answer naming an extension not offered, or invalid parameters,
    // fails the connection.
    let compression = deflate::accept_response(
        response_headers
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .map(HeaderValue::as_bytes),
        &config.deflate,
    )
    .map_err(handshake_error)?;
    Ok(Accepted {
        request,
        protocol,
        read_ahead,
        compression,
    })
}

fn handshake_error(reason: &'static str) -> Error {
    Error::Handshake { reason }
}

type ResponseHead = (StatusCode, HeaderMap);

fn parse_response(buffer: &[u8]) -> std::result::Result<Option<(ResponseHead, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(bad_request("malformed response")),
    };
    let status = parsed
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| bad_request("malformed status"))?;
    let mut map = HeaderMap::with_capacity(parsed.headers.len());
    for header in parsed.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_bytes(header.value),
        ) else {
            return Err(bad_request("malformed header"));
        };
        map.append(name, value);
    }
    Ok(Some(((status, map), head_len)))
}
