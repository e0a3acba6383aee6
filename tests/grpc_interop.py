"""A standard Python helloworld client (grpcio), run by tests/grpc_interop.rs against our server.

It compiles its own copy of the standard helloworld.proto, not ours, so it proves wire
compatibility with what other languages' examples use. Usage: python3 grpc_interop.py HOST:PORT
Prints one line per reply; exits non-zero on any failure.
"""

import importlib
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc

STANDARD_PROTO = """
syntax = "proto3";

option java_multiple_files = true;
option java_package = "io.grpc.examples.helloworld";
option java_outer_classname = "HelloWorldProto";
option objc_class_prefix = "HLW";

package helloworld;

service Greeter {
  rpc SayHello (HelloRequest) returns (HelloReply) {}
  rpc SayHelloStreamReply (HelloRequest) returns (stream HelloReply) {}
  rpc SayHelloBidiStream (stream HelloRequest) returns (stream HelloReply) {}
}

message HelloRequest {
  string name = 1;
}

message HelloReply {
  string message = 1;
}
"""


def generate(workdir):
    path = os.path.join(workdir, "helloworld.proto")
    with open(path, "w") as proto:
        proto.write(STANDARD_PROTO)
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{workdir}",
        f"--python_out={workdir}",
        f"--grpc_python_out={workdir}",
        path,
    ])
    if status != 0:
        sys.exit(f"protoc failed with {status}")
    sys.path.insert(0, workdir)
    return importlib.import_module("helloworld_pb2"), importlib.import_module("helloworld_pb2_grpc")


def main():
    address = sys.argv[1]
    with tempfile.TemporaryDirectory() as workdir:
        pb2, pb2_grpc = generate(workdir)
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            stub = pb2_grpc.GreeterStub(channel)

            reply = stub.SayHello(pb2.HelloRequest(name="world"), timeout=10)
            print(f"unary: {reply.message}")

            for reply in stub.SayHelloStreamReply(pb2.HelloRequest(name="stream"), timeout=10):
                print(f"server-stream: {reply.message}")

            names = (pb2.HelloRequest(name=name) for name in ["ada", "grace"])
            for reply in stub.SayHelloBidiStream(names, timeout=10):
                print(f"bidi: {reply.message}")

            try:
                stub.SayHello(pb2.HelloRequest(name=""), timeout=10)
                sys.exit("empty name was accepted")
            except grpc.RpcError as error:
                print(f"empty-name: {error.code().name}")


if __name__ == "__main__":
    main()
