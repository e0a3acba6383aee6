//! The crate's [`Error`] as a gRPC [`Status`], in one place.

use std::{error::Error as _, sync::Arc};

use tonic::{Code, Status};

use crate::Error;

impl From<Error> for Status {
    /// Maps an error to the status a client should see, following the gRPC status code guide:
    /// size limits are `RESOURCE_EXHAUSTED`, a closed or unreachable peer `UNAVAILABLE`, a timeout
    /// `DEADLINE_EXCEEDED`, anything else `INTERNAL`. The message
    /// is the error with its source chain, since our messages leave the sources to the reader.
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::MessageTooLarge { .. } | Error::QueueFull => Code::ResourceExhausted,
            Error::Io(_) | Error::ConnectionClosed => Code::Unavailable,
            Error::Timeout(_) => Code::DeadlineExceeded,
            #[cfg(feature = "client")]
            Error::ConnectTimeout(_) => Code::DeadlineExceeded,
            _ => Code::Internal,
        };
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        let mut status = Status::new(code, message);
        status.set_source(Arc::new(error));
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_codes_and_keeps_the_source_chain_in_the_message() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe gone");
        let status = Status::from(Error::Io(io));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "i/o error: pipe gone");

        let status = Status::from(Error::MessageTooLarge { size: 2, limit: 1 });
        assert_eq!(status.code(), Code::ResourceExhausted);
    }
}
