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
