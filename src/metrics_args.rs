//! `--metrics ADDR`: install the Prometheus recorder ([`crate::prometheus`]) and serve
//! `GET /metrics` on its own listener, apart from the WebSocket port (scrapes are not connections
//! of the server, and the port can stay private). docs/metrics.md lists the metrics.

use std::net::SocketAddr;
#[cfg(feature = "metrics")]
use {
    crate::prometheus::Recorder,
    std::io,
    std::time::Duration,
    tokio::io::{AsyncReadExt, AsyncWriteExt},
    tokio::net::{TcpListener, TcpStream},
};

/// The metrics option every server subcommand shares.
#[derive(clap::Args, Debug, Clone)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics (`127.0.0.1:9464`; docs/metrics.md).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

/// Largest request head a scrape may send.
#[cfg(feature = "metrics")]
const MAX_REQUEST: usize = 8192;
/// Time a scraper has to send its request.
#[cfg(feature = "metrics")]
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl MetricsArgs {
    /// Installs the recorder and starts serving, if asked; logs why not and returns `false` on
    /// failure. Must run before the server accepts its first connection: each metric is
    /// registered once, with the recorder installed then.
    pub async fn start(&self) -> bool {
        let Some(addr) = self.metrics else { return true };
        #[cfg(not(feature = "metrics"))]
        {
            tracing::error!("--metrics {addr}: this duplex was built without the `metrics` feature");
            false
        }
        #[cfg(feature = "metrics")]
        start(addr).await
    }
}

#[cfg(feature = "metrics")]
async fn start(addr: SocketAddr) -> bool {
    {
        let recorder = Recorder::new();
        if metrics::set_global_recorder(recorder.clone()).is_err() {
            tracing::error!("--metrics: a metrics recorder is installed already");
            return false;
        }
        duplex::metrics::register();
        duplex_pubsub::metrics::register();
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("--metrics: cannot listen on {addr}: {e}");
                return false;
            }
        };
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!("metrics at http://{bound}/metrics");
        tokio::spawn(serve(listener, recorder));
        true
    }
}

#[cfg(feature = "metrics")]
async fn serve(listener: TcpListener, recorder: Recorder) {
    loop {
        match listener.accept().await {
            Ok((io, _)) => {
                tokio::spawn(answer(io, recorder.clone()));
            }
            Err(e) => {
                tracing::warn!("metrics listener: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One request, one answer, then the connection is closed.
#[cfg(feature = "metrics")]
async fn answer(mut io: TcpStream, recorder: Recorder) {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut io)).await {
        Ok(Ok(head)) => head,
        _ => return,
    };
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", recorder.render()),
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain; charset=utf-8", "metrics are at /metrics\n".into()),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", "use GET /metrics\n".into()),
    };
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        resp.extend_from_slice(body.as_bytes());
    }
    let _ = io.write_all(&resp).await;
    let _ = io.shutdown().await;
}

/// Reads up to the blank line that ends a request head.
#[cfg(feature = "metrics")]
async fn read_head(io: &mut TcpStream) -> io::Result<String> {
    let mut buf = Vec::with_capacity(1024);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_REQUEST {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too large"));
        }
        buf.reserve(1024);
        if io.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}
