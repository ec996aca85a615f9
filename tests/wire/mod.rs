//! Raw WebSocket peers over real loopback sockets, shared by `conformance_server.rs`,
//! `conformance_client.rs` and `hostile.rs`.
//!
//! Nothing here uses the library's frame code: frames are built and parsed by hand from RFC 6455
//! §5.2, so the tests check the library against the RFC, not against itself. The only library
//! pieces used are the ones under test (`duplex::Server`, `duplex::connect`) and
//! `duplex::proto::handshake::accept_key`, itself checked against the RFC's example below.
//!
//! Every read has a deadline ([`WAIT`]): a library bug makes a test fail, never hang.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use duplex::CloseFrame;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// How long any single expected event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

pub const CONT: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// The masking key of the frames our raw client sends (RFC 6455 §5.7 uses the same one).
pub const MASK_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The key of RFC 6455 §1.3 and the accept value the RFC gives for it.
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// ---------------------------------------------------------------------------------------------
// Building frames

/// The header of a frame (RFC 6455 §5.2) with the minimal length encoding.
pub fn header(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut h = vec![(if fin { 0x80 } else { 0 }) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        h.push(mask_bit | len as u8);
    } else if len <= 0xffff {
        h.push(mask_bit | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(mask_bit | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(k) = mask {
        h.extend_from_slice(&k);
    }
    h
}

/// XORs `data` with `key`, starting at key byte 0.
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// A whole frame; `rsv` is the three RSV bits as a number 0-7 (4 = RSV1).
pub fn frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut f = header(fin, rsv, opcode, mask, payload.len() as u64);
    let start = f.len();
    f.extend_from_slice(payload);
    if let Some(k) = mask {
        apply_mask(&mut f[start..], k);
    }
    f
}

/// A final, masked client frame.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, 0, opcode, Some(MASK_KEY), payload)
}

/// A masked client frame of a fragmented message (`fin` false except on the last).
pub fn client_fragment(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, 0, opcode, Some(MASK_KEY), payload)
}

/// A final, unmasked server frame.
pub fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, 0, opcode, None, payload)
}

/// A close frame's payload: the code, big-endian, then the reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// Concatenates frames into one buffer, to send them in one write.
pub fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `n` bytes of a recognisable pattern.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 7) as u8).collect()
}

/// `n` bytes of ASCII text.
pub fn ascii(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

// ---------------------------------------------------------------------------------------------
// Parsing frames

/// A frame as read from the wire, payload unmasked.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    /// The RSV bits as a number 0-7.
    pub rsv: u8,
    pub opcode: u8,
    /// The masking key, if the mask bit was set.
    pub mask: Option<[u8; 4]>,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
    /// The frame exactly as it was on the wire.
    pub raw: Vec<u8>,
}

impl Frame {
    /// The status code of a close frame with at least two bytes of payload.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.payload[..self.payload.len().min(40)];
        write!(
            f,
            "Frame {{ fin: {}, rsv: {}, opcode: {:#x}, masked: {}, len: {}, payload: {:?}{} }}",
            self.fin,
            self.rsv,
            self.opcode,
            self.mask.is_some(),
            self.payload.len(),
            String::from_utf8_lossy(shown),
            if shown.len() < self.payload.len() { "..." } else { "" }
        )
    }
}

/// Parses one frame from the front of `buf`: `None` if it is not complete yet.
pub fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let (b0, b1) = (buf[0], buf[1]);
    let (len, mut at) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            (u64::from_be_bytes(buf[2..10].try_into().unwrap()), 10)
        }
        n => (n as u64, 2),
    };
    let mask = if b1 & 0x80 != 0 {
        if buf.len() < at + 4 {
            return None;
        }
        let k = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(k)
    } else {
        None
    };
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    if buf.len() < end {
        return None;
    }
    let mut payload = buf[at..end].to_vec();
    if let Some(k) = mask {
        apply_mask(&mut payload, k);
    }
    let f =
        Frame { fin: b0 & 0x80 != 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, mask, payload, raw: buf[..end].to_vec() };
    Some((f, end))
}

// ---------------------------------------------------------------------------------------------
// A raw peer

/// An HTTP response head (and body, if it had a `Content-Length`).
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// The head exactly as received, up to and including the blank line.
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of a header (name compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One end of a TCP connection that speaks WebSocket byte by byte.
pub struct Peer {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Peer {
    pub fn new(stream: TcpStream) -> Peer {
        stream.set_nodelay(true).unwrap();
        Peer { stream, buf: Vec::new() }
    }

    pub async fn connect(addr: SocketAddr) -> Peer {
        let s = timeout(WAIT, TcpStream::connect(addr)).await.expect("connect timed out").expect("connect");
        Peer::new(s)
    }

    /// Connects and completes the opening handshake with the RFC's key; panics unless the answer
    /// is a 101.
    pub async fn open(addr: SocketAddr) -> Peer {
        let mut p = Peer::connect(addr).await;
        p.write(&request(addr, &[])).await;
        let resp = p.read_response().await;
        assert_eq!(resp.status, 101, "handshake refused: {resp:?}");
        p
    }

    /// Writes all of `bytes` in one call.
    pub async fn write(&mut self, bytes: &[u8]) {
        timeout(WAIT, self.stream.write_all(bytes)).await.expect("write timed out").expect("write");
    }

    /// Writes `bytes` in pieces of `chunk` bytes, pausing after each so that they arrive in separate
    /// reads.
    pub async fn write_chopped(&mut self, bytes: &[u8], chunk: usize) {
        for piece in bytes.chunks(chunk) {
            self.write(piece).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Bytes received but not yet parsed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// One read into the buffer: the number of bytes read, 0 at EOF.
    async fn fill(&mut self, wait: Duration) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        match timeout(wait, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "nothing received in time")),
        }
    }

    /// Reads an HTTP head (up to the blank line), leaving what follows in the buffer.
    pub async fn read_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return String::from_utf8(head).expect("HTTP head is not UTF-8");
            }
            match self.fill(WAIT).await {
                Ok(0) => panic!("EOF before the end of the HTTP head; got {:?}", String::from_utf8_lossy(&self.buf)),
                Ok(_) => {}
                Err(e) => panic!("reading the HTTP head: {e}; got {:?}", String::from_utf8_lossy(&self.buf)),
            }
        }
    }

    /// Reads an HTTP response: head, and a body of `Content-Length` bytes if it has one.
    pub async fn read_response(&mut self) -> HttpResponse {
        let head = self.read_head().await;
        let status =
            head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {head:?}"));
        let mut resp = HttpResponse { status, head, body: Vec::new() };
        if status != 101 {
            let len: usize = resp.header("content-length").map_or(0, |v| v.parse().expect("Content-Length"));
            while self.buf.len() < len {
                match self.fill(WAIT).await {
                    Ok(0) => panic!("EOF inside the response body"),
                    Ok(_) => {}
                    Err(e) => panic!("reading the response body: {e}"),
                }
            }
            resp.body = self.buf.drain(..len).collect();
        }
        resp
    }

    /// The next frame; `Ok(None)` at a clean EOF between frames.
    pub async fn next_frame_within(&mut self, wait: Duration) -> io::Result<Option<Frame>> {
        loop {
            if let Some((f, n)) = parse_frame(&self.buf) {
                self.buf.drain(..n);
                return Ok(Some(f));
            }
            if self.fill(wait).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF inside a frame after {} bytes", self.buf.len()),
                ));
            }
        }
    }

    /// The next frame; `Ok(None)` at a clean EOF between frames.
    pub async fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        self.next_frame_within(WAIT).await
    }

    /// The next frame; panics at EOF, on an error or after [`WAIT`].
    pub async fn read_frame(&mut self) -> Frame {
        match self.next_frame().await {
            Ok(Some(f)) => f,
            Ok(None) => panic!("EOF where a frame was expected"),
            Err(e) => panic!("no frame: {e}"),
        }
    }

    /// Reads the next frame and checks it is a data frame of `opcode` with `payload`, `fin` set,
    /// RSV clear, and unmasked (a server's frame).
    pub async fn expect_message(&mut self, opcode: u8, payload: &[u8]) {
        let f = self.read_frame().await;
        assert!(
            f.fin && f.rsv == 0 && f.opcode == opcode && f.mask.is_none() && f.payload == payload,
            "expected an unmasked final frame of opcode {opcode:#x} with {} bytes, got {f:?}",
            payload.len()
        );
    }

    /// Reads the next frame and checks it is a close frame with `code`; returns it.
    pub async fn expect_close(&mut self, code: u16) -> Frame {
        let f = self.read_frame().await;
        assert_eq!(f.opcode, CLOSE, "expected a close frame with {code}, got {f:?}");
        assert_eq!(f.close_code(), Some(code), "wrong close code in {f:?} (reason {:?})", reason(&f));
        assert!(std::str::from_utf8(&f.payload[2..]).is_ok(), "close reason is not UTF-8: {f:?}");
        assert!(f.fin && f.rsv == 0 && f.payload.len() <= 125, "malformed close frame {f:?}");
        f
    }

    /// Checks the peer closes the TCP connection (a read returns 0) with nothing more sent.
    pub async fn expect_eof(&mut self) {
        match self.next_frame().await {
            Ok(None) => {}
            Ok(Some(f)) => panic!("expected EOF, got another frame {f:?}"),
            Err(e) => panic!("expected a clean EOF, got {e}"),
        }
    }

    /// Checks nothing arrives for `d` (and the connection is still open).
    pub async fn expect_silence(&mut self, d: Duration) {
        match self.next_frame_within(d).await {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }

    /// Expects the server to fail the connection: a close frame with `code`, then EOF.
    pub async fn expect_fail(&mut self, code: u16) {
        self.expect_close(code).await;
        self.expect_eof().await;
    }
}

/// A close frame's reason, for messages.
pub fn reason(f: &Frame) -> String {
    String::from_utf8_lossy(f.payload.get(2..).unwrap_or(&[])).into_owned()
}

/// An upgrade request with the RFC's key to `addr`, plus `extra` header lines.
pub fn request(addr: SocketAddr, extra: &[&str]) -> Vec<u8> {
    let mut r = format!(
        "GET /chat HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

// ---------------------------------------------------------------------------------------------
// An echo server built with the library

/// How one server-side connection ended.
#[derive(Debug)]
pub enum End {
    /// `request()` or `accept()` failed.
    Handshake(duplex::Error),
    /// `recv()` returned `None`: the close handshake completed; the peer's close frame.
    Closed(Option<Option<CloseFrame>>),
    /// `recv()` returned an error.
    Failed(duplex::Error),
    /// Echoing failed.
    SendFailed(duplex::Error),
}

/// The echo server of the crate docs, run in-process, reporting how each connection ended and
/// counting connection tasks that panicked.
pub struct EchoServer {
    pub addr: SocketAddr,
    ends: mpsc::UnboundedReceiver<End>,
    panics: Arc<AtomicUsize>,
}

impl EchoServer {
    /// `duplex::Server::bind("127.0.0.1:0")`, default configuration.
    pub async fn start() -> EchoServer {
        EchoServer::serve(duplex::Server::bind("127.0.0.1:0").await.expect("bind"))
    }

    /// `duplex::Server::from_listener` with `config`.
    pub async fn with_config(config: duplex::Config) -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        EchoServer::serve(duplex::Server::from_listener(listener, config))
    }

    fn serve(server: duplex::Server) -> EchoServer {
        let addr = server.local_addr().unwrap();
        let (tx, ends) = mpsc::unbounded_channel();
        let panics = Arc::new(AtomicUsize::new(0));
        let counter = panics.clone();
        tokio::spawn(async move {
            while let Ok(incoming) = server.accept().await {
                let conn = tokio::spawn(echo(incoming, tx.clone()));
                let counter = counter.clone();
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        if e.is_panic() {
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        EchoServer { addr, ends, panics }
    }

    /// How the next connection ended.
    pub async fn next_end(&mut self) -> End {
        self.next_end_within(WAIT).await
    }

    pub async fn next_end_within(&mut self, wait: Duration) -> End {
        timeout(wait, self.ends.recv())
            .await
            .expect("a server connection did not end in time")
            .expect("the server stopped")
    }

    /// Connection tasks that panicked so far.
    pub fn panics(&self) -> usize {
        self.panics.load(Ordering::SeqCst)
    }

    /// Drops `peer` and checks the server's `recv()` then returns the protocol error with `code`.
    pub async fn expect_failed(&mut self, peer: Peer, code: u16) {
        drop(peer);
        match self.next_end().await {
            End::Failed(duplex::Error::Protocol(e)) if e.code().0 == code => {}
            other => panic!("expected the server's recv() to fail with {code}, got {other:?}"),
        }
        assert_eq!(self.panics(), 0);
    }
}

/// Generic over the transport, so it does not depend on which stream type `Server::accept` yields.
async fn echo<S>(incoming: duplex::Incoming<S>, tx: mpsc::UnboundedSender<End>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let req = match incoming.request().await {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(End::Handshake(e));
            return;
        }
    };
    let mut ws = match req.accept().await {
        Ok(ws) => ws,
        Err(e) => {
            let _ = tx.send(End::Handshake(e));
            return;
        }
    };
    let end = loop {
        match ws.recv().await {
            Some(Ok(msg)) => {
                if let Err(e) = ws.send(msg).await {
                    break End::SendFailed(e);
                }
            }
            Some(Err(e)) => break End::Failed(e),
            None => break End::Closed(ws.close_info().map(|i| i.frame)),
        }
    };
    let _ = tx.send(end);
}
