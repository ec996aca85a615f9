//! `duplex connect`: an interactive client. Received messages go to stdout, one per line; each line
//! of stdin is sent. At the end of stdin the connection is closed with 1000. With `--reconnect`
//! it comes back after drops (duplex::reconnect); `--proxy`/`--no-proxy` choose the proxy, which
//! otherwise comes from the environment (duplex::proxy).

use duplex::proxy::Proxy;
use duplex::reconnect::{Cause, Event, ReconnectingSocket, StopReason, Verdict};
use duplex::{Client, CloseCode, CloseFrame, Config, Error, Message, TlsErrorKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::exit;

/// Options of `duplex connect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The URL: ws://host[:port]/path, or wss:// for TLS
    url: String,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Offer a subprotocol (repeatable, in order of preference).
    #[arg(long = "subprotocol", value_name = "NAME")]
    subprotocols: Vec<String>,
    /// Send stdin lines as binary messages, and write received binary messages raw to stdout.
    #[arg(long)]
    binary: bool,
    /// Do not offer permessage-deflate (RFC 7692 compression), which is offered by default.
    #[arg(long)]
    no_deflate: bool,
    /// Come back after the connection drops or an attempt fails, with full-jitter exponential
    /// backoff (0.5 s doubling up to 30 s, or the server's Retry-After); stops on what retrying
    /// cannot fix (403, close code 1008, a bad certificate ...: docs/client.md).
    #[arg(long)]
    reconnect: bool,
    /// Log which proxy is used and why, and each step of connecting.
    #[arg(short, long)]
    verbose: bool,
    /// Go through this proxy: http://[user:pass@]host:port (CONNECT), https://... (TLS to the
    /// proxy), socks4://, socks4a://, socks5://, socks5h://. Default: from the environment
    /// (wss_proxy/ws_proxy, HTTPS_PROXY/HTTP_PROXY, ALL_PROXY, NO_PROXY).
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy", help_heading = "Proxy")]
    proxy: Option<String>,
    /// Connect directly, whatever the environment says.
    #[arg(long, help_heading = "Proxy")]
    no_proxy: bool,
    /// wss://: also trust the CA certificates in this PEM file (repeatable), e.g. the one
    /// `duplex serve --tls-self-signed` writes. Also used for an https:// proxy.
    #[arg(long = "ca", value_name = "PEM", help_heading = "TLS")]
    ca_files: Vec<std::path::PathBuf>,
    /// wss://: present this client certificate (PEM chain) to servers that require one; needs --key.
    #[arg(long, value_name = "PEM", requires = "key", help_heading = "TLS")]
    cert: Option<std::path::PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "PEM", requires = "cert", help_heading = "TLS")]
    key: Option<std::path::PathBuf>,
    /// wss://: do not verify the server's certificate. For development only: the connection can be
    /// intercepted. Logs a warning.
    #[arg(long, help_heading = "TLS")]
    insecure: bool,
}

impl Args {
    /// Whether `-v` was given (it raises the log level of duplex's own messages).
    pub fn verbose(&self) -> bool {
        self.verbose
    }
}

/// The client the options describe, or what is wrong with them.
fn client(args: &Args) -> Result<Client, String> {
    let mut client = if args.no_deflate { Client::new().config(Config::default().no_deflate()) } else { Client::new() };
    for h in &args.headers {
        let (name, value) = h.split_once(':').ok_or_else(|| format!("header {h:?} is not `Name: value`"))?;
        client = client.header(name.trim(), value.trim());
    }
    for p in &args.subprotocols {
        client = client.protocol(p.clone());
    }
    for ca in &args.ca_files {
        client = client.ca_file(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        client = client.client_cert_files(cert.clone(), key.clone());
    }
    if let Some(url) = &args.proxy {
        client = client.proxy(Proxy::url(url).map_err(|e| format!("--proxy: {e}"))?);
    } else if args.no_proxy {
        client = client.proxy(Proxy::none());
    }
    Ok(client.danger_accept_invalid_certs(args.insecure))
}

pub async fn run(args: Args) -> u8 {
    let client = match client(&args) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return exit::FAILURE;
        }
    };
    match client.proxy_choice(&args.url) {
        Ok(choice) if args.verbose => tracing::info!("route to {}: {choice}", args.url),
        Ok(choice) => tracing::debug!("route to {}: {choice}", args.url),
        Err(e) => {
            tracing::error!("cannot connect to {}: {e}", args.url);
            return exit::FAILURE;
        }
    }
    let mut socket = ReconnectingSocket::new(client, args.url.clone());
    if !args.reconnect {
        socket = socket.classifier(|_| Verdict::Stop);
    }
    let mut out = tokio::io::stdout();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            event = socket.next() => match event {
                Some(Event::Connected(c)) => {
                    let again = if c.connection > 1 { " again" } else { "" };
                    match &c.response.protocol {
                        Some(p) => tracing::info!("connected{again} to {} (subprotocol {p})", args.url),
                        None => tracing::info!("connected{again} to {}", args.url),
                    }
                    match &c.response.deflate {
                        Some(d) => tracing::info!("negotiated extensions: {}", d.header_value()),
                        None => tracing::info!("negotiated extensions: none"),
                    }
                }
                Some(Event::Message(m)) => {
                    if print(&mut out, m, args.binary).await.is_err() {
                        return exit::OK; // stdout closed: nobody is reading
                    }
                }
                Some(Event::Disconnected(d)) => tracing::warn!(
                    "reconnecting in {:.1}s (attempt {}): {}",
                    d.retry_in.as_secs_f64(),
                    d.attempt,
                    d.cause
                ),
                Some(Event::Stopped(s)) => return report(&args.url, &s.cause, s.reason),
                Some(_) => {}
                None => return exit::OK,
            },
            // Lines are read while a connection is open: typed while it is down, they wait.
            line = lines.next_line(), if stdin_open && socket.is_connected() => match line {
                Ok(Some(line)) => {
                    let msg = if args.binary { Message::Binary(line.into_bytes().into()) } else { Message::Text(line) };
                    if let Err(e) = socket.send(msg).await {
                        tracing::warn!("not sent ({e}): no connection is open");
                    }
                }
                Ok(None) | Err(_) => {
                    stdin_open = false;
                    tracing::debug!("end of input: closing");
                    let _ = socket.close(Some(CloseFrame::new(CloseCode::NORMAL, ""))).await;
                }
            },
        }
    }
}

/// Writes a received message to stdout: text as a line, binary raw (--binary) or as hex.
async fn print(out: &mut tokio::io::Stdout, msg: Message, binary: bool) -> std::io::Result<()> {
    match msg {
        Message::Text(t) => out.write_all(format!("{t}\n").as_bytes()).await?,
        Message::Binary(b) if binary => out.write_all(&b).await?,
        Message::Binary(b) => {
            let hex: String = b.iter().take(32).map(|x| format!("{x:02x}")).collect();
            let more = if b.len() > 32 { "…" } else { "" };
            out.write_all(format!("[binary {} bytes] {hex}{more}\n", b.len()).as_bytes()).await?
        }
    }
    out.flush().await
}

/// Logs how it ended and returns the exit code.
fn report(url: &str, cause: &Cause, reason: StopReason) -> u8 {
    match (cause, reason) {
        (_, StopReason::LocalClose) => {
            tracing::info!("closed 1000 (end of input)");
            exit::OK
        }
        (Cause::Connect(e), _) => {
            tracing::error!("cannot connect to {url}: {e}{}{}", refusal_details(e), tls_hint(e));
            exit::FAILURE
        }
        (Cause::Closed(Some(f)), _) if f.code == CloseCode::NORMAL || f.code == CloseCode::GOING_AWAY => {
            tracing::info!("closed {f}");
            exit::OK
        }
        (Cause::Closed(Some(f)), _) => {
            tracing::warn!("closed {f}");
            exit::ABNORMAL_CLOSE
        }
        (Cause::Closed(None), _) => {
            tracing::warn!("closed without a status code (1005)");
            exit::ABNORMAL_CLOSE
        }
        (Cause::Lost(e), _) => {
            tracing::warn!("connection ended: {e}");
            exit::ABNORMAL_CLOSE
        }
        (cause, _) => {
            tracing::warn!("connection ended: {cause}");
            exit::ABNORMAL_CLOSE
        }
    }
}

/// What to type about a TLS failure: the library's message names its API, this the flags.
fn tls_hint(e: &Error) -> &'static str {
    let kind = match e {
        Error::Tls(t) => t.kind(),
        Error::Proxy(p) => match p.kind() {
            duplex::proxy::ProxyErrorKind::Tls(k) => *k,
            _ => return "",
        },
        _ => return "",
    };
    match kind {
        TlsErrorKind::UnknownIssuer => {
            "\n  hint: trust the server's CA with --ca FILE, or, for development only, skip verification with --insecure"
        }
        TlsErrorKind::ClientCertificateRequired => {
            "\n  hint: give a client certificate with --cert FILE --key FILE"
        }
        _ => "",
    }
}

/// The whole answer of a refusal (the server's or a proxy's): status line, headers, body.
fn refusal_details(e: &Error) -> String {
    let r = match e {
        Error::Refused(r) => r,
        Error::Proxy(p) => match p.refusal() {
            Some(r) => r,
            None => return String::new(),
        },
        _ => return String::new(),
    };
    let mut text = format!("\n  < HTTP {} {}", r.status, r.reason);
    for (name, value) in r.headers.iter() {
        text.push_str(&format!("\n  < {name}: {}", String::from_utf8_lossy(value)));
    }
    text.push_str("\n  <");
    for line in r.body_text().lines() {
        text.push_str(&format!("\n  < {line}"));
    }
    if r.body_truncated {
        text.push_str("\n  < [body cut]");
    }
    text
}
