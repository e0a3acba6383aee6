#!/usr/bin/env bash
# Builds examples the way a user copies them: each one into a fresh crate made with `cargo new`,
# with exactly the `[dependencies]` its `//!` header lists (the ```toml block), its `build.rs`
# when the header has one (a ```rust,build.rs block; then `proto/` is copied too) and `wsgrpc`
# pointed at this checkout. Then ping_pong, built against `wsgrpc` with only the `ws` feature,
# is started on a free port and answers one WebSocket message.
#
# Usage: .ci/example-crates.sh [EXAMPLE...]   (default: ping_pong chat greeter_server)
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
root=$checkout/target/example-crates
# One target directory for all of them and the checkout: the copies share most dependencies.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$checkout/target}
examples=("$@")
[ ${#examples[@]} -gt 0 ] || examples=(ping_pong chat greeter_server)

# The ```toml block of an example's header, without the `//! ` prefix.
toml_block() {
  sed -n '/^\/\/! ```toml$/,/^\/\/! ```$/p' "$1" | sed -e '1d' -e '$d' -e 's|^//! \{0,1\}||'
}

for example in "${examples[@]}"; do
  source_file=examples/$example.rs
  dir=$root/$example
  rm -rf "$dir"
  mkdir -p "$root"
  cargo new --quiet --vcs none --bin --name "$example" "$dir"
  block=$(toml_block "$source_file")
  if ! grep -q '^wsgrpc = ' <<<"$block"; then
    echo "$source_file: no \`wsgrpc = ...\` line in its \`\`\`toml header block" >&2
    exit 1
  fi
  {
    # cargo new ends the manifest with an empty [dependencies] table; the block brings its own.
    sed '/^\[dependencies\]$/,$d' "$dir/Cargo.toml"
    sed -E "s|^wsgrpc = \{ version = \"[^\"]*\"|wsgrpc = { path = \"$checkout\"|" <<<"$block"
    echo
    echo '[workspace]'
  } >"$dir/Cargo.toml.new"
  mv "$dir/Cargo.toml.new" "$dir/Cargo.toml"
  cp "$source_file" "$dir/src/main.rs"
  # An example with a proto of its own carries its build.rs in a ```rust,build.rs header block,
  # as the README tells users to write it; the protos come along.
  build_rs=$(sed -n '/^\/\/! ```rust,build.rs$/,/^\/\/! ```$/p' "$source_file" \
    | sed -e '1d' -e '$d' -e 's|^//! \{0,1\}||')
  if [ -n "$build_rs" ]; then
    printf '%s\n' "$build_rs" >"$dir/build.rs"
    cp -r proto "$dir/proto"
  fi
  # Start from the versions the checkout is tested with (cargo drops what the copy does not use).
  cp Cargo.lock "$dir/Cargo.lock"
  echo "== $example: $(grep '^wsgrpc = ' "$dir/Cargo.toml")"
  cargo build --quiet --manifest-path "$dir/Cargo.toml"
done

# ping_pong must also serve: start it on a free port, read the URL it prints, exchange one message.
if [[ " ${examples[*]} " == *" ping_pong "* ]]; then
  timeout 60 python3 - "$CARGO_TARGET_DIR/debug/ping_pong" <<'PY'
import base64, os, re, select, socket, subprocess, sys, time

server = subprocess.Popen(
    [sys.argv[1], "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0
)
try:
    # Wait (at most 30 s) for the line with the URL it listens on; port 0 picked a free port.
    deadline, seen, port = time.monotonic() + 30, b"", None
    while port is None:
        ready, _, _ = select.select([server.stdout], [], [], max(0, deadline - time.monotonic()))
        chunk = os.read(server.stdout.fileno(), 4096) if ready else b""
        if not chunk:
            sys.exit(f"ping_pong printed no ws:// URL (exit status {server.poll()}): {seen!r}")
        seen += chunk
        match = re.search(rb"ws://127\.0\.0\.1:(\d+)/", seen)
        port = int(match.group(1)) if match else None

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    buffer = b""

    def read(n):
        global buffer
        while len(buffer) < n:
            chunk = sock.recv(4096)
            if not chunk:
                sys.exit(f"connection closed early; received so far: {buffer!r}")
            buffer += chunk
        data, buffer = buffer[:n], buffer[n:]
        return data

    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit(f"connection closed during the handshake: {buffer!r}")
        buffer += chunk
    head, buffer = buffer.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        sys.exit(f"expected 101, got: {head!r}")

    def send(opcode, payload):
        # RFC 6455 section 5.3: a client masks every frame it sends.
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    send(0x1, b"hello")
    first, second = read(2)
    reply = read(second & 0x7F)
    if first != 0x81 or reply != b"Pong":
        sys.exit(f"expected a text frame 'Pong', got first byte {first:#x} and {reply!r}")
    send(0x8, (1000).to_bytes(2, "big"))
    print(f"ping_pong (wsgrpc with only `ws`) served on port {port}: hello -> Pong")
finally:
    server.kill()
    server.wait()
PY
fi
