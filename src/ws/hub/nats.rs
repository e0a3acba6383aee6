//! The NATS backend: one core NATS connection (no JetStream) that subscribes to the hub's subject
//! and publishes on it.
//!
//! NATS keeps the order of one connection's publishes and delivers at most once. The client's own
//! reconnection is limited to one quick attempt: when the connection drops, the subscription ends
//! and the link reconnects with its own backoff, so both backends behave alike (and count alike).
//! `no_echo` keeps this node's own envelopes off its subscription.

use async_nats::{ConnectOptions, Event};
use bytes::Bytes;
use futures::StreamExt;

use super::broker::{Connector, Publisher};
use crate::error::BoxError;

/// Connects to one NATS server.
pub(super) struct Nats {
    url: String,
}

impl Nats {
    /// `url` is a NATS server address (`nats://host:port`); checked when connecting.
    pub(super) fn new(url: &str) -> Self {
        Nats {
            url: url.to_owned(),
        }
    }
}

/// Publishes through a NATS client.
pub(super) struct NatsPublisher {
    client: async_nats::Client,
    subject: async_nats::Subject,
}

impl Connector for Nats {
    type Publisher = NatsPublisher;
    type Subscription = futures::stream::BoxStream<'static, Bytes>;

    async fn connect(
        &self,
        channel: &str,
    ) -> Result<(NatsPublisher, Self::Subscription), BoxError> {
        let (lost, mut lost_watch) = tokio::sync::watch::channel(false);
        let client = ConnectOptions::new()
            .no_echo()
            .max_reconnects(1)
            .ignore_discovered_servers()
            .event_callback(move |event| {
                if matches!(event, Event::Disconnected | Event::Closed) {
                    let _ = lost.send(true);
                }
                async {}
            })
            .connect(self.url.as_str())
            .await?;
        let subscriber = client.subscribe(channel.to_owned()).await?;
        let ended = async move {
            let _ = lost_watch.wait_for(|lost| *lost).await;
        };
        let subscription = subscriber
            .map(|message| message.payload)
            .take_until(ended)
            .boxed();
        let publisher = NatsPublisher {
            client,
            subject: async_nats::Subject::from(channel),
        };
        Ok((publisher, subscription))
    }
}

impl Publisher for NatsPublisher {
    async fn publish(&mut self, _channel: &str, batch: &[Bytes]) -> Result<u64, BoxError> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err("nats connection lost".into());
        }
        let mut refused = 0;
        for envelope in batch {
            if let Err(error) = self
                .client
                .publish(self.subject.clone(), envelope.clone())
                .await
            {
                if matches!(
                    error.kind(),
                    async_nats::client::PublishErrorKind::MaxPayloadExceeded
                ) {
                    refused += 1;
                } else {
                    return Err(error.into());
                }
            }
        }
        Ok(refused)
    }
}
