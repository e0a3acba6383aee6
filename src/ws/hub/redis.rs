//! The Redis backend: one `SUBSCRIBE`d connection that receives every node's envelopes and one
//! multiplexed connection that `PUBLISH`es this node's, a batch per pipeline (one round trip).
//!
//! Redis pub/sub keeps the order of one connection's publishes and delivers each message to every
//! subscriber at most once; a subscriber that falls too far behind is disconnected by the server
//! (`client-output-buffer-limit pubsub`, 32 MB by default), which the link sees as a broken
//! subscription and answers by reconnecting.

use bytes::Bytes;
use futures::StreamExt;

use super::broker::{Connector, Publisher};
use crate::error::{BoxError, Error};

/// Connects to one Redis server.
pub(super) struct Redis {
    client: redis::Client,
}

impl Redis {
    /// Checks `url` (`redis://[user:password@]host[:port][/db]`) without connecting.
    pub(super) fn new(url: &str) -> Result<Self, Error> {
        redis::Client::open(url)
            .map(|client| Redis { client })
            .map_err(|error| Error::HubBroker(format!("invalid redis url `{url}`: {error}")))
    }
}

/// The subscription: each message's payload, copied once out of the reply (every local member
/// then shares that copy).
type Subscription = futures::stream::BoxStream<'static, Bytes>;

impl Connector for Redis {
    type Publisher = redis::aio::MultiplexedConnection;
    type Subscription = Subscription;

    async fn connect(&self, channel: &str) -> Result<(Self::Publisher, Subscription), BoxError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        let publisher = self.client.get_multiplexed_async_connection().await?;
        let subscription = pubsub
            .into_on_message()
            .map(|message| Bytes::copy_from_slice(message.get_payload_bytes()))
            .boxed();
        Ok((publisher, subscription))
    }
}

impl Publisher for redis::aio::MultiplexedConnection {
    async fn publish(&mut self, channel: &str, batch: &[Bytes]) -> Result<u64, BoxError> {
        let mut pipeline = redis::pipe();
        for envelope in batch {
            pipeline
                .cmd("PUBLISH")
                .arg(channel)
                .arg(envelope.as_ref())
                .ignore();
        }
        pipeline.query_async::<()>(self).await?;
        Ok(0)
    }
}
