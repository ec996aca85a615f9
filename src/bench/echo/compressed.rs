//! `duplex bench echo --deflate`: the echo benchmark with permessage-deflate negotiated.
//!
//! The raw-frame client of the plain benchmark cannot compress, so here every connection is a
//! `duplex` client making the library's default offer (what `duplex connect` offers), and every
//! message is fresh JSON text: a batch of quotes (`{"seq":..,"sym":"..","bid":..,"ask":..,..}`)
//! with pseudo-random prices, about `--size` bytes, so the server compresses data shaped like a
//! live feed's rather than one repeated payload. Each echo is compared with the message sent.
//! The run fails if the server does not accept permessage-deflate.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use duplex::{Client, ClientStream, Message, WebSocket};
use tokio::sync::Semaphore;

use super::super::wire::Stage;
use super::Shared;

/// Symbols of the generated quotes.
const SYMBOLS: [&str; 12] =
    ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "NFLX", "ORCL", "INTC", "AMD", "IBM"];

/// A small deterministic generator (xorshift64*): the same messages on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A JSON array of quotes of about `size` bytes (at least one quote), the `seq`-th of connection
/// `conn`.
fn quotes(size: usize, conn: usize, seq: u64, rng: &mut Rng) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(size + 160);
    s.push('[');
    let mut i = 0u64;
    loop {
        let r = rng.next();
        let sym = SYMBOLS[(r % SYMBOLS.len() as u64) as usize];
        // In cents: 100.00 to 499.99.
        let bid = 10_000 + (r >> 8) % 40_000;
        let spread = 1 + (r >> 40) % 20;
        let size_lots = 1 + (r >> 48) % 900;
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            r#"{{"conn":{conn},"seq":{seq},"i":{i},"sym":"{sym}","bid":{}.{:02},"ask":{}.{:02},"size":{size_lots},"venue":"XNAS"}}"#,
            bid / 100,
            bid % 100,
            (bid + spread) / 100,
            (bid + spread) % 100,
        );
        i += 1;
        if s.len() + 1 >= size {
            break;
        }
    }
    s.push(']');
    s
}

/// Opens `count` connections that offer permessage-deflate, `concurrency` handshakes at a time;
/// a connection whose server declined the extension is an error.
pub(super) async fn open_many(
    url: &str,
    count: usize,
    concurrency: usize,
    opened: Arc<AtomicU64>,
) -> Vec<Result<WebSocket<ClientStream>, String>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let client = Arc::new(Client::new());
    let mut handles = Vec::with_capacity(count);
    for _ in 0..count {
        let (permits, opened, client, url) = (permits.clone(), opened.clone(), client.clone(), url.to_owned());
        handles.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
            let (ws, response) = client.connect(&url).await.map_err(|e| e.to_string())?;
            if response.deflate.is_none() {
                return Err("the server did not accept permessage-deflate (--deflate needs it)".to_owned());
            }
            opened.fetch_add(1, Ordering::Relaxed);
            Ok(ws)
        }));
    }
    let mut out = Vec::with_capacity(count);
    for h in handles {
        out.push(h.await.unwrap_or_else(|e| Err(format!("connect task failed: {e}"))));
    }
    out
}

/// One connection's load: `in_flight` messages out, each echo checked against what was sent.
pub(super) async fn connection(
    conn: usize,
    mut ws: WebSocket<ClientStream>,
    size: usize,
    in_flight: usize,
    shared: &Shared,
) -> Result<(), String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (conn as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
    let mut sent: VecDeque<(String, Instant)> = VecDeque::with_capacity(in_flight);
    let mut seq = 0u64;
    loop {
        while sent.len() < in_flight {
            let text = quotes(size, conn, seq, &mut rng);
            seq += 1;
            ws.feed(Message::Text(text.clone())).await.map_err(|e| format!("send: {e}"))?;
            sent.push_back((text, Instant::now()));
        }
        ws.flush().await.map_err(|e| format!("send: {e}"))?;
        let echo = match ws.recv().await {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(format!("receive: {e}")),
            None => return Err("the server closed the connection".to_owned()),
        };
        let now = Instant::now();
        let (text, t) = sent.pop_front().ok_or("an echo of a message that was not sent")?;
        match echo {
            Message::Text(s) if s == text => {}
            Message::Text(s) => {
                return Err(format!("an echo differs from the message sent ({} bytes, sent {})", s.len(), text.len()))
            }
            Message::Binary(_) => return Err("a binary echo of a text message".to_owned()),
        }
        let measuring = shared.phase.get() == Stage::Measure;
        if measuring {
            shared.latency.record(now.saturating_duration_since(t).as_nanos() as u64);
        }
        let before = shared.completed.fetch_add(1, Ordering::Relaxed);
        if before + 1 == shared.target.load(Ordering::Relaxed) {
            shared.done.notify_one();
        }
        if shared.phase.get() == Stage::Stop {
            let _ = ws.close(None).await;
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_json_of_about_the_size_asked() {
        for size in [20, 150, 1024, 16 * 1024] {
            let mut rng = Rng(7);
            let s = quotes(size, 3, 9, &mut rng);
            let v: serde_json::Value = serde_json::from_str(&s).expect("valid JSON");
            assert!(v.as_array().is_some_and(|a| !a.is_empty()));
            assert!(s.len() >= size && s.len() < size + 200, "{size}: {}", s.len());
        }
        // Each message differs, deterministically.
        let (mut a, mut b) = (Rng(1), Rng(1));
        assert_eq!(quotes(1024, 0, 0, &mut a), quotes(1024, 0, 0, &mut b));
        assert_ne!(quotes(1024, 0, 1, &mut a), quotes(1024, 0, 0, &mut Rng(1)));
    }
}
