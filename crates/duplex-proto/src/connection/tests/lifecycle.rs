//! The end of a connection and time, with byte arrays and a fake clock: EOF before and after the
//! close handshake (RFC 6455 §7.1.5), who ends the transport first (§7.1.1), the close timeout,
//! keepalive pings and their pong timeout, the idle timeout, and a whole session replayed byte for
//! byte from a seeded generator.

use std::time::{Duration, Instant};

use super::*;
use crate::error::TimeoutKind;
use crate::handshake::{ClientHandshake, Limits, Request};
use rand::SeedableRng;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Checks that `conn` asks to be told the time now, and tells it `now`.
fn tell_time(conn: &mut Connection, now: Instant) {
    assert!(conn.needs_time(), "a deadline started: the core should ask for the time");
    conn.handle_timeout(now);
    assert!(!conn.needs_time());
}

/// The connection's next event, which must be an error.
fn failure(conn: &mut Connection) -> ConnectionError {
    let mut last = None;
    loop {
        match conn.next_event() {
            Ok(Some(e)) => last = Some(e),
            Ok(None) => panic!("no failure; last event {last:?}"),
            Err(e) => return e,
        }
    }
}

mod eof_7_1_5 {
    use super::*;

    #[test]
    fn eof_before_the_close_handshake_is_an_abnormal_closure_after_the_events_before_it() {
        for role in [Role::Server, Role::Client] {
            let mut c = Connection::new(role, Config::default());
            let frame =
                if role == Role::Server { cf(true, OP_TEXT, b"last words") } else { sf(true, OP_TEXT, b"last words") };
            c.receive(&frame);
            c.receive_eof();
            assert_eq!(c.next_event(), Ok(Some(text("last words"))), "{role:?}");
            assert_eq!(c.next_event(), Err(ConnectionError::AbnormalClosure));
            assert_eq!(c.next_event(), Ok(None));
            assert_eq!(c.state(), State::Closed);
            assert_eq!(c.failure(), Some(&ConnectionError::AbnormalClosure));
            assert_eq!(ConnectionError::AbnormalClosure.code(), CloseCode::ABNORMAL);
            // No close frame goes to a peer that has gone (§7.1.5: 1006 is never sent).
            assert_eq!(c.buffered_amount(), 0);
            // Both roles finish their side at once: the peer's side is over already.
            assert_eq!(c.poll_transport(), Some(Transport::Finish));
            assert!(c.is_terminated());
            assert_eq!(c.poll_transport(), None);
        }
    }

    #[test]
    fn eof_inside_a_frame_or_a_fragmented_message_is_abnormal_too() {
        let mut s = server();
        s.receive(&cf(false, OP_TEXT, b"part one"));
        s.receive(&cf(true, OP_CONT, b"never finished")[..5]);
        s.receive_eof();
        assert_eq!(failure(&mut s), ConnectionError::AbnormalClosure);
        assert_eq!(s.heap_size(), 0, "the partial message is dropped");
    }

    #[test]
    fn what_the_application_queued_is_written_before_the_transport_is_finished() {
        let mut s = server();
        s.receive(&cf(true, OP_TEXT, b"echo me"));
        s.receive_eof();
        let Ok(Some(Event::Message(m))) = s.next_event() else { panic!() };
        s.send(m).unwrap();
        assert_eq!(s.next_event(), Err(ConnectionError::AbnormalClosure));
        // The echo is still queued: the peer only closed its sending direction.
        assert_eq!(s.poll_transport(), None);
        assert_eq!(sent(&mut s).len(), 1);
        assert_eq!(s.poll_transport(), Some(Transport::Finish));
        assert!(s.is_terminated());
    }

    #[test]
    fn eof_after_the_peer_close_frame_is_the_normal_end() {
        let mut s = server();
        s.receive(&cf(true, OP_CLOSE, &close_payload(1000, b"")));
        s.receive_eof();
        assert_eq!(s.next_event(), Ok(Some(Event::Close(Some(CloseFrame::new(1000, ""))))));
        assert_eq!(s.next_event(), Ok(None));
        assert_eq!(s.failure(), None);
        sent(&mut s);
        assert_eq!(s.poll_transport(), Some(Transport::Finish));
        assert!(s.is_terminated());
    }

    #[test]
    fn eof_after_a_violation_ends_the_failed_connection_quietly() {
        let mut s = server();
        s.receive(&sf(true, OP_TEXT, b"unmasked"));
        s.receive_eof();
        let e = failure(&mut s);
        assert_eq!(e.violation(), Some(&Violation::UnmaskedClientFrame));
        assert_eq!(s.next_event(), Ok(None));
        assert_eq!(sent(&mut s).last().unwrap().close_code(), Some(1002));
        assert_eq!(s.poll_transport(), Some(Transport::Finish));
        assert!(s.is_terminated());
    }

    #[test]
    fn bytes_and_eof_after_termination_change_nothing() {
        let mut s = server();
        s.receive_eof();
        failure(&mut s);
        assert_eq!(s.poll_transport(), Some(Transport::Finish));
        s.receive(&cf(true, OP_TEXT, b"late"));
        s.receive_eof();
        assert_eq!(s.next_event(), Ok(None));
        assert!(s.is_terminated());
    }
}

mod closing_order_7_1_1 {
    use super::*;

    /// A server and a client that completed the close handshake started by `first`.
    fn closed_pair(first: Role) -> (Connection, Connection) {
        let (mut s, mut c) = (server(), client());
        let (a, b) = if first == Role::Server { (&mut s, &mut c) } else { (&mut c, &mut s) };
        a.close(Some(CloseFrame::new(1000, "done"))).unwrap();
        b.receive(&drain_outgoing(a));
        assert!(matches!(b.next_event(), Ok(Some(Event::Close(_)))));
        a.receive(&drain_outgoing(b));
        assert!(matches!(a.next_event(), Ok(Some(Event::Close(_)))));
        assert_eq!((s.state(), c.state()), (State::Closed, State::Closed));
        (s, c)
    }

    #[test]
    fn the_server_finishes_first_and_the_client_follows_its_eof() {
        for first in [Role::Server, Role::Client] {
            let (mut s, mut c) = closed_pair(first);
            // The server ends the transport at once; the client waits for it.
            assert_eq!(c.poll_transport(), None, "{first:?}: the client must wait for the server");
            assert_eq!(s.poll_transport(), Some(Transport::Finish));
            assert!(!s.is_terminated(), "the server reads on until the client's end");
            c.receive_eof();
            assert_eq!(c.next_event(), Ok(None), "an EOF after the handshake is no error");
            assert_eq!(c.poll_transport(), Some(Transport::Finish));
            assert!(c.is_terminated());
            s.receive_eof();
            assert!(s.is_terminated());
            assert_eq!((s.failure(), c.failure()), (None, None));
        }
    }

    #[test]
    fn who_closed_first_is_recorded() {
        let (s, c) = closed_pair(Role::Client);
        assert_eq!(
            c.close_info(),
            Some(CloseInfo { frame: Some(CloseFrame::new(1000, "done")), initiator: Side::Local })
        );
        assert_eq!(
            s.close_info(),
            Some(CloseInfo { frame: Some(CloseFrame::new(1000, "done")), initiator: Side::Remote })
        );
    }

    #[test]
    fn nothing_is_finished_before_the_close_frame_is_written() {
        let (mut s, _) = (server(), client());
        s.receive(&cf(true, OP_CLOSE, b""));
        s.next_event().unwrap();
        assert!(s.buffered_amount() > 0);
        assert_eq!(s.poll_transport(), None);
        drain_outgoing(&mut s);
        assert_eq!(s.poll_transport(), Some(Transport::Finish));
    }

    #[test]
    fn a_failing_client_waits_for_the_server_to_end_the_transport() {
        let mut c = client();
        c.receive(&cf(true, OP_TEXT, b"masked from a server"));
        assert_eq!(failure(&mut c).violation(), Some(&Violation::MaskedServerFrame));
        assert_eq!(sent(&mut c).last().unwrap().close_code(), Some(1002));
        assert_eq!(c.poll_transport(), None);
        c.receive_eof();
        assert_eq!(c.poll_transport(), Some(Transport::Finish));
        assert!(c.is_terminated());
        // A failing server does not wait.
        let mut s = server();
        s.receive(&sf(true, OP_TEXT, b"unmasked"));
        failure(&mut s);
        drain_outgoing(&mut s);
        assert_eq!(s.poll_transport(), Some(Transport::Finish));
        assert!(!s.is_terminated());
    }

    #[test]
    fn actions_are_returned_once() {
        let (mut s, _) = closed_pair(Role::Server);
        assert_eq!(s.poll_transport(), Some(Transport::Finish));
        assert_eq!(s.poll_transport(), None);
    }
}

mod close_timeout {
    use super::*;

    #[test]
    fn no_answer_to_our_close_frame_fails_with_a_close_timeout_and_aborts() {
        for role in [Role::Server, Role::Client] {
            let mut c = Connection::new(role, Config::default().close_timeout(secs(5)));
            let t0 = Instant::now();
            assert!(!c.needs_time(), "no deadline runs on an open connection without keepalive");
            assert_eq!(c.poll_timeout(), None);
            c.close(Some(CloseFrame::new(1001, "bye"))).unwrap();
            tell_time(&mut c, t0);
            assert_eq!(c.poll_timeout(), Some(t0 + secs(5)));
            drain_outgoing(&mut c);
            c.handle_timeout(t0 + secs(5) - Duration::from_millis(1));
            assert_eq!(c.next_event(), Ok(None));
            c.handle_timeout(t0 + secs(5));
            assert_eq!(c.next_event(), Err(ConnectionError::Timeout(TimeoutKind::Close)), "{role:?}");
            assert_eq!(c.poll_transport(), Some(Transport::Abort));
            assert!(c.is_terminated());
            assert_eq!(c.poll_timeout(), None);
        }
    }

    #[test]
    fn messages_still_arrive_while_our_close_frame_waits_for_its_answer() {
        let mut s = server();
        let t0 = Instant::now();
        s.close(None).unwrap();
        tell_time(&mut s, t0);
        s.receive(&cf(true, OP_TEXT, b"in flight"));
        assert_eq!(s.next_event(), Ok(Some(text("in flight"))));
        s.receive(&cf(true, OP_CLOSE, b""));
        assert_eq!(s.next_event(), Ok(Some(Event::Close(None))));
        // The handshake completed in time: the deadline now bounds the transport's end only.
        drain_outgoing(&mut s);
        assert_eq!(s.poll_transport(), Some(Transport::Finish));
        s.handle_timeout(t0 + secs(5));
        assert_eq!(s.next_event(), Ok(None), "no error: the close handshake was clean");
        assert_eq!(s.poll_transport(), Some(Transport::Abort), "the client never ended the transport");
        assert!(s.is_terminated());
    }

    #[test]
    fn a_client_gives_up_on_a_server_that_never_ends_the_transport() {
        let mut c = client();
        let t0 = Instant::now();
        c.receive(&sf(true, OP_CLOSE, &close_payload(1000, b"")));
        c.next_event().unwrap();
        tell_time(&mut c, t0);
        drain_outgoing(&mut c);
        assert_eq!(c.poll_transport(), None);
        c.handle_timeout(t0 + secs(5));
        assert_eq!(c.next_event(), Ok(None));
        assert_eq!(c.poll_transport(), Some(Transport::Abort));
    }

    #[test]
    fn a_peer_that_never_reads_cannot_hold_a_failed_connection_open() {
        let mut s = server();
        let t0 = Instant::now();
        s.receive(&sf(true, OP_TEXT, b"unmasked"));
        failure(&mut s);
        tell_time(&mut s, t0);
        // The close frame is never written (the peer does not read): no Finish ...
        assert_eq!(s.poll_transport(), None);
        // ... until the close timeout gives the transport up.
        s.handle_timeout(t0 + secs(5));
        assert_eq!(s.poll_transport(), Some(Transport::Abort));
    }
}

mod keepalive {
    use super::*;

    fn with_keepalive(role: Role, interval: u64, pong: u64) -> Connection {
        Connection::new(role, Config::default().keepalive(Some(secs(interval)), secs(pong)))
    }

    fn pings(conn: &mut Connection) -> Vec<Sent> {
        sent(conn).into_iter().filter(|f| f.opcode == Opcode::Ping).collect()
    }

    #[test]
    fn a_silent_connection_is_pinged_after_the_interval() {
        for role in [Role::Server, Role::Client] {
            let mut c = with_keepalive(role, 30, 10);
            let t0 = Instant::now();
            tell_time(&mut c, t0);
            assert_eq!(c.poll_timeout(), Some(t0 + secs(30)));
            c.handle_timeout(t0 + secs(29));
            assert_eq!(c.buffered_amount(), 0);
            c.handle_timeout(t0 + secs(30));
            let p = pings(&mut c);
            assert_eq!(p.len(), 1, "{role:?}");
            assert_eq!(p[0].payload, b"keepalive");
            assert_eq!(c.poll_timeout(), Some(t0 + secs(40)), "the pong timeout runs");
        }
    }

    #[test]
    fn no_sign_of_life_within_the_pong_timeout_fails_the_connection() {
        let mut c = with_keepalive(Role::Server, 30, 10);
        let t0 = Instant::now();
        tell_time(&mut c, t0);
        c.handle_timeout(t0 + secs(30));
        pings(&mut c);
        c.handle_timeout(t0 + secs(39));
        assert_eq!(c.next_event(), Ok(None));
        c.handle_timeout(t0 + secs(40));
        assert_eq!(c.next_event(), Err(ConnectionError::Timeout(TimeoutKind::Keepalive)));
        assert_eq!(ConnectionError::Timeout(TimeoutKind::Keepalive).code(), CloseCode::ABNORMAL);
        assert_eq!(c.buffered_amount(), 0, "no close frame to a peer that is gone");
        assert_eq!(c.poll_transport(), Some(Transport::Abort));
        assert!(c.is_terminated());
        assert_eq!(c.poll_timeout(), None);
        assert!(!c.wants_input());
    }

    #[test]
    fn a_pong_in_time_keeps_the_connection_and_the_next_ping_comes_an_interval_later() {
        let mut s = with_keepalive(Role::Server, 30, 10);
        let t0 = Instant::now();
        tell_time(&mut s, t0);
        s.handle_timeout(t0 + secs(30));
        pings(&mut s);
        s.receive(&cf(true, OP_PONG, b"keepalive"));
        assert!(matches!(s.next_event(), Ok(Some(Event::Pong(_)))));
        s.handle_timeout(t0 + secs(40));
        assert_eq!(s.next_event(), Ok(None));
        assert_eq!(s.poll_timeout(), Some(t0 + secs(60)));
        s.handle_timeout(t0 + secs(60));
        assert_eq!(pings(&mut s).len(), 1);
    }

    #[test]
    fn a_busy_connection_is_never_pinged() {
        let mut s = with_keepalive(Role::Server, 30, 10);
        let t0 = Instant::now();
        tell_time(&mut s, t0);
        for i in 1..=10 {
            s.receive(&cf(true, OP_TEXT, b"busy"));
            s.next_event().unwrap();
            s.handle_timeout(t0 + secs(30 * i));
            assert!(pings(&mut s).is_empty(), "pinged at check {i}");
        }
    }

    #[test]
    fn keepalive_stops_once_the_close_handshake_starts() {
        let mut s = with_keepalive(Role::Server, 30, 10);
        let t0 = Instant::now();
        tell_time(&mut s, t0);
        s.close(None).unwrap();
        tell_time(&mut s, t0 + secs(1));
        drain_outgoing(&mut s);
        let close_deadline = t0 + secs(1) + Config::default().close_timeout;
        assert_eq!(s.poll_timeout(), Some(close_deadline));
        s.handle_timeout(close_deadline - Duration::from_millis(1));
        assert_eq!(s.buffered_amount(), 0, "no ping after our close frame");
        assert_eq!(s.poll_timeout(), Some(close_deadline), "only the close timeout runs");
    }
}

mod idle_timeout {
    use super::*;

    fn idle(keepalive: bool) -> Connection {
        let config = Config::default().idle_timeout(Some(secs(60)));
        let config = if keepalive { config.keepalive(Some(secs(20)), secs(10)) } else { config };
        Connection::new(Role::Server, config)
    }

    #[test]
    fn a_connection_without_messages_is_closed_with_1001() {
        for keepalive in [false, true] {
            let mut s = idle(keepalive);
            let t0 = Instant::now();
            tell_time(&mut s, t0);
            let mut t = t0;
            // Keepalive pings and their pongs keep the transport alive, not the connection busy.
            while t < t0 + secs(60) {
                t = s.poll_timeout().expect("a deadline");
                s.handle_timeout(t);
                if s.state() == State::Open && keepalive && s.buffered_amount() > 0 {
                    drain_outgoing(&mut s);
                    s.receive(&cf(true, OP_PONG, b"keepalive"));
                    assert!(matches!(s.next_event(), Ok(Some(Event::Pong(_)))));
                }
            }
            assert_eq!(t, t0 + secs(60), "keepalive {keepalive}");
            assert_eq!(s.state(), State::CloseSent);
            let close = sent(&mut s).pop().unwrap();
            assert_eq!(close.close_code(), Some(1001));
            assert_eq!(&close.payload[2..], b"idle timeout");
            assert_eq!(s.close_info().unwrap().initiator, Side::Local);
            assert!(!s.needs_time(), "the close deadline was set from the check's time");
            assert_eq!(s.poll_timeout(), Some(t0 + secs(60) + Config::default().close_timeout));
        }
    }

    #[test]
    fn messages_keep_a_connection_open() {
        for keepalive in [false, true] {
            let mut s = idle(keepalive);
            let t0 = Instant::now();
            tell_time(&mut s, t0);
            for i in 1..=5 {
                s.receive(&cf(true, OP_TEXT, b"still here"));
                s.next_event().unwrap();
                s.handle_timeout(t0 + secs(60 * i));
                assert_eq!(s.state(), State::Open, "keepalive {keepalive}, check {i}");
                drain_outgoing(&mut s);
            }
        }
    }
}

mod replay {
    use super::*;

    /// A whole session — handshake, messages both ways, a ping, the close handshake — between a
    /// client whose key and masks come from `seed` and a server; the bytes each way, in order.
    fn session(seed: u64) -> (Vec<u8>, Vec<u8>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let hs = ClientHandshake::new("example.com", "/replay").key_from(&mut rng);
        let mut to_server = hs.request();
        let (request, _) = Request::parse(&to_server, &Limits::default()).unwrap().unwrap();
        let key = request.validate().unwrap().to_owned();
        let mut to_client = request.accept_response(&key, None, None, &[]);
        hs.parse_response(&to_client).unwrap().unwrap();
        let mut c = Connection::new(Role::Client, Config::default()).with_rng(rng);
        let mut s = server();
        c.send_text("hello").unwrap();
        c.send_binary(&[1, 2, 3]).unwrap();
        c.send_ping(b"p").unwrap();
        c.close(Some(CloseFrame::new(1000, "bye"))).unwrap();
        let wire = drain_outgoing(&mut c);
        to_server.extend_from_slice(&wire);
        s.receive(&wire);
        let mut got = Vec::new();
        while let Some(e) = s.next_event().unwrap() {
            if let Event::Message(m) = &e {
                s.send(m.clone()).unwrap();
            }
            got.push(e);
        }
        assert_eq!(got.len(), 4);
        let back = drain_outgoing(&mut s);
        to_client.extend_from_slice(&back);
        c.receive(&back);
        while c.next_event().unwrap().is_some() {}
        assert_eq!(c.state(), State::Closed);
        (to_server, to_client)
    }

    #[test]
    fn a_seeded_session_replays_byte_for_byte() {
        assert_eq!(session(42), session(42));
        assert_ne!(session(42).0, session(43).0, "the seed decides the key and the masks");
    }

    #[test]
    fn without_a_seed_masks_differ_between_connections() {
        let wire = || {
            let mut c = client();
            c.send_text("same text").unwrap();
            drain_outgoing(&mut c)
        };
        assert_ne!(wire(), wire());
    }
}
