//! Releasing the codecs of a quiet connection through the core's time (`handle_timeout`), and
//! rebuilding them on the next compressed message without breaking either direction's stream.

use std::time::{Duration, Instant};

use super::tests::{deliver, pair, params};
use super::DeflateConfig;
use crate::connection::tests::drain_outgoing;
use crate::connection::{Connection, Event};
use crate::message::{Message, MessageKind};
use crate::Config;

fn quote(i: u32) -> String {
    format!(
        r#"{{"type":"quote","symbol":"ACME","bid":{}.{:02},"ask":{}.{:02},"seq":{i}}}"#,
        100 + i % 3,
        i % 100,
        101,
        i % 7
    )
}

/// `from` sends `text`; `to` must receive exactly it. Returns the bytes on the wire.
fn send(from: &mut Connection, to: &mut Connection, text: &str) -> usize {
    from.send_text(text).unwrap();
    let wire = drain_outgoing(from);
    let events = deliver(to, &wire, 1 << 20).unwrap();
    assert_eq!(events, [Event::Message(Message::Text(text.into()))]);
    wire.len()
}

fn config(release: Option<Duration>) -> Config {
    Config::default().deflate(DeflateConfig::default().min_size(0).release_after(release))
}

#[test]
fn quiet_connections_release_their_codecs_and_rebuild_them() {
    let quiet = Duration::from_secs(2);
    let (mut client, mut server) = pair(params(false, false, 12, 11), config(Some(quiet)), config(Some(quiet)));
    let t0 = Instant::now();
    assert_eq!(server.poll_timeout(), None, "nothing held yet: no deadline");
    send(&mut client, &mut server, &quote(0));
    send(&mut server, &mut client, &quote(0));
    // Codecs held: the core asks for the time once, and sets its deadline from it.
    assert!(server.needs_time());
    server.handle_timeout(t0);
    assert_eq!(server.poll_timeout(), Some(t0 + quiet));
    let busy = server.heap_size();
    assert!(busy > 16 << 10, "compressor and inflater held: {busy} B");
    // A message before the deadline: no clock read, and the deadline only moves on when it passes.
    send(&mut client, &mut server, &quote(1));
    send(&mut server, &mut client, &quote(1));
    assert!(!server.needs_time());
    server.handle_timeout(t0 + quiet);
    assert_eq!(server.heap_size(), busy, "used since the deadline was set: kept");
    assert_eq!(server.poll_timeout(), Some(t0 + 2 * quiet));
    // Quiet for a whole period: released; only the inflater's window is kept, and no deadline.
    server.handle_timeout(t0 + 2 * quiet);
    let released = server.heap_size();
    assert!(released <= 2 << 10, "released: {released} B");
    assert_eq!(server.poll_timeout(), None);
    // Both streams carry on. The client's next message refers to its earlier ones, so it inflates
    // only with the window the server kept; the server's restarts its stream.
    let again = send(&mut client, &mut server, &quote(1));
    assert!(again < quote(1).len() / 3, "takeover still pays: {again} B");
    for i in 2..20 {
        send(&mut client, &mut server, &quote(i));
        send(&mut server, &mut client, &quote(i));
    }
    assert!(server.needs_time(), "held again: a new deadline");
}

#[test]
fn nothing_is_released_mid_message_or_without_a_delay() {
    let quiet = Duration::from_secs(1);
    let (mut client, mut server) = pair(params(false, false, 15, 15), config(Some(quiet)), config(Some(quiet)));
    let t0 = Instant::now();
    send(&mut client, &mut server, &quote(0));
    send(&mut server, &mut client, &quote(0));
    server.handle_timeout(t0);
    client.handle_timeout(t0);
    // The client is halfway through a compressed fragmented message when the deadlines pass.
    let text = quote(1).repeat(20);
    let (a, b) = text.split_at(text.len() / 2);
    client.send_fragment(MessageKind::Text, a.as_bytes(), true, false).unwrap();
    let first = drain_outgoing(&mut client);
    let mut events = deliver(&mut server, &first, 1 << 20).unwrap();
    for t in 1..4 {
        client.handle_timeout(t0 + t * quiet);
        server.handle_timeout(t0 + t * quiet);
    }
    client.send_fragment(MessageKind::Text, b.as_bytes(), false, true).unwrap();
    let rest = drain_outgoing(&mut client);
    events.extend(deliver(&mut server, &rest, 1 << 20).unwrap());
    assert_eq!(events, [Event::Message(Message::Text(text.clone()))]);
    // No delay configured: kept for the connection's life, and no deadline.
    let (mut client, mut server) = pair(params(false, false, 15, 15), config(None), config(None));
    send(&mut client, &mut server, &quote(0));
    assert!(!server.needs_time() && server.poll_timeout().is_none());
    assert!(server.heap_size() > 7 << 10);
}

#[test]
fn no_context_takeover_both_ways_needs_no_deadline() {
    let (mut client, mut server) = pair(params(true, true, 15, 15), config(Some(Duration::from_secs(1))), config(None));
    send(&mut client, &mut server, &quote(0));
    send(&mut server, &mut client, &quote(0));
    assert!(!server.needs_time() && !client.needs_time());
    assert_eq!(server.heap_size(), 0);
}

#[test]
fn shared_mode_takes_codecs_from_the_thread_and_gives_them_back() {
    // No context takeover both ways: between messages a connection holds nothing, and the next
    // message on this thread (of any connection) reuses the codecs the last one gave back.
    let p = params(true, true, 12, 11);
    let (mut client, mut server) = pair(p, config(None), config(None));
    let (mut client2, mut server2) = pair(p, config(None), config(None));
    send(&mut client, &mut server, &quote(0));
    send(&mut server, &mut client, &quote(0));
    assert_eq!((client.heap_size(), server.heap_size()), (0, 0));
    let (_, peak, held) = super::tests::measure(|| {
        send(&mut client2, &mut server2, &quote(1));
        send(&mut server2, &mut client2, &quote(1));
    });
    assert!(peak < 8 << 10, "no codec allocated for a message: peak {peak} B");
    // (A few hundred bytes of first-message buffers on the new connections; a codec is 7 KiB up.)
    assert!(held < 1 << 10, "no codec kept: {held} B");
    assert_eq!((client2.heap_size(), server2.heap_size()), (0, 0));
    // A message that arrives in pieces keeps its inflater until it ends.
    let text = quote(2).repeat(30);
    client.send_text(&text).unwrap();
    let wire = drain_outgoing(&mut client);
    let events = deliver(&mut server, &wire, 7).unwrap();
    assert_eq!(events, [Event::Message(Message::Text(text))]);
}
