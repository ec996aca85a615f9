//! Interop with compression: the `duplex` binary against independent WebSocket implementations
//! with permessage-deflate (RFC 7692) negotiated, and asserted as negotiated, not only that the
//! messages arrive.
//!
//! - python-websockets, both directions, over wss:// with a test CA made at test time (rcgen);
//! - Node `ws` with `perMessageDeflate`, both directions;
//! - Debian's Chromium over wss:// against `duplex serve --tls-self-signed`.
//!
//! The peers (`tests/peers/`), the skip rule (`SKIP ...`, a failure under `CI=true`) and
//! `DUPLEX_BIN` are as in tests/interop.rs. Every process runs in its own process group and is
//! ended when its guard drops; every wait has a deadline.

mod support;

use support::{can_run, chromium_path, Need};

/// How long a server may take to start listening.
use std::io::Write;
use std::process::Command;
use std::time::Instant;

use support::pki::TestPki;
use support::procs::*;

// ---------------------------------------------------------------------------------------------
// duplex echo (deflate on by default), checked by other libraries' clients offering deflate

/// Runs a peer client to completion; fails the test unless it exits 0 and printed a
/// `negotiated extensions: permessage-deflate...` line.
fn run_deflate_client(name: &str, mut cmd: Command, server: &Proc) {
    let mut client = Proc::spawn(name, &mut cmd);
    let status = client.wait_exit(PEER_RUN);
    assert!(status.success(), "{name} failed ({status})\n{}\n{}", client.output(), server.output());
    let out = client.stdout();
    assert!(
        out.lines().any(|l| l.starts_with("negotiated extensions: permessage-deflate")),
        "{name} did not negotiate permessage-deflate\n{}\n{}",
        client.output(),
        server.output()
    );
    eprintln!("{name}: {}", out.trim_end());
}

#[test]
fn echo_server_wss_deflate_with_python_websockets_client() {
    if !can_run("echo_server_wss_deflate_with_python_websockets_client", &[Need::PythonWebsockets]) {
        return;
    }
    let pki = TestPki::new("echo-python");
    let port = free_port();
    let p = port.to_string();
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    let mut server = Proc::spawn(
        "duplex echo --tls-cert",
        &mut duplex(&["echo", "--port", &p, "--bind", "127.0.0.1", "--tls-cert", cert, "--tls-key", key]),
    );
    server.wait_listening(port);
    let mut cmd = python("echo_client.py");
    cmd.arg(format!("wss://127.0.0.1:{port}/")).args(["--deflate", "--require-deflate", "--ca"]).arg(&pki.ca);
    run_deflate_client("python echo_client.py --deflate (wss)", cmd, &server);
}

#[test]
fn echo_server_deflate_with_node_ws_client() {
    if !can_run("echo_server_deflate_with_node_ws_client", &[Need::NodePeers]) {
        return;
    }
    let port = free_port();
    let p = port.to_string();
    let mut server = Proc::spawn("duplex echo", &mut duplex(&["echo", "--port", &p, "--bind", "127.0.0.1"]));
    server.wait_listening(port);
    let mut cmd = node("echo_client.js");
    cmd.arg(format!("ws://127.0.0.1:{port}/")).arg("--deflate");
    run_deflate_client("node echo_client.js --deflate", cmd, &server);
}

// ---------------------------------------------------------------------------------------------
// duplex connect (offers deflate by default), against other libraries' servers accepting it

/// Runs `duplex connect <extra args> <url>` against an already started echo server: checks that
/// it logs `negotiated extensions: permessage-deflate...`, that two lines come back, and that it
/// closes with 1000 and exits 0.
fn connect_with_deflate(server_name: &str, server: &Proc, url: &str, extra: &[&str]) {
    let mut args = vec!["connect"];
    args.extend_from_slice(extra);
    args.push(url);
    let mut client = Proc::spawn_with("duplex connect", &mut duplex(&args), true);
    assert!(
        client.wait_stderr_line(SHORT, |l| l.contains("negotiated extensions: permessage-deflate")),
        "duplex connect did not log a negotiated permessage-deflate ({})\n{}\n{}",
        client.state(),
        client.output(),
        server.output()
    );
    // Long enough that compression matters.
    let lines = ["hello", "héllo 🌍", &"compress me ".repeat(200)];
    {
        let stdin = client.stdin.as_mut().expect("piped stdin");
        let _ = stdin.write_all(lines.map(|l| format!("{l}\n")).concat().as_bytes());
        let _ = stdin.flush();
    }
    let deadline = Instant::now() + SHORT;
    for expected in lines {
        match client.next_stdout_line(deadline) {
            Some(got) => assert_eq!(got, expected, "wrong echo\n{}\n{}", client.output(), server.output()),
            None => panic!(
                "duplex connect did not print {expected:?} within {SHORT:?} ({})\n{}\n{}",
                client.state(),
                client.output(),
                server.output()
            ),
        }
    }
    client.stdin = None;
    let status = client.wait_exit(SHORT);
    assert!(status.success(), "duplex connect exited {status}\n{}\n{}", client.output(), server.output());
    assert!(
        server.wait_stderr_line(SHORT, |l| l.contains("closed") && l.contains(" 1000 ")),
        "{server_name} did not see a close with code 1000\n{}\n{}",
        server.output(),
        client.output()
    );
}

#[test]
fn connect_wss_deflate_to_python_websockets_server() {
    if !can_run("connect_wss_deflate_to_python_websockets_server", &[Need::PythonWebsockets]) {
        return;
    }
    let pki = TestPki::new("connect-python");
    let port = free_port();
    let mut cmd = python("echo_server.py");
    cmd.arg(port.to_string()).arg("--deflate").arg("--cert").arg(&pki.cert).arg("--key").arg(&pki.key);
    let mut server = Proc::spawn("python echo_server.py --deflate (TLS)", &mut cmd);
    server.wait_stdout_line("ready");
    let ca = pki.ca.to_str().unwrap();
    connect_with_deflate("python echo_server.py", &server, &format!("wss://127.0.0.1:{port}/"), &["--ca", ca]);
}

#[test]
fn connect_deflate_to_node_ws_server() {
    if !can_run("connect_deflate_to_node_ws_server", &[Need::NodePeers]) {
        return;
    }
    let port = free_port();
    let mut cmd = node("echo_server.js");
    cmd.arg(port.to_string()).arg("--deflate");
    let mut server = Proc::spawn("node echo_server.js --deflate", &mut cmd);
    server.wait_stdout_line("ready");
    connect_with_deflate("node echo_server.js", &server, &format!("ws://127.0.0.1:{port}/"), &[]);
    assert!(
        server.wait_stderr_line(SHORT, |l| l.contains("opened") && l.contains("permessage-deflate")),
        "node echo_server.js did not log permessage-deflate for the connection\n{}",
        server.output()
    );
}

// ---------------------------------------------------------------------------------------------
// duplex serve over TLS, checked by Chromium

#[test]
fn serve_wss_deflate_in_chromium() {
    if !can_run("serve_wss_deflate_in_chromium", &[Need::NodePeers, Need::Chromium]) {
        return;
    }
    let port = free_port();
    let p = port.to_string();
    let out = std::env::temp_dir().join(format!("duplex-interop-deflate-{}-serve.pem", std::process::id()));
    let out_s = out.to_str().unwrap();
    let mut server = Proc::spawn(
        "duplex serve --tls-self-signed",
        &mut duplex(&[
            "serve",
            "--port",
            &p,
            "--bind",
            "127.0.0.1",
            "--interval",
            "300ms",
            "--tls-self-signed",
            "--tls-self-signed-out",
            out_s,
        ]),
    );
    server.wait_listening(port);

    let mut cmd = node("browser_wss.js");
    cmd.arg(format!("https://127.0.0.1:{port}/")).args(["--timeout", "75"]).env("CHROMIUM", chromium_path());
    let mut browser = Proc::spawn("browser_wss.js", &mut cmd);
    let status = browser.wait_exit(PEER_RUN);
    let _ = std::fs::remove_file(&out);
    assert!(status.success(), "browser_wss.js failed ({status})\n{}\n{}", browser.output(), server.output());
    let report: serde_json::Value = serde_json::from_str(&browser.stdout()).expect("browser_wss.js prints JSON");
    let extensions = report["extensions"].as_str().unwrap_or_default();
    assert!(extensions.contains("permessage-deflate"), "window.ws.extensions is {extensions:?}\n{}", browser.output());
    let log = report["pageLog"].as_array().cloned().unwrap_or_default();
    assert!(
        log.iter().any(|l| l.as_str().is_some_and(|l| l.starts_with("< Message "))),
        "no pushed `< Message ` in the page's log\n{}",
        browser.output()
    );
    eprintln!("serve_wss_deflate_in_chromium: {} extensions {extensions:?}", report["socketUrl"]);
}
