//! Secure defaults on the one-port app, over raw TCP: the `Host` rules of RFC 9112 section 3.2
//! for every HTTP/1.1 request (gRPC-Web included), the RFC 6454 same-origin check for gRPC-Web
//! and for WebSocket upgrades, both on by default.

#![cfg(feature = "grpc-web")]

mod common;
#[path = "common/serve.rs"]
mod serve_common;

use serve_common::{TestApp, WAIT, parse_grpc_web};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsgrpc::grpc::GrpcServer;
use wsgrpc::serve::{App, Cors};
use wsgrpc::ws::{Handler, Message, Router, SessionHandle, handler_fn};

fn echo() -> impl Handler {
    handler_fn(
        |session: SessionHandle, message: Message| async move { session.send(message).await },
    )
}

async fn app() -> TestApp {
    TestApp::start(
        App::new()
            .websocket(Router::new().route("/ws", echo()))
            .grpc(GrpcServer::new().into_parts().await.expect("grpc parts"))
            .grpc_web(Cors::default()),
    )
    .await
}

/// A gRPC-Web `SayHello("web")` call with these header lines (Host, Origin), in bytes.
fn grpc_web(lines: &[&str]) -> Vec<u8> {
    // HelloRequest { name: "web" } in a gRPC-Web data frame.
    let body = [0u8, 0, 0, 0, 5, 0x0a, 3, b'w', b'e', b'b'];
    let mut head = String::from("POST /helloworld.Greeter/SayHello HTTP/1.1\r\n");
    for line in lines {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str(&format!(
        "content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut request = head.into_bytes();
    request.extend_from_slice(&body);
    request
}

/// Sends `request` and reads one response (head and body, by `content-length` or chunked);
/// returns the status and the raw response.
async fn exchange(app: &TestApp, request: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut response = Vec::new();
    let read = async {
        let mut buffer = [0u8; 4096];
        while !complete(&response) {
            let read = stream.read(&mut buffer).await.expect("read");
            if read == 0 {
                break;
            }
            response.extend_from_slice(&buffer[..read]);
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("response in time");
    let status = std::str::from_utf8(response.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {:?}", String::from_utf8_lossy(&response)));
    (status, response)
}

/// Whether `response` holds a whole HTTP/1.1 response.
fn complete(response: &[u8]) -> bool {
    let Some(split) = response.windows(4).position(|window| window == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let body = &response[split + 4..];
    if head.contains("transfer-encoding: chunked") {
        return body.ends_with(b"0\r\n\r\n");
    }
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .and_then(|length| length.trim().parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= length
}

fn body(response: &[u8]) -> bytes::Bytes {
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a complete head");
    let body = &response[split + 4..];
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    if !head.contains("transfer-encoding: chunked") {
        return bytes::Bytes::copy_from_slice(body);
    }
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(line_end) = rest.windows(2).position(|window| window == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).expect("ascii"), 16)
                .expect("chunk size");
        if size == 0 {
            break;
        }
        out.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
        rest = &rest[line_end + 2 + size + 2..];
    }
    bytes::Bytes::from(out)
}

#[tokio::test]
async fn grpc_web_same_origin_with_default_port_spelled_out_is_served() {
    let app = app().await;
    for (host, origin) in [
        ("Host: chat.example:443", "Origin: https://chat.example"),
        ("Host: chat.example", "Origin: http://chat.example:80"),
    ] {
        let (status, response) = exchange(&app, &grpc_web(&[host, origin])).await;
        assert_eq!(status, 200, "{host} {origin}");
        let (message, trailers) = parse_grpc_web(&body(&response));
        assert_eq!(message.as_deref(), Some("Hello web"));
        assert!(trailers.contains("grpc-status:0"), "{trailers}");
    }
}

#[tokio::test]
async fn cross_site_grpc_web_gets_403() {
    let app = app().await;
    for origin in [
        "Origin: https://evil.example",
        "Origin: http://chat.example:8080",
        "Origin: https://chat.example",
        "Origin: null",
    ] {
        let (status, _) = exchange(&app, &grpc_web(&["Host: chat.example:80", origin])).await;
        assert_eq!(status, 403, "{origin}");
    }
}

#[tokio::test]
async fn http1_requests_breaking_the_host_rules_get_400() {
    let app = app().await;
    for (what, lines) in [
        ("missing", vec![]),
        ("repeated", vec!["Host: chat.example", "Host: chat.example"]),
        ("invalid", vec!["Host: chat example"]),
        ("userinfo", vec!["Host: ann@chat.example"]),
        ("bad port", vec!["Host: chat.example:http"]),
    ] {
        let (status, response) = exchange(&app, &grpc_web(&lines)).await;
        assert_eq!(
            status,
            400,
            "{what}: {}",
            String::from_utf8_lossy(&response)
        );
    }
    // And for WebSocket upgrades on the app: missing Host is refused before any upgrade.
    let upgrade = "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let (status, _) = exchange(&app, upgrade.as_bytes()).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn websocket_on_the_app_is_same_origin_by_default() {
    let app = app().await;
    let upgrade = |host: &str, origin: &str| {
        format!(
            "GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream
        .write_all(upgrade("chat.example:443", "https://chat.example").as_bytes())
        .await
        .expect("write");
    let head = common::read_http_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    let (status, response) = exchange(
        &app,
        upgrade("chat.example", "https://evil.example").as_bytes(),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        String::from_utf8_lossy(&response).ends_with("cross-origin websocket request refused\n"),
        "{}",
        String::from_utf8_lossy(&response)
    );
}
