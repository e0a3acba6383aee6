//! Query strings over a real socket: decoded pairs reach the session, a typed query that does
//! not fit is a `400` at upgrade time, and the same mistake found after the upgrade closes with
//! 1008.
#![cfg(feature = "json")]

mod common;

use common::*;
use serde::Deserialize;
use wsgrpc::ws::{Config, Handler, Rejection, Session, Upgrade};

#[derive(Deserialize)]
struct Join {
    room: String,
    since: Option<u64>,
}

/// Decodes the query at upgrade time and tells the client what it read.
struct Rooms;

impl Handler for Rooms {
    async fn on_upgrade(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
        let join: Join = upgrade.query_as()?;
        upgrade.extensions_mut().insert(join);
        Ok(())
    }

    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        let join = session.extensions().get::<Join>().expect("set at upgrade");
        let nick = session.query_param("nick").unwrap_or_default();
        let pairs = session.query_pairs().count();
        let reply = format!("{} {:?} {nick} {pairs}", join.room, join.since);
        session.send(reply).await
    }
}

#[tokio::test]
async fn typed_query_is_read_at_upgrade_and_pairs_reach_the_session() {
    let server = start(Rooms, Config::default()).await;
    let url = server.url("/ws?room=the+lobby&since=7&nick=ann%20b");
    let (mut client, _) = connect_request(request_with(&url, &[])).await;
    assert_eq!(next_text(&mut client).await, "the lobby Some(7) ann b 3");
}

#[tokio::test]
async fn a_query_that_does_not_fit_is_a_400_naming_the_problem() {
    let server = start(Rooms, Config::default()).await;
    let (status, headers, body) = refused(request_with(&server.url("/ws?since=7"), &[])).await;
    assert_eq!(status, 400);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert!(
        body.starts_with("invalid query string: ") && body.contains("room"),
        "{body}"
    );
    let (status, _, body) = refused(request_with(&server.url("/ws?room=a&since=soon"), &[])).await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid digit"), "{body}");
}

/// Reads the query only once the connection is open.
struct Late;

impl Handler for Late {
    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        let join: Join = session.query_as()?;
        session.send(join.room).await
    }
}

#[tokio::test]
async fn a_typed_query_refused_after_the_upgrade_closes_with_1008() {
    let server = start(Late, Config::default()).await;
    let (mut good, _) = connect_request(request_with(&server.url("/ws?room=lobby"), &[])).await;
    assert_eq!(next_text(&mut good).await, "lobby");
    let (mut bad, _) = connect_request(request_with(&server.url("/ws?since=1"), &[])).await;
    let close = expect_close(&mut bad).await;
    assert_eq!(u16::from(close.code), 1008);
}
