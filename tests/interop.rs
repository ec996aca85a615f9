//! Interop: the `duplex` binary against independent WebSocket implementations.
//!
//! - `duplex echo` is checked by the echo clients of python-websockets and Node `ws`;
//! - `duplex connect` is checked against the echo servers of the same two libraries;
//! - `duplex serve` is checked by Debian's Chromium driving its page (playwright-core).
//!
//! The peers live in `tests/peers/` and are installed by `.ci/run` (see `docs/testing.md`). A test
//! whose peer is missing prints `SKIP <test>: ...` and passes, except under `CI=true`, where a skip
//! is a failure. `DUPLEX_BIN=path` tests another build of the binary (e.g. `target/release/duplex`).
//!
//! Every process is started in its own process group and ended (SIGTERM, then SIGKILL) when its
//! guard drops, and every wait has a deadline, so a hung peer fails the test instead of hanging it.

mod support;

use support::{can_run, chromium_path, repo_root, Need};

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use support::procs::*;

// ---------------------------------------------------------------------------------------------
// duplex echo, checked by other libraries' clients

/// Starts `duplex echo` on a free port; returns it and its URL.
fn start_duplex_echo() -> (Proc, String) {
    let port = free_port();
    let p = port.to_string();
    let mut server = Proc::spawn("duplex echo", &mut duplex(&["echo", "--port", &p, "--bind", "127.0.0.1"]));
    server.wait_listening(port);
    (server, format!("ws://127.0.0.1:{port}/"))
}

/// Runs a peer client to completion and fails the test unless it exits 0.
fn run_client(name: &str, mut cmd: Command, server: &Proc) {
    let mut client = Proc::spawn(name, &mut cmd);
    let status = client.wait_exit(PEER_RUN);
    assert!(status.success(), "{name} failed ({status})\n{}\n{}", client.output(), server.output());
    eprintln!("{name}: {}", client.stdout().trim_end());
}

#[test]
fn echo_server_with_python_websockets_client() {
    if !can_run("echo_server_with_python_websockets_client", &[Need::PythonWebsockets]) {
        return;
    }
    let (server, url) = start_duplex_echo();
    let mut cmd = python("echo_client.py");
    cmd.arg(&url);
    run_client("python echo_client.py", cmd, &server);
}

#[test]
fn echo_server_with_node_ws_client() {
    if !can_run("echo_server_with_node_ws_client", &[Need::NodePeers]) {
        return;
    }
    let (server, url) = start_duplex_echo();
    let mut cmd = node("echo_client.js");
    cmd.arg(&url);
    run_client("node echo_client.js", cmd, &server);
}

// ---------------------------------------------------------------------------------------------
// duplex connect, checked against other libraries' servers

/// Runs `duplex connect` against the echo server `server_cmd PORT`: writes two lines, expects
/// exactly them back on stdout, then closes stdin and expects a normal close and exit 0.
fn connect_to_echo_server(server_name: &str, mut server_cmd: Command) {
    let port = free_port();
    server_cmd.arg(port.to_string());
    let mut server = Proc::spawn(server_name, &mut server_cmd);
    server.wait_stdout_line("ready");

    let url = format!("ws://127.0.0.1:{port}");
    let mut client = Proc::spawn_with("duplex connect", &mut duplex(&["connect", &url]), true);
    let lines = ["hello", "héllo 🌍"];
    {
        let stdin = client.stdin.as_mut().expect("piped stdin");
        // A write error means the client already exited; the checks below say why.
        let _ = stdin.write_all(lines.map(|l| format!("{l}\n")).concat().as_bytes());
        let _ = stdin.flush();
    }
    // Wait for both echoes before ending stdin: an echo server may drop messages it has not
    // answered yet when the close arrives.
    let deadline = Instant::now() + SHORT;
    for expected in lines {
        match client.next_stdout_line(deadline) {
            Some(got) => assert_eq!(
                got,
                expected,
                "duplex connect printed {got:?}, expected {expected:?}\n{}\n{}",
                client.output(),
                server.output()
            ),
            None => panic!(
                "duplex connect did not print {expected:?} within {SHORT:?} ({})\n{}\n{}",
                client.state(),
                client.output(),
                server.output()
            ),
        }
    }

    client.stdin = None; // EOF: send close 1000, wait for the server's close, exit.
    let status = client.wait_exit(SHORT);
    let extra = client.rest_of_stdout();
    assert!(extra.is_empty(), "duplex connect printed more than the echoes: {extra:?}\n{}", client.output());
    assert!(
        status.success(),
        "duplex connect exited {status} after a normal close\n{}\n{}",
        client.output(),
        server.output()
    );
    // The peer logs `closed ... 1000 ...` for the close it received from duplex.
    assert!(
        server.wait_stderr_line(SHORT, |l| l.contains("closed") && l.contains(" 1000 ")),
        "{server_name} did not see a close with code 1000\n{}\n{}",
        server.output(),
        client.output()
    );
}

#[test]
fn connect_to_python_websockets_server() {
    if !can_run("connect_to_python_websockets_server", &[Need::PythonWebsockets]) {
        return;
    }
    connect_to_echo_server("python echo_server.py", python("echo_server.py"));
}

#[test]
fn connect_to_node_ws_server() {
    if !can_run("connect_to_node_ws_server", &[Need::NodePeers]) {
        return;
    }
    connect_to_echo_server("node echo_server.js", node("echo_server.js"));
}

// ---------------------------------------------------------------------------------------------
// duplex serve, checked by a browser

#[test]
fn serve_page_in_chromium() {
    if !can_run("serve_page_in_chromium", &[Need::NodePeers, Need::Chromium]) {
        return;
    }
    let port = free_port();
    let p = port.to_string();
    let mut server = Proc::spawn(
        "duplex serve",
        &mut duplex(&["serve", "--port", &p, "--bind", "127.0.0.1", "--interval", "300ms"]),
    );
    server.wait_listening(port);

    let shot = repo_root().join("target").join("interop").join("serve.png");
    let mut cmd = node("browser_serve.js");
    cmd.arg(format!("http://127.0.0.1:{port}/")).arg(&shot).args(["--timeout", "75"]).env("CHROMIUM", chromium_path());
    let mut browser = Proc::spawn("browser_serve.js", &mut cmd);
    let status = browser.wait_exit(PEER_RUN);
    assert!(
        status.success(),
        "browser_serve.js failed ({status}); screenshot (if any) at {}\n{}\n{}",
        shot.display(),
        browser.output(),
        server.output()
    );

    for (what, wanted) in [
        ("the message typed into the page", "received message hello from chromium"),
        ("the message sent from the console snippet", "received message hello from the console"),
    ] {
        assert!(
            server.wait_stderr_line(SHORT, |l| l.contains(wanted)),
            "duplex serve did not log {wanted:?} ({what})\n{}\n{}",
            server.output(),
            browser.output()
        );
    }
    assert!(
        server.wait_stderr_line(SHORT, |l| l.contains("closed 1000") && l.contains("bye")),
        "duplex serve did not log `closed 1000 bye` for the page's close button\n{}\n{}",
        server.output(),
        browser.output()
    );
    eprintln!("serve_page_in_chromium: screenshot at {}", shot.display());
}
