//! A client in another language: Python's `grpcio`, with stubs generated from the standard
//! helloworld.proto, calls all three methods. The test makes its own virtual environment under the
//! target directory (`target/tmp/py-venv`) and installs `grpcio` and `grpcio-tools` there the
//! first time, so `cargo test` alone sets everything up without touching the system's Python; it
//! is skipped, with a message, only when `python3` is absent.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;
#[path = "common/python.rs"]
mod python;

use grpc_common::TestServer;
use python::run_client;
use wsgrpc::grpc::{DEFAULT_STREAM_REPLIES, GrpcServer};

#[tokio::test]
async fn python_grpcio_client_works() {
    if !python::python3_present().await {
        eprintln!("SKIPPED python_grpcio_client_works: python3 is not installed");
        return;
    }
    let server = TestServer::start(GrpcServer::new()).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc_interop.py");
    let (stdout, stderr) = run_client(script, &[&server.addr.to_string()]).await;

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
