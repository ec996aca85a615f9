//! tokio-tungstenite relay, the fan-out of its `server.rs` (chat) example with rooms: a room is
//! the URL path (taken in the `accept_hdr_async` callback); a shared room map
//! (`Arc<Mutex<HashMap<room, HashMap<id, sender>>>>`) holds one unbounded channel per client;
//! every text or binary message a client sends is cloned into the channel of every client in its
//! room, the sender included. A writer task per client forwards its channel into the sink half of
//! the split stream (`forward` feeds while messages are queued and flushes when the queue is
//! empty). `Message` payloads are `Bytes`, so a clone per recipient shares the payload.
//! `TCP_NODELAY` on every connection. `#[tokio::main]`: the multi-thread runtime, as in the library's examples and its echo peer.
//!
//! Usage: tokio-tungstenite-relay PORT (listens on 127.0.0.1).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{stream, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

type Tx = UnboundedSender<Message>;
type Rooms = Arc<Mutex<HashMap<String, HashMap<u64, Tx>>>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "9001".into());
    let listener = TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let rooms = Rooms::default();
    let ids = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, _) = listener.accept().await?;
        // As duplex and Node `ws` do: without it, Nagle's algorithm holds a second small frame
        // back until the client's delayed ACK (~40 ms) whenever a client gets several in a row.
        let _ = stream.set_nodelay(true);
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(handle_connection(rooms.clone(), stream, id));
    }
}

async fn handle_connection(rooms: Rooms, stream: TcpStream, id: u64) {
    let mut room = String::new();
    // The callback's `Result` (with tungstenite's `ErrorResponse`) is the library's to choose.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        room = req.uri().path().to_owned();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };

    let (tx, mut rx) = unbounded_channel();
    rooms.lock().unwrap().entry(room.clone()).or_default().insert(id, tx);

    let (outgoing, incoming) = ws.split();
    // The writer: ends when the room forgets this client (its sender is dropped) or the peer is
    // gone. Errors (a peer that resets the connection) just end it.
    let writer = tokio::spawn(stream::poll_fn(move |cx| rx.poll_recv(cx)).map(Ok).forward(outgoing));

    let _ = incoming
        .try_for_each(|msg| {
            if msg.is_text() || msg.is_binary() {
                let rooms = rooms.lock().unwrap();
                for member in rooms[&room].values() {
                    let _ = member.send(msg.clone());
                }
            }
            futures_util::future::ok(())
        })
        .await;

    {
        let mut rooms = rooms.lock().unwrap();
        if let Some(members) = rooms.get_mut(&room) {
            members.remove(&id);
            if members.is_empty() {
                rooms.remove(&room);
            }
        }
    }
    let _ = writer.await;
}
