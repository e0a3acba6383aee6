//! The connection-level knobs of `grpc::Config`, each observed on the wire: maximum connection age
//! and its grace (GOAWAY, the call in flight finishes, then the connection closes), TCP keepalive
//! (read back from the accepted socket), the HTTP/2 SETTINGS the server announces (frame size,
//! header list size, adaptive window), the header list limit enforced, the rapid-reset limit, and
//! HTTP/1.1 on the gRPC port.
//!
//! Most tests speak raw HTTP/2 frames over a `TcpStream` (RFC 9113), so that what is checked is
//! what the server put on the wire, not what a client library made of it.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use std::{io, net::SocketAddr, time::Duration};

use grpc_common::{Gate, WAIT, within};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};
use tonic::{metadata::MetadataValue, transport::Endpoint};
use wsgrpc::{
    grpc::{
        Config, Greet, GreeterService, GrpcServer,
        pb::{HelloRequest, greeter_client::GreeterClient},
    },
    net::{Listener, TcpKeepalive},
};

// --- a server on a listener the test can watch ---

/// A TCP listener that hands the test a duplicate of every accepted socket, so the test can count
/// connections and read back the socket options the server set (a duplicate descriptor shares the
/// socket). Drop the duplicates promptly: while one is open the socket is never closed.
struct Recording {
    inner: TcpListener,
    accepted: Option<mpsc::Sender<socket2::Socket>>,
}

impl Listener for Recording {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> io::Result<(TcpStream, Option<SocketAddr>)> {
        let (stream, peer) = self.inner.accept().await?;
        if let Some(accepted) = &self.accepted {
            let _ = accepted.try_send(socket2::SockRef::from(&stream).try_clone()?);
        }
        Ok((stream, Some(peer)))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn configure(io: &TcpStream, nodelay: bool) -> io::Result<()> {
        <TcpListener as Listener>::configure(io, nodelay)
    }

    fn set_keepalive(io: &TcpStream, keepalive: &TcpKeepalive) -> io::Result<()> {
        <TcpListener as Listener>::set_keepalive(io, keepalive)
    }
}

struct Running {
    addr: SocketAddr,
    accepted: mpsc::Receiver<socket2::Socket>,
    _stop: oneshot::Sender<()>,
}

impl Running {
    async fn next_accepted(&mut self) -> socket2::Socket {
        within("the server to accept a connection", self.accepted.recv())
            .await
            .expect("listener gone")
    }
}

/// Serves `greeter` with `config` on a fresh loopback port.
async fn start<G: Greet>(greeter: GreeterService<G>, config: Config) -> Running {
    serve(greeter, config, false).await
}

/// As [`start`], and [`Running::next_accepted`] hands out each accepted socket.
async fn start_recording<G: Greet>(greeter: GreeterService<G>, config: Config) -> Running {
    serve(greeter, config, true).await
}

async fn serve<G: Greet>(greeter: GreeterService<G>, config: Config, record: bool) -> Running {
    let inner = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = inner.local_addr().expect("address");
    let (sender, accepted) = mpsc::channel(64);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = GrpcServer::with_greeter(greeter).config(config);
    tokio::spawn(server.serve(
        Recording {
            inner,
            accepted: record.then_some(sender),
        },
        async {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        accepted,
        _stop: stop,
    }
}

// --- raw HTTP/2 (RFC 9113) ---

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const ENHANCE_YOUR_CALM: u32 = 0xb;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut bytes = vec![length[1], length[2], length[3], kind, flags];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// An HPACK literal header field without indexing, no Huffman coding (RFC 7541 section 6.2.2);
/// names and values here are shorter than 127 bytes.
fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0);
    block.push(u8::try_from(name.len()).unwrap());
    block.extend_from_slice(name.as_bytes());
    block.push(u8::try_from(value.len()).unwrap());
    block.extend_from_slice(value.as_bytes());
}

/// The header block of a `SayHello` call.
fn say_hello_headers() -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/helloworld.Greeter/SayHello"),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        literal(&mut block, name, value);
    }
    block
}

/// A length-prefixed `HelloRequest { name }` (field 1, length-delimited).
fn say_hello_message(name: &str) -> Vec<u8> {
    let mut message = vec![0x0a, u8::try_from(name.len()).unwrap()];
    message.extend_from_slice(name.as_bytes());
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&message);
    framed
}

struct RawH2 {
    stream: TcpStream,
}

impl RawH2 {
    /// Connects and sends the client preface and an empty SETTINGS frame.
    async fn connect(addr: SocketAddr) -> RawH2 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        stream.write_all(&hello).await.expect("preface");
        RawH2 { stream }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// The next frame, or `None` once the server closed the connection (or reset it).
    async fn read(&mut self) -> Option<Frame> {
        let mut head = [0u8; 9];
        within("a frame", self.stream.read_exact(&mut head))
            .await
            .ok()?;
        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; length];
        within("a frame payload", self.stream.read_exact(&mut payload))
            .await
            .ok()?;
        let frame = Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload,
        };
        // Acknowledge as a client must (RFC 9113 sections 6.5.3 and 6.7): hyper's graceful
        // shutdown waits for the PING it sends after the first GOAWAY.
        if frame.flags & ACK == 0 && (frame.kind == PING || frame.kind == SETTINGS) {
            let payload = if frame.kind == PING {
                &frame.payload[..]
            } else {
                &[]
            };
            // The server may have closed already; the next read tells.
            let _ = self
                .stream
                .write_all(&self::frame(frame.kind, ACK, 0, payload))
                .await;
        }
        Some(frame)
    }

    /// Reads frames until one matches `wanted`, answering nothing; panics at the end of the
    /// connection.
    async fn read_until(&mut self, what: &str, wanted: impl Fn(&Frame) -> bool) -> Frame {
        loop {
            match self.read().await {
                Some(frame) if wanted(&frame) => return frame,
                Some(_) => {}
                None => panic!("connection ended before {what}"),
            }
        }
    }

    /// The server's first SETTINGS frame, as (identifier, value) pairs.
    async fn server_settings(&mut self) -> Vec<(u16, u32)> {
        let settings = self
            .read_until("the server's SETTINGS", |frame| {
                frame.kind == SETTINGS && frame.flags & ACK == 0
            })
            .await;
        settings
            .payload
            .chunks_exact(6)
            .map(|entry| {
                (
                    u16::from_be_bytes([entry[0], entry[1]]),
                    u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]),
                )
            })
            .collect()
    }
}

fn setting(settings: &[(u16, u32)], identifier: u16) -> Option<u32> {
    settings
        .iter()
        .find(|(id, _)| *id == identifier)
        .map(|(_, value)| *value)
}

/// GOAWAY's last stream id and error code (RFC 9113 section 6.8).
fn goaway(frame: &Frame) -> (u32, u32) {
    let word = |at: usize| u32::from_be_bytes(frame.payload[at..at + 4].try_into().unwrap());
    (word(0) & 0x7fff_ffff, word(4))
}

// --- maximum connection age ---

#[tokio::test]
async fn after_max_connection_age_goaway_then_the_call_in_flight_completes_then_close() {
    let (gate, mut control) = Gate::new();
    let config = Config::default()
        .max_connection_age(Duration::from_millis(300))
        .max_connection_age_grace(WAIT);
    let mut server = start_recording(GreeterService::new(gate), config).await;
    let mut h2 = RawH2::connect(server.addr).await;
    drop(server.next_accepted().await);
    h2.send(&frame(HEADERS, END_HEADERS, 1, &say_hello_headers()))
        .await;
    h2.send(&frame(DATA, END_STREAM, 1, &say_hello_message("in flight")))
        .await;
    assert_eq!(control.entered().await, "in flight");

    // The age passes while the call is held: GOAWAY NO_ERROR, which does not refuse stream 1.
    let away = h2.read_until("GOAWAY", |frame| frame.kind == GOAWAY).await;
    let (last_stream, code) = goaway(&away);
    assert_eq!(code, 0, "GOAWAY NO_ERROR");
    assert!(last_stream >= 1, "the call in flight is not refused");

    // The call in flight completes on the old connection within the grace...
    control.release(1);
    let reply = h2
        .read_until("the reply", |frame| frame.kind == DATA && frame.stream == 1)
        .await;
    assert!(
        reply
            .payload
            .windows(b"Hello in flight".len())
            .any(|window| window == b"Hello in flight"),
        "{reply:?}"
    );
    h2.read_until("the trailers", |frame| {
        frame.kind == HEADERS && frame.stream == 1 && frame.flags & END_STREAM != 0
    })
    .await;
    // ...and then the server closes the connection.
    while let Some(frame) = h2.read().await {
        assert_ne!(frame.stream, 1, "nothing more on stream 1: {frame:?}");
    }
}

#[tokio::test]
async fn a_call_still_running_after_the_grace_loses_its_connection() {
    let (gate, mut control) = Gate::new();
    let config = Config::default()
        .max_connection_age(Duration::from_millis(200))
        .max_connection_age_grace(Duration::from_millis(200));
    let mut server = start_recording(GreeterService::new(gate), config).await;
    let mut h2 = RawH2::connect(server.addr).await;
    drop(server.next_accepted().await);
    h2.send(&frame(HEADERS, END_HEADERS, 1, &say_hello_headers()))
        .await;
    h2.send(&frame(DATA, END_STREAM, 1, &say_hello_message("stuck")))
        .await;
    assert_eq!(control.entered().await, "stuck");
    h2.read_until("GOAWAY", |frame| frame.kind == GOAWAY).await;
    // Never released: the connection closes under it, with no reply on stream 1.
    while let Some(frame) = h2.read().await {
        assert!(
            !(frame.stream == 1 && frame.kind == DATA),
            "the stuck call never replied: {frame:?}"
        );
    }
}

#[tokio::test]
async fn a_tonic_client_moves_to_a_new_connection_after_the_age() {
    let config = Config::default()
        .max_connection_age(Duration::from_millis(200))
        .max_connection_age_grace(WAIT);
    let mut server = start_recording(GreeterService::default(), config).await;
    let channel = within(
        "connect",
        Endpoint::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect(),
    )
    .await
    .expect("connect");
    drop(server.next_accepted().await);
    let mut client = GreeterClient::new(channel);
    let mut succeeded = 0u32;
    // Calls keep going; once the first connection is past its age, the channel reconnects.
    // tonic's client fails the calls it starts between receiving GOAWAY and seeing the old
    // connection end (grpc-go's client retries those transparently): those may fail, as
    // UNAVAILABLE or CANCELLED, and nothing else may.
    let second = within("a second connection", async {
        loop {
            let name = format!("call {succeeded}");
            match client.say_hello(HelloRequest { name: name.clone() }).await {
                Ok(reply) => {
                    assert_eq!(reply.into_inner().message, format!("Hello {name}"));
                    succeeded += 1;
                }
                Err(status) => assert!(
                    matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::Cancelled
                    ),
                    "{status:?}"
                ),
            }
            if let Ok(second) = server.accepted.try_recv() {
                return second;
            }
        }
    })
    .await;
    drop(second);
    assert!(succeeded > 0, "calls succeeded on the first connection");
    // The channel serves calls on the new connection.
    let reply = within(
        "a call on the new connection",
        client.say_hello(HelloRequest {
            name: "after".to_owned(),
        }),
    )
    .await
    .expect("call on the new connection");
    assert_eq!(reply.into_inner().message, "Hello after");
}

// --- TCP keepalive ---

#[tokio::test]
async fn tcp_keepalive_settings_are_set_on_the_accepted_socket() {
    let config = Config::default()
        .tcp_keepalive(Some(Duration::from_secs(42)))
        .tcp_keepalive_interval(Some(Duration::from_secs(7)))
        .tcp_keepalive_retries(Some(3));
    let mut server = start_recording(GreeterService::default(), config).await;
    let _client = TcpStream::connect(server.addr).await.expect("connect");
    let accepted = server.next_accepted().await;
    // The accept loop sets the options right after accept; the duplicate was made before.
    within("the options to be set", async {
        while !accepted.keepalive().expect("SO_KEEPALIVE") {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(
        accepted.tcp_keepalive_time().unwrap(),
        Duration::from_secs(42)
    );
    assert_eq!(
        accepted.tcp_keepalive_interval().unwrap(),
        Duration::from_secs(7)
    );
    assert_eq!(accepted.tcp_keepalive_retries().unwrap(), 3);
}

#[tokio::test]
async fn without_tcp_keepalive_the_socket_has_none() {
    let mut server = start_recording(GreeterService::default(), Config::default()).await;
    let mut client = GreeterClient::new(
        Endpoint::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
            .expect("connect"),
    );
    let accepted = server.next_accepted().await;
    // One call: the server has certainly configured the socket by the time it answers.
    client
        .say_hello(HelloRequest {
            name: "x".to_owned(),
        })
        .await
        .expect("call");
    assert!(!accepted.keepalive().unwrap());
    assert!(
        accepted.tcp_nodelay().unwrap(),
        "TCP_NODELAY is on by default"
    );
}

// --- HTTP/2 settings ---

#[tokio::test]
async fn frame_size_and_header_list_size_are_announced_in_settings() {
    let config = Config::default()
        .max_frame_size(Some(64 * 1024))
        .http2_max_header_list_size(Some(8 * 1024));
    let server = start(GreeterService::default(), config).await;
    let mut h2 = RawH2::connect(server.addr).await;
    let settings = h2.server_settings().await;
    assert_eq!(setting(&settings, SETTINGS_MAX_FRAME_SIZE), Some(64 * 1024));
    assert_eq!(
        setting(&settings, SETTINGS_MAX_HEADER_LIST_SIZE),
        Some(8 * 1024)
    );

    // Defaults: the protocol's 16 KiB frames (not announced, or announced as 16384) and hyper's
    // 16 KiB header list.
    let server = start(GreeterService::default(), Config::default()).await;
    let mut h2 = RawH2::connect(server.addr).await;
    let settings = h2.server_settings().await;
    assert!(matches!(
        setting(&settings, SETTINGS_MAX_FRAME_SIZE),
        None | Some(16_384)
    ));
    assert_eq!(
        setting(&settings, SETTINGS_MAX_HEADER_LIST_SIZE),
        Some(16 * 1024)
    );
}

#[tokio::test]
async fn adaptive_window_starts_from_the_protocol_window_and_probes_bandwidth() {
    let server = start(
        GreeterService::default(),
        Config::default().http2_adaptive_window(true),
    )
    .await;
    let mut h2 = RawH2::connect(server.addr).await;
    let settings = h2.server_settings().await;
    // BDP estimation starts from RFC 9113's 65,535-byte window (absent: that default) instead of
    // hyper's fixed 1 MiB.
    assert!(matches!(
        setting(&settings, SETTINGS_INITIAL_WINDOW_SIZE),
        None | Some(65_535)
    ));
    // Data received makes the server send a BDP PING.
    h2.send(&frame(HEADERS, END_HEADERS, 1, &say_hello_headers()))
        .await;
    h2.send(&frame(DATA, END_STREAM, 1, &say_hello_message("bdp")))
        .await;
    h2.read_until("a BDP PING", |frame| {
        frame.kind == PING && frame.flags & ACK == 0
    })
    .await;

    // Without it: hyper's 1 MiB stream window.
    let server = start(GreeterService::default(), Config::default()).await;
    let mut h2 = RawH2::connect(server.addr).await;
    let settings = h2.server_settings().await;
    assert_eq!(
        setting(&settings, SETTINGS_INITIAL_WINDOW_SIZE),
        Some(1024 * 1024)
    );
}

async fn call_with_header(addr: SocketAddr, bytes: usize) -> Result<String, tonic::Status> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut request = tonic::Request::new(HelloRequest {
        name: "big".to_owned(),
    });
    let value: MetadataValue<_> = "x".repeat(bytes).parse().unwrap();
    request.metadata_mut().insert("x-padding", value);
    GreeterClient::new(channel)
        .say_hello(request)
        .await
        .map(|reply| reply.into_inner().message)
}

#[tokio::test]
async fn a_header_list_over_the_limit_is_refused() {
    let config = Config::default().http2_max_header_list_size(Some(4 * 1024));
    let server = start(GreeterService::default(), config).await;
    let small = within("a small call", call_with_header(server.addr, 1024)).await;
    assert_eq!(small.expect("1 KiB header"), "Hello big");
    let refused = within("a big call", call_with_header(server.addr, 8 * 1024))
        .await
        .expect_err("8 KiB header over a 4 KiB limit");
    // HTTP 431 without grpc-status: UNKNOWN by the gRPC spec's HTTP status mapping.
    assert_eq!(refused.code(), tonic::Code::Unknown, "{refused:?}");
    assert!(refused.message().contains("431"), "{refused:?}");
    // The same header is fine under the default 16 KiB.
    let server = start(GreeterService::default(), Config::default()).await;
    let fine = within("a big call", call_with_header(server.addr, 8 * 1024)).await;
    assert_eq!(fine.expect("8 KiB header under 16 KiB"), "Hello big");
}

/// Opens `streams` streams and resets each at once, all in one write, so they are reset before
/// the server accepted them (the "rapid reset" attack, CVE-2023-44487). Returns the GOAWAY error
/// code the server ended with, if any.
async fn rapid_reset(addr: SocketAddr, streams: u32) -> Option<u32> {
    let mut h2 = RawH2::connect(addr).await;
    let headers = say_hello_headers();
    let mut flood = Vec::new();
    for index in 0..streams {
        let id = 1 + 2 * index;
        flood.extend(frame(HEADERS, END_HEADERS, id, &headers));
        flood.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes())); // CANCEL
    }
    // A PING after the flood: its ACK shows the server read everything without objecting.
    flood.extend(frame(PING, 0, 0, b"pingpong"));
    h2.send(&flood).await;
    loop {
        match h2.read().await? {
            frame if frame.kind == GOAWAY => return Some(goaway(&frame).1),
            frame if frame.kind == PING && frame.flags & ACK != 0 => return None,
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_rapid_reset_flood_beyond_the_limit_gets_enhance_your_calm() {
    let config = Config::default().max_pending_accept_reset_streams(Some(5));
    let server = start(GreeterService::default(), config).await;
    assert_eq!(rapid_reset(server.addr, 100).await, Some(ENHANCE_YOUR_CALM));
    // A limit above the flood lets the same flood through.
    let config = Config::default().max_pending_accept_reset_streams(Some(1000));
    let server = start(GreeterService::default(), config).await;
    assert_eq!(rapid_reset(server.addr, 100).await, None);
}

// --- HTTP/1.1 on the gRPC port ---

async fn http1_answer(addr: SocketAddr) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"POST /helloworld.Greeter/SayHello HTTP/1.1\r\nhost: localhost\r\n\
              content-type: application/grpc\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        )
        .await
        .expect("request");
    let mut answer = Vec::new();
    // Until the server closes (or resets) the connection.
    let _ = within(
        "the server to answer or close",
        stream.read_to_end(&mut answer),
    )
    .await;
    answer
}

#[tokio::test]
async fn http1_is_refused_by_default_and_served_with_accept_http1() {
    let server = start(GreeterService::default(), Config::default()).await;
    let refused = http1_answer(server.addr).await;
    assert!(
        !refused.starts_with(b"HTTP/1.1"),
        "no HTTP/1.1 answer: {:?}",
        String::from_utf8_lossy(&refused)
    );

    let server = start(
        GreeterService::default(),
        Config::default().accept_http1(true),
    )
    .await;
    let served = http1_answer(server.addr).await;
    assert!(
        served.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&served)
    );
}
