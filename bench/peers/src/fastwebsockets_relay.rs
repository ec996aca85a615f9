//! fastwebsockets relay: the fan-out a user of the library writes. hyper 1 does the handshake (as
//! in its `echo_server` example) and the request's path names the room. The upgraded stream is
//! split (`WebSocket::split` with `tokio::io::split`, the `unstable-split` feature), the read half
//! wrapped in a `FragmentCollectorRead` (whole messages). A shared room map
//! (`Arc<Mutex<HashMap<room, HashMap<id, sender>>>>`: `tokio::spawn` wants `Send` even on a
//! current-thread runtime) holds one unbounded channel per client; every text or binary message is copied once into `Bytes` and that handle cloned into the
//! channel of every client in the room, the sender included. A writer task per client writes what
//! its channel brings; the pongs and close replies the read half owes go through the same channel.
//! `TCP_NODELAY` on every connection. A current-thread runtime and `unconstrained` connection
//! tasks, as its echo peer.
//!
//! Usage: fastwebsockets-relay PORT (listens on 127.0.0.1).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fastwebsockets::{upgrade, FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

type Tx = UnboundedSender<(OpCode, Bytes)>;
type Rooms = Arc<Mutex<HashMap<String, HashMap<u64, Tx>>>>;

static IDS: AtomicU64 = AtomicU64::new(0);

async fn handle_client(fut: upgrade::UpgradeFut, rooms: Rooms, room: String) -> Result<(), WebSocketError> {
    let ws = fut.await?;
    let (read, mut write) = ws.split(tokio::io::split);
    let mut read = FragmentCollectorRead::new(read);

    let id = IDS.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = unbounded_channel::<(OpCode, Bytes)>();
    rooms.lock().unwrap().entry(room.clone()).or_default().insert(id, tx.clone());

    // The writer: ends when every sender is gone (the room forgot this client, the reader ended)
    // or the peer is.
    let writer = tokio::spawn(tokio::task::unconstrained(async move {
        while let Some((opcode, payload)) = rx.recv().await {
            let frame = Frame::new(true, opcode, None, Payload::Borrowed(&payload));
            if write.write_frame(frame).await.is_err() || opcode == OpCode::Close {
                break;
            }
        }
    }));

    let result = async {
        loop {
            // Pongs and the close reply the library owes the peer go out through the writer.
            let mut obligated = |frame: Frame<'_>| {
                let _ = tx.send((frame.opcode, Bytes::copy_from_slice(&frame.payload)));
                async { Ok::<_, Infallible>(()) }
            };
            let frame = read.read_frame(&mut obligated).await?;
            match frame.opcode {
                OpCode::Close => break Ok(()),
                OpCode::Text | OpCode::Binary => {
                    let payload = Bytes::copy_from_slice(&frame.payload);
                    let rooms = rooms.lock().unwrap();
                    for member in rooms[&room].values() {
                        let _ = member.send((frame.opcode, payload.clone()));
                    }
                }
                _ => {}
            }
        }
    }
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
    drop(tx);
    let _ = writer.await;
    result
}

async fn server_upgrade(rooms: Rooms, mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let room = req.uri().path().to_owned();
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::task::spawn(async move {
        // Errors (a peer that resets the connection) just end the connection.
        let _ = tokio::task::unconstrained(handle_client(fut, rooms, room)).await;
    });
    Ok(response)
}

fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "9001".into());
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(format!("127.0.0.1:{port}")).await?;
        let rooms = Rooms::default();
        loop {
            let (stream, _) = listener.accept().await?;
            // As duplex and Node `ws` do: without it, Nagle's algorithm holds a second small
            // frame back until the client's delayed ACK (~40 ms) whenever a client gets several
            // in a row (one write per frame here).
            let _ = stream.set_nodelay(true);
            let rooms = rooms.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let service = service_fn(move |req| server_upgrade(rooms.clone(), req));
                let conn = http1::Builder::new().serve_connection(io, service).with_upgrades();
                let _ = conn.await;
            });
        }
    })
}
