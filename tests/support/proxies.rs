//! Real proxies from Debian packages, started on free loopback ports and ended (by PID) when
//! dropped: tinyproxy (HTTP CONNECT, optionally with BasicAuth), haproxy terminating TLS in front
//! of it (an https:// proxy), danted (SOCKS4/SOCKS5) and microsocks (SOCKS5, optionally with a
//! user and password).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, program};

/// A proxy process, its port, its configuration and log files; killed and cleaned up on drop.
pub struct ProxyProc {
    name: &'static str,
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    files: Vec<PathBuf>,
    log: Option<PathBuf>,
    output: PathBuf,
}

impl ProxyProc {
    fn spawn(name: &'static str, cmd: &mut Command, port: u16, files: Vec<PathBuf>, log: Option<PathBuf>) -> ProxyProc {
        let output = temp(&format!("{name}-output.txt"));
        let out = std::fs::File::create(&output).expect("output file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let mut p = ProxyProc { name, child, port, files, log, output };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("{name} exited ({status}) before listening on {port}:\n{}", p.output());
            }
            assert!(Instant::now() < deadline, "{name} did not listen on {port}:\n{}", p.output());
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    /// Its log file's content (tinyproxy), or what it printed.
    pub fn log(&self) -> String {
        let from = self.log.as_ref().unwrap_or(&self.output);
        std::fs::read_to_string(from).unwrap_or_default()
    }

    /// What it printed on stdout and stderr.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// `scheme://[userinfo@]127.0.0.1:port`.
    pub fn url(&self, scheme: &str, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(u) => format!("{scheme}://{u}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// The process's name, for messages.
    pub fn name(&self) -> &str {
        self.name
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for f in self.files.iter().chain(self.log.iter()).chain([&self.output]) {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// A file name in the temporary directory, unique to this process and call.
fn temp(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("duplex-proxy-test-{}-{n}-{what}", std::process::id()))
}

/// tinyproxy on a free port, logging every connection (`LogLevel Connect`); with `basic_auth`,
/// it wants those credentials (`BasicAuth`).
pub fn tinyproxy(basic_auth: Option<(&str, &str)>) -> ProxyProc {
    let port = free_port();
    let (conf, log) = (temp("tinyproxy.conf"), temp("tinyproxy.log"));
    let mut text = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile \"{}\"\nLogLevel Connect\nMaxClients 100\nAllow 127.0.0.1\n",
        log.display()
    );
    if let Some((user, password)) = basic_auth {
        text.push_str(&format!("BasicAuth {user} {password}\n"));
    }
    // No ConnectPort line: CONNECT to any port (the test servers' ports are random).
    std::fs::write(&conf, text).expect("tinyproxy.conf");
    let bin = program("tinyproxy").expect("tinyproxy installed");
    ProxyProc::spawn("tinyproxy", Command::new(bin).arg("-d").arg("-c").arg(&conf), port, vec![conf], Some(log))
}

/// haproxy on a free port terminating TLS with `combined_pem` (certificate and key) and passing
/// the bytes to 127.0.0.1:`backend_port`: with tinyproxy behind it, an https:// proxy.
pub fn haproxy_tls(combined_pem: &std::path::Path, backend_port: u16) -> ProxyProc {
    let port = free_port();
    let conf = temp("haproxy.cfg");
    let text = format!(
        "global\n  maxconn 200\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\n\
         frontend tls_in\n  bind 127.0.0.1:{port} ssl crt {}\n  default_backend tinyproxy\n\n\
         backend tinyproxy\n  server tp 127.0.0.1:{backend_port}\n",
        combined_pem.display()
    );
    std::fs::write(&conf, text).expect("haproxy.cfg");
    let bin = program("haproxy").expect("haproxy installed");
    // -db: stay in the foreground, no daemon.
    ProxyProc::spawn("haproxy", Command::new(bin).arg("-db").arg("-f").arg(&conf), port, vec![conf], None)
}

/// haproxy on a free port passing TCP through to 127.0.0.1:`backend_port`, telling the backend
/// each client's address with a PROXY protocol header first (`send-proxy` for v1,
/// `send-proxy-v2` for v2).
pub fn haproxy_send_proxy(backend_port: u16, send_proxy: &str) -> ProxyProc {
    let port = free_port();
    let conf = temp("haproxy-send-proxy.cfg");
    let text = format!(
        "global\n  maxconn 200\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\n\
         frontend ws_in\n  bind 127.0.0.1:{port}\n  default_backend duplex\n\n\
         backend duplex\n  server d 127.0.0.1:{backend_port} {send_proxy}\n"
    );
    std::fs::write(&conf, text).expect("haproxy.cfg");
    let bin = program("haproxy").expect("haproxy installed");
    ProxyProc::spawn("haproxy", Command::new(bin).arg("-db").arg("-f").arg(&conf), port, vec![conf], None)
}

/// danted (dante-server) on a free port: SOCKS4 and SOCKS5 without authentication, for clients
/// and targets on 127.0.0.0/8.
pub fn danted() -> ProxyProc {
    let port = free_port();
    let conf = temp("danted.conf");
    let text = format!(
        "logoutput: stderr\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n\
         clientmethod: none\nsocksmethod: none\nuser.privileged: root\nuser.unprivileged: nobody\n\
         client pass {{\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n}}\n\
         socks pass {{\n  from: 127.0.0.0/8 to: 127.0.0.0/8\n  protocol: tcp\n}}\n"
    );
    std::fs::write(&conf, text).expect("danted.conf");
    let bin = program("danted").expect("danted installed");
    // -N 1: one process, so ending its PID ends it all; foreground by default.
    ProxyProc::spawn("danted", Command::new(bin).arg("-f").arg(&conf).args(["-N", "1"]), port, vec![conf], None)
}

/// microsocks on a free port: SOCKS5, with `-u/-P` when `credentials` are given.
pub fn microsocks(credentials: Option<(&str, &str)>) -> ProxyProc {
    let port = free_port();
    let bin = program("microsocks").expect("microsocks installed");
    let mut cmd = Command::new(bin);
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((user, password)) = credentials {
        cmd.args(["-u", user, "-P", password]);
    }
    ProxyProc::spawn("microsocks", &mut cmd, port, Vec::new(), None)
}
