//! `proxy_header::parse` on arbitrary bytes (what a trusted proxy sends first). A parsed header is
//! within the input and `header_len` agrees with it; every shorter prefix is incomplete, never
//! an error; an address is of the family its header names.
#![no_main]

use duplex_proto::proxy_header::{header_len, parse, ProxyHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((header, n))) = parse(data) else { return };
    assert!(n <= data.len());
    assert_eq!(header_len(data), Ok(Some(n)));
    for cut in [n - 1, n / 2, 1] {
        assert_eq!(parse(&data[..cut]), Ok(None), "a prefix of {cut} bytes is not incomplete");
    }
    if let ProxyHeader::Proxied { source, destination } = header {
        assert_eq!(source.is_ipv4(), destination.is_ipv4());
    }
});
