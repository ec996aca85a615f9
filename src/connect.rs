//! `duplex connect`: an interactive client. Received messages go to stdout, one per line; each line
//! of stdin is sent. At the end of stdin the connection is closed with 1000.

use duplex::{Client, CloseCode, CloseFrame, Config, Message};
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
    /// wss://: also trust the CA certificates in this PEM file (repeatable), e.g. the one
    /// `duplex serve --tls-self-signed` writes.
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

pub async fn run(args: Args) -> u8 {
    let mut client = if args.no_deflate { Client::new().config(Config::default().no_deflate()) } else { Client::new() };
    for h in &args.headers {
        let Some((name, value)) = h.split_once(':') else {
            tracing::error!("header {h:?} is not `Name: value`");
            return exit::FAILURE;
        };
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
    client = client.danger_accept_invalid_certs(args.insecure);
    let (ws, response) = match client.connect(&args.url).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot connect to {}: {e}", args.url);
            return exit::FAILURE;
        }
    };
    match &response.protocol {
        Some(p) => tracing::info!("connected to {} (subprotocol {p})", args.url),
        None => tracing::info!("connected to {}", args.url),
    }
    match &response.deflate {
        Some(d) => tracing::info!("negotiated extensions: {}", d.header_value()),
        None => tracing::info!("negotiated extensions: none"),
    }
    let (mut rx, mut tx) = ws.split();
    let binary = args.binary;
    let mut receiver = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        let mut error = None;
        while let Some(msg) = rx.recv().await {
            let written = match msg {
                Ok(Message::Text(t)) => out.write_all(format!("{t}\n").as_bytes()).await,
                Ok(Message::Binary(b)) if binary => out.write_all(&b).await,
                Ok(Message::Binary(b)) => {
                    let hex: String = b.iter().take(32).map(|x| format!("{x:02x}")).collect();
                    let more = if b.len() > 32 { "…" } else { "" };
                    out.write_all(format!("[binary {} bytes] {hex}{more}\n", b.len()).as_bytes()).await
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            if written.and(out.flush().await).is_err() {
                break; // stdout closed: nobody is reading
            }
        }
        (error, rx.close_frame())
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let error = loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    let msg = if binary { Message::Binary(line.into_bytes().into()) } else { Message::Text(line) };
                    if let Err(e) = tx.send(msg).await {
                        tracing::debug!("send failed: {e}");
                    }
                }
                Ok(None) | Err(_) => {
                    stdin_open = false;
                    tracing::debug!("end of input: closing");
                    let _ = tx.close(Some(CloseFrame::new(CloseCode::NORMAL, ""))).await;
                }
            },
            done = &mut receiver => break done.unwrap_or((None, None)),
        }
    };
    drop(tx);
    let (error, close_frame) = error;
    match (close_frame, error) {
        (Some(Some(f)), _) if f.code == CloseCode::NORMAL || f.code == CloseCode::GOING_AWAY => {
            tracing::info!("closed {f}");
            exit::OK
        }
        (Some(Some(f)), _) => {
            tracing::warn!("closed {f}");
            exit::ABNORMAL_CLOSE
        }
        (Some(None), _) => {
            tracing::warn!("closed without a status code (1005)");
            exit::ABNORMAL_CLOSE
        }
        (None, Some(e)) => {
            tracing::warn!("connection ended: {e}");
            exit::ABNORMAL_CLOSE
        }
        (None, None) => {
            tracing::warn!("connection ended without a close handshake");
            exit::ABNORMAL_CLOSE
        }
    }
}
