//! A client in another language: Python's `grpcio`, with stubs generated from the standard
//! helloworld.proto, calls all three methods. The test installs `grpcio` and `grpcio-tools` with
//! pip when they are missing, so `cargo test` alone sets everything up; it is skipped, with a
//! message, only when `python3` is absent.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use std::{process::Stdio, time::Duration};

use grpc_common::TestServer;
use tokio::process::Command;
use wsgrpc::grpc::{DEFAULT_STREAM_REPLIES, GrpcServer};

/// Python starts, compiles the proto and makes four calls; generous for a cold CI machine.
const PYTHON_DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn python_grpcio_client_works() {
    if Command::new("python3")
        .arg("--version")
        .output()
        .await
        .is_err()
    {
        eprintln!("SKIPPED python_grpcio_client_works: python3 is not installed");
        return;
    }
    ensure_grpcio().await;
    let server = TestServer::start(GrpcServer::new()).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc_interop.py");
    let child = Command::new("python3")
        .arg(script)
        .arg(server.addr.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start python3");
    let output = tokio::time::timeout(PYTHON_DEADLINE, child.wait_with_output())
        .await
        .expect("python client timed out")
        .expect("python client output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python client failed ({}); is grpcio installed? `python3 -m pip install grpcio grpcio-tools`\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );

    let lines: Vec<&str> = stdout.lines().collect();
    let mut expected = vec!["unary: Hello world".to_owned()];
    expected.extend(std::iter::repeat_n(
        "server-stream: Hello stream".to_owned(),
        DEFAULT_STREAM_REPLIES,
    ));
    expected.push("bidi: Hello ada".to_owned());
    expected.push("bidi: Hello grace".to_owned());
    expected.push("empty-name: INVALID_ARGUMENT".to_owned());
    assert_eq!(lines, expected, "stderr:\n{stderr}");
}

/// Installs the Python packages the client needs, if they are not importable yet.
async fn ensure_grpcio() {
    if grpcio_importable().await {
        return;
    }
    // Debian's Python refuses to install into the system site without the second flag.
    for extra in [&[][..], &["--break-system-packages"][..]] {
        let install = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(extra)
            .args(["grpcio", "grpcio-tools"])
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .output();
        let installed = tokio::time::timeout(PYTHON_DEADLINE, install).await;
        if matches!(installed, Ok(Ok(ref output)) if output.status.success())
            && grpcio_importable().await
        {
            return;
        }
    }
    panic!(
        "could not install grpcio and grpcio-tools with pip (`python3 -m pip install grpcio grpcio-tools`)"
    );
}

async fn grpcio_importable() -> bool {
    Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .output()
        .await
        .is_ok_and(|output| output.status.success())
}
