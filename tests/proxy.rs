//! Clients through real proxies (Debian packages, started here on free loopback ports):
//! tinyproxy (HTTP CONNECT, BasicAuth), haproxy terminating TLS in front of tinyproxy (an
//! https:// proxy, so wss:// is TLS in TLS), danted (SOCKS4, SOCKS5, SOCKS5 with the proxy
//! resolving `localhost`) and microsocks (SOCKS5 with a user and password). Both `duplex connect`
//! (proxy from the environment or --proxy) and the library client. docs/client.md describes it.

mod support;

use std::process::{Command, ExitStatus};
use std::time::Duration;

use duplex::proxy::{Proxy, ProxyErrorKind, SocksReply};
use duplex::{Client, Error, Message};
use support::pki::TestPki;
use support::procs::{duplex, Proc};
use support::proxies::{self, ProxyProc};
use support::{can_run, Need};

const WAIT: Duration = Duration::from_secs(20);

/// An echo server of this library on a free port (wss:// with `pki`'s certificate if given).
async fn echo_server(pki: Option<&TestPki>) -> u16 {
    let mut server = duplex::Server::bind("127.0.0.1:0").await.expect("bind");
    if let Some(pki) = pki {
        server = server.with_tls(duplex::TlsAcceptor::from_pem_files(&pki.cert, &pki.key).expect("TLS acceptor"));
    }
    let port = server.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok(incoming) = server.accept().await else { return };
            tokio::spawn(async move {
                let Ok(req) = incoming.request().await else { return };
                let Ok(mut ws) = req.accept().await else { return };
                while let Some(Ok(m)) = ws.recv().await {
                    if ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// `duplex connect <args>` with exactly `env` as its proxy environment; types `line`, expects
/// it back, ends its input and expects exit 0. Returns its log.
fn cli_echo(args: &[&str], env: &[(&str, &str)], line: &str) -> String {
    let mut client = Proc::spawn_with("duplex connect", &mut cli(args, env), true);
    {
        use std::io::Write;
        let stdin = client.stdin.as_mut().expect("piped");
        let _ = writeln!(stdin, "{line}");
    }
    let got = client.next_stdout_line(std::time::Instant::now() + WAIT);
    assert_eq!(got.as_deref(), Some(line), "no echo through the proxy\n{}", client.output());
    client.stdin = None;
    let status = client.wait_exit(WAIT);
    assert!(status.success(), "duplex connect {args:?} failed ({status})\n{}", client.output());
    client.stderr()
}

/// `duplex connect <args>` expected to fail: its exit status and log.
fn cli_fails(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut client = Proc::spawn("duplex connect", &mut cli(args, env));
    let status = client.wait_exit(WAIT);
    (status, client.stderr())
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> Command {
    // duplex() clears every proxy variable; only `env` is set.
    let mut cmd = duplex(&[&["connect"], args].concat());
    cmd.envs(env.iter().copied());
    cmd
}

/// How many CONNECT requests tinyproxy logged.
fn connects(tp: &ProxyProc) -> usize {
    tp.log().lines().filter(|l| l.contains("Request") && l.contains("CONNECT ")).count()
}

/// The library client through `proxy`: one message there and back.
async fn lib_echo(client: Client, url: &str) -> duplex::Result<()> {
    let (mut ws, _) = client.connect(url).await?;
    ws.send("through the proxy").await?;
    match tokio::time::timeout(WAIT, ws.recv()).await.expect("echo in time") {
        Some(Ok(Message::Text(t))) => assert_eq!(t, "through the proxy"),
        other => panic!("expected the echo, got {other:?}"),
    }
    ws.close(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tinyproxy_http_connect_from_the_environment_and_the_flag() {
    if !can_run("tinyproxy_http_connect_from_the_environment_and_the_flag", &[Need::Tinyproxy]) {
        return;
    }
    let pki = TestPki::new("proxy-tinyproxy");
    let (ws_port, wss_port) = (echo_server(None).await, echo_server(Some(&pki)).await);
    let tp = proxies::tinyproxy(None);
    let proxy = tp.url("http", None);
    let ws = format!("ws://127.0.0.1:{ws_port}/");
    let wss = format!("wss://localhost:{wss_port}/");
    let ca = pki.ca.to_str().unwrap();

    tokio::task::block_in_place(|| {
        // HTTP_PROXY for ws://, with -v saying which proxy and why.
        let log = cli_echo(&["-v", &ws], &[("HTTP_PROXY", &proxy)], "via HTTP_PROXY");
        assert!(log.contains("through proxy http://127.0.0.1") && log.contains("HTTP_PROXY"), "{log}");
        assert!(tp.log().contains(&format!("CONNECT 127.0.0.1:{ws_port}")), "{}", tp.log());
        // HTTPS_PROXY for wss:// (and HTTP_PROXY is not used for it).
        let log = cli_echo(
            &["-v", "--ca", ca, &wss],
            &[("HTTPS_PROXY", &proxy), ("HTTP_PROXY", "http://127.0.0.1:1")],
            "via HTTPS_PROXY",
        );
        assert!(log.contains("HTTPS_PROXY"), "{log}");
        assert!(tp.log().contains(&format!("CONNECT localhost:{wss_port}")), "{}", tp.log());
        // --proxy, with nothing in the environment.
        let before = connects(&tp);
        cli_echo(&["--proxy", &proxy, &ws], &[], "via --proxy");
        assert_eq!(connects(&tp), before + 1, "{}", tp.log());
        // NO_PROXY=127.0.0.1: straight to the server, nothing in the proxy's log.
        let before = connects(&tp);
        let log = cli_echo(&["-v", &ws], &[("HTTP_PROXY", &proxy), ("NO_PROXY", "127.0.0.1")], "direct");
        assert!(log.contains("NO_PROXY entry \"127.0.0.1\""), "{log}");
        assert_eq!(connects(&tp), before, "NO_PROXY did not bypass the proxy:\n{}", tp.log());
        // --no-proxy wins over the environment: the proxy in it does not exist.
        cli_echo(&["--no-proxy", &ws], &[("HTTP_PROXY", "http://127.0.0.1:1")], "no proxy");
    });

    // The library client, ws:// and wss://.
    let before = connects(&tp);
    lib_echo(Client::new().proxy(Proxy::url(&proxy).unwrap()), &ws).await.expect("ws:// through tinyproxy");
    let tls_client = Client::new().ca_file(&pki.ca).proxy(Proxy::url(&proxy).unwrap());
    lib_echo(tls_client, &wss).await.expect("wss:// through tinyproxy");
    assert_eq!(connects(&tp), before + 2, "{}", tp.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tinyproxy_basic_auth() {
    if !can_run("tinyproxy_basic_auth", &[Need::Tinyproxy]) {
        return;
    }
    let port = echo_server(None).await;
    let tp = proxies::tinyproxy(Some(("duplex", "s3cret")));
    let ws = format!("ws://127.0.0.1:{port}/");
    let good = tp.url("http", Some("duplex:s3cret"));
    tokio::task::block_in_place(|| {
        cli_echo(&["--proxy", &good, &ws], &[], "with credentials");
        // No credentials: 407, and the message says what to do.
        let (status, log) = cli_fails(&["--proxy", &tp.url("http", None), &ws], &[]);
        assert_eq!(status.code(), Some(1), "{log}");
        assert!(log.contains("407 Proxy Authentication Required") && log.contains("user:password"), "{log}");
        // Wrong ones: tinyproxy answers 401 to a Proxy-Authorization it does not accept.
        let (status, log) = cli_fails(&["--proxy", &tp.url("http", Some("duplex:wrong")), &ws], &[]);
        assert_eq!(status.code(), Some(1), "{log}");
        assert!(log.contains("401 Unauthorized") && log.contains("credentials"), "{log}");
        assert!(!log.contains("wrong") && !log.contains("s3cret"), "a password in the log:\n{log}");
    });
    let e = Client::new().proxy(Proxy::url(&tp.url("http", None)).unwrap()).connect(&ws).await.unwrap_err();
    match &e {
        Error::Proxy(p) => assert_eq!(p.refusal().map(|r| r.status), Some(407), "{e}"),
        other => panic!("expected a proxy refusal, got {other:?}"),
    }
    lib_echo(Client::new().proxy(Proxy::url(&good).unwrap()), &ws).await.expect("right credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_proxy_is_tls_to_the_proxy_and_wss_inside_it() {
    if !can_run("https_proxy_is_tls_to_the_proxy_and_wss_inside_it", &[Need::Tinyproxy, Need::Haproxy]) {
        return;
    }
    let pki = TestPki::new("proxy-haproxy");
    let (ws_port, wss_port) = (echo_server(None).await, echo_server(Some(&pki)).await);
    let tp = proxies::tinyproxy(None);
    let tls_proxy = proxies::haproxy_tls(&pki.combined, tp.port);
    let proxy = format!("https://localhost:{}", tls_proxy.port);
    let wss = format!("wss://localhost:{wss_port}/");
    let ca = pki.ca.to_str().unwrap();
    tokio::task::block_in_place(|| {
        let log = cli_echo(&["-v", "--ca", ca, &wss], &[("HTTPS_PROXY", &proxy)], "TLS in TLS");
        assert!(log.contains("through proxy https://localhost"), "{log}");
    });
    assert!(tp.log().contains(&format!("CONNECT localhost:{wss_port}")), "{}", tp.log());
    let client = Client::new().ca_file(&pki.ca).proxy(Proxy::url(&proxy).unwrap());
    lib_echo(client.clone(), &wss).await.expect("wss:// through an https:// proxy");
    lib_echo(client, &format!("ws://127.0.0.1:{ws_port}/")).await.expect("ws:// through an https:// proxy");
    // The proxy's certificate is checked like a server's.
    let e = lib_echo(Client::new().proxy(Proxy::url(&proxy).unwrap()), &wss).await.unwrap_err();
    assert!(matches!(&e, Error::Proxy(p) if matches!(p.kind(), ProxyErrorKind::Tls(_))), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn danted_socks4_socks5_and_socks5h() {
    if !can_run("danted_socks4_socks5_and_socks5h", &[Need::Danted]) {
        return;
    }
    let port = echo_server(None).await;
    let dante = proxies::danted();
    for scheme in ["socks4", "socks5", "socks5h"] {
        let proxy = Proxy::url(&dante.url(scheme, None)).unwrap();
        // socks5h: `localhost` is resolved by the proxy.
        let host = if scheme == "socks5h" { "localhost" } else { "127.0.0.1" };
        let url = format!("ws://{host}:{port}/");
        lib_echo(Client::new().proxy(proxy), &url)
            .await
            .unwrap_or_else(|e| panic!("{scheme}:// to {url}: {e}\n{}", dante.output()));
    }
    tokio::task::block_in_place(|| {
        cli_echo(&["--proxy", &dante.url("socks5h", None), &format!("ws://localhost:{port}/")], &[], "socks5h cli");
        cli_echo(&[&format!("ws://127.0.0.1:{port}/")], &[("ALL_PROXY", &dante.url("socks4", None))], "socks4 env");
    });
    // A target the rules forbid: the SOCKS reply, by name.
    let e = Client::new().proxy(Proxy::url(&dante.url("socks5", None)).unwrap()).connect("ws://10.255.255.1:9/").await;
    match e {
        Err(Error::Proxy(p)) => assert!(matches!(p.kind(), ProxyErrorKind::Socks(_)), "{p}"),
        other => panic!("expected a SOCKS refusal, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsocks_with_and_without_credentials() {
    if !can_run("microsocks_with_and_without_credentials", &[Need::Microsocks]) {
        return;
    }
    let port = echo_server(None).await;
    let ms = proxies::microsocks(Some(("duplex", "s3cret")));
    let url = format!("ws://127.0.0.1:{port}/");
    let with = Proxy::url(&ms.url("socks5", Some("duplex:s3cret"))).unwrap();
    lib_echo(Client::new().proxy(with), &url).await.expect("socks5 with credentials");
    let without = Client::new().proxy(Proxy::url(&ms.url("socks5", None)).unwrap()).connect(&url).await;
    match without {
        Err(Error::Proxy(p)) => {
            assert_eq!(p.kind(), &ProxyErrorKind::Socks(SocksReply::NoAcceptableAuthMethod), "{p}");
            assert!(p.to_string().contains("0xFF"), "{p}");
        }
        other => panic!("expected a SOCKS refusal, got {:?}", other.map(|_| ())),
    }
    let wrong = Client::new().proxy(Proxy::url(&ms.url("socks5", Some("duplex:nope"))).unwrap()).connect(&url).await;
    match wrong {
        Err(Error::Proxy(p)) => assert_eq!(p.kind(), &ProxyErrorKind::Socks(SocksReply::AuthenticationFailed)),
        other => panic!("expected a SOCKS refusal, got {:?}", other.map(|_| ())),
    }
    tokio::task::block_in_place(|| {
        cli_echo(&["--proxy", &ms.url("socks5h", Some("duplex:s3cret")), &url], &[], "microsocks cli");
        let (status, log) = cli_fails(&["--proxy", &ms.url("socks5", None), &url], &[]);
        assert_eq!(status.code(), Some(1), "{log}");
        assert!(log.contains("no acceptable authentication method"), "{log}");
    });
    // Without -u/-P, no credentials are needed.
    let open = proxies::microsocks(None);
    lib_echo(Client::new().proxy(Proxy::url(&open.url("socks5", None)).unwrap()), &url).await.expect("open microsocks");
}
