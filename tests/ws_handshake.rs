//! The upgrade request, rule by rule, over a raw TCP socket: the default same-origin policy
//! (RFC 6454 comparison), the `Host` rules of RFC 9112 section 3.2, the handshake rules of RFC
//! 6455 section 4.2.1, and the keyed upgrade rate limit.
#![cfg(feature = "ws")]

mod common;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wsgrpc::ws::{Config, Message, SessionHandle, handler_fn};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn echo() -> impl wsgrpc::ws::Handler {
    handler_fn(
        |session: SessionHandle, message: Message| async move { session.send(message).await },
    )
}

/// A well-formed upgrade request: request line `GET /ws HTTP/1.1`, then `lines`, then the
/// blank line. Tests build each variant from [`valid`] by dropping or adding lines.
fn head(request_line: &str, lines: &[String]) -> String {
    let mut head = format!("{request_line}\r\n");
    for line in lines {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

/// The header lines of a valid upgrade, with `Host: host`.
fn valid(host: &str) -> Vec<String> {
    vec![
        format!("Host: {host}"),
        "Upgrade: websocket".to_owned(),
        "Connection: Upgrade".to_owned(),
        "Sec-WebSocket-Version: 13".to_owned(),
        format!("Sec-WebSocket-Key: {KEY}"),
    ]
}

/// `lines` without those starting with `name:` (ASCII case ignored), plus `added`.
fn with(lines: &[String], without: &str, added: &[&str]) -> Vec<String> {
    let prefix = format!("{}:", without.to_ascii_lowercase());
    let mut lines: Vec<String> = lines
        .iter()
        .filter(|line| without.is_empty() || !line.to_ascii_lowercase().starts_with(&prefix))
        .cloned()
        .collect();
    lines.extend(added.iter().map(|line| (*line).to_owned()));
    lines
}

/// Sends `head` on a fresh connection and returns the response head, lower-cased.
async fn answer(server: &TestServer, head: &str) -> String {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write");
    read_http_head(&mut stream).await.to_ascii_lowercase()
}

async fn status(server: &TestServer, head: &str) -> u16 {
    let answer = answer(server, head).await;
    answer
        .strip_prefix("http/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

const GET: &str = "GET /ws HTTP/1.1";

#[tokio::test]
async fn origins_compare_as_rfc_6454_tuples() {
    let server = start(echo(), Config::default()).await;
    // The default port spelled out on either side is the same origin (issue 12).
    for (host, origin) in [
        ("chat.example:443", "https://chat.example"),
        ("chat.example", "https://chat.example:443"),
        ("chat.example", "http://chat.example"),
        ("Chat.Example:8080", "http://chat.example:8080"),
    ] {
        let request = head(
            GET,
            &with(&valid(host), "", &[&format!("Origin: {origin}")]),
        );
        assert_eq!(status(&server, &request).await, 101, "{host} {origin}");
    }
    // Cross-site, another port, another scheme's default, and `null`: 403 with a short body.
    for (host, origin) in [
        ("chat.example", "https://evil.example"),
        ("chat.example:80", "https://chat.example"),
        ("chat.example:8080", "http://chat.example"),
        ("chat.example", "null"),
        ("chat.example", "https://user@chat.example"),
    ] {
        let request = head(
            GET,
            &with(&valid(host), "", &[&format!("Origin: {origin}")]),
        );
        let answer = answer(&server, &request).await;
        assert!(
            answer.starts_with("http/1.1 403"),
            "{host} {origin}: {answer}"
        );
        assert!(answer.contains("content-type: text/plain"), "{answer}");
    }
    // Absolute form: the target's authority is what the origin is compared with.
    let request = head(
        "GET ws://chat.example/ws HTTP/1.1",
        &with(
            &valid("other.example"),
            "",
            &["Origin: http://chat.example"],
        ),
    );
    assert_eq!(status(&server, &request).await, 101);
}

#[tokio::test]
async fn host_rules_of_rfc_9112_get_400() {
    let server = start(echo(), Config::default()).await;
    let valid = valid("chat.example");
    assert_eq!(status(&server, &head(GET, &valid)).await, 101);
    let cases = [
        ("missing", head(GET, &with(&valid, "host", &[]))),
        (
            "repeated",
            head(GET, &with(&valid, "", &["Host: chat.example"])),
        ),
        (
            "two values",
            head(GET, &with(&valid, "host", &["Host: a.example, b.example"])),
        ),
        (
            "space",
            head(GET, &with(&valid, "host", &["Host: chat example"])),
        ),
        (
            "userinfo",
            head(GET, &with(&valid, "host", &["Host: ann@chat.example"])),
        ),
        (
            "port",
            head(GET, &with(&valid, "host", &["Host: chat.example:99999"])),
        ),
        ("ipv6", head(GET, &with(&valid, "host", &["Host: [::1"]))),
        ("empty", head(GET, &with(&valid, "host", &["Host:"]))),
        (
            "absolute form without Host",
            head(
                "GET ws://chat.example/ws HTTP/1.1",
                &with(&valid, "host", &[]),
            ),
        ),
        (
            "absolute form with userinfo",
            head("GET ws://ann@chat.example/ws HTTP/1.1", &valid),
        ),
    ];
    for (what, request) in cases {
        assert_eq!(status(&server, &request).await, 400, "{what}");
    }
}

#[tokio::test]
async fn rfc_6455_rules_each_get_their_status() {
    let server = start(echo(), Config::default()).await;
    let valid = valid("chat.example");

    assert_eq!(
        status(&server, &head("GET /ws HTTP/1.0", &valid)).await,
        400,
        "HTTP/1.0"
    );
    let post = answer(
        &server,
        &head(
            "POST /ws HTTP/1.1",
            &with(&valid, "", &["Content-Length: 0"]),
        ),
    )
    .await;
    assert!(post.starts_with("http/1.1 405"), "{post}");
    assert!(post.contains("allow: get"), "{post}");

    for (what, lines) in [
        ("no Upgrade", with(&valid, "upgrade", &[])),
        ("Upgrade: h2c", with(&valid, "upgrade", &["Upgrade: h2c"])),
        ("no Connection", with(&valid, "connection", &[])),
        (
            "Connection: keep-alive",
            with(&valid, "connection", &["Connection: keep-alive"]),
        ),
    ] {
        let answer = answer(&server, &head(GET, &lines)).await;
        assert!(answer.starts_with("http/1.1 426"), "{what}: {answer}");
        assert!(answer.contains("upgrade: websocket"), "{what}: {answer}");
    }
    for (what, lines) in [
        ("no version", with(&valid, "sec-websocket-version", &[])),
        (
            "version 8",
            with(
                &valid,
                "sec-websocket-version",
                &["Sec-WebSocket-Version: 8"],
            ),
        ),
    ] {
        let answer = answer(&server, &head(GET, &lines)).await;
        assert!(answer.starts_with("http/1.1 426"), "{what}: {answer}");
        assert!(
            answer.contains("sec-websocket-version: 13"),
            "{what}: {answer}"
        );
    }
    for (what, lines) in [
        (
            "repeated version",
            with(&valid, "", &["Sec-WebSocket-Version: 13"]),
        ),
        ("no key", with(&valid, "sec-websocket-key", &[])),
        (
            "repeated key",
            with(&valid, "", &[&format!("Sec-WebSocket-Key: {KEY}")]),
        ),
        (
            "short key",
            with(
                &valid,
                "sec-websocket-key",
                &["Sec-WebSocket-Key: c2hvcnQ="],
            ),
        ),
        (
            "17-byte key",
            with(
                &valid,
                "sec-websocket-key",
                &["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA="],
            ),
        ),
        (
            "not base64",
            with(
                &valid,
                "sec-websocket-key",
                &["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ!=="],
            ),
        ),
    ] {
        assert_eq!(status(&server, &head(GET, &lines)).await, 400, "{what}");
    }
}

/// The keyed upgrade rate limit (feature `rate-limit`).
#[cfg(feature = "rate-limit")]
mod upgrade_rate_limit {
    use std::time::Duration;

    use wsgrpc::ws::guard::UpgradeRateLimitLayer;
    use wsgrpc::ws::{HandlerBuilder, Upgrade};

    use super::*;

    #[tokio::test]
    async fn upgrade_rate_limit_per_ip_answers_429_with_retry_after() {
        let limited = HandlerBuilder::new()
            .layer(UpgradeRateLimitLayer::new(2, Duration::from_secs(60)))
            .handler(echo());
        let server = start(limited, Config::default()).await;
        let url = server.url("/ws");
        let mut first = connect(&url).await;
        let _second = connect(&url).await;
        let (status, headers, body) = refused(request_with(&url, &[])).await;
        assert_eq!(status, 429);
        assert_eq!(body, "too many connection attempts\n");
        let retry: u64 = headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        // One upgrade is earned every 30 s.
        assert!((1..=30).contains(&retry), "{retry}");
        // Connections already open are not affected.
        round_trip(&mut first, "still open").await;
    }

    #[tokio::test]
    async fn upgrade_rate_limit_keys_clients_apart() {
        // Two clients on one address, told apart by a key the application derives.
        let limited = HandlerBuilder::new()
            .layer(
                UpgradeRateLimitLayer::new(1, Duration::from_secs(60)).key_by(
                    |upgrade: &Upgrade| {
                        upgrade
                            .headers()
                            .get("x-client")
                            .and_then(|value| value.to_str().ok())
                            .map(str::to_owned)
                    },
                ),
            )
            .handler(echo());
        let server = start(limited, Config::default()).await;
        let url = server.url("/ws");
        let (_ann, _) = connect_request(request_with(&url, &[("x-client", "ann")])).await;
        let (status, headers, _) = refused(request_with(&url, &[("x-client", "ann")])).await;
        assert_eq!(status, 429);
        assert!(headers.contains_key("retry-after"));
        let (mut bob, _) = connect_request(request_with(&url, &[("x-client", "bob")])).await;
        round_trip(&mut bob, "bob is not limited by ann").await;
    }
}
