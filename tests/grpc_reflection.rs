//! Server reflection, v1 and v1alpha: both list the Greeter and the health service, and serve their
//! descriptors (what `grpcurl` and Postman need).

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use grpc_common::{TestServer, within};
use prost::Message;
use tonic_reflection::pb::{v1, v1alpha};
use wsgrpc::grpc::GrpcServer;

const EXPECTED: [&str; 2] = ["helloworld.Greeter", "grpc.health.v1.Health"];

#[tokio::test]
async fn v1_lists_both_services_and_describes_the_greeter() {
    use v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::start(GrpcServer::new()).await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("helloworld.Greeter".to_owned()),
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
    .unwrap()
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
    for expected in EXPECTED {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing from {names:?}"
        );
    }

    let described = within("describe", responses.message())
        .await
        .unwrap()
        .unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response else {
        panic!("unexpected response {described:?}");
    };
    let file =
        prost_types::FileDescriptorProto::decode(&files.file_descriptor_proto[0][..]).unwrap();
    assert_eq!(file.package(), "helloworld");
    let methods: Vec<_> = file.service[0]
        .method
        .iter()
        .map(|method| method.name())
        .collect();
    assert_eq!(
        methods,
        ["SayHello", "SayHelloStreamReply", "SayHelloBidiStream"]
    );
}

#[tokio::test]
async fn v1alpha_lists_both_services() {
    use v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::start(GrpcServer::new()).await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = within(
        "ServerReflectionInfo",
        client.server_reflection_info(futures::stream::iter([request])),
    )
    .await
    .unwrap()
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
    for expected in EXPECTED {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing from {names:?}"
        );
    }
}

/// reflection.proto answers a failed request with an `error_response` and keeps the stream: one
/// stream asks for an unknown symbol, file, extension and type, then lists the services.
#[tokio::test]
async fn errors_are_answered_on_the_stream_which_goes_on() {
    use v1::{
        ExtensionRequest, ServerReflectionRequest,
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::start(GrpcServer::new()).await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let bad = [
        MessageRequest::FileContainingSymbol("no.such.Symbol".to_owned()),
        MessageRequest::FileByFilename("no/such.proto".to_owned()),
        MessageRequest::FileContainingExtension(ExtensionRequest {
            containing_type: "helloworld.HelloRequest".to_owned(),
            extension_number: 1000,
        }),
        MessageRequest::AllExtensionNumbersOfType("no.such.Type".to_owned()),
    ];
    let requests = bad
        .iter()
        .cloned()
        .chain([MessageRequest::ListServices(String::new())])
        .map(|request| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        })
        .collect::<Vec<_>>();
    let mut responses = within(
        "ServerReflectionInfo",
        client.server_reflection_info(futures::stream::iter(requests)),
    )
    .await
    .unwrap()
    .into_inner();

    for request in &bad {
        let response = within("an answer", responses.message())
            .await
            .expect("the stream goes on after an error")
            .expect("one answer per request");
        let echoed = response.original_request.and_then(|r| r.message_request);
        assert_eq!(echoed.as_ref(), Some(request), "answers come in order");
        let Some(MessageResponse::ErrorResponse(error)) = response.message_response else {
            panic!("expected an error_response for {request:?}");
        };
        assert_eq!(
            error.error_code,
            tonic::Code::NotFound as i32,
            "{request:?}"
        );
    }
    let listed = within("list", responses.message()).await.unwrap().unwrap();
    assert!(matches!(
        listed.message_response,
        Some(MessageResponse::ListServicesResponse(_))
    ));
    // The client has sent everything; the server ends the stream with OK.
    assert!(
        within("the end", responses.message())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn v1alpha_errors_are_answered_on_the_stream_too() {
    use v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::start(GrpcServer::new()).await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let requests = [
        MessageRequest::FileContainingSymbol("no.such.Symbol".to_owned()),
        MessageRequest::FileContainingSymbol("helloworld.Greeter.SayHello".to_owned()),
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
    .unwrap()
    .into_inner();
    let first = within("first", responses.message()).await.unwrap().unwrap();
    assert!(matches!(
        first.message_response,
        Some(MessageResponse::ErrorResponse(ref error)) if error.error_code == tonic::Code::NotFound as i32
    ));
    let second = within("second", responses.message())
        .await
        .unwrap()
        .unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = second.message_response else {
        panic!("unexpected response {second:?}");
    };
    let file =
        prost_types::FileDescriptorProto::decode(&files.file_descriptor_proto[0][..]).unwrap();
    assert_eq!(file.name(), "helloworld.proto");
}
