//! The Python environment of the grpcio client tests: a virtual environment under the target
//! directory (`target/tmp/py-venv`) with `grpcio` and `grpcio-tools`, made the first time, so
//! `cargo test` alone sets everything up without touching the system's Python.
//!
//! Included by `tests/grpc_interop.rs` and `tests/grpc_todo.rs` with
//! `#[path = "common/python.rs"] mod python;`.
#![allow(dead_code, unreachable_pub)]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::process::Command;

/// How long one client script may run.
const CLIENT_DEADLINE: Duration = Duration::from_secs(120);

/// Making the venv and downloading grpcio's wheels, once per target directory.
const PYTHON_SETUP_DEADLINE: Duration = Duration::from_secs(600);

/// Whether `python3` can be started at all; the tests skip, with a message, when it cannot.
pub async fn python3_present() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .await
        .is_ok()
}

/// Where the test keeps its Python environment: under the target directory, so `cargo clean`
/// removes it and no system or user site is ever written to.
pub fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-venv")
}

/// Runs the client script `script` (a path under `tests/`) with the venv's interpreter and
/// `args`, and returns what it printed (stdout, stderr); fails the test (with its output, and how to reset a broken
/// venv) when it exits with an error or runs past two minutes.
pub async fn run_client(script: &str, args: &[&str]) -> (String, String) {
    let python = ensure_grpcio().await;
    let child = Command::new(&python)
        .arg(script)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start python3");
    let output = tokio::time::timeout(CLIENT_DEADLINE, child.wait_with_output())
        .await
        .expect("python client timed out")
        .expect("python client output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "python client failed ({}); a broken venv is fixed by deleting {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status,
        venv_dir().display()
    );
    (stdout, stderr)
}

/// Makes (once) a virtual environment with the packages the client needs, and returns its
/// interpreter. A venv whose install did not finish (no marker file) is made again. Shared by
/// tests/grpc_todo.rs, which includes this file; each test binary sets it up at most once.
pub async fn ensure_grpcio() -> PathBuf {
    static PYTHON: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    PYTHON.get_or_init(make_venv).await.clone()
}

async fn make_venv() -> PathBuf {
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
