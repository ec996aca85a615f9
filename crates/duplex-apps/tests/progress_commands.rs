//! The progress demo with commands from its allow-list, over an in-memory connection.

use std::time::Duration;

use duplex::{Config, Message, Role, WebSocket};
use duplex_apps::progress::{handle, JobSpec, Jobs};
use duplex_pubsub::PubSub;
use serde_json::{json, Value};
use tokio::io::DuplexStream;

type Ws = WebSocket<DuplexStream>;

/// A viewer of `jobs`: the client end of a connection whose server end `handle` serves.
fn viewer(jobs: &Jobs) -> Ws {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let jobs = jobs.clone();
    tokio::spawn(async move {
        let mut ws = WebSocket::from_upgraded(server, Role::Server, Config::default(), &[]);
        let _ = handle(&mut ws, &jobs).await;
    });
    WebSocket::from_upgraded(client, Role::Client, Config::default(), &[])
}

async fn next(ws: &mut Ws) -> Value {
    match tokio::time::timeout(Duration::from_secs(10), ws.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(&t).expect("JSON"),
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Starts `job` and returns its lines as `level text` and how it finished.
async fn run(ws: &mut Ws, job: &str) -> (Vec<String>, Value) {
    ws.send(json!({"type":"start","job":job}).to_string()).await.unwrap();
    let mut lines = Vec::new();
    loop {
        let v = next(ws).await;
        match v["type"].as_str() {
            Some("line") => {
                lines.push(format!("{} {}", v["line"]["level"].as_str().unwrap(), v["line"]["text"].as_str().unwrap()))
            }
            Some("finished") => return (lines, v),
            Some("error") => panic!("{v}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn commands_stream_stdout_and_stderr_and_end_with_their_status() {
    let argv = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let specs = vec![
        JobSpec::command("mixed", vec!["sh".into(), "-c".into(), "echo one; echo two >&2; exit 3".into()]).unwrap(),
        JobSpec::parse_command("ok=echo all  good").unwrap(),
        JobSpec::command("missing", argv("/nonexistent/program")).unwrap(),
    ];
    let jobs = Jobs::new(PubSub::new(), specs);
    let mut ws = viewer(&jobs);
    let hello = next(&mut ws).await;
    let names: Vec<&str> = hello["jobs"].as_array().unwrap().iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["mixed", "ok", "missing"]);

    let (lines, end) = run(&mut ws, "mixed").await;
    assert_eq!(end["state"], "failed");
    assert_eq!(lines[0], "info $ sh -c echo one; echo two >&2; exit 3");
    assert!(lines.contains(&"info one".to_owned()) && lines.contains(&"warn two".to_owned()), "{lines:?}");
    assert!(lines.last().unwrap().starts_with("error sh exited with"), "{lines:?}");

    let (lines, end) = run(&mut ws, "ok").await;
    assert_eq!(end["state"], "succeeded");
    assert_eq!(lines, ["info $ echo all good", "info all good"]);

    let (lines, end) = run(&mut ws, "missing").await;
    assert_eq!(end["state"], "failed");
    assert!(lines[1].starts_with("error cannot start /nonexistent/program"), "{lines:?}");
    assert_eq!(end["recent"].as_array().unwrap().len(), 3);
}

#[test]
fn the_allow_list_is_checked() {
    assert!(JobSpec::parse_command("no-equals-sign").is_err());
    assert!(JobSpec::parse_command("bad name=ls").is_err());
    assert!(JobSpec::parse_command("empty=   ").is_err());
    assert_eq!(JobSpec::parse_command(" disk = df -h").unwrap().name(), "disk");
    let names: Vec<String> = JobSpec::simulated().iter().map(|s| s.name().to_owned()).collect();
    assert_eq!(names, ["build", "test", "deploy"]);
}
