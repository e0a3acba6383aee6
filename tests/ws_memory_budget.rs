//! The server-wide memory budget, on the scenario scaled down: peers that each send most
//! of a large fragmented message and stall. The budget's own counter must never pass its limit,
//! peers beyond it get 1013 (Try Again Later), the peers within it are still served when they go
//! on, and a new connection is served meanwhile.
#![cfg(feature = "ws")]

mod common;

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsgrpc::ws::{Config, MemoryBudget, Message, SessionHandle, handler_fn};

use common::{WAIT, connect, raw_connect, raw_frame, round_trip, start};

const PEERS: usize = 16;
const FRAGMENT: usize = 256 * 1024;
/// Fragments each peer sends before it stalls; one more completes its message.
const SENT: usize = 4;
const BUDGET: usize = 8 << 20;

/// Reads one server frame: first byte and payload.
async fn server_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 2];
    tokio::time::timeout(WAIT, stream.read_exact(&mut header))
        .await
        .expect("frame in time")
        .expect("frame");
    let len = match header[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).await.expect("length");
            usize::from(u16::from_be_bytes(ext))
        }
        127 => {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).await.expect("length");
            u64::from_be_bytes(ext) as usize
        }
        len => usize::from(len),
    };
    let mut payload = vec![0u8; len];
    tokio::time::timeout(WAIT, stream.read_exact(&mut payload))
        .await
        .expect("payload in time")
        .expect("payload");
    (header[0], payload)
}

/// Sends the first `SENT` fragments of a binary message, then a ping. The server reads in order,
/// so its pong means it holds the fragments; a close frame means it refused them.
async fn send_and_stall(addr: SocketAddr, peer: usize) -> (TcpStream, Option<u16>) {
    let mut stream = raw_connect(addr, "/ws").await;
    let fragment = vec![peer as u8; FRAGMENT];
    for index in 0..SENT {
        let opcode = if index == 0 { 0x02 } else { 0x00 };
        // A refused peer's later writes may fail once the server hangs up; what it reads decides.
        if stream
            .write_all(&raw_frame(opcode, &fragment, true))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(&raw_frame(0x89, b"held?", true)).await;
    let (first, payload) = server_frame(&mut stream).await;
    match first & 0x0f {
        0xA => (stream, None),
        0x8 => (stream, Some(u16::from_be_bytes([payload[0], payload[1]]))),
        other => panic!("unexpected opcode {other}"),
    }
}

#[tokio::test]
async fn stalled_partial_messages_stay_under_the_budget_and_others_are_served() {
    let budget = MemoryBudget::new(BUDGET);
    let echo = handler_fn(|session: SessionHandle, message: Message| async move {
        session.send(message).await
    });
    let server = start(echo, Config::default().memory_budget(budget.clone())).await;

    let mut held = Vec::new();
    let mut refused = 0;
    for peer in 0..PEERS {
        let (stream, close) = send_and_stall(server.addr, peer).await;
        assert!(
            budget.in_use() <= BUDGET,
            "{} bytes charged, over the {BUDGET}-byte budget",
            budget.in_use()
        );
        match close {
            None => held.push((peer, stream)),
            Some(code) => {
                assert_eq!(code, 1013, "a refused message is answered Try Again Later");
                refused += 1;
            }
        }
    }
    // 16 x 1 MiB does not fit in 8 MiB: some peers are held, the rest refused.
    assert!(!held.is_empty(), "peers within the budget are held");
    assert!(refused > 0, "peers beyond the budget are refused");
    assert_eq!(held.len() + refused, PEERS);
    assert!(held.len() * SENT * FRAGMENT <= BUDGET + held.len() * 64 * 1024);
    assert_eq!(budget.refused(), refused as u64);

    // Meanwhile a new connection with small messages is served as usual.
    let mut client = connect(&server.url("/ws")).await;
    round_trip(&mut client, "still served").await;

    // The held peers finish their messages and get them back whole.
    for (peer, stream) in &mut held {
        let last = vec![*peer as u8; FRAGMENT];
        stream
            .write_all(&raw_frame(0x80, &last, true))
            .await
            .expect("last fragment");
        let (first, payload) = loop {
            let (first, payload) = server_frame(stream).await;
            if first & 0x0f != 0xA {
                break (first, payload);
            }
        };
        assert_eq!(
            first, 0x82,
            "the whole message comes back as one binary frame"
        );
        assert_eq!(payload.len(), (SENT + 1) * FRAGMENT);
        assert!(payload.iter().all(|byte| *byte == *peer as u8));
    }
    drop(held);
    drop(client);
    tokio::time::timeout(WAIT, async {
        while budget.in_use() != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every connection gives its share back");
}
