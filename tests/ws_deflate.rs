//! permessage-deflate (RFC 7692) end to end: negotiation as a raw client sees it, compressed
//! frames on the wire both ways, the size threshold, a deflate bomb answered with 1009 within
//! bounded memory, round trips between the crate's own client and server with and without context
//! takeover, and interop with python's `websockets` (which compresses by default), run in a venv
//! under the target directory.
#![cfg(all(feature = "deflate", feature = "client"))]

mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use wsgrpc::client::Client;
use wsgrpc::ws::{
    Config, DeflateConfig, Handler, MemoryBudget, Message, PerMessageDeflate, Session,
    SessionHandle, handler_fn,
};

use common::{WAIT, read_http_head, start};

fn echo() -> impl Handler {
    handler_fn(
        |session: SessionHandle, message: Message| async move { session.send(message).await },
    )
}

/// Upgrades by hand with `offer` in `Sec-WebSocket-Extensions`; returns the stream and the head.
async fn raw_connect_offering(addr: SocketAddr, offer: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.expect("tcp connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Extensions: {offer}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let head = read_http_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "expected 101, got {head}");
    (stream, head)
}

fn extensions_header(head: &str) -> Option<String> {
    head.lines()
        .find_map(|line| line.strip_prefix("sec-websocket-extensions: "))
        .map(str::to_owned)
}

/// A masked client frame with `rsv1` as given.
fn client_frame(opcode: u8, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | if rsv1 { 0x40 } else { 0 } | opcode];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=65535 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    let key = [0xa1, 0xb2, 0xc3, 0xd4];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// One server frame: first byte (FIN, RSV, opcode) and payload.
async fn server_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 2];
    tokio::time::timeout(WAIT, stream.read_exact(&mut header))
        .await
        .expect("frame in time")
        .expect("frame");
    assert_eq!(header[1] & 0x80, 0, "servers do not mask");
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
    stream.read_exact(&mut payload).await.expect("payload");
    (header[0], payload)
}

/// Raw deflate with a sync flush, minus the trailing `00 00 ff ff` (RFC 7692 section 7.2.1).
fn compress(compressor: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let mut consumed = 0;
    loop {
        let before = compressor.total_in();
        compressor
            .compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .expect("compress");
        consumed += (compressor.total_in() - before) as usize;
        if consumed == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(decompressor: &mut Decompress, data: &[u8]) -> Vec<u8> {
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(data.len() * 8 + 1024);
    decompressor
        .decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .expect("valid deflate from the server");
    out
}

#[tokio::test]
async fn negotiated_compression_goes_both_ways_on_the_wire() {
    let seen: Arc<Mutex<Option<Option<PerMessageDeflate>>>> = Arc::default();
    struct Echo(Arc<Mutex<Option<Option<PerMessageDeflate>>>>);
    impl Handler for Echo {
        async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
            *self.0.lock().unwrap() = Some(session.compression());
            session.send(message).await
        }
    }
    // Context takeover on both sides, so that repeated text gets cheaper.
    let takeover = DeflateConfig::default()
        .server_no_context_takeover(false)
        .client_no_context_takeover(false);
    let server = start(Echo(seen.clone()), Config::default().deflate(takeover)).await;
    let (mut stream, head) = raw_connect_offering(
        server.addr,
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10",
    )
    .await;
    assert_eq!(
        extensions_header(&head).as_deref(),
        Some("permessage-deflate; server_max_window_bits=10"),
        "{head}"
    );

    let text = "{\"user\":\"ada\",\"text\":\"hello\"} ".repeat(40);
    let mut compressor = Compress::new(Compression::default(), false);
    let mut decompressor = Decompress::new(false);
    for round in 0..3 {
        let compressed = compress(&mut compressor, text.as_bytes());
        assert!(compressed.len() < text.len() / 4);
        stream
            .write_all(&client_frame(0x1, true, &compressed))
            .await
            .expect("write");
        let (first, payload) = server_frame(&mut stream).await;
        assert_eq!(first, 0x80 | 0x40 | 0x1, "a final, compressed text frame");
        assert!(
            payload.len() < text.len() / 4,
            "round {round}: {} bytes for {}",
            payload.len(),
            text.len()
        );
        assert_eq!(inflate(&mut decompressor, &payload), text.as_bytes());
    }
    let agreed = seen.lock().unwrap().expect("a message was handled");
    let agreed = agreed.expect("the session knows deflate was agreed");
    assert_eq!(agreed.server_max_window_bits, 10);
    assert!(!agreed.server_no_context_takeover);

    // Below the threshold (64 bytes by default) a message goes out plain, RSV1 clear.
    stream
        .write_all(&client_frame(0x1, false, b"short"))
        .await
        .expect("write");
    let (first, payload) = server_frame(&mut stream).await;
    assert_eq!(first, 0x81);
    assert_eq!(payload, b"short");
}

#[tokio::test]
async fn offers_that_cannot_be_honoured_are_declined() {
    let server = start(echo(), Config::default()).await;
    for offer in [
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; unknown_parameter",
        "permessage-deflate; client_max_window_bits=16",
        "x-webkit-deflate-frame",
    ] {
        let (mut stream, head) = raw_connect_offering(server.addr, offer).await;
        assert_eq!(extensions_header(&head), None, "{offer} should be declined");
        // Without deflate, RSV1 is a protocol error (1002).
        stream
            .write_all(&client_frame(0x1, true, b"\x02\x00"))
            .await
            .expect("write");
        let (first, payload) = server_frame(&mut stream).await;
        assert_eq!(first & 0x0f, 0x8);
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1002);
    }
    // The first acceptable offer of several wins.
    let (_stream, head) = raw_connect_offering(
        server.addr,
        "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_no_context_takeover",
    )
    .await;
    assert_eq!(
        extensions_header(&head).as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    // Disabled in the config: offers are not answered.
    let plain = start(echo(), Config::default().deflate(DeflateConfig::disabled())).await;
    let (_stream, head) = raw_connect_offering(plain.addr, "permessage-deflate").await;
    assert_eq!(extensions_header(&head), None);
}

#[tokio::test]
async fn a_deflate_bomb_gets_1009_within_bounded_memory() {
    let budget = MemoryBudget::new(4 << 20);
    let limit = 1 << 20;
    let server = start(
        echo(),
        Config::default()
            .max_message_size(limit)
            .memory_budget(budget.clone()),
    )
    .await;
    let (mut stream, _) = raw_connect_offering(server.addr, "permessage-deflate").await;
    // 64 MiB of zeros compress to about 64 KiB: one small frame.
    let mut compressor = Compress::new(Compression::best(), false);
    let bomb = compress(&mut compressor, &vec![0u8; 64 << 20]);
    assert!(bomb.len() < 128 * 1024, "bomb is {} bytes", bomb.len());
    stream
        .write_all(&client_frame(0x2, true, &bomb))
        .await
        .expect("write");
    let (first, payload) = server_frame(&mut stream).await;
    assert_eq!(first & 0x0f, 0x8, "a close frame");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1009);
    // The server stopped inflating within the limit: it never needed more of the 4 MiB budget
    // than the 1 MiB message limit (plus one step), so nothing was refused for memory, and
    // everything is given back.
    assert_eq!(budget.refused(), 0);
    server.handle.connections.close_all();
    tokio::time::timeout(WAIT, async {
        while budget.in_use() != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the connection gives its budget back");
}

/// The client side's handler: records what was agreed and forwards what arrives.
struct Collect {
    agreed: Arc<Mutex<Option<PerMessageDeflate>>>,
    received: tokio::sync::mpsc::Sender<Message>,
}

impl Handler for Collect {
    async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
        *self.agreed.lock().unwrap() = session.compression();
        Ok(())
    }

    async fn on_message(&self, _session: &mut Session, message: Message) -> wsgrpc::Result<()> {
        let _ = self.received.send(message).await;
        Ok(())
    }
}

/// The crate's client against the crate's server, `config` on both sides: every message comes
/// back intact, and the client says what was agreed.
async fn client_round_trips(config: Config) -> PerMessageDeflate {
    let server = start(echo(), config.clone()).await;
    let (sender, mut received) = tokio::sync::mpsc::channel(16);
    let agreed = Arc::new(Mutex::new(None));
    let client = Client::builder(format!("ws://{}/ws", server.addr))
        .config(config)
        .connect(Collect {
            agreed: agreed.clone(),
            received: sender,
        })
        .await
        .expect("connect");
    let json = "{\"kind\":\"greeting\",\"text\":\"hello there, hello there\"}".repeat(8);
    let messages = vec![
        Message::text(json.clone()),
        Message::binary(vec![7u8; 100_000]),
        Message::text("tiny"),
        Message::text(json),
        Message::binary(
            (0..70_000u32)
                .map(|i| (i * 7919 % 251) as u8)
                .collect::<Vec<u8>>(),
        ),
    ];
    for message in &messages {
        client.send(message.clone()).await.expect("send");
    }
    for message in &messages {
        let echoed = tokio::time::timeout(WAIT, received.recv())
            .await
            .expect("echo in time")
            .expect("echo");
        assert_eq!(&echoed, message);
    }
    let agreed = *agreed.lock().unwrap();
    agreed.expect("deflate agreed")
}

#[tokio::test]
async fn crate_client_and_server_round_trip_with_context_takeover() {
    let takeover = DeflateConfig::default()
        .server_no_context_takeover(false)
        .client_no_context_takeover(false);
    let agreed = client_round_trips(Config::default().deflate(takeover)).await;
    assert!(!agreed.server_no_context_takeover && !agreed.client_no_context_takeover);
}

#[tokio::test]
async fn crate_client_and_server_round_trip_without_context_takeover() {
    let deflate = DeflateConfig::default()
        .server_no_context_takeover(true)
        .client_no_context_takeover(true)
        .server_max_window_bits(9)
        .client_max_window_bits(9)
        .threshold(0);
    let agreed = client_round_trips(Config::default().deflate(deflate)).await;
    assert!(agreed.server_no_context_takeover && agreed.client_no_context_takeover);
    assert_eq!(
        (agreed.server_max_window_bits, agreed.client_max_window_bits),
        (9, 9)
    );
}

// --- python `websockets`: a real, independent permessage-deflate implementation ---

fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-venv-websockets")
}

async fn ensure_websockets() -> Option<PathBuf> {
    if Command::new("python3")
        .arg("--version")
        .output()
        .await
        .is_err()
    {
        return None;
    }
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    let ready = venv.join("wsgrpc-ready");
    if ready.exists() {
        return Some(python);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).expect("remove the unfinished venv");
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .await
        .expect("python3 -m venv");
    assert!(
        made.success(),
        "python3 -m venv failed (apt-get install python3-venv)"
    );
    let installed = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        Command::new(&python)
            .args(["-m", "pip", "install", "-q", "websockets>=13"])
            .status(),
    )
    .await
    .expect("pip in time")
    .expect("pip");
    assert!(installed.success(), "pip install websockets failed");
    std::fs::File::create(&ready)
        .and_then(|mut file| file.write_all(b"websockets\n"))
        .expect("mark the venv ready");
    Some(python)
}

/// python's `websockets` client offers permessage-deflate by default; it sends compressible text,
/// reads the echo, and prints the extensions it agreed on.
const PYTHON_CLIENT: &str = r#"
import asyncio, sys
from websockets.asyncio.client import connect

async def main():
    async with connect(sys.argv[1]) as ws:
        names = [type(e).__name__ for e in ws.protocol.extensions]
        for i in range(5):
            text = ('{"n": %d, "text": "hello hello hello"} ' % i) * 50
            await ws.send(text)
            assert await ws.recv() == text
        data = bytes(range(256)) * 400
        await ws.send(data)
        assert await ws.recv() == data
        print(",".join(names))

asyncio.run(main())
"#;

#[tokio::test]
async fn python_websockets_client_compresses_with_the_server() {
    let Some(python) = ensure_websockets().await else {
        eprintln!("SKIPPED: python3 is not installed");
        return;
    };
    let seen: Arc<Mutex<Option<PerMessageDeflate>>> = Arc::default();
    struct Echo(Arc<Mutex<Option<PerMessageDeflate>>>);
    impl Handler for Echo {
        async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
            *self.0.lock().unwrap() = session.compression();
            Ok(())
        }
        async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
            session.send(message).await
        }
    }
    let server = start(Echo(seen.clone()), Config::default()).await;
    let output = tokio::time::timeout(
        WAIT * 3,
        Command::new(&python)
            .arg("-c")
            .arg(PYTHON_CLIENT)
            .arg(format!("ws://{}/ws", server.addr))
            .output(),
    )
    .await
    .expect("python client in time")
    .expect("python client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python client failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("PerMessageDeflate"), "extensions: {stdout}");
    assert!(
        seen.lock().unwrap().is_some(),
        "the server agreed on deflate"
    );
}
