//! Upgrade guards over real sockets: the origin policy, token auth and subprotocol negotiation
//! refuse with an HTTP status before the 101, and what they decide reaches the session.

#![cfg(feature = "ws")]

mod common;

use common::*;
use http::StatusCode;
use wsgrpc::ws::guard::{AuthLayer, ProtocolLayer};
use wsgrpc::ws::layer::TraceLayer;
use wsgrpc::ws::{Config, Handler, HandlerBuilder, Message, Rejection, Session};

/// Tells the client what the guards attached: the user and the subprotocol.
struct Report;

struct User(String);

impl Handler for Report {
    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        let user = session
            .extensions()
            .get::<User>()
            .map_or("anonymous", |user| user.0.as_str());
        let protocol = session.protocol().unwrap_or("none");
        let report = format!("user={user} protocol={protocol}");
        session.send(report).await
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        session.send(message).await
    }
}

#[tokio::test]
async fn default_origin_policy_is_same_origin() {
    // No layer: the server's default origin policy.
    let server = start(Report, Config::default()).await;
    let url = server.url("/ws");

    // Not a browser: no Origin header.
    let (mut client, _) = connect_request(request_with(&url, &[])).await;
    assert_eq!(next_text(&mut client).await, "user=anonymous protocol=none");
    round_trip(&mut client, "no origin").await;
    // A page served by this very host and port.
    let same = format!("http://{}", server.addr);
    let (mut client, _) = connect_request(request_with(&url, &[("origin", &same)])).await;
    assert_eq!(next_text(&mut client).await, "user=anonymous protocol=none");
    round_trip(&mut client, "same origin").await;

    for origin in [
        "https://evil.example",
        "http://127.0.0.1",   // same host, another port
        "http://localhost:1", // another host
        "null",
    ] {
        let (status, _, body) = refused(request_with(&url, &[("origin", origin)])).await;
        assert_eq!(status, 403, "{origin}");
        assert_eq!(body, "cross-origin websocket request refused\n");
    }
}

#[tokio::test]
async fn allow_list_and_allow_any_let_other_origins_in() {
    let listed = Config::default().allow_origins(["https://app.example.com"]);
    let server = start(Report, listed).await;
    let url = server.url("/ws");
    let (mut client, _) =
        connect_request(request_with(&url, &[("origin", "https://APP.example.com")])).await;
    assert_eq!(next_text(&mut client).await, "user=anonymous protocol=none");
    round_trip(&mut client, "listed").await;
    let (status, _, _) = refused(request_with(&url, &[("origin", "https://evil.example")])).await;
    assert_eq!(status, 403);

    let server = start(Report, Config::default().allow_any_origin()).await;
    let (mut client, _) = connect_request(request_with(
        &server.url("/ws"),
        &[("origin", "https://evil.example")],
    ))
    .await;
    assert_eq!(next_text(&mut client).await, "user=anonymous protocol=none");
    round_trip(&mut client, "anyone").await;
}

fn authenticated() -> impl Handler {
    let check = |token: String| async move {
        // An await point, as a real check against a store would have.
        tokio::task::yield_now().await;
        match token.as_str() {
            "token-ann" => Ok(User("ann".to_owned())),
            "token with spaces" => Ok(User("spacey".to_owned())),
            _ => Err(Rejection::new(StatusCode::FORBIDDEN, "unknown token\n")),
        }
    };
    HandlerBuilder::new()
        .layer(TraceLayer::new())
        .layer(AuthLayer::new(check).query_param("access_token"))
        .handler(Report)
}

#[tokio::test]
async fn auth_refuses_missing_and_bad_tokens() {
    let server = start(authenticated(), Config::default()).await;
    let url = server.url("/ws");

    let (status, headers, body) = refused(request_with(&url, &[])).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(body, "a bearer token is required\n");

    let (status, _, body) =
        refused(request_with(&url, &[("authorization", "Bearer token-bob")])).await;
    assert_eq!((status, body.as_str()), (403, "unknown token\n"));

    let (status, _, _) = refused(request_with(&server.url("/ws?access_token=nope"), &[])).await;
    assert_eq!(status, 403);
    // Another scheme is not a bearer token.
    let (status, _, _) = refused(request_with(
        &url,
        &[("authorization", "Basic dG9rZW4tYW5u")],
    ))
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn auth_accepts_header_and_query_tokens_and_attaches_the_user() {
    let server = start(authenticated(), Config::default()).await;

    let (mut client, _) = connect_request(request_with(
        &server.url("/ws"),
        &[("authorization", "Bearer token-ann")],
    ))
    .await;
    assert_eq!(next_text(&mut client).await, "user=ann protocol=none");

    let (mut client, _) = connect_request(request_with(
        &server.url("/ws?room=1&access_token=token+with%20spaces"),
        &[],
    ))
    .await;
    assert_eq!(next_text(&mut client).await, "user=spacey protocol=none");
    round_trip(&mut client, "authenticated").await;
}

#[tokio::test]
async fn query_tokens_are_ignored_unless_enabled() {
    let handler = HandlerBuilder::new()
        .layer(AuthLayer::new(|_token: String| async {
            Ok(User("x".into()))
        }))
        .handler(Report);
    let server = start(handler, Config::default()).await;
    let (status, _, _) = refused(request_with(&server.url("/ws?access_token=a"), &[])).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn subprotocol_is_negotiated_and_on_the_session() {
    let handler = HandlerBuilder::new()
        .layer(ProtocolLayer::new(["chat.v2", "chat.v1"]))
        .handler(Report);
    let server = start(handler, Config::default()).await;
    let url = server.url("/ws");

    // The server's preference wins over the client's order.
    let (mut client, headers) = connect_request(request_with(
        &url,
        &[("sec-websocket-protocol", "chat.v1, chat.v2")],
    ))
    .await;
    assert_eq!(headers["sec-websocket-protocol"], "chat.v2");
    assert_eq!(
        next_text(&mut client).await,
        "user=anonymous protocol=chat.v2"
    );

    let (mut client, headers) = connect_request(request_with(
        &url,
        &[("sec-websocket-protocol", "mqtt, chat.v1")],
    ))
    .await;
    assert_eq!(headers["sec-websocket-protocol"], "chat.v1");
    assert_eq!(
        next_text(&mut client).await,
        "user=anonymous protocol=chat.v1"
    );

    // Nothing offered: accepted without a protocol (not required).
    let (mut client, headers) = connect_request(request_with(&url, &[])).await;
    assert!(headers.get("sec-websocket-protocol").is_none());
    assert_eq!(next_text(&mut client).await, "user=anonymous protocol=none");

    let (status, _, body) =
        refused(request_with(&url, &[("sec-websocket-protocol", "mqtt")])).await;
    assert_eq!(status, 400);
    assert!(body.contains("chat.v2, chat.v1"), "{body}");
}

#[tokio::test]
async fn required_subprotocol_refuses_clients_that_offer_none() {
    let handler = HandlerBuilder::new()
        .layer(ProtocolLayer::new(["chat.v1"]).required(true))
        .handler(Report);
    let server = start(handler, Config::default()).await;
    let (status, _, _) = refused(request_with(&server.url("/ws"), &[])).await;
    assert_eq!(status, 400);
    let (_client, headers) = connect_request(request_with(
        &server.url("/ws"),
        &[("sec-websocket-protocol", "chat.v1")],
    ))
    .await;
    assert_eq!(headers["sec-websocket-protocol"], "chat.v1");
}
