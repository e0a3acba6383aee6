//! A client in another language: Python's `grpcio`, with stubs generated from the standard
//! helloworld.proto, calls all three methods. The test makes its own virtual environment under the
//! target directory (`target/tmp/py-venv`) and installs `grpcio` and `grpcio-tools` there the
//! first time, so `cargo test` alone sets everything up without touching the system's Python; it
//! is skipped, with a message, only when `python3` is absent.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use grpc_common::TestServer;
use tokio::process::Command;
use wsgrpc::grpc::{DEFAULT_STREAM_REPLIES, GrpcServer};

/// Python starts, compiles the proto and makes four calls; generous for a cold CI machine.
const PYTHON_DEADLINE: Duration = Duration::from_secs(120);
/// Making the venv and downloading grpcio's wheels, once per target directory.
const PYTHON_SETUP_DEADLINE: Duration = Duration::from_secs(600);

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
    let python = ensure_grpcio().await;
    let server = TestServer::start(GrpcServer::new()).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc_interop.py");
    let child = Command::new(&python)
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
        "python client failed ({}); a broken venv is fixed by deleting {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status,
        venv_dir().display()
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

/// Where the test keeps its Python environment: under the target directory, so `cargo clean`
/// removes it and no system or user site is ever written to.
fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-venv")
}

/// Makes (once) a virtual environment with the packages the client needs, and returns its
/// interpreter. A venv whose install did not finish (no marker file) is made again.
async fn ensure_grpcio() -> PathBuf {
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    let ready = venv.join("wsgrpc-ready");
    if ready.exists() && grpcio_importable(&python).await {
        return python;
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).expect("remove the unfinished python venv");
    }
    run_python(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "python3 -m venv (Debian and Ubuntu: apt-get install python3-venv)",
    )
    .await;
    run_python(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "grpcio",
                "grpcio-tools",
            ])
            .env("PIP_ROOT_USER_ACTION", "ignore"),
        "pip install grpcio grpcio-tools in the test venv",
    )
    .await;
    assert!(
        grpcio_importable(&python).await,
        "grpcio was installed into {} but cannot be imported",
        venv.display()
    );
    std::fs::write(&ready, "grpcio grpcio-tools\n").expect("mark the python venv ready");
    python
}

/// Runs a setup step with the setup deadline; panics with its output when it fails.
async fn run_python(command: &mut Command, what: &str) {
    let output = tokio::time::timeout(PYTHON_SETUP_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out after {PYTHON_SETUP_DEADLINE:?}"))
        .unwrap_or_else(|error| panic!("{what}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn grpcio_importable(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import grpc, grpc_tools"])
        .output()
        .await
        .is_ok_and(|output| output.status.success())
}
