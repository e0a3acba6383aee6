//! The extension point: what a greeting says.
//!
//! [`GreeterService`](super::GreeterService) owns the protocol (validation, streaming, backpressure); a [`Greet`]
//! implementation only turns a validated name into a message. Users replace the greeting by
//! implementing [`Greet`] on their own type, or by passing an async closure to [`greet_fn`], without
//! touching the generated code.

use std::future::{Future, ready};

use tonic::Status;

/// Turns a validated name into a greeting.
///
/// Called once per reply: once for `SayHello`, once per streamed reply of `SayHelloStreamReply`, once
/// per received name of `SayHelloBidiStream`. An `Err` ends the call with that status.
///
/// ```
/// use std::future::{Ready, ready};
/// use tonic::Status;
/// use wsgrpc::grpc::{Greet, GreeterService};
///
/// struct Shout;
///
/// impl Greet for Shout {
///     fn greet(&self, name: &str) -> impl Future<Output = Result<String, Status>> + Send {
///         ready(Ok(format!("HELLO {}!", name.to_uppercase())))
///     }
/// }
///
/// let greeter = GreeterService::new(Shout);
/// # let _ = greeter;
/// ```
pub trait Greet: Send + Sync + 'static {
    /// The greeting for `name`, which is non-empty and within the Greeter's length limit.
    fn greet(&self, name: &str) -> impl Future<Output = Result<String, Status>> + Send;
}

/// The default greeting, `Hello {name}`, as the reference design's grpc-go server answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hello;

impl Greet for Hello {
    fn greet(&self, name: &str) -> impl Future<Output = Result<String, Status>> + Send {
        ready(Ok(format!("Hello {name}")))
    }
}

/// A [`Greet`] made from an async closure; see [`greet_fn`].
#[derive(Debug, Clone, Copy)]
pub struct GreetFn<F>(F);

/// Makes a [`Greet`] from an async closure taking the name by value.
///
/// ```
/// use wsgrpc::grpc::{GreeterService, greet_fn};
///
/// let greeter = GreeterService::new(greet_fn(|name: String| async move { Ok(format!("Hi {name}")) }));
/// # let _ = greeter;
/// ```
pub fn greet_fn<F, Fut>(function: F) -> GreetFn<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, Status>> + Send,
{
    GreetFn(function)
}

impl<F, Fut> Greet for GreetFn<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, Status>> + Send,
{
    fn greet(&self, name: &str) -> impl Future<Output = Result<String, Status>> + Send {
        (self.0)(name.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hello_matches_the_reference_text() {
        assert_eq!(Hello.greet("world").await.unwrap(), "Hello world");
    }

    #[tokio::test]
    async fn closures_greet() {
        let greet = greet_fn(|name: String| async move { Ok(format!("Hi {name}")) });
        assert_eq!(greet.greet("you").await.unwrap(), "Hi you");
    }
}
