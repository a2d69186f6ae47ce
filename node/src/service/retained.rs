//! Retained messages: stored through Raft so every node serves them
//! (ListRetainedMessages, GetRetainedMessage, and the broker's retained store).

use fleetcore_model::{RetainedCommand, RetainedMessage};
use fleetcore_raft::Connector;

use super::{Service, ServiceError, ServiceResult};

impl<C: Connector> Service<C> {
    /// Stores (or, with an empty payload, clears) a topic's retained message.
    pub async fn store_retained(&self, message: RetainedMessage) -> ServiceResult<()> {
        self.propose(RetainedCommand::Set(message))
            .await
            .map(|_| ())
    }

    /// ListRetainedMessages: up to `limit` live retained messages after topic
    /// `after`, in topic order, and the topic to go on from when more remain.
    pub async fn list_retained(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<RetainedMessage>, Option<String>)> {
        self.node().linearizable_read().await?;
        let now = self.now_ms();
        let applied = self.node().state().read();
        let mut page: Vec<RetainedMessage> = applied
            .state
            .retained()
            .with_prefix("", after)
            .filter(|m| m.is_live(now))
            .take(limit + 1)
            .cloned()
            .collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|m| m.topic.clone())
        } else {
            None
        };
        Ok((page, next))
    }

    /// GetRetainedMessage: the live retained message of `topic`.
    pub async fn get_retained(&self, topic: &str) -> ServiceResult<RetainedMessage> {
        self.node().linearizable_read().await?;
        let now = self.now_ms();
        let applied = self.node().state().read();
        let found = applied
            .state
            .retained()
            .with_prefix(topic, None)
            .next()
            .filter(|m| m.topic == topic && m.is_live(now))
            .cloned();
        found.ok_or_else(|| ServiceError::NotFound(format!("no retained message on {topic}")))
    }
}
