//! `duplex bench echo` end to end against `duplex echo`: raw binary and text frames, and with
//! permessage-deflate (`--deflate`, JSON text through the library's client), every echo verified;
//! `--deflate` against a server that declines the extension fails and says why. Counts only: a
//! benchmark's numbers are measured by scripts/bench-compare, never asserted here.

mod support;

use std::process::{Command, ExitStatus};

use support::{Duplex, Input};

fn bench(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_duplex"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the duplex binary runs");
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn json_line(stdout: &str) -> serde_json::Value {
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).expect("a JSON result line");
    serde_json::from_str(line).expect("the result line is JSON")
}

#[test]
fn echo_runs_verify_every_echo_with_and_without_deflate() {
    let server = Duplex::start(&["echo", "--port", "{port}"], Input::Null);
    let url = server.url("/");
    let pid = server.pid().to_string();
    for extra in [
        &["-s", "1KiB"][..],
        &["-s", "1KiB", "--text"][..],
        &["-s", "1KiB", "--deflate"][..],
        &["-s", "16KiB", "--deflate"][..],
    ] {
        let mut args = vec!["bench", "echo", "--url", &url, "-c", "4", "--messages", "300"];
        args.extend(["--warmup", "0s", "--server-pid", &pid, "--json"]);
        args.extend(extra);
        let (status, out, err) = bench(&args);
        assert!(status.success(), "{extra:?}: {status}\nstdout:\n{out}\nstderr:\n{err}");
        let j = json_line(&out);
        assert_eq!(j["verified"], true, "{extra:?}: {j}");
        assert_eq!(j["failed_connections"], 0, "{extra:?}: {j}");
        assert!(j["messages"].as_u64().is_some_and(|n| n >= 300), "{extra:?}: {j}");
        assert_eq!(j["deflate"], extra.contains(&"--deflate"), "{extra:?}: {j}");
        assert_eq!(j["text"], extra.len() > 2, "{extra:?}: {j}");
    }
}

#[test]
fn deflate_run_against_a_server_that_declines_it_fails() {
    let server = Duplex::start(&["echo", "--port", "{port}", "--no-deflate"], Input::Null);
    let url = server.url("/");
    let (status, out, err) = bench(&["bench", "echo", "--url", &url, "-c", "2", "--messages", "10", "--deflate"]);
    assert!(!status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("did not accept permessage-deflate"), "stderr:\n{err}");
}
