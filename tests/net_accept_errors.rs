//! The accept loop's error policy: out of file descriptors (`EMFILE`), it backs off instead of
//! spinning, and serves again once descriptors are free. A binary of its own: it lowers the
//! process's descriptor limit, which would starve any test running beside it.
#![cfg(all(target_os = "linux", feature = "ws"))]

mod common;

use std::time::Duration;

use common::*;
use tokio::net::{TcpListener, TcpStream};
use wsgrpc::ws::{Message, Server, SessionHandle, handler_fn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_backs_off_instead_of_spinning_and_recovers() {
    // Clients connect before the server starts, so their handshakes complete in the kernel's
    // backlog and their descriptors exist before the limit is lowered.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let mut waiting = Vec::new();
    for _ in 0..20 {
        waiting.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // Opened now: while descriptors are exhausted, no file can be opened.
    let mut stat = std::fs::File::open("/proc/self/stat").expect("stat");
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("nofile limit");
    let open = std::fs::read_dir("/proc/self/fd")
        .expect("fd table")
        .count() as u64;
    // Room for three accepted sockets, then every accept fails with EMFILE.
    rlimit::setrlimit(rlimit::Resource::NOFILE, open + 3, hard).expect("lower the limit");

    let (handle, task) = spawn_server(
        Server::new(handler_fn(
            |session: SessionHandle, message: Message| async move { session.send(message).await },
        )),
        listener,
    );
    tokio::time::timeout(WAIT, async {
        let mut watch = handle.watch_connections();
        let _ = watch.wait_for(|live| *live >= 3).await;
    })
    .await
    .expect("three connections accepted before the limit");

    // With the descriptors gone, a loop that retried at once would burn a core. Measure the
    // process's CPU time over a window: the backoff keeps it near zero.
    let before = process_cpu(&mut stat);
    let window = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = process_cpu(&mut stat) - before;
    let elapsed = window.elapsed();
    assert!(
        used < elapsed / 3,
        "accept loop used {used:?} of CPU in {elapsed:?} while out of descriptors"
    );

    // Descriptors come back: the server accepts and serves again.
    drop(waiting);
    let mut client = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(Ok((client, _))) = tokio::time::timeout(
                Duration::from_millis(500),
                tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
            )
            .await
            {
                break client;
            }
        }
    })
    .await
    .expect("served again once descriptors are free");
    rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard).expect("restore the limit");
    round_trip(&mut client, "back").await;
    handle.shutdown();
    let _ = tokio::time::timeout(WAIT, task).await;
}

/// User plus system CPU time of this process (all threads), from `/proc/self/stat`.
fn process_cpu(file: &mut std::fs::File) -> Duration {
    use std::io::{Read, Seek};
    let mut stat = String::new();
    file.rewind().expect("rewind");
    file.read_to_string(&mut stat).expect("read stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}
