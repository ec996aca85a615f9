//! `FrameHeader::decode` on arbitrary bytes. When it decodes a header, encoding that header gives
//! back exactly the bytes it was decoded from (the RFC's minimal length encoding is enforced),
//! `encoded_len` and `len_from_prefix` agree, and every shorter prefix is `Ok(None)`. When it
//! needs more bytes, the input is shorter than the header its first two bytes announce.
#![no_main]

use duplex_proto::frame::{FrameHeader, MAX_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match FrameHeader::decode(data) {
        Ok(Some((h, n))) => {
            assert!((2..=MAX_HEADER_LEN).contains(&n) && n <= data.len());
            let mut buf = [0u8; MAX_HEADER_LEN];
            let m = h.encode(&mut buf);
            assert_eq!(&buf[..m], &data[..n], "encode(decode(x)) != x for {h:?}");
            assert_eq!(h.encoded_len(), n);
            assert_eq!(FrameHeader::len_from_prefix(data[1]), n);
            assert!(h.payload_len >> 63 == 0);
            for short in 0..n {
                assert_eq!(FrameHeader::decode(&data[..short]), Ok(None), "prefix of {short} bytes");
            }
        }
        Ok(None) => {
            assert!(data.len() < 2 || data.len() < FrameHeader::len_from_prefix(data[1]));
        }
        Err(_) => assert!(data.len() >= 2),
    }
});
