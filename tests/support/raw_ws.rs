//! WebSocket bytes written by hand, for tests that control exactly what goes on the wire and in
//! which TCP write (a request and its first frame together).

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// An HTTP/1.1 upgrade request with RFC 6455's sample key (its accept value is
/// `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`) and extra header lines.
pub fn upgrade_request(host: &str, path: &str, extra: &[&str]) -> Vec<u8> {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for line in extra {
        r.push_str(line);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// A client's text frame (FIN, masked), payload under 126 bytes.
pub fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x81, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads a response head; returns it and the bytes read past it.
pub async fn read_head(tcp: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8_lossy(&buf).into_owned(), rest);
        }
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await.expect("read the response");
        assert!(n > 0, "connection closed before the end of the response head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads one unmasked server frame (payload under 126 bytes) after `rest`: its opcode and payload.
pub async fn read_frame(tcp: &mut TcpStream, mut rest: Vec<u8>) -> (u8, Vec<u8>) {
    loop {
        if rest.len() >= 2 {
            let len = (rest[1] & 0x7f) as usize;
            assert!(len < 126, "a short frame expected");
            if rest.len() >= 2 + len {
                return (rest[0] & 0x0f, rest[2..2 + len].to_vec());
            }
        }
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await.expect("read a frame");
        assert!(n > 0, "connection closed before a frame");
        rest.extend_from_slice(&chunk[..n]);
    }
}
