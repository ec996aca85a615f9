//! Compressed against uncompressed echo: the same text-heavy messages through `duplex echo`
//! (in this process) with permessage-deflate negotiated and without, counting messages per second
//! and the bytes that cross the TCP connection.
//!
//! ```text
//! cargo run --release --example deflate_echo -- [messages] [in-flight]
//! ```

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use duplex::{Client, Config, Message, Server, Target};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A transport that counts the bytes it reads and writes.
struct Counted {
    inner: TcpStream,
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A ~1 KiB JSON document like an API or feed would send: repeated keys, similar values.
fn payload(i: usize) -> String {
    let rows: Vec<String> = (0..8)
        .map(|r| {
            format!(
                r#"{{"id":{},"symbol":"ACME{}","price":{}.{:02},"volume":{},"exchange":"XNAS","status":"open"}}"#,
                i * 8 + r,
                r % 4,
                100 + (i + r) % 50,
                (i * 7 + r) % 100,
                1000 + (i * 13 + r) % 9000
            )
        })
        .collect();
    format!(r#"{{"type":"quotes","seq":{i},"rows":[{}]}}"#, rows.join(","))
}

async fn run(
    url: &str,
    config: Config,
    messages: usize,
    in_flight: usize,
) -> Result<(f64, u64, u64, String), duplex::Error> {
    let target = Target::parse(url)?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
    tcp.set_nodelay(true)?;
    let read = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let io = Counted { inner: tcp, read: read.clone(), written: written.clone() };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut ws, response) = Client::new().config(config).handshake(io, &target, deadline).await?;
    let extensions = response.extensions.clone().unwrap_or_else(|| "none".into());
    let (r0, w0) = (read.load(Ordering::Relaxed), written.load(Ordering::Relaxed));
    let start = Instant::now();
    let mut sent = 0;
    let mut received = 0;
    while sent < in_flight.min(messages) {
        ws.feed(payload(sent)).await?;
        sent += 1;
    }
    ws.flush().await?;
    while received < messages {
        match ws.recv().await {
            Some(Ok(Message::Text(t))) => {
                assert_eq!(t, payload(received), "echo {received} differs");
                received += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
        if sent < messages {
            ws.send(payload(sent)).await?;
            sent += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let wire = (read.load(Ordering::Relaxed) - r0, written.load(Ordering::Relaxed) - w0);
    ws.close(None).await?;
    while ws.recv().await.is_some() {}
    Ok((messages as f64 / secs, wire.0, wire.1, extensions))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let messages: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20_000);
    let in_flight: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10);

    let server = Server::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/", server.local_addr()?);
    tokio::spawn(server.serve(|incoming| async move {
        let Ok(req) = incoming.request().await else { return };
        let Ok(mut ws) = req.accept().await else { return };
        while let Some(Ok(m)) = ws.recv().await {
            if ws.send(m).await.is_err() {
                break;
            }
        }
    }));

    let raw: usize = (0..messages).map(|i| payload(i).len()).sum();
    println!(
        "{messages} text messages of ~{} bytes ({} KiB of JSON), {in_flight} in flight",
        raw / messages,
        raw / 1024
    );
    println!();
    println!("| echo | negotiated | msgs/s | bytes sent on the wire | bytes received | wire / payload |");
    println!("|---|---|---:|---:|---:|---:|");
    for (name, config) in [("uncompressed", Config::default().no_deflate()), ("permessage-deflate", Config::default())]
    {
        let (rate, rx, tx, ext) = run(&url, config, messages, in_flight).await?;
        println!("| {name} | `{ext}` | {rate:.0} | {tx} | {rx} | {:.1} % |", 100.0 * tx as f64 / raw as f64);
    }
    Ok(())
}
