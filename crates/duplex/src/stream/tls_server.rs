//! [`TlsServerStream`]: a TLS server connection on rustls' unbuffered API, so that an idle `wss://`
//! connection holds no TLS buffer.
//!
//! rustls' buffered `ServerConnection` (what tokio-rustls drives) keeps a 4 KiB receive buffer for
//! as long as the connection lives, plus its plaintext queues: measured with a counting
//! allocator, 7.8 KiB per idle connection after the handshake against 3.7 KiB for the unbuffered
//! connection (docs/benchmarks.md). Here the TLS bytes are read into a per-thread scratch buffer
//! and decrypted in place; the connection keeps bytes of its own only while a record is
//! incomplete (`incoming`), while the socket has not taken everything encrypted (`outgoing`), or
//! when the reader had no room for what was decrypted (`plaintext`). Each is freed once empty.
//!
//! Writes are encrypted into `outgoing` and written on flush (the WebSocket driver flushes after
//! writing its queue), so a frame's header and payload go out in one record and one `write`.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Buf;
use duplex_proto::Outgoing;
use rustls::server::{ClientHello, ResolvesServerCert, UnbufferedServerConnection};
use rustls::sign::CertifiedKey;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// The most TLS bytes read at once.
const READ_SIZE: usize = 64 * 1024;

/// The most received bytes a connection keeps unprocessed: an incomplete record is at most 16 KiB
/// of plaintext plus 256 bytes of overhead and a 5-byte header, and a handshake message split over
/// records is kept whole until its last record arrives (rustls allows 64 KiB). Beyond this the
/// peer is sending something no TLS implementation sends, and the connection fails.
const MAX_KEPT: usize = 64 * 1024 + 1024;

/// The most plaintext encrypted per write: one full record.
const WRITE_CHUNK: usize = 16 * 1024;

/// A write's slices are gathered into one record up to this many bytes in all.
const GATHER_MAX: usize = 4096;

/// `outgoing` beyond this is written before more is encrypted (a bound on what a connection holds
/// when its peer does not read).
const OUTGOING_LIMIT: usize = 64 * 1024;

thread_local! {
    /// Where TLS bytes are read and decrypted: one per thread, not one per connection.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_SIZE].into_boxed_slice());
    /// The server name of the ClientHello being answered on this thread (see [`RecordServerName`]).
    static SERVER_NAME: RefCell<Option<Box<str>>> = const { RefCell::new(None) };
    /// A write's slices gathered into one record.
    static GATHER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Wraps a configuration's certificate resolver to note the ClientHello's server name (SNI):
/// rustls' unbuffered connection does not keep it. The handshake step runs synchronously on the
/// thread that called it, so a thread-local carries the name from the resolver to the connection.
#[derive(Debug)]
struct RecordServerName(Arc<dyn ResolvesServerCert>);

impl ResolvesServerCert for RecordServerName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(Box::from);
        SERVER_NAME.with(|n| *n.borrow_mut() = name);
        self.0.resolve(hello)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.0.only_raw_public_keys()
    }
}

/// `config` with its certificate resolver wrapped to record the server name.
pub(crate) fn recording_server_name(config: &ServerConfig) -> Arc<ServerConfig> {
    let mut c = config.clone();
    c.cert_resolver = Arc::new(RecordServerName(c.cert_resolver.clone()));
    Arc::new(c)
}

/// A TLS connection accepted by a duplex [`Server`](crate::Server): the TCP stream and rustls'
/// unbuffered server connection, with buffers only while data is in flight.
///
/// [`ServerStream::tls_connection`](crate::ServerStream::tls_connection) gives it; its accessors
/// are those of rustls' connections.
pub struct TlsServerStream {
    tcp: TcpStream,
    conn: UnbufferedServerConnection,
    /// Received TLS bytes not processed yet (an incomplete record).
    incoming: Vec<u8>,
    /// Encrypted bytes the socket has not taken yet.
    outgoing: Outgoing,
    /// Decrypted bytes the reader had no room for.
    plaintext: Vec<u8>,
    server_name: Option<Box<str>>,
    /// The peer's close_notify arrived: reads end.
    peer_closed: bool,
    /// Our close_notify is queued.
    close_sent: bool,
}

impl fmt::Debug for TlsServerStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerStream")
            .field("tcp", &self.tcp)
            .field("server_name", &self.server_name)
            .field("alpn_protocol", &self.alpn_protocol().map(String::from_utf8_lossy))
            .field("protocol_version", &self.conn.protocol_version())
            .finish_non_exhaustive()
    }
}

/// A rustls error as an I/O error, as tokio-rustls reports them (so [`super::classify`] reads both).
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// How many bytes `kept` (which starts at a record boundary) lacks to end its last record: the
/// rest of the record header, or of the record it announces. Records before it are whole (kept
/// while rustls joins a handshake message split over them).
fn missing_from_last_record(kept: &[u8]) -> usize {
    let mut at = 0;
    loop {
        let Some(header) = kept.get(at..at + 5) else {
            return at + 5 - kept.len();
        };
        let end = at + 5 + usize::from(u16::from_be_bytes([header[3], header[4]]));
        if end > kept.len() {
            return end - kept.len();
        }
        at = end;
        if at == kept.len() {
            // Whole records only (a split handshake message waiting for its next record).
            return 5;
        }
    }
}

fn eof_without_close_notify() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed connection without sending TLS close_notify")
}

/// The error of a peer whose unprocessed bytes exceed [`MAX_KEPT`].
fn too_much_kept() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the peer sent over 64 KiB of TLS data that does not complete a record or handshake message",
    )
}

/// What processing the received bytes came to.
struct Processed {
    /// Bytes consumed from the front of the input.
    consumed: usize,
}

impl TlsServerStream {
    /// Runs the server side of the handshake on `tcp` (`config` as [`recording_server_name`] made
    /// it). On failure, the alert rustls queued is sent before the error is returned.
    pub(crate) async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsServerStream> {
        let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let mut s = TlsServerStream {
            tcp,
            conn,
            incoming: Vec::new(),
            outgoing: Outgoing::default(),
            plaintext: Vec::new(),
            server_name: None,
            peer_closed: false,
            close_sent: false,
        };
        loop {
            let mut input = std::mem::take(&mut s.incoming);
            SERVER_NAME.with(|n| n.borrow_mut().take());
            // Nothing is read by the application yet: what arrives after the client's Finished
            // waits in `plaintext`.
            let result = s.process(&mut input, &mut ReadBuf::new(&mut []));
            if let Some(name) = SERVER_NAME.with(|n| n.borrow_mut().take()) {
                s.server_name = Some(name);
            }
            let processed = match result {
                Ok(p) => p,
                Err((e, consumed)) => {
                    s.queue_alert(&mut input[consumed..]);
                    let _ = s.tcp.write_all_buf(&mut s.outgoing).await;
                    return Err(e);
                }
            };
            input.drain(..processed.consumed);
            s.incoming = input;
            s.tcp.write_all_buf(&mut s.outgoing).await?;
            if !s.conn.is_handshaking() {
                break;
            }
            if s.incoming.len() > MAX_KEPT {
                return Err(too_much_kept());
            }
            s.incoming.reserve(4096);
            if s.tcp.read_buf(&mut s.incoming).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection during the TLS handshake",
                ));
            }
        }
        if s.incoming.len() > MAX_KEPT {
            return Err(too_much_kept());
        }
        if s.incoming.is_empty() {
            s.incoming = Vec::new();
        }
        Ok(s)
    }

    /// The TCP stream underneath.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The server name (SNI) the client asked for.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The application protocol agreed with ALPN.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The client's certificate chain, under mutual TLS.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// The TLS version agreed.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The cipher suite agreed.
    pub fn negotiated_cipher_suite(&self) -> Option<rustls::SupportedCipherSuite> {
        self.conn.negotiated_cipher_suite()
    }

    /// Processes the TLS bytes in `input` (decrypting application data in place): plaintext goes
    /// to `out`, then to `self.plaintext`; handshake records and alerts to `self.outgoing`.
    fn process(&mut self, input: &mut [u8], out: &mut ReadBuf<'_>) -> Result<Processed, (io::Error, usize)> {
        let mut consumed = 0;
        loop {
            let status = self.conn.process_tls_records(&mut input[consumed..]);
            let mut discard = status.discard;
            let state = match status.state {
                Ok(state) => state,
                Err(e) => return Err((tls_error(e), consumed + discard)),
            };
            let more = match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = match record {
                            Ok(record) => record,
                            Err(e) => return Err((tls_error(e), consumed + discard)),
                        };
                        discard += record.discard;
                        let n = record.payload.len().min(out.remaining());
                        out.put_slice(&record.payload[..n]);
                        self.plaintext.extend_from_slice(&record.payload[n..]);
                    }
                    true
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    if let Err(e) =
                        encode_into(&mut self.outgoing, 256, |buf| data.encode(buf).map_err(EncodeOrEncrypt::Encode))
                    {
                        return Err((e, consumed + discard));
                    }
                    true
                }
                // The bytes are in `outgoing`, written before anything encrypted later.
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    true
                }
                ConnectionState::PeerClosed => {
                    self.peer_closed = true;
                    true
                }
                ConnectionState::Closed => {
                    self.peer_closed = true;
                    false
                }
                // Needs more bytes (or, with WriteTraffic, nothing more to do with these).
                ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => false,
                // Early data is never enabled by duplex's configurations.
                _ => {
                    return Err((
                        io::Error::new(io::ErrorKind::InvalidData, "unexpected TLS early data"),
                        consumed + discard,
                    ))
                }
            };
            consumed += discard;
            if !more {
                return Ok(Processed { consumed });
            }
        }
    }

    /// After a failure, moves the alert rustls queued into `outgoing`. `input` is what the failed
    /// step left (rustls' handshake reassembly refers to positions in it).
    fn queue_alert(&mut self, input: &mut [u8]) {
        for _ in 0..4 {
            let status = self.conn.process_tls_records(input);
            match status.state {
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    if encode_into(&mut self.outgoing, 256, |buf| data.encode(buf).map_err(EncodeOrEncrypt::Encode))
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                _ => return,
            }
        }
    }

    /// Gives what `plaintext` holds to the reader; frees it once taken.
    fn take_plaintext(&mut self, out: &mut ReadBuf<'_>) {
        let n = self.plaintext.len().min(out.remaining());
        out.put_slice(&self.plaintext[..n]);
        self.plaintext.drain(..n);
        if self.plaintext.is_empty() {
            self.plaintext = Vec::new();
        }
    }

    /// Reads from the socket and processes what arrived, through the per-thread scratch.
    fn poll_read_tls(&mut self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.incoming.is_empty() {
            return self.poll_complete_record(cx, out);
        }
        SCRATCH.with(|cell| {
            let mut guard;
            let mut private;
            let scratch: &mut [u8] = match cell.try_borrow_mut() {
                Ok(g) => {
                    guard = g;
                    &mut guard[..]
                }
                // Only if a read is polled from inside another on the same thread.
                Err(_) => {
                    private = vec![0; READ_SIZE];
                    &mut private[..]
                }
            };
            let mut rb = ReadBuf::new(&mut scratch[..READ_SIZE]);
            ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                return Poll::Ready(Err(eof_without_close_notify()));
            }
            let processed = match self.process(&mut scratch[..n], out) {
                Ok(p) => p,
                Err((e, consumed)) => {
                    // Tell the peer why (a bad record's alert), if the socket takes it now.
                    self.queue_alert(&mut scratch[consumed..n]);
                    let _ = self.poll_write_outgoing(cx);
                    return Poll::Ready(Err(e));
                }
            };
            // What does not complete a record waits here (the scratch is the next one's).
            self.incoming.extend_from_slice(&scratch[processed.consumed..n]);
            Poll::Ready(Ok(()))
        })
    }

    /// With an incomplete record kept: reads the bytes that complete it onto `incoming` (no more,
    /// so that the connection holds at most a record, and what follows is read through the
    /// scratch), then processes `incoming` in place.
    fn poll_complete_record(&mut self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let need = missing_from_last_record(&self.incoming);
        let kept = self.incoming.len();
        self.incoming.reserve(need);
        let mut rb = ReadBuf::uninit(&mut self.incoming.spare_capacity_mut()[..need]);
        ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n == 0 {
            return Poll::Ready(Err(eof_without_close_notify()));
        }
        // SAFETY: the read initialised the first `n` bytes of the spare capacity.
        unsafe { self.incoming.set_len(kept + n) };
        let mut input = std::mem::take(&mut self.incoming);
        let processed = match self.process(&mut input, out) {
            Ok(p) => p,
            Err((e, consumed)) => {
                self.queue_alert(&mut input[consumed..]);
                let _ = self.poll_write_outgoing(cx);
                return Poll::Ready(Err(e));
            }
        };
        input.drain(..processed.consumed);
        if input.len() > MAX_KEPT {
            return Poll::Ready(Err(too_much_kept()));
        }
        if !input.is_empty() {
            self.incoming = input;
        }
        Poll::Ready(Ok(()))
    }

    /// Writes `outgoing` until the socket has all of it (the queue gives its buffer back to the
    /// thread's pool once drained, so a connection holds none between writes).
    fn poll_write_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.outgoing.has_remaining() {
            match ready!(Pin::new(&mut self.tcp).poll_write(cx, self.outgoing.chunk()))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => self.outgoing.advance(n),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Encrypts `data` (at most [`WRITE_CHUNK`] of it) into `outgoing`; returns how much.
    ///
    /// rustls is given `incoming` (what is left of the received bytes), not an empty buffer: a
    /// handshake message the peer split over records is reassembled from positions in it.
    fn encrypt(&mut self, data: &[u8]) -> io::Result<usize> {
        let data = &data[..data.len().min(WRITE_CHUNK)];
        loop {
            let status = self.conn.process_tls_records(&mut self.incoming);
            let mut discard = status.discard;
            let done = match status.state {
                Err(e) => Err(tls_error(e)),
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    encode_into(&mut self.outgoing, sealed_len(data.len()), |buf| {
                        traffic.encrypt(data, buf).map_err(EncodeOrEncrypt::Encrypt)
                    })
                    .map(|()| Some(data.len()))
                }
                Ok(ConnectionState::EncodeTlsData(mut tls)) => {
                    encode_into(&mut self.outgoing, 256, |buf| tls.encode(buf).map_err(EncodeOrEncrypt::Encode))
                        .map(|()| None)
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    Ok(None)
                }
                // Records decrypted by an earlier step wait for the reader.
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    let mut result = Ok(None);
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                self.plaintext.extend_from_slice(record.payload);
                            }
                            Err(e) => {
                                result = Err(tls_error(e));
                                break;
                            }
                        }
                    }
                    result
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    Ok(None)
                }
                Ok(ConnectionState::Closed) => Err(io::ErrorKind::BrokenPipe.into()),
                Ok(_) => Err(io::Error::new(io::ErrorKind::NotConnected, "the TLS handshake is not complete")),
            };
            self.incoming.drain(..discard);
            if self.incoming.is_empty() && self.incoming.capacity() > 0 {
                self.incoming = Vec::new();
            }
            if let Some(n) = done? {
                return Ok(n);
            }
        }
    }

    /// Queues our close_notify (once).
    fn queue_close_notify(&mut self) -> io::Result<()> {
        if self.close_sent {
            return Ok(());
        }
        self.close_sent = true;
        let status = self.conn.process_tls_records(&mut self.incoming);
        let discard = status.discard;
        let result = match status.state {
            Ok(ConnectionState::WriteTraffic(mut traffic)) => encode_into(&mut self.outgoing, 64, |buf| {
                traffic.queue_close_notify(buf).map_err(EncodeOrEncrypt::Encrypt)
            }),
            // Closed already, or never open: nothing to say.
            _ => Ok(()),
        };
        self.incoming.drain(..discard);
        result
    }
}

/// Room for `n` bytes of application data as records: per record (at most 16 KiB of it) a 5-byte
/// header, TLS 1.3's content type byte and a 16-byte AEAD tag (TLS 1.2's explicit nonce: 8 more).
fn sealed_len(n: usize) -> usize {
    n + (n / (16 * 1024) + 1) * 32
}

/// A failure of `encode` or `encrypt`, which both ask for a larger buffer the same way.
enum EncodeOrEncrypt {
    Encode(EncodeError),
    Encrypt(EncryptError),
}

impl EncodeOrEncrypt {
    fn insufficient(&self) -> Option<&InsufficientSizeError> {
        match self {
            EncodeOrEncrypt::Encode(EncodeError::InsufficientSize(e)) => Some(e),
            EncodeOrEncrypt::Encrypt(EncryptError::InsufficientSize(e)) => Some(e),
            _ => None,
        }
    }
}

/// Appends what `f` writes to `out`, growing the room to what `f` asks for; `guess` is the room
/// tried first (enough for the usual case saves a failed attempt).
fn encode_into(
    out: &mut Outgoing,
    guess: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, EncodeOrEncrypt>,
) -> io::Result<()> {
    let mut room = guess;
    loop {
        match out.fill_up_to(room, &mut f) {
            Ok(_) => return Ok(()),
            Err(e) => match e.insufficient() {
                Some(need) if need.required_size > room => room = need.required_size,
                _ => {
                    let message = match e {
                        EncodeOrEncrypt::Encode(e) => format!("TLS encoding failed: {e}"),
                        EncodeOrEncrypt::Encrypt(e) => format!("TLS encryption failed: {e}"),
                    };
                    return Err(io::Error::other(message));
                }
            },
        }
    }
}

impl AsyncRead for TlsServerStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.plaintext.is_empty() {
                this.take_plaintext(buf);
                return Poll::Ready(Ok(()));
            }
            if this.peer_closed {
                return Poll::Ready(Ok(()));
            }
            // Handshake records queued by the last step (a key update's answer): out first, if
            // the socket takes them now. A peer that sends without reading what it asks for
            // (key update requests, say) is not read further while that backlog is over the
            // limit: the pending write wakes this task when the socket drains.
            if !this.outgoing.is_empty() {
                match this.poll_write_outgoing(cx) {
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending if this.outgoing.len() >= OUTGOING_LIMIT => return Poll::Pending,
                    _ => {}
                }
            }
            let before = buf.filled().len();
            ready!(this.poll_read_tls(cx, buf))?;
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            // Only an incomplete record, or records that were not application data (or the
            // peer's close_notify, seen at the top): read on.
        }
    }
}

impl AsyncWrite for TlsServerStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.outgoing.len() >= OUTGOING_LIMIT {
            ready!(this.poll_write_outgoing(cx))?;
        }
        Poll::Ready(this.encrypt(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.outgoing.len() >= OUTGOING_LIMIT {
            ready!(this.poll_write_outgoing(cx))?;
        }
        // A frame's header and a small payload: gathered into one record. A large payload is
        // encrypted straight from its slice (the header alone in the record before it) rather
        // than copied: it takes the same number of records either way past 16 KiB, and a copy
        // costs more than a record under that.
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total > GATHER_MAX || first.len() == total {
            return Poll::Ready(this.encrypt(first));
        }
        let result = GATHER.with(|g| {
            let mut g = g.borrow_mut();
            g.clear();
            for b in bufs {
                g.extend_from_slice(b);
            }
            this.encrypt(&g)
        });
        Poll::Ready(result)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_outgoing(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.queue_close_notify()?;
        ready!(this.poll_write_outgoing(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}
