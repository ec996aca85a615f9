//! Clients that come back (duplex::reconnect, `duplex connect --reconnect`): through a server's
//! crash and restart, against refusals and closes the default classifier stops on (403, 1008)
//! or retries (503, 429 with Retry-After), and 200 clients spreading their first attempts over
//! the first backoff window. docs/client.md describes the rules.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duplex::reconnect::{Event, ReconnectingSocket};
use duplex::{Client, CloseCode, CloseFrame};
use support::procs::{duplex, free_port, signal_group, Proc, SIGKILL};

const WAIT: Duration = Duration::from_secs(30);

/// `duplex <server> --port <port>`, listening.
fn server(command: &str, port: u16) -> Proc {
    let mut p = Proc::spawn(command, &mut duplex(&[command, "--port", &port.to_string()]));
    p.wait_listening(port);
    p
}

fn connect_cli(url: &str) -> Proc {
    let mut cmd = duplex(&["connect", "--reconnect", "--no-proxy", url]);
    Proc::spawn_with("duplex connect --reconnect", &mut cmd, true)
}

fn type_line(p: &mut Proc, line: &str) {
    let stdin = p.stdin.as_mut().expect("piped stdin");
    let _ = writeln!(stdin, "{line}");
    let _ = stdin.flush();
}

fn wait_log(p: &Proc, what: &str, wanted: impl Fn(&str) -> bool) {
    assert!(p.wait_stderr_line(WAIT, wanted), "no {what} within {WAIT:?}\n{}", p.output());
}

#[test]
fn connect_reconnect_comes_back_after_the_server_restarts() {
    for command in ["echo", "serve"] {
        let port = free_port();
        let url = format!("ws://127.0.0.1:{port}/");
        let mut srv = server(command, port);
        let mut client = connect_cli(&url);
        wait_log(&client, "connection", |l| l.contains("connected to"));
        // A crash: no close frame, the connection just ends.
        signal_group(srv.child_id(), SIGKILL);
        srv.wait_exit(WAIT);
        // `<timestamp> WARN reconnecting in 0.3s (attempt 1): connection lost: ...`
        wait_log(&client, "reconnecting line", |l| {
            l.starts_with("20") && l.contains("reconnecting in ") && l.contains("s (attempt 1): ")
        });
        std::thread::sleep(Duration::from_millis(800));
        let srv = server(command, port);
        wait_log(&client, "reconnection", |l| l.contains("connected again to"));
        type_line(&mut client, "typed after the restart");
        if command == "echo" {
            client.wait_stdout_line("typed after the restart");
        } else {
            assert!(srv.wait_stderr_line(WAIT, |l| l.contains("typed after the restart")), "{}", srv.output());
        }
        client.stdin = None;
        let status = client.wait_exit(WAIT);
        assert!(status.success(), "{status}\n{}", client.output());
    }
}

/// A server of this library answering each upgrade request as `script` says (by its index);
/// returns its port and the times the requests arrived.
async fn scripted_server(script: fn(usize) -> Answer) -> (u16, Arc<Mutex<Vec<Instant>>>) {
    let server = duplex::Server::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let times = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok(incoming) = server.accept().await else { return };
            let Ok(req) = incoming.request().await else { continue };
            let n = {
                let mut t = times.lock().unwrap();
                t.push(Instant::now());
                t.len() - 1
            };
            tokio::spawn(async move {
                match script(n) {
                    Answer::Status(status, retry_after) => {
                        let mut headers = vec![("Content-Type".to_owned(), "text/plain".to_owned())];
                        if let Some(s) = retry_after {
                            headers.push(("Retry-After".to_owned(), s.to_owned()));
                        }
                        let _ = req.respond(status, &headers, format!("scripted {status}\n").as_bytes()).await;
                    }
                    Answer::CloseWith(code) => {
                        let Ok(mut ws) = req.accept().await else { return };
                        let _ = ws.close(Some(CloseFrame::new(CloseCode::from(code), "scripted close"))).await;
                        while ws.recv().await.is_some() {}
                    }
                    Answer::Echo => {
                        let Ok(mut ws) = req.accept().await else { return };
                        while let Some(Ok(m)) = ws.recv().await {
                            if ws.send(m).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    (port, seen)
}

enum Answer {
    Status(u16, Option<&'static str>),
    CloseWith(u16),
    Echo,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_closes_stop_or_retry_as_classified() {
    // 403 and 1008: not retried, non-zero exit.
    for (script, code, what) in [
        ((|_| Answer::Status(403, None)) as fn(usize) -> Answer, 1, "403 Forbidden"),
        (|_| Answer::CloseWith(1008), 3, "1008"),
    ] {
        let (port, seen) = scripted_server(script).await;
        let (status, log) = tokio::task::block_in_place(|| {
            let mut client = connect_cli(&format!("ws://127.0.0.1:{port}/"));
            let status = client.wait_exit(WAIT);
            (status, client.stderr())
        });
        assert_eq!(status.code(), Some(code), "{what}: {log}");
        assert!(log.contains(what) && !log.contains("reconnecting in"), "{what}: {log}");
        // A refusal is printed whole: status line, headers, body.
        if code == 1 {
            assert!(log.contains("< HTTP 403 Forbidden") && log.contains("< scripted 403"), "{log}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(seen.lock().unwrap().len(), 1, "{what} was retried: {log}");
    }

    // 503 is retried; 429 with Retry-After: 2 waits at least 2 s.
    for (script, what) in [
        ((|n| if n == 0 { Answer::Status(503, None) } else { Answer::Echo }) as fn(usize) -> Answer, "503"),
        (|n| if n == 0 { Answer::Status(429, Some("2")) } else { Answer::Echo }, "429"),
    ] {
        let (port, seen) = scripted_server(script).await;
        tokio::task::block_in_place(|| {
            let mut client = connect_cli(&format!("ws://127.0.0.1:{port}/"));
            wait_log(&client, "retry", |l| l.contains("reconnecting in") && l.contains(what));
            wait_log(&client, "connection after the retry", |l| l.contains("connected to"));
            type_line(&mut client, "after the retry");
            client.wait_stdout_line("after the retry");
        });
        let times = seen.lock().unwrap().clone();
        assert_eq!(times.len(), 2, "{what}");
        if what == "429" {
            let gap = times[1] - times[0];
            assert!(gap >= Duration::from_secs(2), "Retry-After: 2 not honoured: next attempt after {gap:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_spread_their_first_attempts_over_the_first_window() {
    const CLIENTS: usize = 200;
    let port = free_port();
    let mut srv = tokio::task::block_in_place(|| server("echo", port));
    let url = format!("ws://127.0.0.1:{port}/");
    // Each client logs, in its own task, when it saw the drop and when its first attempt is due.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant, Duration)>();
    let (up_tx, mut up_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u64)>();
    for i in 0..CLIENTS {
        let (tx, up_tx) = (tx.clone(), up_tx.clone());
        let mut socket = ReconnectingSocket::new(Client::new().proxy(duplex::proxy::Proxy::none()), url.clone());
        tokio::spawn(async move {
            while let Some(event) = socket.next().await {
                match event {
                    Event::Connected(c) => {
                        let _ = up_tx.send((i, c.connection));
                    }
                    Event::Disconnected(d) if d.attempt == 1 => {
                        let _ = tx.send((i, Instant::now(), d.retry_in));
                    }
                    _ => {}
                }
            }
        });
    }
    for _ in 0..CLIENTS {
        let (_, connection) = tokio::time::timeout(WAIT * 2, up_rx.recv()).await.expect("all connect").unwrap();
        assert_eq!(connection, 1);
    }
    // Down for 3 s.
    let killed = Instant::now();
    tokio::task::block_in_place(|| {
        signal_group(srv.child_id(), SIGKILL);
        srv.wait_exit(WAIT);
    });
    let mut first = Vec::with_capacity(CLIENTS);
    while first.len() < CLIENTS {
        let (_, seen, retry_in) =
            tokio::time::timeout(WAIT, rx.recv()).await.expect("every client sees the drop").unwrap();
        first.push(seen + retry_in);
    }
    let wake = killed + Duration::from_secs(3);
    tokio::time::sleep_until(wake.into()).await;
    let _srv = tokio::task::block_in_place(|| server("echo", port));
    for _ in 0..CLIENTS {
        let (_, connection) = tokio::time::timeout(WAIT * 3, up_rx.recv()).await.expect("all come back").unwrap();
        assert_eq!(connection, 2);
    }

    // The first attempts, from the earliest drop seen: they cover the first window (0.5 s) and
    // no 50 ms slice holds a crowd.
    let window = duplex::reconnect::Backoff::default().window(1).as_secs_f64();
    let origin = first.iter().min().copied().unwrap();
    let offsets: Vec<f64> = first.iter().map(|t| (*t - origin).as_secs_f64()).collect();
    let span = offsets.iter().cloned().fold(0.0, f64::max);
    let mut slices = vec![0usize; (span / 0.05) as usize + 1];
    for o in &offsets {
        slices[(o / 0.05) as usize] += 1;
    }
    let crowd = slices.iter().max().copied().unwrap();
    eprintln!("first attempts of {CLIENTS} clients: span {span:.3} s of a {window} s window, fullest 50 ms slice {crowd}; slices {slices:?}");
    assert!(span >= 0.6 * window, "first attempts span only {span:.3} s of the {window} s window: {slices:?}");
    assert!(crowd * 4 <= CLIENTS, "{crowd} of {CLIENTS} first attempts in one 50 ms slice: {slices:?}");
}

#[tokio::test]
async fn several_urls_are_tried_in_turn() {
    // The first URL refuses connections (nothing listens there); the second echoes; a drop there
    // sends the next attempt back to the first.
    let dead = format!("ws://127.0.0.1:{}/", free_port());
    let (port, seen) = scripted_server(|_| Answer::Echo).await;
    let live = format!("ws://127.0.0.1:{port}/");
    let mut socket = ReconnectingSocket::new(Client::new(), "ws://unused.invalid/")
        .urls([dead.clone(), live.clone()])
        .backoff(duplex::reconnect::Backoff::default().base(Duration::from_millis(50)));
    assert_eq!(socket.url(), dead);
    let mut failed_first = false;
    let connected = tokio::time::timeout(WAIT, async {
        loop {
            match socket.next().await {
                Some(Event::Connected(c)) => break c,
                Some(Event::Disconnected(d)) => {
                    failed_first = true;
                    assert_eq!(socket.url(), live, "after {}", d.cause);
                }
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .expect("connects to the second URL");
    assert!(failed_first);
    assert_eq!(&*connected.url, live.as_str());
    assert_eq!(seen.lock().unwrap().len(), 1);
    // start_at spreads clients over the list.
    let other =
        ReconnectingSocket::new(Client::new(), "ws://unused.invalid/").urls([dead.clone(), live.clone()]).start_at(3);
    assert_eq!(other.url(), live);
    assert_eq!(other.url_list().len(), 2);
}
