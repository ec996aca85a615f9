//! The PROXY protocol header (HAProxy's, versions 1 and 2): what a load balancer that passes TCP
//! through (`send-proxy`, `send-proxy-v2`) writes before the client's bytes, so that the server
//! learns the client's address. Only a parser: which peers may send one is the server's
//! decision (`duplex::Server::with_trusted_proxies`).
//!
//! Version 1 is one text line, `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (or `TCP6`, or
//! `UNKNOWN ...`), at most 107 bytes. Version 2 is binary: a 12-byte signature, a version and
//! command byte, a family byte, a 16-bit length, then the addresses and optional TLVs (skipped
//! here).
//!
//! ```
//! use duplex_proto::proxy_header::{parse, ProxyHeader};
//! let (header, len) = parse(b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\nGET /").unwrap().unwrap();
//! assert_eq!(header, ProxyHeader::Proxied {
//!     source: "192.0.2.7:51000".parse().unwrap(),
//!     destination: "198.51.100.1:443".parse().unwrap(),
//! });
//! assert_eq!(len, 45);
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The start of a version 1 header.
pub const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest version 1 header (the protocol's own bound), CRLF included.
pub const V1_MAX_LEN: usize = 107;
/// Bytes of a version 2 header before its variable part: signature, version/command, family,
/// length.
pub const V2_FIXED_LEN: usize = 16;

/// What a PROXY header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The connection is a client's, relayed: its address and the address it connected to.
    Proxied {
        /// The client.
        source: SocketAddr,
        /// The address the client connected to (the proxy's listener).
        destination: SocketAddr,
    },
    /// The proxy speaks for itself (v2 `LOCAL`, a health check) or did not know the client
    /// (v1 `UNKNOWN`, a v2 family other than TCP over IPv4/IPv6): the connection's own address
    /// stands.
    Local,
}

/// Why a PROXY header was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyHeaderError {
    /// The bytes are not a PROXY header (neither signature).
    NotProxyProtocol,
    /// A version 1 line that is malformed or longer than 107 bytes.
    InvalidV1(&'static str),
    /// A version 2 header that is malformed.
    InvalidV2(&'static str),
}

impl fmt::Display for ProxyHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyHeaderError::NotProxyProtocol => {
                f.write_str("the connection did not start with a PROXY protocol header (v1 or v2)")
            }
            ProxyHeaderError::InvalidV1(why) => write!(f, "invalid PROXY protocol v1 header: {why}"),
            ProxyHeaderError::InvalidV2(why) => write!(f, "invalid PROXY protocol v2 header: {why}"),
        }
    }
}

impl std::error::Error for ProxyHeaderError {}

/// Whether `buf` (at least its first byte) may start a PROXY header; `false` once it cannot.
pub fn starts_like_proxy_header(buf: &[u8]) -> bool {
    let n = buf.len().min(V1_PREFIX.len());
    let m = buf.len().min(V2_SIGNATURE.len());
    !buf.is_empty() && (buf[..n] == V1_PREFIX[..n] || buf[..m] == V2_SIGNATURE[..m])
}

/// How many bytes the header at the front of `buf` needs in all, as far as the bytes so far
/// tell: `Ok(None)` until it is known (v1: until its line ends). A reader that must not read past
/// the header (the bytes after it belong to TLS) reads exactly this much.
pub fn header_len(buf: &[u8]) -> Result<Option<usize>, ProxyHeaderError> {
    if buf.len() >= V2_SIGNATURE.len() && buf[..12] == V2_SIGNATURE {
        if buf.len() < V2_FIXED_LEN {
            return Ok(None);
        }
        return Ok(Some(V2_FIXED_LEN + usize::from(u16::from_be_bytes([buf[14], buf[15]]))));
    }
    if !starts_like_proxy_header(buf) {
        return Err(ProxyHeaderError::NotProxyProtocol);
    }
    if buf.starts_with(V1_PREFIX) {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            if i + 2 > V1_MAX_LEN {
                return Err(ProxyHeaderError::InvalidV1("no CRLF within 107 bytes"));
            }
            return Ok(Some(i + 2));
        }
        if buf.len() >= V1_MAX_LEN {
            return Err(ProxyHeaderError::InvalidV1("no CRLF within 107 bytes"));
        }
    }
    Ok(None)
}

/// Parses the header at the front of `buf`: `Ok(None)` if more bytes are needed, otherwise the
/// header and its length in bytes (what follows is the client's).
pub fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    let Some(len) = header_len(buf)? else { return Ok(None) };
    if buf.len() < len {
        return Ok(None);
    }
    let header = if buf.starts_with(&V2_SIGNATURE) { parse_v2(&buf[..len])? } else { parse_v1(&buf[..len])? };
    Ok(Some((header, len)))
}

fn parse_v1(line: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    let bad = ProxyHeaderError::InvalidV1;
    let line = std::str::from_utf8(&line[..line.len() - 2]).map_err(|_| bad("not ASCII"))?;
    let mut fields = line.split(' ');
    let _proxy = fields.next();
    match fields.next() {
        Some("UNKNOWN") => return Ok(ProxyHeader::Local),
        Some("TCP4") | Some("TCP6") => {}
        _ => return Err(bad("the protocol is not TCP4, TCP6 or UNKNOWN")),
    }
    let mut next = || fields.next().ok_or(bad("missing fields"));
    let src: IpAddr = next()?.parse().map_err(|_| bad("bad source address"))?;
    let dst: IpAddr = next()?.parse().map_err(|_| bad("bad destination address"))?;
    let sport = port(next()?).ok_or(bad("bad source port"))?;
    let dport = port(next()?).ok_or(bad("bad destination port"))?;
    if fields.next().is_some() {
        return Err(bad("extra fields"));
    }
    let tcp4 = line.as_bytes()[6..].starts_with(b"TCP4");
    if src.is_ipv4() != tcp4 || dst.is_ipv4() != tcp4 {
        return Err(bad("the addresses do not match the protocol"));
    }
    Ok(ProxyHeader::Proxied { source: SocketAddr::new(src, sport), destination: SocketAddr::new(dst, dport) })
}

/// A decimal port: digits only, no leading zero (the v1 grammar).
fn port(s: &str) -> Option<u16> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_v2(h: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    let bad = ProxyHeaderError::InvalidV2;
    let (version, command) = (h[12] >> 4, h[12] & 0x0f);
    if version != 2 {
        return Err(bad("the version is not 2"));
    }
    let body = &h[V2_FIXED_LEN..];
    match command {
        0 => return Ok(ProxyHeader::Local),
        1 => {}
        _ => return Err(bad("the command is neither LOCAL nor PROXY")),
    }
    // High nibble: address family (1 IPv4, 2 IPv6, 3 Unix); low: transport (1 stream, 2 dgram).
    match h[13] {
        0x11 => {
            let a = body.get(..12).ok_or(bad("too short for IPv4 addresses"))?;
            let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Ok(ProxyHeader::Proxied {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            })
        }
        0x21 => {
            let a = body.get(..36).ok_or(bad("too short for IPv6 addresses"))?;
            let ip = |i: usize| {
                let octets: [u8; 16] = a[i..i + 16].try_into().expect("16 bytes");
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Ok(ProxyHeader::Proxied {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            })
        }
        // UNSPEC, UDP, Unix sockets: no TCP client address to take.
        _ => Ok(ProxyHeader::Local),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let (h, n) = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n").unwrap().unwrap();
        assert_eq!(n, 44);
        assert_eq!(
            h,
            ProxyHeader::Proxied {
                source: "[2001:db8::1]:1".parse().unwrap(),
                destination: "[2001:db8::2]:65535".parse().unwrap()
            }
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap(), Some((ProxyHeader::Local, 15)));
        assert_eq!(parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").unwrap().unwrap().0, ProxyHeader::Local);
    }

    #[test]
    fn v1_needs_its_whole_line_and_refuses_what_the_grammar_does() {
        assert_eq!(parse(b"PROX").unwrap(), None);
        assert_eq!(parse(b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 4").unwrap(), None);
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 51000\r\n"[..],
            b"PROXY TCP4 192.0.2.7 198.51.100.1 051000 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 70000 443\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",
            b"PROXY TCP5 192.0.2.7 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2 3\r\n",
        ] {
            assert!(matches!(parse(bad), Err(ProxyHeaderError::InvalidV1(_))), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(matches!(parse(&[b'P'; 3]), Err(ProxyHeaderError::NotProxyProtocol)));
        assert!(matches!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyHeaderError::NotProxyProtocol)));
        let long = [b"PROXY ".as_slice(), &[b'x'; 120]].concat();
        assert!(matches!(parse(&long), Err(ProxyHeaderError::InvalidV1(_))));
    }

    #[test]
    fn v2_ipv4_ipv6_local_and_tlvs() {
        let mut body = vec![192, 0, 2, 7, 198, 51, 100, 1, 0xc7, 0x38, 0x01, 0xbb];
        body.extend_from_slice(&[0x04, 0x00, 0x01, 0xff]); // a TLV, skipped
        let h = v2(1, 0x11, &body);
        let (header, n) = parse(&[h.as_slice(), b"\x16\x03"].concat()).unwrap().unwrap();
        assert_eq!(n, h.len());
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: "192.0.2.7:51000".parse().unwrap(),
                destination: "198.51.100.1:443".parse().unwrap()
            }
        );
        let mut six = [0u8; 36];
        six[15] = 1;
        six[31] = 2;
        six[35] = 80;
        let (header, _) = parse(&v2(1, 0x21, &six)).unwrap().unwrap();
        assert_eq!(
            header,
            ProxyHeader::Proxied { source: "[::1]:0".parse().unwrap(), destination: "[::2]:80".parse().unwrap() }
        );
        assert_eq!(parse(&v2(0, 0x00, &[])).unwrap().unwrap().0, ProxyHeader::Local);
        assert_eq!(parse(&v2(1, 0x31, &[0; 216])).unwrap().unwrap().0, ProxyHeader::Local);
        assert_eq!(parse(&h[..20]).unwrap(), None, "incomplete");
        assert_eq!(header_len(&h[..16]).unwrap(), Some(h.len()));
        assert!(matches!(parse(&v2(1, 0x11, &[1, 2, 3])), Err(ProxyHeaderError::InvalidV2(_))));
        assert!(matches!(parse(&v2(2, 0x11, &body)), Err(ProxyHeaderError::InvalidV2(_))));
        let mut v3 = h.clone();
        v3[12] = 0x31;
        assert!(matches!(parse(&v3), Err(ProxyHeaderError::InvalidV2(_))));
    }
}
