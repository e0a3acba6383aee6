"""A Python client (grpcio) of the todo_server example, run by tests/grpc_todo.rs.

It compiles proto/todo.proto with grpcio-tools, as a Python user of the service would, then calls
all three methods: Watch (server streaming) first, Add twice, List, and reads the two changes
the watch saw. Usage: python3 grpc_todo.py HOST:PORT PROTO_DIR
Prints one line per result; exits non-zero on any failure.
"""

import importlib
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc


def generate(proto_dir, workdir):
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"--python_out={workdir}",
        f"--grpc_python_out={workdir}",
        os.path.join(proto_dir, "todo.proto"),
    ])
    if status != 0:
        sys.exit(f"protoc failed with {status}")
    sys.path.insert(0, workdir)
    return importlib.import_module("todo_pb2"), importlib.import_module("todo_pb2_grpc")


def main():
    address, proto_dir = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as workdir:
        pb2, pb2_grpc = generate(proto_dir, workdir)
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            stub = pb2_grpc.TodosStub(channel)

            watch = stub.Watch(pb2.WatchRequest(), timeout=30)
            # The response headers come once the server has subscribed the watcher, so the
            # changes below cannot slip past it.
            watch.initial_metadata()

            for title in ["buy milk", "walk the dog"]:
                added = stub.Add(pb2.AddRequest(title=title), timeout=10)
                print(f"add: {added.id} {added.title}")

            listed = stub.List(pb2.ListRequest(), timeout=10)
            print("list: " + ", ".join(f"{item.id} {item.title}" for item in listed.items))

            for _ in range(2):
                change = next(watch)
                print(f"watch: {change.WhichOneof('kind')} {change.added.id} {change.added.title}")
            watch.cancel()

            try:
                stub.Add(pb2.AddRequest(title=""), timeout=10)
                sys.exit("an empty title was accepted")
            except grpc.RpcError as error:
                print(f"empty-title: {error.code().name}")


if __name__ == "__main__":
    main()
