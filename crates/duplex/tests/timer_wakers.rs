//! The socket polls its timer once per deadline and waker, not on every wake-up: a socket first
//! polled by one task and then by another must still be woken for its deadline (a keepalive ping
//! here) in the second task.

use std::time::Duration;

use duplex::{Config, Role, WebSocket};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_deadline_still_fires_after_the_socket_moves_to_another_task() {
    let (a, mut peer) = tokio::io::duplex(4096);
    let config = Config::default().keepalive(Some(Duration::from_secs(10)), Duration::from_secs(60));
    let mut ws = WebSocket::from_upgraded(a, Role::Server, config, &[]);

    // Task 1 polls the socket (arming its timer with task 1's waker), then gives it up.
    let mut ws = tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.recv()).await;
        ws
    })
    .await
    .unwrap();

    // Task 2 waits on it: the ping falls due 10 s after the start, and only task 2 can send it.
    let receiver = tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(30), ws.recv()).await;
    });
    let mut head = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(20), peer.read_exact(&mut head))
        .await
        .expect("a keepalive ping within 20 s: the timer woke the task that polls the socket now")
        .unwrap();
    assert_eq!(head[0], 0x89, "a ping frame (FIN, opcode 9)");
    receiver.abort();
}
