//! A `Rejection` is an axum response: an axum handler that checks an upgrade with
//! `Upgrade::from_request` and returns the refusal with `?` answers with its status, headers and
//! body, over a real socket.
#![cfg(feature = "axum")]

use std::time::Duration;

use axum::extract::Request;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsgrpc::ws::{Rejection, Upgrade};

const WAIT: Duration = Duration::from_secs(10);

/// Accepts only `?key=sesame`, and only as a WebSocket upgrade.
async fn guarded(request: Request) -> Result<&'static str, Rejection> {
    let (parts, _body) = request.into_parts();
    let upgrade = Upgrade::from_request(http::Request::from_parts(parts, ()), None)?;
    if upgrade.query_param("key").as_deref() != Some("sesame") {
        return Err(
            Rejection::new(StatusCode::FORBIDDEN, "wrong key\n").with_header(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            ),
        );
    }
    Ok("would upgrade")
}

/// Sends `request` on a fresh connection and reads one response: the head, then a body of
/// `content-length` bytes (the refusals keep `Connection: Upgrade`, so the server may keep the
/// connection open after them).
async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let read = async {
        let mut response = Vec::new();
        let mut buffer = [0u8; 1024];
        loop {
            let read = stream.read(&mut buffer).await.expect("read");
            assert!(read > 0, "connection closed before a whole response");
            response.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&response);
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .expect("content-length")
                .parse()
                .expect("a number");
            if body.len() >= length {
                return text.into_owned();
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("answer in time")
}

#[tokio::test]
async fn a_rejection_returned_from_an_axum_handler_is_the_response() {
    let app = axum::Router::new().route("/ws", axum::routing::get(guarded));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Plain HTTP: the upgrade check's own refusal, 426 with the headers RFC 6455 asks for.
    let plain = exchange(
        addr,
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(plain.starts_with("HTTP/1.1 426 "), "{plain}");
    assert!(plain.contains("sec-websocket-version: 13\r\n"), "{plain}");
    assert!(
        plain.contains("content-type: text/plain; charset=utf-8\r\n"),
        "{plain}"
    );

    // A valid upgrade request with the wrong key: the handler's own 403, extra header and body.
    let handshake = "Host: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let wrong = exchange(
        addr,
        &format!("GET /ws?key=guess HTTP/1.1\r\n{handshake}\r\n"),
    )
    .await;
    assert!(wrong.starts_with("HTTP/1.1 403 "), "{wrong}");
    assert!(wrong.contains("cache-control: no-store\r\n"), "{wrong}");
    assert!(wrong.ends_with("\r\n\r\nwrong key\n"), "{wrong}");

    let right = exchange(
        addr,
        &format!("GET /ws?key=sesame HTTP/1.1\r\n{handshake}\r\n"),
    )
    .await;
    assert!(right.starts_with("HTTP/1.1 200 "), "{right}");
    assert!(right.ends_with("would upgrade"), "{right}");
}
