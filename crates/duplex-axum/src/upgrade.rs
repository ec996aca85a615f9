//! [`WebSocketUpgrade`]: the extractor, name for name with axum's, on duplex's handshake.

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc, LazyLock};

use axum::extract::FromRequestParts;
use axum::response::Response;
use duplex::proto::handshake;
use duplex::{Accept, Config, DeflateConfig};
use http::request::Parts;
use http::{HeaderValue, Version};
use hyper::upgrade::OnUpgrade;

use crate::rejection::{ConnectionNotUpgradable, WebSocketUpgradeRejection};
use crate::socket::WebSocket;

/// `duplex serve`'s defaults, shared by every connection that changes none of them (a
/// connection holds an `Arc` of its configuration, not a copy).
static DEFAULT_CONFIG: LazyLock<Arc<Config>> = LazyLock::new(|| Arc::new(Config::default()));

/// Extractor that upgrades a request to a WebSocket: axum's `WebSocketUpgrade`, on duplex.
///
/// The request is checked when extracted (a request that is not a valid WebSocket handshake is
/// a [`WebSocketUpgradeRejection`]); the handler then chooses a subprotocol, limits and
/// compression, and [`on_upgrade`](WebSocketUpgrade::on_upgrade) answers and runs its callback
/// with the [`WebSocket`] once the connection is handed over.
///
/// The configuration starts from `duplex serve`'s defaults (permessage-deflate accepted when
/// offered, 64 MiB messages), or from an `Arc<duplex::Config>` the request carries as an
/// extension (`Router::layer(Extension(Arc::new(config)))`): one place for an application's
/// limits, keepalive and allowed origins.
///
/// ```
/// use axum::{response::Response, routing::any, Router};
/// use duplex_axum::{Message, WebSocket, WebSocketUpgrade};
///
/// async fn handler(ws: WebSocketUpgrade) -> Response {
///     ws.protocols(["chat.v2", "chat.v1"]).on_upgrade(handle_socket)
/// }
///
/// async fn handle_socket(mut socket: WebSocket) {
///     while let Some(Ok(msg)) = socket.recv().await {
///         if let Message::Text(t) = msg {
///             if socket.send(Message::text(format!("you said {t}"))).await.is_err() {
///                 break;
///             }
///         }
///     }
/// }
///
/// let app: Router = Router::new().route("/ws", any(handler));
/// ```
#[must_use]
pub struct WebSocketUpgrade<F = DefaultOnFailedUpgrade> {
    head: handshake::Request,
    version: Version,
    on_upgrade: OnUpgrade,
    base: Arc<Config>,
    /// Set once a builder method changed something: this connection's own configuration.
    config: Option<Config>,
    protocol: Option<HeaderValue>,
    offered: Vec<HeaderValue>,
    on_failed_upgrade: F,
}

impl<F> std::fmt::Debug for WebSocketUpgrade<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("version", &self.version)
            .field("protocol", &self.protocol)
            .field("offered", &self.offered)
            .finish_non_exhaustive()
    }
}

impl<F> WebSocketUpgrade<F> {
    fn config_mut(&mut self) -> &mut Config {
        let base = &self.base;
        self.config.get_or_insert_with(|| Config::clone(base))
    }

    fn with_config(mut self, f: impl FnOnce(Config) -> Config) -> Self {
        let c = std::mem::take(self.config_mut());
        *self.config_mut() = f(c);
        self
    }

    /// Accepted for axum compatibility; does nothing: duplex reads into one buffer per runtime
    /// thread, and a connection keeps only the bytes of an incomplete frame.
    pub fn read_buffer_size(self, _size: usize) -> Self {
        self
    }

    /// How many queued bytes a send waits to write before returning (duplex's
    /// [`Config::write_buffer_limit`]; default 1 MiB).
    pub fn write_buffer_size(self, size: usize) -> Self {
        self.with_config(|c| c.write_buffer_limit(size))
    }

    /// The same as [`write_buffer_size`](Self::write_buffer_size): duplex has one limit on queued
    /// bytes, past which sends wait (and [`Config::slow_consumer`] applies to other tasks'
    /// senders).
    pub fn max_write_buffer_size(self, max: usize) -> Self {
        self.write_buffer_size(max)
    }

    /// The largest message accepted (default 64 MiB); a larger one closes with 1009.
    pub fn max_message_size(self, max: usize) -> Self {
        self.with_config(|c| c.max_message_size(max))
    }

    /// The largest frame accepted (default 16 MiB); a larger one closes with 1009.
    pub fn max_frame_size(self, max: usize) -> Self {
        self.with_config(|c| c.max_frame_size(max))
    }

    /// Accepted for axum compatibility; unmasked client frames are always refused (RFC 6455
    /// §5.1: the server closes with 1002).
    pub fn accept_unmasked_frames(self, _accept: bool) -> Self {
        self
    }

    /// permessage-deflate (RFC 7692) with these parameters. It is on by default with
    /// `duplex serve`'s parameters; [`no_compression`](Self::no_compression) turns it off.
    pub fn compression(self, deflate: DeflateConfig) -> Self {
        self.with_config(|c| c.deflate(deflate))
    }

    /// Declines permessage-deflate for this connection.
    pub fn no_compression(self) -> Self {
        self.with_config(Config::no_deflate)
    }

    /// Uses this configuration for the connection (limits, timeouts, keepalive, compression).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Chooses the subprotocol: the first of `protocols` (in this order) that the client
    /// offered, or none.
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        self.protocol = protocols
            .into_iter()
            .map(Into::into)
            .find(|p| self.offered.iter().any(|o| o.as_bytes() == p.as_bytes()))
            .and_then(|p| HeaderValue::from_str(&p).ok());
        self
    }

    /// The subprotocols the client offered, in its order.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &HeaderValue> {
        self.offered.iter()
    }

    /// Sets the subprotocol; it must be one the client offered, or the upgrade fails with 500
    /// (duplex never answers with a subprotocol the client did not ask for).
    pub fn set_selected_protocol(&mut self, protocol: HeaderValue) {
        self.protocol = Some(protocol);
    }

    /// The subprotocol chosen so far.
    pub fn selected_protocol(&self) -> Option<&HeaderValue> {
        self.protocol.as_ref()
    }

    /// What to do when the connection could not be handed over after the response (the default
    /// does nothing).
    pub fn on_failed_upgrade<C: OnFailedUpgrade>(self, callback: C) -> WebSocketUpgrade<C> {
        WebSocketUpgrade {
            head: self.head,
            version: self.version,
            on_upgrade: self.on_upgrade,
            base: self.base,
            config: self.config,
            protocol: self.protocol,
            offered: self.offered,
            on_failed_upgrade: callback,
        }
    }

    /// Answers the upgrade and runs `callback` with the socket once hyper hands the connection
    /// over. Return the response from the handler. A request duplex's server would refuse at
    /// this point (an `Origin` the configuration does not allow) is answered with the refusal
    /// instead, and `callback` never runs.
    #[must_use = "to set up the WebSocket connection, this response must be returned"]
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        F: OnFailedUpgrade,
    {
        let mut accept = Accept::new();
        if let Some(p) = self.protocol.as_ref().and_then(|p| p.to_str().ok()) {
            accept = accept.protocol(p);
        }
        let config = self.config.map(Arc::new).unwrap_or(self.base);
        let (response, upgrading) =
            duplex::hyper::upgrade_head(&self.head, self.version, self.on_upgrade, &config, accept);
        if upgrading.is_refused() {
            return response.map(axum::body::Body::new);
        }
        let protocol = self.protocol;
        let on_failed_upgrade = self.on_failed_upgrade;
        tokio::spawn(async move {
            match upgrading.await {
                Ok(ws) => callback(WebSocket::new(ws, protocol)).await,
                Err(e) => on_failed_upgrade.call(axum::Error::new(e)),
            }
        });
        response.map(axum::body::Body::new)
    }
}

/// What to do when an upgrade fails after the response was sent.
pub trait OnFailedUpgrade: Send + 'static {
    /// Called with the error.
    fn call(self, error: axum::Error);
}

impl<F: FnOnce(axum::Error) + Send + 'static> OnFailedUpgrade for F {
    fn call(self, error: axum::Error) {
        self(error)
    }
}

/// The default [`OnFailedUpgrade`]: does nothing (duplex logs the failure at debug level).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct DefaultOnFailedUpgrade;

impl OnFailedUpgrade for DefaultOnFailedUpgrade {
    fn call(self, error: axum::Error) {
        tracing::debug!("WebSocket upgrade failed: {error}");
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade<DefaultOnFailedUpgrade> {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let version = parts.version;
        let head = duplex::hyper::handshake_parts(parts);
        if let Err(e) = duplex::hyper::check(&head, version) {
            return Err(WebSocketUpgradeRejection::from_handshake(&e));
        }
        let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or(ConnectionNotUpgradable)?;
        let base = parts.extensions.get::<Arc<Config>>().cloned().unwrap_or_else(|| DEFAULT_CONFIG.clone());
        let offered = parts
            .headers
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|p| HeaderValue::from_str(p.trim()).ok())
            .collect();
        Ok(WebSocketUpgrade {
            head,
            version,
            on_upgrade,
            base,
            config: None,
            protocol: None,
            offered,
            on_failed_upgrade: DefaultOnFailedUpgrade,
        })
    }
}
