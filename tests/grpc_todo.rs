//! The `todo_server` example, a service of its own proto (`todo.v1.Todos`) on the builder: found
//! and described through reflection (what `grpcurl list/describe` ask), SERVING in health, and
//! called by a Rust tonic client and by a Python grpcio client (all three methods).
//!
//! The tests include the example's file, so they run exactly the server it builds.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;
#[path = "common/python.rs"]
mod python;
#[path = "../examples/todo_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod todo_server;

use grpc_common::{TestServer, within};
use prost::Message;
use todo_server::pb::{
    AddRequest, ListRequest, WatchRequest, change::Kind, todos_client::TodosClient,
};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

async fn start() -> TestServer {
    TestServer::start(todo_server::server(todo_server::TodoList::default())).await
}

#[tokio::test]
async fn reflection_lists_and_describes_todos() {
    let server = start().await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("todo.v1.Todos".to_owned()),
    ]
    .map(|request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    });
    let mut responses = within(
        "ServerReflectionInfo",
        client.server_reflection_info(futures::stream::iter(requests)),
    )
    .await
    .expect("reflection call")
    .into_inner();

    let listed = within("list", responses.message()).await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("unexpected response {listed:?}");
    };
    let names: Vec<_> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    assert!(names.contains(&"todo.v1.Todos".to_owned()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"helloworld.Greeter".to_owned()),
        "no Greeter: {names:?}"
    );

    let described = within("describe", responses.message())
        .await
        .unwrap()
        .unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response else {
        panic!("unexpected response {described:?}");
    };
    let file =
        prost_types::FileDescriptorProto::decode(&files.file_descriptor_proto[0][..]).unwrap();
    assert_eq!(file.package(), "todo.v1");
    let service = &file.service[0];
    assert_eq!(service.name(), "Todos");
    let methods: Vec<_> = service
        .method
        .iter()
        .map(|method| (method.name(), method.server_streaming()))
        .collect();
    assert_eq!(methods, [("Add", false), ("List", false), ("Watch", true)]);
}

#[tokio::test]
async fn health_reports_todos_serving() {
    let server = start().await;
    let mut health = HealthClient::new(server.channel().await);
    let check = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };
    let response = within("Check", health.check(check("todo.v1.Todos")))
        .await
        .expect("check todo.v1.Todos");
    assert_eq!(response.into_inner().status, ServingStatus::Serving as i32);
    let greeter = within("Check", health.check(check("helloworld.Greeter"))).await;
    assert_eq!(greeter.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn rust_client_adds_lists_and_watches() {
    let server = start().await;
    let mut client = TodosClient::new(server.channel().await);
    // The response headers arrive once the watcher is subscribed.
    let mut watch = within("Watch", client.watch(WatchRequest {}))
        .await
        .expect("watch")
        .into_inner();
    let added = within(
        "Add",
        client.add(AddRequest {
            title: "one".into(),
        }),
    )
    .await
    .expect("add")
    .into_inner();
    assert_eq!((added.id, added.title.as_str()), (1, "one"));
    let listed = within("List", client.list(ListRequest {}))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.items, std::slice::from_ref(&added));
    let change = within("a change", watch.message()).await.unwrap().unwrap();
    assert_eq!(change.kind, Some(Kind::Added(added)));
    let empty = within("Add", client.add(AddRequest { title: " ".into() })).await;
    assert_eq!(empty.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_slow_watcher_is_told_what_it_missed() {
    let server = start().await;
    let mut client = TodosClient::new(server.channel().await);
    // The watcher's connection has a small HTTP/2 window, so a watcher that reads nothing stops
    // the server's stream once 16 KiB are in flight; from then on its changes wait in the
    // server's buffer of WATCH_BUFFER.
    let small_window = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(16 * 1024);
    let channel = within("connect", small_window.connect()).await.unwrap();
    let mut watch = within("Watch", TodosClient::new(channel).watch(WatchRequest {}))
        .await
        .expect("watch")
        .into_inner();
    // Far more than the window plus the buffer: 200 changes of about 250 bytes.
    let total = 200;
    for i in 0..total {
        let title = format!("{i:>250}");
        within("Add", client.add(AddRequest { title }))
            .await
            .expect("add");
    }
    let (mut missed, mut added) = (0, 0);
    while missed + added < total {
        let change = within("a change", watch.message()).await.unwrap().unwrap();
        match change.kind {
            Some(Kind::Missed(count)) => missed += count,
            Some(Kind::Added(_)) => added += 1,
            None => panic!("a change without a kind"),
        }
    }
    assert!(
        missed > 0,
        "a watcher behind by more than the buffer must be told"
    );
    assert_eq!(
        missed + added,
        total,
        "every change is either delivered or counted"
    );
}

#[tokio::test]
async fn python_grpcio_client_calls_all_three_methods() {
    if !python::python3_present().await {
        eprintln!("SKIPPED python_grpcio_client_calls_all_three_methods: python3 is not installed");
        return;
    }
    let server = start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc_todo.py");
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    let (stdout, stderr) = python::run_client(script, &[&server.addr.to_string(), proto_dir]).await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "add: 1 buy milk",
            "add: 2 walk the dog",
            "list: 1 buy milk, 2 walk the dog",
            "watch: added 1 buy milk",
            "watch: added 2 walk the dog",
            "empty-title: INVALID_ARGUMENT",
        ],
        "stderr:\n{stderr}"
    );
}

/// The example applies its `Config` to its own service (`configure_service!` through
/// `add_service_with`): a request over its 64 KiB limit is refused by tonic's codec before the
/// service sees it, where the title check would have said INVALID_ARGUMENT.
#[tokio::test]
async fn the_config_reaches_the_users_service() {
    let server = start().await;
    let mut client = TodosClient::new(server.channel().await);
    let title = "x".repeat(100 * 1024);
    let refused = within("Add", client.add(AddRequest { title })).await;
    assert_eq!(refused.unwrap_err().code(), Code::OutOfRange);
    let long = "x".repeat(todo_server::MAX_TITLE_LEN + 1);
    let invalid = within("Add", client.add(AddRequest { title: long })).await;
    assert_eq!(invalid.unwrap_err().code(), Code::InvalidArgument);
}
