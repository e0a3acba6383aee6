//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`), exactly as `reflection.proto`
//! specifies it: what `grpcurl list`/`describe` and IDE plugins ask.

use std::{
    collections::{HashMap, HashSet},
    pin::Pin,
    sync::Arc,
};

use futures::{Stream, StreamExt};
use prost::Message;
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_reflection::pb::{v1, v1alpha};
use v1::{
    ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse, ListServiceResponse,
    ServerReflectionRequest, ServerReflectionResponse, ServiceResponse,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::{Error, Result};

/// What the reflection service knows: files, and which file defines each symbol and extension.
#[derive(Debug, Default)]
struct Index {
    /// Encoded `FileDescriptorProto` and its imports, by file name.
    files: HashMap<String, (Vec<u8>, Vec<String>)>,
    /// Defining file of every fully-qualified symbol (package, message, field, enum, enum value,
    /// service, method, extension), without a leading dot.
    symbols: HashMap<String, String>,
    /// Defining file of each extension, by (extended type, field number).
    extensions: HashMap<(String, i32), String>,
    /// Field numbers of the extensions of each extended type.
    extension_numbers: HashMap<String, Vec<i32>>,
    /// Fully-qualified service names, in registration order.
    services: Vec<String>,
}

impl Index {
    fn add_set(&mut self, encoded: &[u8]) -> Result<()> {
        let set = FileDescriptorSet::decode(encoded).map_err(Error::Reflection)?;
        for file in set.file {
            self.add_file(file);
        }
        Ok(())
    }

    fn add_file(&mut self, file: FileDescriptorProto) {
        let name = file.name().to_owned();
        if self.files.contains_key(&name) {
            // The same import (say google/protobuf/empty.proto) often comes with several sets.
            return;
        }
        let package = file.package().to_owned();
        let mut symbols = Vec::new();
        if !package.is_empty() {
            symbols.push(package.clone());
        }
        for message in &file.message_type {
            self.add_message(&name, &package, message, &mut symbols);
        }
        for enumeration in &file.enum_type {
            let full = qualify(&package, enumeration.name());
            for value in &enumeration.value {
                // Enum values are scoped like siblings of their enum (protobuf's C++ rule).
                symbols.push(qualify(&package, value.name()));
            }
            symbols.push(full);
        }
        for service in &file.service {
            let full = qualify(&package, service.name());
            for method in &service.method {
                symbols.push(qualify(&full, method.name()));
            }
            if !self.services.contains(&full) {
                self.services.push(full.clone());
            }
            symbols.push(full);
        }
        for extension in &file.extension {
            self.add_extension(&name, &package, extension, &mut symbols);
        }
        for symbol in symbols {
            self.symbols.entry(symbol).or_insert_with(|| name.clone());
        }
        let imports = file.dependency.clone();
        self.files.insert(name, (file.encode_to_vec(), imports));
    }

    fn add_message(
        &mut self,
        file: &str,
        scope: &str,
        message: &DescriptorProto,
        symbols: &mut Vec<String>,
    ) {
        let full = qualify(scope, message.name());
        for field in &message.field {
            symbols.push(qualify(&full, field.name()));
        }
        for oneof in &message.oneof_decl {
            symbols.push(qualify(&full, oneof.name()));
        }
        for nested in &message.nested_type {
            self.add_message(file, &full, nested, symbols);
        }
        for enumeration in &message.enum_type {
            for value in &enumeration.value {
                symbols.push(qualify(&full, value.name()));
            }
            symbols.push(qualify(&full, enumeration.name()));
        }
        for extension in &message.extension {
            self.add_extension(file, &full, extension, symbols);
        }
        symbols.push(full);
    }

    fn add_extension(
        &mut self,
        file: &str,
        scope: &str,
        extension: &FieldDescriptorProto,
        symbols: &mut Vec<String>,
    ) {
        symbols.push(qualify(scope, extension.name()));
        let extendee = extension.extendee().trim_start_matches('.').to_owned();
        let number = extension.number();
        self.extensions
            .entry((extendee.clone(), number))
            .or_insert_with(|| file.to_owned());
        self.extension_numbers
            .entry(extendee)
            .or_default()
            .push(number);
    }

    /// `file` and every file it imports, transitively, `file` first; each file once.
    fn with_dependencies(&self, file: &str) -> Vec<Vec<u8>> {
        let mut seen = HashSet::new();
        let mut pending = vec![file.to_owned()];
        let mut out = Vec::new();
        while let Some(name) = pending.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            // An import that was not registered is left for the client to report.
            if let Some((encoded, imports)) = self.files.get(&name) {
                out.push(encoded.clone());
                pending.extend(imports.iter().rev().cloned());
            }
        }
        out
    }

    fn answer(&self, request: Option<&MessageRequest>) -> MessageResponse {
        let files = |file: Option<&String>, what: &str| match file {
            Some(file) => MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
                file_descriptor_proto: self.with_dependencies(file),
            }),
            None => error(Code::NotFound, format!("{what} not found")),
        };
        match request {
            None => error(
                Code::InvalidArgument,
                "empty request: no message_request set".into(),
            ),
            Some(MessageRequest::FileByFilename(name)) => {
                let known = self.files.get_key_value(name).map(|(name, _)| name);
                files(known, &format!("file {name:?}"))
            }
            Some(MessageRequest::FileContainingSymbol(symbol)) => {
                let symbol = symbol.trim_start_matches('.');
                files(self.symbols.get(symbol), &format!("symbol {symbol:?}"))
            }
            Some(MessageRequest::FileContainingExtension(extension)) => {
                let extendee = extension.containing_type.trim_start_matches('.').to_owned();
                let number = extension.extension_number;
                let file = self.extensions.get(&(extendee.clone(), number));
                files(file, &format!("extension {number} of {extendee:?}"))
            }
            Some(MessageRequest::AllExtensionNumbersOfType(name)) => {
                let name = name.trim_start_matches('.');
                // A known type without extensions has an empty list; an unknown type is an error.
                if !self.symbols.contains_key(name) {
                    return error(Code::NotFound, format!("type {name:?} not found"));
                }
                MessageResponse::AllExtensionNumbersResponse(ExtensionNumberResponse {
                    base_type_name: name.to_owned(),
                    extension_number: self
                        .extension_numbers
                        .get(name)
                        .cloned()
                        .unwrap_or_default(),
                })
            }
            Some(MessageRequest::ListServices(_)) => {
                MessageResponse::ListServicesResponse(ListServiceResponse {
                    service: self
                        .services
                        .iter()
                        .map(|name| ServiceResponse { name: name.clone() })
                        .collect(),
                })
            }
        }
    }

    fn respond(&self, request: ServerReflectionRequest) -> ServerReflectionResponse {
        let message_response = self.answer(request.message_request.as_ref());
        ServerReflectionResponse {
            valid_host: request.host.clone(),
            original_request: Some(request),
            message_response: Some(message_response),
        }
    }
}

fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

fn error(code: Code, message: String) -> MessageResponse {
    MessageResponse::ErrorResponse(ErrorResponse {
        error_code: code as i32,
        error_message: message,
    })
}

/// Both versions of the reflection service over the registered descriptor sets.
///
/// Our own implementation of the generated traits, over an index of the registered descriptor
/// sets, because tonic-reflection 0.14 deviates from the proto on errors: an unknown symbol, file
/// or extension ends the whole stream with NOT_FOUND, where the proto answers each request with a
/// response (an `error_response` for a failed one) and keeps the stream for the next request, as
/// grpc-go does. tonic-reflection also refuses every `file_containing_extension`; here extensions
/// are indexed like any other symbol.
///
/// A file request is answered with the file and its transitive dependencies (the proto allows
/// that, and it saves clients a round trip per import). Responses are produced one per request as
/// the client reads them: no task and no queue, so a client that does not read stops being read.
/// `v1alpha` has the same messages as `v1` field for field; its requests are re-encoded as `v1`,
/// answered, and re-encoded back.
#[derive(Debug, Clone)]
pub struct ReflectionService {
    index: Arc<Index>,
}

impl ReflectionService {
    /// Indexes these encoded `FileDescriptorSet`s (as `build.rs` writes them, or
    /// `tonic_health::pb::FILE_DESCRIPTOR_SET`). Files repeated across sets are indexed once.
    ///
    /// # Errors
    ///
    /// [`Error::Reflection`] when a set does not decode as a `FileDescriptorSet`.
    pub fn new<'a>(sets: impl IntoIterator<Item = &'a [u8]>) -> Result<Self> {
        let mut index = Index::default();
        for set in sets {
            index.add_set(set)?;
        }
        Ok(ReflectionService {
            index: Arc::new(index),
        })
    }

    /// The fully-qualified names `list_services` answers, in registration order.
    pub fn services(&self) -> &[String] {
        &self.index.services
    }

    /// `grpc.reflection.v1.ServerReflection`, to add to routes.
    pub fn v1(&self) -> v1::server_reflection_server::ServerReflectionServer<Self> {
        v1::server_reflection_server::ServerReflectionServer::new(self.clone())
    }

    /// `grpc.reflection.v1alpha.ServerReflection` (what older grpcurl and grpc_cli ask), to add to
    /// routes.
    pub fn v1alpha(&self) -> v1alpha::server_reflection_server::ServerReflectionServer<Self> {
        v1alpha::server_reflection_server::ServerReflectionServer::new(self.clone())
    }
}

/// The stream the reflection services answer with, one response per request.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl v1::server_reflection_server::ServerReflection for ReflectionService {
    type ServerReflectionInfoStream = ResponseStream<ServerReflectionResponse>;

    async fn server_reflection_info(
        &self,
        request: Request<Streaming<ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        let index = Arc::clone(&self.index);
        // A request that does not decode ends the stream with its status (as tonic reports it):
        // there is no request to echo in an error_response.
        let responses = request
            .into_inner()
            .map(move |request| request.map(|request| index.respond(request)));
        Ok(Response::new(Box::pin(responses)))
    }
}

#[tonic::async_trait]
impl v1alpha::server_reflection_server::ServerReflection for ReflectionService {
    type ServerReflectionInfoStream = ResponseStream<v1alpha::ServerReflectionResponse>;

    async fn server_reflection_info(
        &self,
        request: Request<Streaming<v1alpha::ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        let index = Arc::clone(&self.index);
        let responses = request.into_inner().map(move |request| {
            let request = convert::<_, ServerReflectionRequest>(&request?)?;
            convert(&index.respond(request))
        });
        Ok(Response::new(Box::pin(responses)))
    }
}

/// Re-encodes a message as another with the same fields (v1alpha and v1 are wire-identical).
fn convert<From: Message, To: Message + Default>(message: &From) -> Result<To, Status> {
    To::decode(message.encode_to_vec().as_slice())
        .map_err(|error| Status::internal(format!("reflection message conversion: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Index {
        let mut index = Index::default();
        index
            .add_set(crate::grpc::pb::FILE_DESCRIPTOR_SET)
            .expect("helloworld descriptors");
        index
            .add_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .expect("health descriptors");
        index
    }

    fn request(message: MessageRequest) -> ServerReflectionRequest {
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(message),
        }
    }

    fn error_code(response: &ServerReflectionResponse) -> Option<i32> {
        match &response.message_response {
            Some(MessageResponse::ErrorResponse(error)) => Some(error.error_code),
            _ => None,
        }
    }

    #[test]
    fn finds_every_kind_of_symbol() {
        let index = index();
        for symbol in [
            "helloworld",
            "helloworld.Greeter",
            "helloworld.Greeter.SayHello",
            "helloworld.HelloRequest",
            ".helloworld.HelloRequest",
            "helloworld.HelloRequest.name",
            "grpc.health.v1.HealthCheckResponse.ServingStatus",
            "grpc.health.v1.HealthCheckResponse.SERVING",
        ] {
            let response =
                index.respond(request(MessageRequest::FileContainingSymbol(symbol.into())));
            assert_eq!(error_code(&response), None, "{symbol}");
        }
        assert_eq!(
            index.services,
            ["helloworld.Greeter", "grpc.health.v1.Health"]
        );
    }

    #[test]
    fn unknown_names_are_error_responses() {
        let index = index();
        let not_found = Some(Code::NotFound as i32);
        for message in [
            MessageRequest::FileContainingSymbol("no.such.Symbol".into()),
            MessageRequest::FileByFilename("no/such.proto".into()),
            MessageRequest::FileContainingExtension(v1::ExtensionRequest {
                containing_type: "helloworld.HelloRequest".into(),
                extension_number: 100,
            }),
            MessageRequest::AllExtensionNumbersOfType("no.such.Type".into()),
        ] {
            assert_eq!(error_code(&index.respond(request(message))), not_found);
        }
        let empty = index.respond(ServerReflectionRequest::default());
        assert_eq!(error_code(&empty), Some(Code::InvalidArgument as i32));
    }
}
