//! Progress and logs: a viewer starts a long job, and every viewer watches its output lines and
//! its progress live. One job runs at a time, chosen from a list fixed when the server starts:
//! simulated jobs ([`JobSpec::simulated`]: a build, a test run, a deploy that fails), and
//! optionally commands ([`JobSpec::command`]: a program and its arguments, run without a shell,
//! killed after [`COMMAND_TIMEOUT`]). A request names a job of the list; nothing a client sends
//! is ever run.
//!
//! ```text
//! ← {"type":"hello","viewer":"viewer 3","since":1764150000000,"jobs":[{"name":"build",…}],"current":{…job, its lines so far…}|null,"recent":[…],"viewers":2}
//! → {"type":"start","job":"build"}        → {"type":"cancel"}
//! ← {"type":"started","job":{"id":7,"name":"build","title":…,"by":"viewer 3","state":"running","percent":0,…}}
//! ← {"type":"line","id":7,"line":{"n":12,"level":"info","text":"   Compiling bytes v1.10.1","ms":2210}}
//! ← {"type":"progress","id":7,"percent":42.5,"step":"Compiling bytes (9/24)"}
//! ← {"type":"finished","id":7,"state":"succeeded","secs":7.9,"recent":[…]}
//! ← {"type":"viewers","count":3}
//! ```
//!
//! Jobs live in the process's memory: a restart forgets them, and a job running then is gone
//! with it. `since` (when these jobs' state was made, in milliseconds since the Unix epoch) tells
//! a page that reconnects whether it is talking to the same server: if not, a job it saw running
//! was lost, and the page says so rather than showing it running.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use duplex::WebSocket;
use duplex_pubsub::PubSub;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::sync::Notify;

use crate::event;

/// The page, embedded from `web/progress.html`.
pub const PAGE: &str = include_str!("../../../web/progress.html");

/// The topic jobs are published on.
pub const TOPIC: &str = "progress.jobs";
/// Lines kept (and sent) per job; a command printing more is cut short there.
pub const MAX_LINES: usize = 2000;
/// The longest line kept, in characters.
pub const MAX_LINE: usize = 400;
/// Finished jobs listed.
pub const RECENT: usize = 8;
/// A command still running after this is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A job viewers may start.
#[derive(Clone, Debug)]
pub struct JobSpec {
    name: String,
    title: String,
    about: String,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Simulated(fn() -> Vec<Step>),
    Command(Vec<String>),
}

/// One step of a simulated job.
#[derive(Clone, Debug)]
enum Step {
    Wait(u64),
    Line(Level, String),
    Progress(f64, String),
    Fail,
}

/// How a log line reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Ordinary output (a command's stdout).
    Info,
    /// A warning (a command's stderr).
    Warn,
    /// An error.
    Error,
    /// A success.
    Ok,
}

impl JobSpec {
    /// The simulated jobs: `build` (~8 s), `test` (~6 s) and `deploy` (~5 s, fails at its health
    /// check).
    pub fn simulated() -> Vec<JobSpec> {
        vec![
            JobSpec::sim("build", "Build", "compile a workspace of 24 crates (simulated, ~8 s)", build_script),
            JobSpec::sim("test", "Test", "run a suite of 40 tests (simulated, ~6 s)", test_script),
            JobSpec::sim(
                "deploy",
                "Deploy",
                "roll out to staging; the health check fails (simulated, ~5 s)",
                deploy_script,
            ),
        ]
    }

    fn sim(name: &str, title: &str, about: &str, script: fn() -> Vec<Step>) -> JobSpec {
        JobSpec { name: name.into(), title: title.into(), about: about.into(), kind: Kind::Simulated(script) }
    }

    /// A command viewers may run under `name` (letters, digits, `-`, `_`): `argv[0]` with the
    /// other arguments, as given here, without a shell. Its stdout and stderr are the job's
    /// lines; it succeeds when it exits with 0.
    pub fn command(name: &str, argv: Vec<String>) -> Result<JobSpec, String> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(format!("job name {name:?}: use letters, digits, - and _"));
        }
        if argv.is_empty() {
            return Err(format!("job {name}: no command"));
        }
        let about = format!("runs `{}`", argv.join(" "));
        Ok(JobSpec { name: name.into(), title: name.into(), about, kind: Kind::Command(argv) })
    }

    /// Parses `NAME=PROGRAM ARG…` (split on whitespace, no shell, no quoting), as the
    /// `progress` example's `--command` takes it.
    pub fn parse_command(spec: &str) -> Result<JobSpec, String> {
        let (name, command) = spec.split_once('=').ok_or_else(|| format!("{spec:?}: expected NAME=COMMAND"))?;
        JobSpec::command(name.trim(), command.split_whitespace().map(str::to_owned).collect())
    }

    /// Its name, what a start request gives.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum JobState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(Clone, Debug, Serialize)]
struct LogLine {
    n: usize,
    level: Level,
    text: String,
    /// Milliseconds since the job started.
    ms: u64,
}

#[derive(Clone, Debug, Serialize)]
struct Job {
    id: u64,
    name: String,
    title: String,
    by: String,
    state: JobState,
    /// `None` while a command runs: how far it is is unknown.
    percent: Option<f64>,
    step: String,
    started: u64,
    secs: Option<f64>,
    lines: Vec<LogLine>,
}

#[derive(Clone, Debug, Serialize)]
struct Summary {
    id: u64,
    name: String,
    by: String,
    state: JobState,
    started: u64,
    secs: f64,
}

#[derive(Serialize)]
struct SpecView<'a> {
    name: &'a str,
    title: &'a str,
    about: &'a str,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Request {
    Start { job: String },
    Cancel,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Event<'a> {
    Hello {
        viewer: &'a str,
        since: u64,
        jobs: Vec<SpecView<'a>>,
        current: Option<&'a Job>,
        recent: &'a VecDeque<Summary>,
        viewers: usize,
    },
    Started {
        job: &'a Job,
    },
    Line {
        id: u64,
        line: &'a LogLine,
    },
    Progress {
        id: u64,
        percent: Option<f64>,
        step: &'a str,
    },
    Finished {
        id: u64,
        state: JobState,
        secs: f64,
        recent: &'a VecDeque<Summary>,
    },
    Viewers {
        count: usize,
    },
}

/// The jobs: the list, the current (or last) job with its output, the recent ones. Cloning gives
/// another handle to the same jobs.
#[derive(Clone)]
pub struct Jobs {
    pubsub: PubSub,
    inner: Arc<Inner>,
}

struct Inner {
    specs: Vec<JobSpec>,
    /// When this state was made (`since` in `hello`).
    since: u64,
    state: Mutex<State>,
    viewers: AtomicU64,
}

#[derive(Default)]
struct State {
    next_id: u64,
    current: Option<Job>,
    cancel: Option<Arc<Notify>>,
    recent: VecDeque<Summary>,
    started_at: Option<tokio::time::Instant>,
}

impl Jobs {
    /// Jobs from `specs` (the allow-list), published through `pubsub`.
    pub fn new(pubsub: PubSub, specs: Vec<JobSpec>) -> Jobs {
        let inner = Inner { specs, since: event::now_ms(), state: Mutex::default(), viewers: AtomicU64::new(0) };
        Jobs { pubsub, inner: Arc::new(inner) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a job is running.
    pub fn is_running(&self) -> bool {
        self.state().current.as_ref().is_some_and(|j| j.state == JobState::Running)
    }

    /// Starts the job called `name` on behalf of `by` (must run inside the runtime). Fails if it is
    /// not in the list or a job is running.
    pub fn start(&self, name: &str, by: &str) -> Result<u64, String> {
        let Some(spec) = self.inner.specs.iter().find(|s| s.name == name) else {
            let names: Vec<&str> = self.inner.specs.iter().map(|s| s.name.as_str()).collect();
            return Err(format!("no job {name:?}: the jobs are {}", names.join(", ")));
        };
        let mut state = self.state();
        if let Some(j) = state.current.as_ref().filter(|j| j.state == JobState::Running) {
            return Err(format!("job #{} ({}) is running: watch it, or cancel it", j.id, j.name));
        }
        state.next_id += 1;
        let id = state.next_id;
        let job = Job {
            id,
            name: spec.name.clone(),
            title: spec.title.clone(),
            by: by.to_owned(),
            state: JobState::Running,
            percent: matches!(spec.kind, Kind::Simulated(_)).then_some(0.0),
            step: "Starting".into(),
            started: event::now_ms(),
            secs: None,
            lines: Vec::new(),
        };
        let _ = self.pubsub.publish(TOPIC, event::json(&Event::Started { job: &job }));
        state.current = Some(job);
        let cancel = Arc::new(Notify::new());
        state.cancel = Some(cancel.clone());
        state.started_at = Some(tokio::time::Instant::now());
        drop(state);
        tracing::info!("progress: job #{id} ({name}) started by {by}");
        tokio::spawn(self.clone().run(id, spec.kind.clone(), cancel));
        Ok(id)
    }

    /// Cancels the running job, if any.
    pub fn cancel(&self) -> bool {
        let state = self.state();
        match (&state.current, &state.cancel) {
            (Some(j), Some(c)) if j.state == JobState::Running => {
                c.notify_one();
                true
            }
            _ => false,
        }
    }

    async fn run(self, id: u64, kind: Kind, cancel: Arc<Notify>) {
        let state = match kind {
            Kind::Simulated(script) => self.run_script(id, script(), &cancel).await,
            Kind::Command(argv) => self.run_command(id, &argv, &cancel).await,
        };
        self.finish(id, state);
    }

    async fn run_script(&self, id: u64, steps: Vec<Step>, cancel: &Notify) -> JobState {
        for step in steps {
            match step {
                Step::Wait(ms) => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                        _ = cancel.notified() => return JobState::Cancelled,
                    }
                }
                Step::Line(level, text) => self.line(id, level, text),
                Step::Progress(percent, step) => self.progress(id, Some(percent), step),
                Step::Fail => return JobState::Failed,
            }
        }
        JobState::Succeeded
    }

    async fn run_command(&self, id: u64, argv: &[String], cancel: &Notify) -> JobState {
        self.line(id, Level::Info, format!("$ {}", argv.join(" ")));
        self.progress(id, None, format!("Running {}", argv[0]));
        let child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                self.line(id, Level::Error, format!("cannot start {}: {e}", argv[0]));
                return JobState::Failed;
            }
        };
        let mut out = child.stdout.take().map(|s| BufReader::new(s).lines());
        let mut err = child.stderr.take().map(|s| BufReader::new(s).lines());
        let deadline = tokio::time::sleep(COMMAND_TIMEOUT);
        tokio::pin!(deadline);
        while out.is_some() || err.is_some() {
            tokio::select! {
                line = async { out.as_mut().expect("guarded").next_line().await }, if out.is_some() => match line {
                    Ok(Some(l)) => self.line(id, Level::Info, l),
                    _ => out = None,
                },
                line = async { err.as_mut().expect("guarded").next_line().await }, if err.is_some() => match line {
                    Ok(Some(l)) => self.line(id, Level::Warn, l),
                    _ => err = None,
                },
                _ = cancel.notified() => return JobState::Cancelled, // kill_on_drop ends it
                _ = &mut deadline => {
                    self.line(id, Level::Error, format!("still running after {COMMAND_TIMEOUT:?}: killed"));
                    return JobState::Failed;
                }
            }
        }
        let status = tokio::select! {
            s = child.wait() => s,
            _ = cancel.notified() => return JobState::Cancelled,
            _ = &mut deadline => return JobState::Failed,
        };
        match status {
            Ok(s) if s.success() => JobState::Succeeded,
            Ok(s) => {
                self.line(id, Level::Error, format!("{} exited with {s}", argv[0]));
                JobState::Failed
            }
            Err(e) => {
                self.line(id, Level::Error, format!("waiting for {}: {e}", argv[0]));
                JobState::Failed
            }
        }
    }

    /// Adds a line to job `id` and publishes it.
    fn line(&self, id: u64, level: Level, text: String) {
        let mut state = self.state();
        let ms = state.started_at.map_or(0, |t| t.elapsed().as_millis() as u64);
        let Some(job) = state.current.as_mut().filter(|j| j.id == id) else { return };
        let n = job.lines.len() + 1;
        let (level, text) = match n {
            n if n < MAX_LINES => {
                (level, text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_LINE).collect())
            }
            n if n == MAX_LINES => (Level::Warn, format!("… more output not shown (over {MAX_LINES} lines)")),
            _ => return,
        };
        let line = LogLine { n, level, text, ms };
        let _ = self.pubsub.publish(TOPIC, event::json(&Event::Line { id, line: &line }));
        job.lines.push(line);
    }

    fn progress(&self, id: u64, percent: Option<f64>, step: String) {
        let mut state = self.state();
        let Some(job) = state.current.as_mut().filter(|j| j.id == id) else { return };
        let percent = percent.map(|p| (p.clamp(0.0, 100.0) * 10.0).round() / 10.0);
        let _ = self.pubsub.publish(TOPIC, event::json(&Event::Progress { id, percent, step: &step }));
        job.percent = percent;
        job.step = step;
    }

    fn finish(&self, id: u64, end: JobState) {
        let mut state = self.state();
        let secs = state.started_at.map_or(0.0, |t| (t.elapsed().as_secs_f64() * 10.0).round() / 10.0);
        let Some(job) = state.current.as_mut().filter(|j| j.id == id) else { return };
        job.state = end;
        job.secs = Some(secs);
        if end == JobState::Succeeded {
            job.percent = Some(100.0);
        }
        job.step = match end {
            JobState::Succeeded => "Done",
            JobState::Failed => "Failed",
            JobState::Cancelled => "Cancelled",
            JobState::Running => "Running",
        }
        .into();
        let summary =
            Summary { id, name: job.name.clone(), by: job.by.clone(), state: end, started: job.started, secs };
        tracing::info!("progress: job #{id} ({}) {end:?} after {secs} s", job.name);
        state.cancel = None;
        state.recent.push_front(summary);
        state.recent.truncate(RECENT);
        let _ =
            self.pubsub.publish(TOPIC, event::json(&Event::Finished { id, state: end, secs, recent: &state.recent }));
    }

    fn publish_viewers(&self) {
        let count = self.pubsub.subscriber_count(TOPIC);
        let _ = self.pubsub.publish(TOPIC, event::json(&Event::Viewers { count }));
    }
}

/// Serves one viewer until it closes: the job list and the current job so far, then every line
/// and progress update; its start and cancel requests.
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, jobs: &Jobs) -> duplex::Result<()> {
    let me = jobs.pubsub.attach(ws);
    let viewer = format!("viewer {}", jobs.inner.viewers.fetch_add(1, Ordering::Relaxed) + 1);
    {
        let state = jobs.state();
        let specs =
            jobs.inner.specs.iter().map(|s| SpecView { name: &s.name, title: &s.title, about: &s.about }).collect();
        let hello = Event::Hello {
            viewer: &viewer,
            since: jobs.inner.since,
            jobs: specs,
            current: state.current.as_ref(),
            recent: &state.recent,
            viewers: jobs.pubsub.subscriber_count(TOPIC) + 1,
        };
        event::send(me.sender(), &hello);
        if let Err(e) = me.subscribe(TOPIC) {
            tracing::warn!("progress: cannot subscribe: {e}");
        }
    }
    jobs.publish_viewers();
    let result = async {
        while let Some(msg) = ws.recv().await {
            let msg = msg?;
            let Some(text) = msg.as_text() else { continue };
            match serde_json::from_str::<Request>(text) {
                Ok(Request::Start { job }) => {
                    if let Err(e) = jobs.start(&job, &viewer) {
                        event::send_error(me.sender(), &e);
                    }
                }
                Ok(Request::Cancel) => {
                    if !jobs.cancel() {
                        event::send_error(me.sender(), "no job is running");
                    }
                }
                Err(e) => event::send_error(me.sender(), &format!("not a request: {e}")),
            }
        }
        Ok(())
    }
    .await;
    drop(me);
    jobs.publish_viewers();
    result
}

// ---------------------------------------------------------------------------------------------
// The simulated jobs' scripts: what they print, how fast, how far along they are.

fn jitter(min: u64, max: u64) -> Step {
    Step::Wait(rand::random_range(min..=max))
}

fn info(text: impl Into<String>) -> Step {
    Step::Line(Level::Info, text.into())
}

const CRATES: [(&str, &str); 24] = [
    ("proc-macro2", "1.0.95"),
    ("unicode-ident", "1.0.18"),
    ("libc", "0.2.174"),
    ("cfg-if", "1.0.1"),
    ("bytes", "1.10.1"),
    ("pin-project-lite", "0.2.16"),
    ("quote", "1.0.40"),
    ("syn", "2.0.104"),
    ("memchr", "2.7.5"),
    ("itoa", "1.0.15"),
    ("ryu", "1.0.20"),
    ("serde", "1.0.219"),
    ("serde_json", "1.0.141"),
    ("tokio-macros", "2.5.0"),
    ("mio", "1.0.4"),
    ("socket2", "0.6.0"),
    ("tokio", "1.47.0"),
    ("tracing-core", "0.1.34"),
    ("tracing", "0.1.41"),
    ("sha1", "0.10.6"),
    ("base64", "0.22.1"),
    ("duplex-proto", "0.1.0"),
    ("duplex", "0.1.0"),
    ("duplex-pubsub", "0.1.0"),
];

fn build_script() -> Vec<Step> {
    let mut s = vec![
        Step::Progress(0.0, "Resolving dependencies".into()),
        info("$ cargo build --release"),
        jitter(300, 450),
        info("    Updating crates.io index"),
        jitter(300, 450),
        info(format!("     Locking {} packages to latest compatible versions", CRATES.len())),
    ];
    let n = CRATES.len();
    for (i, (name, version)) in CRATES.iter().enumerate() {
        s.push(jitter(170, 290));
        s.push(info(format!("   Compiling {name} v{version}")));
        s.push(Step::Progress(5.0 + 85.0 * (i + 1) as f64 / n as f64, format!("Compiling {name} ({}/{n})", i + 1)));
        if *name == "duplex-proto" {
            s.push(Step::Line(Level::Warn, "warning: unused variable: `frame` --> src/frame.rs:88:9".into()));
        }
    }
    s.extend([
        Step::Progress(93.0, "Linking".into()),
        jitter(400, 600),
        info("   Linking duplex (release)"),
        jitter(400, 600),
        Step::Line(Level::Ok, "    Finished `release` profile [optimized] target(s)".into()),
        Step::Progress(100.0, "Done".into()),
    ]);
    s
}

fn test_script() -> Vec<Step> {
    const MODULES: [&str; 5] = ["frame", "mask", "utf8", "close", "deflate"];
    const CASES: [&str; 8] = [
        "roundtrip",
        "empty_payload",
        "max_len",
        "fragmented",
        "interleaved_control",
        "bad_opcode",
        "reserved_bits",
        "oversized",
    ];
    let mut s = vec![
        Step::Progress(0.0, "Compiling tests".into()),
        info("$ cargo test --workspace"),
        jitter(500, 700),
        info("running 40 tests"),
    ];
    let mut i = 0;
    for m in MODULES {
        for c in CASES {
            i += 1;
            s.push(jitter(90, 150));
            let line = if m == "deflate" && c == "oversized" {
                format!("test {m}::tests::{c} ... ignored, needs 4 GiB")
            } else {
                format!("test {m}::tests::{c} ... ok")
            };
            s.push(info(line));
            s.push(Step::Progress(100.0 * i as f64 / 40.0, format!("Testing {m} ({i}/40)")));
        }
    }
    s.push(jitter(200, 300));
    s.push(Step::Line(Level::Ok, "test result: ok. 39 passed; 0 failed; 1 ignored".into()));
    s
}

fn deploy_script() -> Vec<Step> {
    let mut s = vec![
        Step::Progress(0.0, "Packaging".into()),
        info("Packaging duplex 0.1.0 (x86_64-unknown-linux-gnu)"),
        jitter(400, 600),
    ];
    for pct in [18, 41, 67, 88, 100] {
        s.push(jitter(200, 300));
        s.push(info(format!("Uploading artifact … {pct}%")));
        s.push(Step::Progress(10.0 + 0.4 * pct as f64, "Uploading".into()));
    }
    for i in 1..=3 {
        s.push(jitter(400, 600));
        s.push(info(format!("Rolling out to staging: instance {i}/3 started")));
        s.push(Step::Progress(50.0 + 10.0 * i as f64, format!("Rolling out ({i}/3)")));
    }
    s.extend([
        jitter(400, 600),
        info("Health check instance 1: GET /healthz → 200"),
        jitter(200, 300),
        Step::Line(Level::Error, "Health check instance 2: GET /healthz → 503 Service Unavailable".into()),
        Step::Progress(85.0, "Rolling back".into()),
        jitter(400, 600),
        Step::Line(Level::Error, "Deploy failed: rolled back to the previous release".into()),
        Step::Fail,
    ]);
    s
}

crate::app_from_handler!(Jobs, handle);
