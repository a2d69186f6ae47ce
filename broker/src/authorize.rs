//! The one authorization call of the MQTT front. Every connect, publish,
//! subscribe and delivery asks [`Authorizer::authorize`]; the policy engine
//! (AWS IoT policy documents) slots in here without touching the session code.

/// Who is asking: what the connection proved about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// Client id of the connection.
    pub client_id: String,
    /// User name from CONNECT, if any.
    pub username: Option<String>,
    /// Subject of the verified client certificate (TLS listeners).
    pub certificate: Option<String>,
    /// Which listener the connection came in on.
    pub listener: &'static str,
}

impl Identity {
    /// How AWS names the principal in lifecycle events.
    pub fn principal(&self) -> String {
        self.certificate
            .clone()
            .or_else(|| self.username.clone())
            .unwrap_or_else(|| self.client_id.clone())
    }
}

/// What is being done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `iot:Connect` on the client id.
    Connect,
    /// `iot:Publish` on the topic.
    Publish,
    /// `iot:Subscribe` on the filter.
    Subscribe,
    /// `iot:Receive` of a message on the topic.
    Receive,
}

/// Decides whether `identity` may do `action` on `resource`.
pub trait Authorizer: Send + Sync + 'static {
    /// True to allow.
    fn authorize(&self, identity: &Identity, action: Action, resource: &str) -> bool;
}

/// Allows everything: the default until policies exist.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _identity: &Identity, _action: Action, _resource: &str) -> bool {
        true
    }
}
