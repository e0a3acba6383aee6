#!/usr/bin/env bash
# Builds the classic grpc-go greeter_server used as a baseline by
# `cargo bench --bench grpc --features grpc`, and installs the bench's load generator h2load
# (Debian's nghttp2-client) and strace (counts the servers' write syscalls), when missing.
#
# Everything comes from Debian's packages (Go toolchain, grpc-go, protobuf-go, protoc): the Go
# module proxy is not reachable here, so the build runs in GOPATH mode against
# /usr/share/gocode. protoc is used only here, to generate the Go stubs; the Rust crate itself
# never needs it. Output: target/grpc-go/greeter_server. Then:
#
#   GRPC_GO_SERVER=target/grpc-go/greeter_server cargo bench --bench grpc --features grpc
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/target/grpc-go"
if ! command -v go >/dev/null || ! command -v protoc >/dev/null || [ ! -d /usr/share/gocode/src/google.golang.org/grpc ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-goprotobuf-dev protobuf-compiler
fi
if ! command -v h2load >/dev/null || ! command -v strace >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client strace
fi
work="$out/gopath"
mkdir -p "$work/src/greeter/helloworld" "$work/src/greeter/server" "$out/bin"
export GOPATH="$work:/usr/share/gocode" GO111MODULE=off GOFLAGS= GOCACHE="$out/cache"
go build -o "$out/bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
cp "$root/proto/helloworld.proto" "$work/src/greeter/helloworld/"
cp "$root/benches/grpc_go/main.go" "$work/src/greeter/server/"
(
  cd "$work/src/greeter/helloworld"
  PATH="$out/bin:$PATH" protoc \
    --go_out=. --go_opt=paths=source_relative --go_opt=Mhelloworld.proto=greeter/helloworld \
    --go-grpc_out=. --go-grpc_opt=paths=source_relative --go-grpc_opt=Mhelloworld.proto=greeter/helloworld \
    helloworld.proto
)
go build -o "$out/greeter_server" greeter/server
echo "built $out/greeter_server ($(go version))"
