//! The `helloworld.Greeter` service: validation and the three calls, around a [`Greet`].
//!
//! The struct is [`GreeterService`], not `Greeter`: `Greeter` is the trait tonic generates from
//! the proto (`pb::greeter_server::Greeter`), which this type implements, and tonic's own examples
//! name the implementing struct apart from it too. `GreeterService` says what it is, the
//! implementation of the `helloworld.Greeter` service, next to the generated `GreeterServer` that
//! wraps it for routing.
//!
//! Replies are produced lazily, pulled by tonic's encoder: a reply is greeted only when the transport
//! has room for it. A slow client therefore stalls the greeting instead of growing a queue, and for the
//! bidirectional call the server stops reading names until the client reads the replies, so HTTP/2
//! flow control pushes the backpressure back to the sender. This is tighter than a bounded channel fed
//! by a spawned task (no queue and no task at all), and a dropped call stops the work at once.

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt, stream};
use tonic::{Request, Response, Status, Streaming};

use super::{
    Config,
    greet::{Greet, Hello},
    pb::{self, HelloReply, HelloRequest, greeter_server::GreeterServer},
};

/// Default [`GreeterService::max_name_len`]: 1 KiB of UTF-8, far above any real name.
pub const DEFAULT_MAX_NAME_LEN: usize = 1024;

/// Default [`GreeterService::stream_replies`]: the number of replies `SayHelloStreamReply` sends.
pub const DEFAULT_STREAM_REPLIES: usize = 10;

/// A stream of replies, as the generated service trait wants it.
pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send + 'static>>;

/// The `helloworld.Greeter` service, greeting with `G` (by default [`Hello`], `Hello {name}`).
///
/// - `SayHello` answers one greeting.
/// - `SayHelloStreamReply` answers [`stream_replies`](Self::stream_replies) greetings for one name.
/// - `SayHelloBidiStream` answers one greeting per name received, in order.
///
/// Every name is validated first: an empty name or one longer than
/// [`max_name_len`](Self::max_name_len) bytes is refused with `INVALID_ARGUMENT` (on the
/// bidirectional call this ends the call).
#[derive(Debug)]
pub struct GreeterService<G = Hello> {
    greet: Arc<G>,
    max_name_len: usize,
    stream_replies: usize,
}

impl<G> Clone for GreeterService<G> {
    fn clone(&self) -> Self {
        GreeterService {
            greet: Arc::clone(&self.greet),
            max_name_len: self.max_name_len,
            stream_replies: self.stream_replies,
        }
    }
}

impl Default for GreeterService<Hello> {
    fn default() -> Self {
        GreeterService::new(Hello)
    }
}

impl<G: Greet> GreeterService<G> {
    /// A Greeter whose greetings come from `greet`.
    pub fn new(greet: G) -> Self {
        GreeterService {
            greet: Arc::new(greet),
            max_name_len: DEFAULT_MAX_NAME_LEN,
            stream_replies: DEFAULT_STREAM_REPLIES,
        }
    }

    /// Longest accepted name in bytes (default [`DEFAULT_MAX_NAME_LEN`]).
    pub fn max_name_len(mut self, bytes: usize) -> Self {
        self.max_name_len = bytes;
        self
    }

    /// Number of replies `SayHelloStreamReply` sends (default [`DEFAULT_STREAM_REPLIES`]).
    pub fn stream_replies(mut self, replies: usize) -> Self {
        self.stream_replies = replies;
        self
    }

    /// The greeting logic.
    pub fn greet(&self) -> &G {
        &self.greet
    }

    /// The generated `GreeterServer` around this service, with the message size limits and
    /// compression of `config` ([`configure_service!`](crate::configure_service)); what
    /// [`GrpcServer::with_greeter`](super::GrpcServer::with_greeter) adds.
    pub fn into_server(self, config: &Config) -> GreeterServer<Self> {
        crate::configure_service!(GreeterServer::new(self), config)
    }

    fn validate(&self, name: &str) -> Result<(), Status> {
        if name.is_empty() {
            return Err(Status::invalid_argument("name must not be empty"));
        }
        if name.len() > self.max_name_len {
            return Err(Status::invalid_argument(format!(
                "name is {} bytes long, the limit is {} bytes",
                name.len(),
                self.max_name_len
            )));
        }
        Ok(())
    }

    async fn reply(&self, name: &str) -> Result<HelloReply, Status> {
        self.validate(name)?;
        let message = self.greet.greet(name).await?;
        Ok(HelloReply { message })
    }
}

#[tonic::async_trait]
impl<G: Greet> pb::greeter_server::Greeter for GreeterService<G> {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        self.reply(&name).await.map(Response::new)
    }

    type SayHelloStreamReplyStream = ReplyStream;

    async fn say_hello_stream_reply(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        let name = request.into_inner().name;
        // Refuse a bad name with the call's status rather than as the first stream item, so the
        // client sees it before any reply, exactly as for `SayHello`.
        self.validate(&name)?;
        let greeter = self.clone();
        let replies = stream::unfold(
            (greeter, name, 0usize),
            |(greeter, name, sent)| async move {
                if sent == greeter.stream_replies {
                    return None;
                }
                // An `Err` ends the call: tonic sends it as the trailers and stops polling.
                let reply = greeter
                    .greet
                    .greet(&name)
                    .await
                    .map(|message| HelloReply { message });
                Some((reply, (greeter, name, sent + 1)))
            },
        );
        Ok(Response::new(Box::pin(replies)))
    }

    type SayHelloBidiStreamStream = ReplyStream;

    async fn say_hello_bidi_stream(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let names = request.into_inner();
        let greeter = self.clone();
        // The first `Err` ends the call: tonic turns it into the trailers and stops polling, so no
        // further name is read.
        let replies = names.then(move |request| {
            let greeter = greeter.clone();
            async move { greeter.reply(&request?.name).await }
        });
        Ok(Response::new(Box::pin(replies)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_long_names_are_invalid_arguments() {
        let greeter = GreeterService::default().max_name_len(4);
        assert_eq!(
            greeter.validate("").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            greeter.validate("abcde").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert!(greeter.validate("abcd").is_ok());
    }
}
