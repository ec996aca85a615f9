//! The `duplex` binary over TLS: `serve`/`echo` with `--tls-self-signed` or `--tls-cert/--tls-key`,
//! and `duplex connect --ca` (or `--insecure`) talking to them; the certificate path is read from
//! the server's log, as a person would. Every wait has a deadline; every process is killed when its
//! guard drops. `DUPLEX_BIN=path` tests another build.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to start, a line to show up, a client to finish.
const WAIT: Duration = Duration::from_secs(20);

fn duplex(args: &[&str]) -> Command {
    let bin = std::env::var_os("DUPLEX_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_duplex")), PathBuf::from);
    let mut cmd = Command::new(bin);
    cmd.args(args).env("RUST_LOG", "info").env_remove("NO_COLOR");
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running process: its stdin, and its stdout and stderr lines as they come.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stderr line seen so far, for failure messages.
    seen_stderr: Vec<String>,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().unwrap()));
        let stderr = lines(Box::new(child.stderr.take().unwrap()));
        Proc { name: name.into(), stdin: child.stdin.take(), child, stdout, stderr, seen_stderr: Vec::new() }
    }

    /// Waits for a stderr line containing `needle`; returns it.
    fn wait_stderr(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen_stderr.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("{}: no stderr line with {needle:?}; stderr so far:\n{}", self.name, self.seen_stderr.join("\n"));
    }

    /// Waits for a stdout line containing `needle`; returns it.
    fn wait_stdout(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stdout.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        self.seen_stderr.extend(self.stderr.try_iter());
        panic!(
            "{}: no stdout line with {needle:?}; stdout:\n{}\nstderr:\n{}",
            self.name,
            seen.join("\n"),
            self.seen_stderr.join("\n")
        );
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin and waits for the exit; returns the status and all of stderr.
    fn finish(mut self) -> (ExitStatus, String) {
        self.stdin.take();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader thread ends at EOF, shortly after the exit.
                let rest_deadline = Instant::now() + Duration::from_secs(5);
                while let Some(left) = rest_deadline.checked_duration_since(Instant::now()) {
                    match self.stderr.recv_timeout(left) {
                        Ok(line) => self.seen_stderr.push(line),
                        Err(_) => break,
                    }
                }
                return (status, self.seen_stderr.join("\n"));
            }
            if Instant::now() > deadline {
                panic!("{} did not exit; stderr:\n{}", self.name, self.seen_stderr.join("\n"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path after `written to: ` in a log line.
fn written_path(line: &str) -> PathBuf {
    let (_, path) = line.split_once("written to: ").unwrap_or_else(|| panic!("no path in {line:?}"));
    PathBuf::from(path.trim())
}

#[test]
fn serve_tls_self_signed_and_connect_with_the_printed_ca() {
    let port = free_port();
    let port_s = port.to_string();
    let mut server = Proc::spawn(
        "duplex serve",
        &mut duplex(&["serve", "--tls-self-signed", "--port", &port_s, "--interval", "200ms"]),
    );
    let fingerprint = server.wait_stderr("SHA-256");
    assert!(fingerprint.contains("localhost, 127.0.0.1, ::1"), "{fingerprint}");
    let ca = written_path(&server.wait_stderr("self-signed certificate written to: "));
    assert!(std::fs::read_to_string(&ca).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    let listening = server.wait_stderr("listening on");
    assert!(listening.contains(&format!("wss://127.0.0.1:{port}")), "{listening}");
    assert!(listening.contains(&format!("https://127.0.0.1:{port}/")), "{listening}");

    // Trusting the printed certificate: connected, pushes arrive, what we type is logged.
    let url = format!("wss://localhost:{port}/");
    let ca_s = ca.to_str().unwrap();
    let mut client = Proc::spawn("duplex connect --ca", &mut duplex(&["connect", "--ca", ca_s, &url]));
    client.wait_stderr("connected to");
    client.wait_stdout("Message ");
    client.send_line("hello over wss");
    server.wait_stderr("hello over wss");
    let (status, stderr) = client.finish();
    assert!(status.success(), "connect failed ({status}):\n{stderr}");

    // Without it: refused, saying why and what to do.
    let (status, stderr) = Proc::spawn("duplex connect", &mut duplex(&["connect", &url])).finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown issuer") && stderr.contains("--ca"), "{stderr}");

    // ws:// to the TLS port: told to use wss://.
    let plain = format!("ws://localhost:{port}/");
    let (status, stderr) = Proc::spawn("duplex connect ws://", &mut duplex(&["connect", &plain])).finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("use wss://"), "{stderr}");

    // --insecure connects, with a warning.
    let mut client = Proc::spawn("duplex connect --insecure", &mut duplex(&["connect", "--insecure", &url]));
    client.wait_stderr("verification is OFF");
    client.wait_stderr("connected to");
    let (status, stderr) = client.finish();
    assert!(status.success(), "{stderr}");

    drop(server);
    let _ = std::fs::remove_file(ca);
}

#[test]
fn echo_with_certificate_files_and_wss_to_a_plain_echo() {
    let cert = duplex::tls::SelfSigned::localhost().unwrap();
    let dir = std::env::temp_dir();
    let (cert_path, key_path) = (
        dir.join(format!("duplex-cli-tls-{}-cert.pem", std::process::id())),
        dir.join(format!("duplex-cli-tls-{}-key.pem", std::process::id())),
    );
    std::fs::write(&cert_path, cert.cert_pem()).unwrap();
    std::fs::write(&key_path, cert.key_pem()).unwrap();
    let (cert_s, key_s) = (cert_path.to_str().unwrap(), key_path.to_str().unwrap());

    let port = free_port().to_string();
    let mut server =
        Proc::spawn("duplex echo", &mut duplex(&["echo", "--port", &port, "--tls-cert", cert_s, "--tls-key", key_s]));
    server.wait_stderr(&format!("echo server listening on wss://127.0.0.1:{port}"));
    let url = format!("wss://127.0.0.1:{port}/");
    let mut client = Proc::spawn("duplex connect", &mut duplex(&["connect", "--ca", cert_s, &url]));
    client.send_line("echo me");
    assert_eq!(client.wait_stdout("echo me"), "echo me");
    let (status, stderr) = client.finish();
    assert!(status.success(), "{stderr}");
    drop(server);

    // wss:// to a plain server: told it is not TLS, quickly.
    let port = free_port().to_string();
    let mut server = Proc::spawn("duplex echo (plain)", &mut duplex(&["echo", "--port", &port]));
    server.wait_stderr("listening on ws://");
    let started = Instant::now();
    let url = format!("wss://127.0.0.1:{port}/");
    let (status, stderr) = Proc::spawn("duplex connect wss://", &mut duplex(&["connect", &url])).finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not answer with TLS"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());

    // A key file that is not one: the server says so and exits 1.
    let (status, stderr) = Proc::spawn(
        "duplex echo --tls-key <cert>",
        &mut duplex(&["echo", "--port", "0", "--tls-cert", cert_s, "--tls-key", cert_s]),
    )
    .finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot serve TLS") && stderr.contains("no private key"), "{stderr}");

    let _ = std::fs::remove_file(cert_path);
    let _ = std::fs::remove_file(key_path);
}
