//! Routing by path: captures reach the session, each route keeps its own guards and hooks, and an
//! unknown path is an HTTP 404 before any upgrade.

#![cfg(feature = "ws")]

mod common;

use common::*;
use wsgrpc::ws::guard::AuthLayer;
use wsgrpc::ws::{
    Config, Handler, HandlerBuilder, Message, PathParams, Rejection, Router, Session,
    SessionHandle, handler_fn,
};

/// Says which route and captures it was reached with, then echoes.
struct Describe;

impl Handler for Describe {
    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        let params = session
            .extensions()
            .get::<PathParams>()
            .expect("the router attaches path params");
        let captures: Vec<String> = params
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let description = format!("{} {}", params.pattern(), captures.join(" "));
        session.send(description).await
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        session.send(message).await
    }
}

fn echo() -> impl Handler {
    handler_fn(
        |session: SessionHandle, message: Message| async move { session.send(message).await },
    )
}

#[tokio::test]
async fn paths_dispatch_to_their_routes_with_captures() {
    let router = Router::new()
        .route("/rooms/{room}", Describe)
        .route("/rooms/lobby", echo())
        .route("/users/{user}/inbox/{folder}", Describe)
        .route("/files/{*path}", Describe);
    let server = start(router, Config::default()).await;

    let mut room = connect(&server.url("/rooms/kitchen")).await;
    assert_eq!(next_text(&mut room).await, "/rooms/{room} room=kitchen");
    round_trip(&mut room, "hello kitchen").await;

    // The literal route wins over the capture, whatever the order they were added in.
    let mut lobby = connect(&server.url("/rooms/lobby")).await;
    round_trip(&mut lobby, "no greeting here").await;

    let mut inbox = connect(&server.url("/users/ann/inbox/sent%20items?x=1")).await;
    assert_eq!(
        next_text(&mut inbox).await,
        "/users/{user}/inbox/{folder} user=ann folder=sent items"
    );

    let mut files = connect(&server.url("/files/a/b/c.txt")).await;
    assert_eq!(next_text(&mut files).await, "/files/{*path} path=a/b/c.txt");
}

#[tokio::test]
async fn unknown_path_is_an_http_404_and_the_server_keeps_serving() {
    let server = start(Router::new().route("/echo", echo()), Config::default()).await;
    for path in ["/", "/nope", "/echo/", "/echo/more"] {
        let (status, _, body) = refused(request_with(&server.url(path), &[])).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body, "no websocket endpoint at this path\n");
    }
    let mut client = connect(&server.url("/echo")).await;
    round_trip(&mut client, "still here").await;
}

#[tokio::test]
async fn not_found_answer_is_configurable() {
    let router = Router::new()
        .route("/echo", echo())
        .not_found(Rejection::new(http::StatusCode::GONE, "moved to /echo\n"));
    let server = start(router, Config::default()).await;
    let (status, _, body) = refused(request_with(&server.url("/old"), &[])).await;
    assert_eq!((status, body.as_str()), (410, "moved to /echo\n"));
}

#[tokio::test]
async fn each_route_runs_its_own_guards_and_hooks() {
    let (probe, mut closes) = Probe::new();
    let private = HandlerBuilder::new()
        .layer(AuthLayer::new(|token: String| async move {
            if token == "sesame" {
                Ok(())
            } else {
                Err(Rejection::new(http::StatusCode::FORBIDDEN, "no\n"))
            }
        }))
        .handler(echo());
    let router = Router::new()
        .route("/public", probe)
        .route("/private", private);
    let server = start(router, Config::default()).await;

    // The public route has no guard; its on_close runs through the router.
    let mut public = connect(&server.url("/public")).await;
    round_trip(&mut public, "open to all").await;
    close_client(&mut public).await;
    assert_eq!(next_close(&mut closes).await.code_number(), 1005);

    let (status, _, _) = refused(request_with(&server.url("/private"), &[])).await;
    assert_eq!(status, 401);
    let (mut private, _) = connect_request(request_with(
        &server.url("/private"),
        &[("authorization", "Bearer sesame")],
    ))
    .await;
    round_trip(&mut private, "members only").await;
}
