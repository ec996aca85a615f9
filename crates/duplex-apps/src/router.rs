//! A [`Router`]: applications and files mounted by path on one [`Server`], the way `duplex serve`,
//! `duplex relay` and the standalone demos are put together.
//!
//! A WebSocket request goes to the [`App`] mounted at its exact path, or to the fallback; any
//! other request is answered with the file mounted at its path (`GET` and `HEAD`), or 404. The
//! router logs each connection as `duplex serve` always has: `#12 opened from 127.0.0.1:53124
//! (/chat/ws)` when it opens, `#12 closed 1000 bye` when it ends (with the app's note).
//!
//! ```no_run
//! use duplex_apps::router::{App, Ended, Router, Session};
//! use duplex::{ServerStream, WebSocket};
//!
//! /// Echoes every message.
//! struct Echo;
//!
//! impl App for Echo {
//!     fn serve(&self, mut ws: WebSocket<ServerStream>, _path: &str) -> Session {
//!         Box::pin(async move {
//!             let mut result = Ok(());
//!             while let Some(msg) = ws.recv().await {
//!                 match msg {
//!                     Ok(m) => { if let Err(e) = ws.send(m).await { result = Err(e); break } }
//!                     Err(e) => { result = Err(e); break }
//!                 }
//!             }
//!             Ended::new(ws, result)
//!         })
//!     }
//! }
//!
//! # async fn f() -> std::io::Result<()> {
//! let server = duplex::Server::bind("127.0.0.1:8080").await?;
//! Router::new().page("/", "<h1>echo</h1>").socket("/echo", Echo).serve(server).await
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use duplex::{Incoming, Server, ServerStream, Side, WebSocket};

/// What an [`App`] returns for one connection: a future that serves it until it closes.
pub type Session = Pin<Box<dyn Future<Output = Ended> + Send>>;

/// An application the router mounts at a path: it serves each WebSocket opened there.
pub trait App: Send + Sync + 'static {
    /// Whether a WebSocket request for `path` is taken, checked before the upgrade: `Err` refuses
    /// it with that HTTP status and body (`duplex relay` refuses paths that are not room names).
    fn check(&self, path: &str) -> Result<(), (u16, String)> {
        let _ = path;
        Ok(())
    }

    /// Serves one connection, opened to `path`, until it closes. The router has logged it
    /// opened, and logs how it closed from what the session returns.
    fn serve(&self, ws: WebSocket<ServerStream>, path: &str) -> Session;
}

/// How a session ended: the socket (for its close information), the error that ended it, and a
/// note for the log line (`; room /lobby has 2 connections`).
pub struct Ended {
    ws: WebSocket<ServerStream>,
    error: Option<duplex::Error>,
    note: String,
}

impl Ended {
    /// The end of a session whose last `recv`/`send` gave `result`.
    pub fn new(ws: WebSocket<ServerStream>, result: duplex::Result<()>) -> Ended {
        Ended { ws, error: result.err(), note: String::new() }
    }

    /// Adds a note to the log line of the close.
    pub fn note(mut self, note: impl Into<String>) -> Ended {
        self.note = note.into();
        self
    }
}

/// Implements [`App`] for a cloneable state `$state` served by `$handle`, an
/// `async fn(&mut WebSocket<S>, &$state) -> duplex::Result<()>`: each connection gets a clone of
/// the state (the demos' states are handles to shared state).
#[macro_export]
macro_rules! app_from_handler {
    ($state:ty, $handle:path) => {
        impl $crate::router::App for $state {
            fn serve(&self, mut ws: ::duplex::WebSocket<::duplex::ServerStream>, _: &str) -> $crate::router::Session {
                let state = self.clone();
                Box::pin(async move {
                    let result = $handle(&mut ws, &state).await;
                    $crate::router::Ended::new(ws, result)
                })
            }
        }
    };
}

/// A file served as it is: its `Content-Type` and body.
#[derive(Clone, Copy)]
struct File {
    content_type: &'static str,
    body: &'static str,
}

/// Applications and files by path. See the [module docs](self).
#[derive(Clone, Default)]
pub struct Router {
    files: Vec<(String, File)>,
    sockets: Vec<(String, Arc<dyn App>)>,
    fallback: Option<Arc<dyn App>>,
    /// The answer to a plain HTTP request for no file: status and body.
    not_found: Option<(u16, &'static str)>,
}

/// The `Content-Type` of the pages.
const HTML: &str = "text/html; charset=utf-8";

impl Router {
    /// A router with nothing mounted.
    pub fn new() -> Router {
        Router::default()
    }

    /// Serves an HTML page at `path`.
    pub fn page(self, path: &str, html: &'static str) -> Router {
        self.file(path, HTML, html)
    }

    /// Serves `body` with `content_type` at `path`.
    pub fn file(mut self, path: &str, content_type: &'static str, body: &'static str) -> Router {
        self.files.push((path.to_owned(), File { content_type, body }));
        self
    }

    /// Mounts `app` for WebSockets opened to exactly `path`.
    pub fn socket(mut self, path: &str, app: impl App) -> Router {
        self.sockets.push((path.to_owned(), Arc::new(app)));
        self
    }

    /// Mounts a demo under `prefix` (`/chat`, or `""` for the root): its page at `prefix` and
    /// `prefix/`, the module the page imports at `prefix/reconnect.js`, its socket at
    /// `prefix/ws`. Each demo serves its own copy of the module, so that a demo mounted alone
    /// elsewhere still finds it beside its page.
    pub fn demo(self, prefix: &str, page: &'static str, app: impl App) -> Router {
        let router = if prefix.is_empty() { self } else { self.page(prefix, page) };
        router
            .page(&format!("{prefix}/"), page)
            .file(&format!("{prefix}/reconnect.js"), crate::SCRIPT_TYPE, crate::RECONNECT_JS)
            .socket(&format!("{prefix}/ws"), app)
    }

    /// Mounts `app` for WebSockets opened to any path nothing else is mounted at.
    pub fn fallback(mut self, app: impl App) -> Router {
        self.fallback = Some(Arc::new(app));
        self
    }

    /// Answers plain HTTP requests for paths without a file with `status` and `body` (default:
    /// 404 and a line naming the pages).
    pub fn not_found(mut self, status: u16, body: &'static str) -> Router {
        self.not_found = Some((status, body));
        self
    }

    /// Serves every connection of `server` until its shutdown completes.
    pub async fn serve(self, server: Server) -> std::io::Result<()> {
        let router = Arc::new(self);
        server
            .serve(move |incoming| {
                let router = router.clone();
                async move { router.handle(incoming).await }
            })
            .await
    }

    /// Serves one accepted connection: its request, then the app or the file it asks for.
    pub async fn handle(&self, incoming: Incoming<ServerStream>) {
        let peer = incoming.peer_addr();
        let req = match incoming.request().await {
            Ok(r) => r,
            Err(e) => return tracing::debug!(%peer, "bad request: {e}"),
        };
        // The client's address, which a trusted proxy may have told (`Server::with_trusted_proxies`).
        let peer = req.peer_addr();
        let path = req.request().path().to_owned();
        if !req.is_websocket() {
            let method = req.request().method.clone();
            let file = self.files.iter().find(|(p, _)| *p == path).map(|(_, f)| *f);
            let _ = match (method.as_str(), file) {
                ("GET" | "HEAD", Some(f)) => {
                    let headers = [
                        ("Content-Type".to_owned(), f.content_type.to_owned()),
                        ("Cache-Control".to_owned(), "no-cache".to_owned()),
                    ];
                    let body = if method == "HEAD" { &b""[..] } else { f.body.as_bytes() };
                    req.respond(200, &headers, body).await
                }
                _ => {
                    let (status, body) = self.not_found.unwrap_or((404, "not found\n"));
                    req.reject(status, body).await
                }
            };
            return;
        }
        let app = self.sockets.iter().find(|(p, _)| *p == path).map(|(_, a)| a).or(self.fallback.as_ref());
        let Some(app) = app.cloned() else {
            let _ = req.reject(404, &format!("no WebSocket at {path}\n")).await;
            return;
        };
        if let Err((status, body)) = app.check(&path) {
            let _ = req.reject(status, &body).await;
            return;
        }
        let target = req.request().target.clone();
        match req.accept().await {
            Ok(ws) => {
                // Every connection the server accepts is in its registry, under this id.
                let id = ws.id().unwrap_or_default();
                tracing::info!("#{id} opened from {peer} ({target})");
                let ended = app.serve(ws, &path).await;
                log_closed(id, &ended);
            }
            Err(e) => tracing::info!(%peer, "handshake failed: {e}"),
        }
    }
}

/// Logs how connection `id` ended, as `duplex serve` does: `#3 closed 1000 bye`, `#3 closed 1005
/// (no status code)`, `#3 closed 1006 (...)`, with ` (closed by the server)` when this end sent
/// the first close frame, then the session's note.
fn log_closed(id: u64, ended: &Ended) {
    let by = |side: Side| if side == Side::Local { " (closed by the server)" } else { "" };
    let note = &ended.note;
    match (ended.ws.close_info(), &ended.error) {
        (Some(info), _) => match &info.frame {
            Some(f) => tracing::info!("#{id} closed {} {}{}{note}", f.code, f.reason, by(info.initiator)),
            None => tracing::info!("#{id} closed 1005 (no status code){}{note}", by(info.initiator)),
        },
        (None, Some(e)) => tracing::info!("#{id} closed {} ({e}){note}", e.close_code()),
        (None, None) => tracing::info!("#{id} closed 1006 (connection lost){note}"),
    }
}
