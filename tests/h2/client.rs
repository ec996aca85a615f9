//! A WebSocket client over HTTP/2 made of the `h2` crate and duplex-proto only: the extended
//! CONNECT request comes from `ClientHandshake::connect_request`, the answer is checked by
//! `ClientHandshake::check_connect_response`, and a client `Connection` masks and frames what is
//! sent as DATA and reads what arrives. The stream's END_STREAM plays the part of TCP's FIN
//! (RFC 8441 §5).

use bytes::{Buf, Bytes};
use duplex_proto::handshake::{ClientHandshake, HandshakeError, HeaderList, Response};
use duplex_proto::{CloseFrame, Connection, ConnectionError, DeflateConfig, Event, Message, Role, Transport};
use tokio::io::{AsyncRead, AsyncWrite};

/// One WebSocket on one HTTP/2 stream.
pub struct H2WebSocket {
    conn: Connection,
    send: h2::SendStream<Bytes>,
    recv: h2::RecvStream,
    /// The handshake's outcome (subprotocol, extensions, deflate).
    pub response: Response,
    /// Whether the server ended its side of the stream (END_STREAM).
    pub peer_finished: bool,
}

/// Why the client failed (printed by the tests' panics).
#[derive(Debug)]
#[allow(dead_code, reason = "the fields are read through Debug, in failure messages")]
pub enum ClientError {
    /// HTTP/2 itself.
    H2(h2::Error),
    /// The opening handshake (a refusal included).
    Handshake(HandshakeError),
    /// The WebSocket.
    Connection(ConnectionError),
    /// The server never announced SETTINGS_ENABLE_CONNECT_PROTOCOL.
    NoExtendedConnect,
}

impl From<h2::Error> for ClientError {
    fn from(e: h2::Error) -> Self {
        ClientError::H2(e)
    }
}

/// Opens the HTTP/2 connection on `io`: the driver task is spawned, and the handle returned once
/// the server's SETTINGS allowed extended CONNECT (RFC 8441 §3).
pub async fn h2_connect<T>(io: T) -> Result<h2::client::SendRequest<Bytes>, ClientError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send_request, connection) = h2::client::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("h2 client connection ended: {e}");
        }
    });
    let mut send_request = send_request.ready().await?;
    // The server's first SETTINGS may still be on its way: wait for it (bounded).
    for _ in 0..500 {
        if send_request.is_extended_connect_protocol_enabled() {
            return Ok(send_request);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        send_request = send_request.ready().await?;
    }
    Err(ClientError::NoExtendedConnect)
}

/// The extended CONNECT of `req` as an `http::Request` for the `h2` crate.
pub fn http_request(req: &duplex_proto::handshake::ConnectRequest) -> http::Request<()> {
    let mut builder = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(req.uri())
        .extension(h2::ext::Protocol::from_static("websocket"));
    for (name, value) in req.headers.iter() {
        builder = builder.header(name, value);
    }
    builder.body(()).unwrap()
}

/// Opens a WebSocket on a new stream: `scheme` `ws` or `wss`, `authority` the `:authority`.
pub async fn open(
    send_request: &mut h2::client::SendRequest<Bytes>,
    hs: &ClientHandshake,
    scheme: &str,
) -> Result<H2WebSocket, ClientError> {
    let req = hs.connect_request(scheme);
    let (response, send) = send_request.send_request(http_request(&req), false)?;
    let response = response.await?;
    let mut headers = HeaderList::default();
    for (name, value) in response.headers() {
        headers.push(name.as_str(), value.as_bytes());
    }
    let accepted = hs.check_connect_response(response.status().as_u16(), &headers).map_err(ClientError::Handshake)?;
    let conn = Connection::with_deflate(Role::Client, duplex_proto::Config::default(), accepted.deflate);
    Ok(H2WebSocket { conn, send, recv: response.into_body(), response: accepted, peer_finished: false })
}

impl H2WebSocket {
    /// Sends a message (masked by the client connection) as DATA.
    pub fn send(&mut self, message: Message) -> Result<(), ClientError> {
        self.conn.send(message).expect("the socket is open");
        self.flush()
    }

    /// Writes what the connection queued, and carries out its transport action (END_STREAM for
    /// `Finish`, RST_STREAM for `Abort`).
    fn flush(&mut self) -> Result<(), ClientError> {
        let n = self.conn.outgoing().remaining();
        if n > 0 {
            let bytes = self.conn.outgoing().copy_to_bytes(n);
            self.send.send_data(bytes, false)?;
        }
        match self.conn.poll_transport() {
            Some(Transport::Finish) => self.send.send_data(Bytes::new(), true)?,
            Some(Transport::Abort) => self.send.send_reset(h2::Reason::CANCEL),
            None => {}
        }
        Ok(())
    }

    /// The next event, reading DATA as needed; `None` once the stream ended after the close.
    pub async fn next_event(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            let event = self.conn.next_event().map_err(ClientError::Connection);
            self.flush()?;
            if let Some(e) = event? {
                return Ok(Some(e));
            }
            if self.peer_finished {
                return Ok(None);
            }
            match self.recv.data().await {
                Some(data) => {
                    let data = data?;
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.conn.receive(&data);
                }
                None => {
                    self.peer_finished = true;
                    self.conn.receive_eof();
                }
            }
        }
    }

    /// The next message (pings are answered by the connection).
    pub async fn recv(&mut self) -> Result<Option<Message>, ClientError> {
        loop {
            match self.next_event().await? {
                Some(Event::Message(m)) => return Ok(Some(m)),
                Some(Event::Close(_)) | None => return Ok(None),
                Some(_) => {}
            }
        }
    }

    /// The close handshake from our side with `code`: sends the close frame, waits for the
    /// server's, then for the end of its stream. Returns the code the server echoed.
    pub async fn close(&mut self, code: u16) -> Result<Option<u16>, ClientError> {
        self.conn.close(Some(CloseFrame::new(code, "done"))).expect("the socket is open");
        self.flush()?;
        let mut echoed = None;
        while let Some(event) = self.next_event().await? {
            if let Event::Close(frame) = event {
                echoed = frame.map(|f| f.code.0);
            }
        }
        Ok(echoed)
    }
}

/// A handshake offering subprotocol `chat` and permessage-deflate with the defaults.
pub fn handshake(authority: &str) -> ClientHandshake {
    ClientHandshake::new(authority, "/echo").protocol("chat").deflate(&DeflateConfig::default())
}
