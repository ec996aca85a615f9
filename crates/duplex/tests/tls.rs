//! `wss://`: a test CA and server certificates made with rcgen at test time; echo round trips,
//! and every failure the TLS layer must explain (unknown issuer, wrong name, expired, the peer not
//! speaking TLS, timeouts, mutual TLS). Every network wait has a deadline.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use duplex::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use duplex::tls::{self, TlsAcceptor, TlsErrorKind};
use duplex::{Client, Config, Error, Message, Server};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// The longest any single test step may take.
const STEP: Duration = Duration::from_secs(10);

/// A certificate authority made for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// Writes the CA certificate as PEM to a fresh temporary file.
    fn pem_file(&self) -> PathBuf {
        let path = temp_path("ca.pem");
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }

    /// A leaf certificate for `names`, signed by this CA.
    fn issue(&self, names: &[&str]) -> Leaf {
        self.issue_with(names, |_| {})
    }

    fn issue_with(&self, names: &[&str], tweak: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        tweak(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf { cert, key }
    }
}

/// A certificate and its key.
struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Leaf {
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert.der().clone()]
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(tls::server_config(self.chain(), self.key()).unwrap())
    }

    /// Writes the certificate and key as PEM files.
    fn pem_files(&self) -> (PathBuf, PathBuf) {
        let (cert, key) = (temp_path("cert.pem"), temp_path("key.pem"));
        std::fs::write(&cert, self.cert.pem()).unwrap();
        std::fs::write(&key, self.key.serialize_pem()).unwrap();
        (cert, key)
    }
}

/// A path in the temporary directory that no other test (or test process) uses.
fn temp_path(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("duplex-tls-test-{}-{n}-{name}", std::process::id()))
}

/// Starts an echo server (TLS when `tls` is given) on a free loopback port; returns its port and
/// a channel of the errors its connections' `request()` returned.
async fn echo_server(
    tls: Option<TlsAcceptor>,
    config: Config,
) -> (u16, tokio::sync::mpsc::UnboundedReceiver<duplex::Error>) {
    let mut server = Server::bind("127.0.0.1:0").await.unwrap().with_config(config);
    if let Some(tls) = tls {
        server = server.with_tls(tls);
    }
    let port = server.local_addr().unwrap().port();
    let (errors_tx, errors) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok(incoming) = server.accept().await else { return };
            let errors_tx = errors_tx.clone();
            tokio::spawn(async move {
                let req = match incoming.request().await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = errors_tx.send(e);
                        return;
                    }
                };
                let Ok(mut ws) = req.accept().await else { return };
                while let Some(Ok(msg)) = ws.recv().await {
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, errors)
}

/// Connects, sends one text message and checks that it comes back.
async fn round_trip(client: &Client, url: &str) {
    let (mut ws, _) = timeout(STEP, client.connect(url)).await.expect("connect timed out").expect("connect");
    assert!(ws.get_ref().is_tls(), "{url} should be TLS");
    ws.send("hello over TLS").await.unwrap();
    let echoed = timeout(STEP, ws.recv()).await.expect("echo timed out").expect("echo").expect("echo");
    assert_eq!(echoed, Message::Text("hello over TLS".into()));
    let _ = ws.close(None).await;
}

/// Connects, expecting a TLS error of `kind`; returns its message. Fails if it takes over 5 s.
async fn tls_failure(client: &Client, url: &str, kind: TlsErrorKind) -> String {
    let started = Instant::now();
    let result = timeout(STEP, client.connect(url)).await.expect("a failing connect must not hang");
    let err = match result {
        Ok(_) => panic!("connecting to {url} should fail with {kind:?}"),
        Err(e) => e,
    };
    assert!(started.elapsed() < Duration::from_secs(5), "failing took {:?}", started.elapsed());
    eprintln!("{url}: {err}");
    match &err {
        Error::Tls(t) => assert_eq!(t.kind(), kind, "unexpected kind for: {err}"),
        other => panic!("expected Error::Tls({kind:?}), got {other:?}: {other}"),
    }
    err.to_string()
}

#[tokio::test]
async fn wss_echo_round_trip_with_trusted_ca_file() {
    let ca = Ca::new("duplex test CA");
    let leaf = ca.issue(&["localhost", "127.0.0.1"]);
    let (port, _) = echo_server(Some(leaf.acceptor()), Config::default()).await;
    let client = Client::new().ca_file(ca.pem_file());
    round_trip(&client, &format!("wss://127.0.0.1:{port}/")).await;
    round_trip(&client, &format!("wss://localhost:{port}/echo?x=1")).await;
}

#[tokio::test]
async fn alpn_and_tls_session_are_visible() {
    let ca = Ca::new("duplex test CA");
    let (port, _) = echo_server(Some(ca.issue(&["127.0.0.1"]).acceptor()), Config::default()).await;
    let client = Client::new().add_root_certificate(ca.der());
    let (ws, _) = client.connect(&format!("wss://127.0.0.1:{port}/")).await.unwrap();
    let session = ws.get_ref().tls_connection().expect("a TLS session");
    assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn acceptor_from_pem_files() {
    let ca = Ca::new("duplex test CA");
    let (cert, key) = ca.issue(&["127.0.0.1"]).pem_files();
    let acceptor = TlsAcceptor::from_pem_files(&cert, &key).unwrap();
    let (port, _) = echo_server(Some(acceptor), Config::default()).await;
    round_trip(&Client::new().add_root_certificate(ca.der()), &format!("wss://127.0.0.1:{port}/")).await;

    // A key file that is not one, or a missing file, says which file.
    let err = TlsAcceptor::from_pem_files(&cert, &cert).unwrap_err();
    assert_eq!(err.kind(), TlsErrorKind::Config, "{err:?}");
    assert!(err.to_string().contains("no private key") && err.to_string().contains(cert.to_str().unwrap()), "{err}");
    let err = TlsAcceptor::from_pem_files("/nonexistent/cert.pem", &key).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    // A key that does not match the certificate.
    let other_key = ca.issue(&["127.0.0.1"]).pem_files().1;
    let err = TlsAcceptor::from_pem_files(&cert, &other_key).unwrap_err();
    assert!(err.to_string().contains("cannot be used together"), "{err}");
}

#[tokio::test]
async fn wrong_host_name_is_reported_with_the_names() {
    let ca = Ca::new("duplex test CA");
    let (port, _) = echo_server(Some(ca.issue(&["example.test"]).acceptor()), Config::default()).await;
    let client = Client::new().add_root_certificate(ca.der());
    let msg = tls_failure(&client, &format!("wss://127.0.0.1:{port}/"), TlsErrorKind::NameMismatch).await;
    assert!(msg.contains("not valid for host 127.0.0.1"), "{msg}");
    // The names as rustls reports them (shown, never parsed).
    assert!(msg.contains("it names") && msg.contains("example.test"), "{msg}");
}

#[tokio::test]
async fn unknown_issuer_is_reported() {
    let ca = Ca::new("duplex test CA");
    let (port, _) = echo_server(Some(ca.issue(&["127.0.0.1"]).acceptor()), Config::default()).await;
    // The platform's roots do not include our test CA.
    let msg = tls_failure(&Client::new(), &format!("wss://127.0.0.1:{port}/"), TlsErrorKind::UnknownIssuer).await;
    assert!(msg.contains("unknown issuer"), "{msg}");
    assert!(msg.contains("Client::ca_file"), "the message should say how to trust the CA: {msg}");
    assert!(!msg.contains("--"), "a library message names no command-line flag: {msg}");
    // Trusting another CA does not help either.
    let other = Ca::new("another CA");
    let client = Client::new().add_root_certificate(other.der());
    tls_failure(&client, &format!("wss://127.0.0.1:{port}/"), TlsErrorKind::UnknownIssuer).await;
}

#[tokio::test]
async fn expired_certificate_is_reported() {
    let ca = Ca::new("duplex test CA");
    let leaf = ca.issue_with(&["127.0.0.1"], |p| {
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    });
    let (port, _) = echo_server(Some(leaf.acceptor()), Config::default()).await;
    let client = Client::new().add_root_certificate(ca.der());
    let msg = tls_failure(&client, &format!("wss://127.0.0.1:{port}/"), TlsErrorKind::Expired).await;
    assert!(msg.contains("expired") && msg.contains("2002-01-01"), "{msg}");
}

#[tokio::test]
async fn insecure_mode_connects_to_any_certificate() {
    let ca = Ca::new("duplex test CA");
    // Unknown issuer and the wrong name: only the insecure mode accepts this.
    let (port, _) = echo_server(Some(ca.issue(&["example.test"]).acceptor()), Config::default()).await;
    let client = Client::new().danger_accept_invalid_certs(true);
    round_trip(&client, &format!("wss://127.0.0.1:{port}/")).await;
    // Turning it off again verifies again.
    let client = client.danger_accept_invalid_certs(false);
    tls_failure(&client, &format!("wss://127.0.0.1:{port}/"), TlsErrorKind::UnknownIssuer).await;
}

#[tokio::test]
async fn tls_client_to_a_plain_server_fails_clearly_and_quickly() {
    let (port, _) = echo_server(None, Config::default()).await;
    let msg = tls_failure(&Client::new(), &format!("wss://127.0.0.1:{port}/"), TlsErrorKind::NotTls).await;
    assert!(msg.contains("did not answer with TLS") && msg.contains("ws://"), "{msg}");
}

#[tokio::test]
async fn plain_client_to_a_tls_server_fails_clearly_and_quickly() {
    let ca = Ca::new("duplex test CA");
    let (port, mut server_errors) = echo_server(Some(ca.issue(&["127.0.0.1"]).acceptor()), Config::default()).await;
    let msg = tls_failure(&Client::new(), &format!("ws://127.0.0.1:{port}/"), TlsErrorKind::NotTls).await;
    assert!(msg.contains("speaks TLS") && msg.contains("wss://"), "{msg}");
    // The server saw it too, and said so.
    let seen = timeout(STEP, server_errors.recv()).await.unwrap().unwrap();
    assert!(matches!(&seen, Error::Tls(t) if t.kind() == TlsErrorKind::NotTls), "{seen:?}");

    // A plain HTTP client (curl http:// on an https:// port) gets a readable 400.
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    timeout(STEP, tcp.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 ") && answer.contains("wss://"), "{answer}");
}

#[tokio::test]
async fn client_tls_handshake_timeout() {
    // A server that accepts TCP and never says anything.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let client = Client::new().config(Config::default().handshake_timeout(Duration::from_millis(300)));
    let started = Instant::now();
    let err = timeout(STEP, client.connect(&format!("wss://127.0.0.1:{port}/"))).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Timeout(duplex::TimeoutKind::TlsHandshake)), "{err:?}");
    assert!(err.to_string().contains("TLS handshake"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    holder.abort();
}

#[tokio::test]
async fn a_silent_tls_client_does_not_block_accepts_and_times_out() {
    let ca = Ca::new("duplex test CA");
    let config = Config::default().handshake_timeout(Duration::from_millis(500));
    let (port, mut server_errors) = echo_server(Some(ca.issue(&["127.0.0.1"]).acceptor()), config).await;
    // Two connections that never start their TLS handshake...
    let _silent1 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _silent2 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // ...do not hold up a real client.
    let started = Instant::now();
    round_trip(&Client::new().add_root_certificate(ca.der()), &format!("wss://127.0.0.1:{port}/")).await;
    assert!(started.elapsed() < Duration::from_millis(450), "took {:?}", started.elapsed());
    // And the server gives up on them at the handshake timeout.
    for _ in 0..2 {
        let e = timeout(STEP, server_errors.recv()).await.unwrap().unwrap();
        assert!(matches!(e, Error::Timeout(duplex::TimeoutKind::TlsHandshake)), "{e:?}");
    }
}

#[tokio::test]
async fn mutual_tls() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let leaf = server_ca.issue(&["127.0.0.1"]);
    let config = tls::server_config_with_client_auth(
        leaf.chain(),
        leaf.key(),
        tls::load_root_store(client_ca.pem_file()).unwrap(),
    )
    .unwrap();
    let (port, mut server_errors) = echo_server(Some(TlsAcceptor::from(config)), Config::default()).await;
    let url = format!("wss://127.0.0.1:{port}/");

    // With a certificate from the client CA (from PEM files): accepted.
    let (cert, key) = client_ca.issue(&["client.test"]).pem_files();
    let client = Client::new().add_root_certificate(server_ca.der()).client_cert_files(cert, key);
    round_trip(&client, &url).await;

    // Without one: refused, and both sides say why.
    let client = Client::new().add_root_certificate(server_ca.der());
    let msg = tls_failure(&client, &url, TlsErrorKind::ClientCertificateRequired).await;
    assert!(msg.contains("requires a client certificate"), "{msg}");
    let seen = timeout(STEP, server_errors.recv()).await.unwrap().unwrap();
    assert!(matches!(&seen, Error::Tls(t) if t.kind() == TlsErrorKind::ClientCertificateRequired), "{seen:?}");

    // With a certificate from another CA: refused.
    let stranger = Ca::new("stranger CA").issue(&["client.test"]);
    let client = Client::new().add_root_certificate(server_ca.der()).client_cert(stranger.chain(), stranger.key());
    let msg = tls_failure(&client, &url, TlsErrorKind::Refused).await;
    assert!(msg.contains("rejected our client certificate"), "{msg}");
}

// Cargo feature `self-signed`: on in `cargo test --workspace` (the CLI enables it) and with
// `cargo test -p duplex --features self-signed`.
#[cfg(feature = "self-signed")]
#[tokio::test]
async fn self_signed_localhost_certificate_via_its_pem_file() {
    let cert = tls::SelfSigned::localhost().unwrap();
    let path = temp_path("self-signed.pem");
    cert.write_cert_pem(&path).unwrap();
    let fingerprint = cert.fingerprint();
    assert_eq!(fingerprint.len(), 95, "{fingerprint}");
    assert_eq!(fingerprint, tls::sha256_fingerprint(tls::load_certs(&path).unwrap()[0].as_ref()));
    let (port, _) = echo_server(Some(TlsAcceptor::from_self_signed(&cert).unwrap()), Config::default()).await;
    let client = Client::new().ca_file(&path);
    round_trip(&client, &format!("wss://localhost:{port}/")).await;
    round_trip(&client, &format!("wss://127.0.0.1:{port}/")).await;
}

#[tokio::test]
async fn an_unreadable_ca_file_fails_the_connect_and_names_the_file() {
    let client = Client::new().ca_file("/nonexistent/ca.pem");
    let err = client.connect("wss://127.0.0.1:1/").await.unwrap_err();
    // Nothing listens on port 1: the TCP connect fails first. Use a listening port.
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    let (port, _) = echo_server(None, Config::default()).await;
    let msg = tls_failure(&client, &format!("wss://127.0.0.1:{port}/"), TlsErrorKind::Config).await;
    assert!(msg.contains("/nonexistent/ca.pem"), "{msg}");
}

#[test]
fn tls_errors_display_with_a_prefix() {
    let e = Error::Tls(duplex::TlsError::new(TlsErrorKind::Handshake, "boom"));
    assert_eq!(e.to_string(), "TLS: boom");
}

// ---------------------------------------------------------------------------------------------
// The server's TLS stream (rustls' unbuffered API, `duplex::tls::TlsServerStream`)

/// A TLS server that reports each connection's SNI name, ALPN protocol and TLS version, then
/// echoes until the client closes.
async fn reporting_echo_server(
    acceptor: TlsAcceptor,
) -> (
    u16,
    tokio::sync::mpsc::UnboundedReceiver<(Option<String>, Option<Vec<u8>>, Option<duplex::rustls::ProtocolVersion>)>,
) {
    let server = Server::bind("127.0.0.1:0").await.unwrap().with_tls(acceptor);
    let port = server.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok(incoming) = server.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(req) = incoming.request().await else { return };
                let Ok(mut ws) = req.accept().await else { return };
                let tls = ws.get_ref().tls_connection().expect("a TLS session");
                let _ = tx.send((
                    tls.server_name().map(String::from),
                    tls.alpn_protocol().map(<[u8]>::to_vec),
                    tls.protocol_version(),
                ));
                while let Some(Ok(msg)) = ws.recv().await {
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn the_server_sees_sni_alpn_and_version() {
    let ca = Ca::new("duplex test CA");
    let (port, mut seen) = reporting_echo_server(ca.issue(&["localhost"]).acceptor()).await;
    round_trip(&Client::new().add_root_certificate(ca.der()), &format!("wss://localhost:{port}/")).await;
    let (name, alpn, version) = timeout(STEP, seen.recv()).await.unwrap().unwrap();
    assert_eq!(name.as_deref(), Some("localhost"));
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(version, Some(duplex::rustls::ProtocolVersion::TLSv1_3));
}

#[tokio::test]
async fn a_tls_1_2_client_is_served() {
    let ca = Ca::new("duplex test CA");
    let (port, mut seen) = reporting_echo_server(ca.issue(&["localhost"]).acceptor()).await;
    let mut roots = duplex::rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let config = duplex::rustls::ClientConfig::builder_with_provider(tls::crypto_provider().unwrap())
        .with_protocol_versions(&[&duplex::rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = Client::new().tls_config(std::sync::Arc::new(config));
    round_trip(&client, &format!("wss://localhost:{port}/")).await;
    let (_, _, version) = timeout(STEP, seen.recv()).await.unwrap().unwrap();
    assert_eq!(version, Some(duplex::rustls::ProtocolVersion::TLSv1_2));
}

#[tokio::test]
async fn large_and_pipelined_messages_cross_record_and_read_boundaries() {
    let ca = Ca::new("duplex test CA");
    let (port, _) = echo_server(Some(ca.issue(&["127.0.0.1"]).acceptor()), Config::default()).await;
    let client = Client::new().add_root_certificate(ca.der());
    let (mut ws, _) = client.connect(&format!("wss://127.0.0.1:{port}/")).await.unwrap();
    // Sizes around a TLS record (16 KiB), the server's read size (64 KiB) and well past both,
    // each a different pattern so that a misplaced byte shows.
    let sizes = [1, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 64 * 1024 + 7, 300_000, 1 << 20];
    let messages: Vec<Vec<u8>> =
        sizes.iter().enumerate().map(|(i, &n)| (0..n).map(|j| (j * 31 + i * 7) as u8).collect()).collect();
    // All queued before reading anything back: records and reads are cut anywhere.
    for m in &messages {
        ws.feed(Message::Binary(m.clone().into())).await.unwrap();
    }
    for _ in 0..1000 {
        ws.feed(Message::Text("small".into())).await.unwrap();
    }
    ws.flush().await.unwrap();
    for m in &messages {
        let got = timeout(STEP, ws.recv()).await.expect("echo timed out").expect("echo").expect("echo");
        assert_eq!(got, Message::Binary(m.clone().into()), "a {} byte message", m.len());
    }
    for _ in 0..1000 {
        let got = timeout(STEP, ws.recv()).await.expect("echo timed out").expect("echo").expect("echo");
        assert_eq!(got, Message::Text("small".into()));
    }
    ws.close(None).await.unwrap();
    // The server answers the close and ends the connection cleanly (close_notify, then FIN).
    assert!(timeout(STEP, ws.recv()).await.expect("the close timed out").is_none());
}

#[tokio::test]
async fn a_malformed_client_hello_is_answered_with_an_alert_and_the_server_goes_on() {
    let ca = Ca::new("duplex test CA");
    let (port, mut errors) = echo_server(Some(ca.issue(&["127.0.0.1"]).acceptor()), Config::default()).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // A handshake record whose message is not a ClientHello rustls can parse.
    tcp.write_all(b"\x16\x03\x01\x00\x09\x01\x00\x00\x05hello").await.unwrap();
    let mut answer = Vec::new();
    timeout(STEP, tcp.read_to_end(&mut answer)).await.expect("the server did not close").unwrap();
    // An alert record (content type 21), then the end of the connection.
    assert_eq!(answer.first(), Some(&0x15), "no TLS alert: {answer:?}");
    let err = timeout(STEP, errors.recv()).await.unwrap().unwrap();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    round_trip(&Client::new().add_root_certificate(ca.der()), &format!("wss://127.0.0.1:{port}/")).await;
}
