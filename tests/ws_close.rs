//! Every way a connection can end gets the right close code, reaches `on_close`, and leaves the
//! server serving everyone else.

#![cfg(feature = "ws")]

mod common;

use common::*;
use futures::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use wsgrpc::ws::{CloseCode, ClosedBy, Config};

/// After a connection was closed for bad behaviour, a fresh client is still served.
async fn still_serving(server: &TestServer) {
    let mut client = connect(&server.url("/ws")).await;
    round_trip(&mut client, "still here").await;
}

#[tokio::test]
async fn client_close_code_and_reason_reach_on_close() {
    let (probe, mut closes) = Probe::new();
    let server = start(probe, Config::default()).await;
    let mut client = connect(&server.url("/ws")).await;
    round_trip(&mut client, "hello").await;
    client
        .close(Some(CloseFrame {
            code: WsCloseCode::from(4001),
            reason: "going to lunch".into(),
        }))
        .await
        .expect("close");
    let echoed = expect_close(&mut client).await;
    assert_eq!(
        u16::from(echoed.code),
        4001,
        "server echoes the client's code"
    );
    let reason = next_close(&mut closes).await;
    assert_eq!(reason.code_number(), 4001);
    assert_eq!(reason.reason.as_str(), "going to lunch");
    assert_eq!(reason.closed_by, ClosedBy::Peer);
    server.wait_connections(0).await;
}

#[tokio::test]
async fn dropped_transport_reaches_on_close_as_1006() {
    let (probe, mut closes) = Probe::new();
    let server = start(probe, Config::default()).await;
    let stream = raw_connect(server.addr, "/ws").await;
    drop(stream);
    let reason = next_close(&mut closes).await;
    assert_eq!(reason.code, CloseCode::Abnormal);
    assert_eq!(reason.closed_by, ClosedBy::Peer);
}

#[tokio::test]
async fn invalid_utf8_text_gets_1007() {
    let (probe, mut closes) = Probe::new();
    // A short close timeout: the server lingers that long for a raw client that never closes.
    let config = Config::default().close_timeout(std::time::Duration::from_millis(200));
    let server = start(probe, config).await;
    let mut stream = raw_connect(server.addr, "/ws").await;
    stream
        .write_all(&raw_frame(0x81, &[0x68, 0xff, 0xfe, 0x69], true))
        .await
        .expect("write");
    assert_eq!(read_raw_close_code(&mut stream).await, 1007);
    expect_eof(&mut stream).await;
    assert_eq!(next_close(&mut closes).await.code, CloseCode::Invalid);
    still_serving(&server).await;
}

#[tokio::test]
async fn invalid_utf8_split_across_fragments_gets_1007() {
    let server = start(Probe::new().0, Config::default()).await;
    let mut stream = raw_connect(server.addr, "/ws").await;
    // "é" is 0xC3 0xA9; cut it and follow with a byte that cannot continue it.
    stream
        .write_all(&raw_frame(0x01, &[b'a', 0xc3], true))
        .await
        .expect("first fragment");
    stream
        .write_all(&raw_frame(0x80, &[0x41], true))
        .await
        .expect("last fragment");
    assert_eq!(read_raw_close_code(&mut stream).await, 1007);
    still_serving(&server).await;
}

#[tokio::test]
async fn oversize_message_gets_1009() {
    let (probe, mut closes) = Probe::new();
    let server = start(probe, Config::default().max_message_size(1024)).await;
    let mut client = connect(&server.url("/ws")).await;
    round_trip(&mut client, "small is fine").await;
    // Two fragments of 600 bytes: each frame is fine, the message is not.
    let mut stream = raw_connect(server.addr, "/ws").await;
    stream
        .write_all(&raw_frame(0x02, &[1; 600], true))
        .await
        .expect("first fragment");
    stream
        .write_all(&raw_frame(0x80, &[2; 600], true))
        .await
        .expect("last fragment");
    assert_eq!(read_raw_close_code(&mut stream).await, 1009);
    drop(stream);
    assert_eq!(next_close(&mut closes).await.code, CloseCode::Size);
    // The other client's connection was not affected.
    round_trip(&mut client, "still connected").await;
}

#[tokio::test]
async fn oversize_frame_gets_1009_even_while_the_client_is_still_sending_it() {
    let server = start(Probe::new().0, Config::default().max_frame_size(64 * 1024)).await;
    let mut client = connect(&server.url("/ws")).await;
    // 4 MiB in one frame: the server refuses on the header, then drains the rest so the client can
    // finish writing and read the close frame instead of a reset.
    let big = vec![7u8; 4 << 20];
    let send = client.send(WsMessage::binary(big)).await;
    assert!(send.is_ok(), "client could write its frame: {send:?}");
    let frame = expect_close(&mut client).await;
    assert_eq!(frame.code, WsCloseCode::Size);
    still_serving(&server).await;
}

#[tokio::test]
async fn reserved_bits_get_1002() {
    let server = start(Probe::new().0, Config::default()).await;
    let mut stream = raw_connect(server.addr, "/ws").await;
    stream
        .write_all(&raw_frame(0x80 | 0x40 | 0x1, b"rsv1", true))
        .await
        .expect("write");
    assert_eq!(read_raw_close_code(&mut stream).await, 1002);
    still_serving(&server).await;
}

#[tokio::test]
async fn unknown_opcodes_get_1002() {
    let server = start(Probe::new().0, Config::default()).await;
    for opcode in [0x3u8, 0xB] {
        let mut stream = raw_connect(server.addr, "/ws").await;
        stream
            .write_all(&raw_frame(0x80 | opcode, b"?", true))
            .await
            .expect("write");
        assert_eq!(
            read_raw_close_code(&mut stream).await,
            1002,
            "opcode {opcode:#x}"
        );
    }
    still_serving(&server).await;
}

#[tokio::test]
async fn unmasked_client_frame_gets_1002() {
    let (probe, mut closes) = Probe::new();
    let server = start(probe, Config::default()).await;
    let mut stream = raw_connect(server.addr, "/ws").await;
    stream
        .write_all(&raw_frame(0x81, b"not masked", false))
        .await
        .expect("write");
    assert_eq!(read_raw_close_code(&mut stream).await, 1002);
    drop(stream);
    let reason = next_close(&mut closes).await;
    assert_eq!(reason.code, CloseCode::Protocol);
    assert_eq!(reason.closed_by, ClosedBy::Local);
    still_serving(&server).await;
}

#[tokio::test]
async fn handler_error_gets_1011_with_a_short_reason() {
    let (probe, mut closes) = Probe::new();
    let server = start(probe, Config::default()).await;
    let mut client = connect(&server.url("/ws")).await;
    client.send(WsMessage::text("fail")).await.expect("send");
    let frame = expect_close(&mut client).await;
    assert_eq!(frame.code, WsCloseCode::Error);
    assert_eq!(frame.reason.as_str(), "handler error");
    assert_eq!(next_close(&mut closes).await.code, CloseCode::Error);
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panic_closes_only_that_connection_with_1011() {
    let (probe, mut closes) = Probe::new();
    let server = start(probe, Config::default()).await;
    let mut bystander = connect(&server.url("/ws")).await;
    round_trip(&mut bystander, "before").await;
    let mut client = connect(&server.url("/ws")).await;
    client.send(WsMessage::text("panic")).await.expect("send");
    let frame = expect_close(&mut client).await;
    assert_eq!(frame.code, WsCloseCode::Error);
    assert_eq!(next_close(&mut closes).await.code, CloseCode::Error);
    round_trip(&mut bystander, "after").await;
    still_serving(&server).await;
}

#[tokio::test]
async fn handler_can_close_with_its_own_code() {
    use wsgrpc::ws::{Handler, Message, Session};
    struct Bouncer;
    impl Handler for Bouncer {
        async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
            session.send(message).await?;
            session.close(CloseCode::Policy, "one message only").await
        }
    }
    let server = start(Bouncer, Config::default()).await;
    let mut client = connect(&server.url("/ws")).await;
    client.send(WsMessage::text("hi")).await.expect("send");
    assert_eq!(
        next_data(&mut client).await,
        WsMessage::text("hi"),
        "queued message goes out before the close"
    );
    let frame = expect_close(&mut client).await;
    assert_eq!(frame.code, WsCloseCode::Policy);
    assert_eq!(frame.reason.as_str(), "one message only");
    server.wait_connections(0).await;
}
