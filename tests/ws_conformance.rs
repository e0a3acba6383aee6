//! Strict receiver behaviour that Autobahn 6.4.x checks, without the Autobahn runner: invalid
//! UTF-8 fails the connection (1007) at the first piece that contains it, whether that piece is
//! the first fragment of a message or the first part of a single frame still arriving, and a
//! compressed frame without permessage-deflate, or RSV2/RSV3, gets 1002.
#![cfg(feature = "ws")]

mod common;

use tokio::io::AsyncWriteExt;
use wsgrpc::ws::{Config, Message, SessionHandle, handler_fn};

use common::{raw_connect, raw_frame, read_raw_close_code, start};

fn echo() -> impl wsgrpc::ws::Handler {
    handler_fn(
        |session: SessionHandle, message: Message| async move { session.send(message).await },
    )
}

#[tokio::test]
async fn invalid_utf8_in_the_first_fragment_fails_before_the_message_ends() {
    let server = start(echo(), Config::default()).await;
    let mut stream = raw_connect(server.addr, "/ws").await;
    // A text message whose first fragment holds a surrogate (ED A0 80); the final fragment is
    // never sent, so only a per-fragment check can answer.
    stream
        .write_all(&raw_frame(0x01, b"\xce\xba\xe1\xbd\xb9\xed\xa0\x80", true))
        .await
        .expect("write");
    assert_eq!(read_raw_close_code(&mut stream).await, 1007);
}

#[tokio::test]
async fn invalid_utf8_in_a_frame_still_arriving_fails_at_once() {
    let server = start(echo(), Config::default()).await;
    let mut stream = raw_connect(server.addr, "/ws").await;
    // One final text frame of 1,000 bytes; only its first 20 arrive, the invalid byte among them.
    let mut payload = b"hello, world: ".to_vec();
    payload.push(0xff);
    payload.resize(1000, b'a');
    let frame = raw_frame(0x81, &payload, true);
    let header = 2 + 2 + 4;
    stream
        .write_all(&frame[..header + 20])
        .await
        .expect("write");
    assert_eq!(read_raw_close_code(&mut stream).await, 1007);
}

#[tokio::test]
async fn a_multibyte_character_split_across_fragments_is_valid() {
    let server = start(echo(), Config::default()).await;
    let mut stream = raw_connect(server.addr, "/ws").await;
    let text = "κόσμε".as_bytes();
    // Split inside the second character.
    stream
        .write_all(&raw_frame(0x01, &text[..3], true))
        .await
        .expect("write");
    stream
        .write_all(&raw_frame(0x80, &text[3..], true))
        .await
        .expect("write");
    let frame = common::read_raw_frame(&mut stream).await.expect("the echo");
    assert_eq!(frame.opcode, 0x1);
    assert_eq!(frame.payload, text);
}

#[tokio::test]
async fn reserved_bits_without_an_extension_get_1002() {
    let server = start(echo(), Config::default()).await;
    for first in [0x81 | 0x40, 0x81 | 0x20, 0x81 | 0x10] {
        let mut stream = raw_connect(server.addr, "/ws").await;
        stream
            .write_all(&raw_frame(first, b"hi", true))
            .await
            .expect("write");
        assert_eq!(
            read_raw_close_code(&mut stream).await,
            1002,
            "first byte {first:#x}"
        );
    }
}
