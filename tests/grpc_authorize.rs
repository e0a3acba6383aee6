//! An `Authorize` of one's own: it sees the call's metadata and peer, its identity reaches the
//! service through the request extensions, its refusals (UNAUTHENTICATED, PERMISSION_DENIED) reach
//! the client, health is exempt by default and can be made to require credentials.

#![cfg(feature = "grpc")]

#[path = "common/grpc.rs"]
mod grpc_common;

use std::{future::Future, net::SocketAddr};

use grpc_common::{TestServer, within};
use tonic::{Code, Request, Response, Status, metadata::MetadataValue};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use wsgrpc::grpc::{
    GreeterService, GrpcServer,
    layer::{Authorize, Call},
    pb::{
        self, HelloReply, HelloRequest,
        greeter_server::{Greeter, GreeterServer},
    },
};

/// The caller, as the authorizer found it.
#[derive(Clone, Debug)]
struct User {
    name: String,
    peer: Option<SocketAddr>,
}

/// `x-api-key: key-<name>`; the user `guest` may not call `SayHello`.
struct ApiKeys;

impl Authorize for ApiKeys {
    type Identity = User;

    fn authorize(&self, call: &Call<'_>) -> impl Future<Output = Result<User, Status>> + Send {
        let name = call
            .headers()
            .get("x-api-key")
            .and_then(|key| key.to_str().ok()?.strip_prefix("key-"))
            .map(str::to_owned);
        let method = call.method().to_owned();
        let peer = call.peer_addr();
        async move {
            // An async check, as a key store lookup would be.
            tokio::task::yield_now().await;
            match name {
                None => Err(Status::unauthenticated("missing or unknown api key")),
                Some(name) if name == "guest" && method == "SayHello" => {
                    Err(Status::permission_denied("guests may not say hello"))
                }
                Some(name) => Ok(User { name, peer }),
            }
        }
    }
}

/// Greets the authenticated user by the identity the authorizer attached, with the peer address
/// it saw.
struct WhoAmI;

#[tonic::async_trait]
impl Greeter for WhoAmI {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let user = request
            .extensions()
            .get::<User>()
            .cloned()
            .ok_or_else(|| Status::internal("no identity"))?;
        let same_peer = user.peer.is_some() && user.peer == request.remote_addr();
        Ok(Response::new(HelloReply {
            message: format!("Hello {} (peer seen: {same_peer})", user.name),
        }))
    }

    type SayHelloStreamReplyStream = wsgrpc::grpc::ReplyStream;

    async fn say_hello_stream_reply(
        &self,
        _request: Request<HelloRequest>,
    ) -> Result<Response<Self::SayHelloStreamReplyStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type SayHelloBidiStreamStream = wsgrpc::grpc::ReplyStream;

    async fn say_hello_bidi_stream(
        &self,
        _request: Request<tonic::Streaming<HelloRequest>>,
    ) -> Result<Response<Self::SayHelloBidiStreamStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

fn server() -> GrpcServer {
    GrpcServer::builder()
        .add_service(GreeterServer::new(WhoAmI))
        .file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .authorize(ApiKeys)
}

fn hello(key: Option<&'static str>) -> Request<HelloRequest> {
    let mut request = Request::new(HelloRequest {
        name: "ignored".into(),
    });
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("x-api-key", MetadataValue::from_static(key));
    }
    request
}

#[tokio::test]
async fn the_identity_reaches_the_service() {
    let server = TestServer::start(server()).await;
    let mut client = server.client().await;
    let reply = within("SayHello", client.say_hello(hello(Some("key-ada"))))
        .await
        .expect("an authorized call");
    assert_eq!(reply.into_inner().message, "Hello ada (peer seen: true)");
}

#[tokio::test]
async fn refusals_carry_the_authorizers_status() {
    let server = TestServer::start(server()).await;
    let mut client = server.client().await;
    let missing = within("SayHello", client.say_hello(hello(None))).await;
    let missing = missing.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert_eq!(missing.message(), "missing or unknown api key");
    let guest = within("SayHello", client.say_hello(hello(Some("key-guest")))).await;
    assert_eq!(guest.unwrap_err().code(), Code::PermissionDenied);
}

#[tokio::test]
async fn health_is_exempt_by_default_and_can_be_guarded() {
    let check = || HealthCheckRequest {
        service: String::new(),
    };
    let open = TestServer::start(server()).await;
    let mut health = HealthClient::new(open.channel().await);
    within("Check", health.check(check()))
        .await
        .expect("health needs no credentials by default");

    let guarded = TestServer::start(server().auth_exempt(Vec::<String>::new())).await;
    let mut health = HealthClient::new(guarded.channel().await);
    let refused = within("Check", health.check(check())).await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);
    let mut request = tonic::Request::new(check());
    request
        .metadata_mut()
        .insert("x-api-key", MetadataValue::from_static("key-probe"));
    within("Check", health.check(request))
        .await
        .expect("with a key, health answers");
}

#[tokio::test]
async fn the_bearer_token_is_one_authorizer() {
    let server = TestServer::start(
        GrpcServer::with_greeter(GreeterService::default()).bearer_token("s3cret"),
    )
    .await;
    let mut client = server.client().await;
    let mut request = Request::new(HelloRequest {
        name: "world".into(),
    });
    request
        .metadata_mut()
        .insert("authorization", MetadataValue::from_static("Bearer s3cret"));
    let reply = within("SayHello", client.say_hello(request)).await.unwrap();
    assert_eq!(reply.into_inner().message, "Hello world");
    let refused = within("SayHello", client.say_hello(hello(None))).await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);
}
