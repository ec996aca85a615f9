//! HTTP `CONNECT` (RFC 9110 §9.3.6) through hyper's HTTP/1.1 client: hyper writes the request and
//! parses the answer; on 2xx it hands the stream back, otherwise the answer becomes a
//! [`Refusal`] (status, headers, bounded body) inside the [`ProxyError`].

use std::pin::Pin;
use std::time::Duration;

use duplex_proto::handshake::Refusal;
use hyper::body::Body;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Auth, ProxyError, ProxyErrorKind, ProxyUrl};
use crate::target::Target;

/// Asks the proxy on `io` for a tunnel to `target`; returns `io`, now a byte stream to the target.
pub(super) async fn connect<S>(io: S, proxy: &ProxyUrl, target: &Target) -> Result<S, ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let fail = |kind: ProxyErrorKind| ProxyError::new(proxy.to_string(), kind);
    let protocol = |what: &str, e: hyper::Error| fail(ProxyErrorKind::Protocol(format!("{what}: {e}"))).with_source(e);
    // RFC 9110 §9.3.6: the request target is host:port (authority-form), and so is Host.
    let authority = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, String>(TokioIo::new(io))
        .await
        .map_err(|e| protocol("HTTP/1.1 to the proxy failed", e))?;
    // The connection's driver: it ends once the tunnel is handed over, or with the connection.
    let driver = tokio::spawn(conn.with_upgrades());
    let mut request = ::http::Request::connect(authority.as_str())
        .header(::http::header::HOST, authority.as_str())
        .body(String::new())
        .map_err(|e| fail(ProxyErrorKind::Url(format!("target {authority}: {e}"))))?;
    if let Auth::Basic(value) = &proxy.auth {
        request.headers_mut().insert(::http::header::PROXY_AUTHORIZATION, value.clone());
    }
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| protocol("no HTTP answer to CONNECT (is it an HTTP proxy?)", e))?;
    if response.status().is_success() {
        let upgraded = hyper::upgrade::on(response).await.map_err(|e| protocol("the tunnel was not handed over", e))?;
        let parts = upgraded
            .downcast::<TokioIo<S>>()
            .map_err(|_| fail(ProxyErrorKind::Protocol("hyper handed over a stream of another type".into())))?;
        // A WebSocket (and TLS) client speaks first: bytes from the proxy now are not the server's.
        if !parts.read_buf.is_empty() {
            return Err(fail(ProxyErrorKind::Protocol(format!(
                "{} bytes arrived after the CONNECT answer, before our request",
                parts.read_buf.len()
            ))));
        }
        return Ok(parts.io.into_inner());
    }
    let status = response.status();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let mut refusal = Refusal::new(status.as_u16(), &headers, b"");
    if let Some(reason) = status.canonical_reason() {
        reason.clone_into(&mut refusal.reason);
    }
    // The body says why (tinyproxy and squid write an HTML page): keep its start, for a second.
    let mut body = response.into_body();
    let read = async {
        while let Some(Ok(frame)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            if let Some(data) = frame.data_ref() {
                if !refusal.extend_body(data) {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), read).await;
    driver.abort();
    Err(fail(ProxyErrorKind::Refused(Box::new(refusal))))
}
