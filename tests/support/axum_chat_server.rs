//! Serves examples/axum_chat.rs in-process, on a free port and on a runtime of its own (blocking
//! tests drive peer processes meanwhile), for tests/axum.rs and tests/axum_h2.rs. Not part of
//! `support/mod.rs`: a test that uses it declares both modules,
//!
//! ```text
//! #[path = "../examples/axum_chat.rs"] mod axum_chat;
//! #[path = "support/axum_chat_server.rs"] mod axum_chat_server;
//! ```
//!
//! The app's `tracing` lines are kept per server (every thread of its runtime writes to that
//! server's log), so a test can read what the example logged, e.g. `echo: WebSocket open over h2`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::axum_chat;

/// A running example app.
pub struct ChatServer {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    /// With `tls`: the self-signed certificate it serves, for clients to trust.
    pub cert: Option<duplex::tls::SelfSigned>,
    log: Arc<Mutex<Vec<u8>>>,
}

impl ChatServer {
    /// What the app logged so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// How many lines of the log contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log_text().lines().filter(|l| l.contains(needle)).count()
    }
}

/// One line sink of a server's log.
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts the example's app: `axum::serve` (HTTP/1.1 and h2c), or with `tls` the example's
/// `tls::serve` with a fresh self-signed certificate (ALPN h2 and http/1.1).
pub fn start_chat(tls: bool) -> ChatServer {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogWriter(sink.clone()))
            .finish(),
    );
    let cert = tls.then(|| duplex::tls::SelfSigned::localhost().expect("generate a self-signed certificate"));
    let acceptor = cert.as_ref().map(|c| axum_chat::tls::h2_acceptor(c).expect("TLS acceptor"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let on_worker = dispatch.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            // The runtime's threads are this server's only: they keep its log as their default.
            .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&on_worker)))
            .build()
            .unwrap();
        let _log = tracing::dispatcher::set_default(&dispatch);
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum_chat::app(axum_chat::AppState::new());
            match acceptor {
                Some(acceptor) => axum_chat::tls::serve(listener, acceptor, app).await,
                None => axum::serve(listener, app).await,
            }
        })
    });
    ChatServer { addr: rx.recv().unwrap(), cert, log }
}
