//! Masking and unmasking of payload bytes (RFC 6455 §5.3).
//!
//! A client masks every frame it sends with a fresh 32-bit key; the server unmasks. The operation is
//! a XOR with the key repeated, so the same function does both. This is the hottest loop of the
//! receive path for large messages, so it works a machine word (and with auto-vectorisation, a SIMD
//! register) at a time.

/// XORs `data` in place with `key`, starting `offset` bytes into the key stream.
///
/// `offset` is the number of payload bytes of the same frame already unmasked, so a payload that
/// arrives in pieces can be unmasked piece by piece. Returns the offset to pass for the next piece.
///
/// ```
/// let key = [1, 2, 3, 4];
/// let mut data = *b"hello world";
/// let next = duplex_proto::mask::apply(&mut data, key, 0);
/// assert_eq!(next, 11 % 4);
/// duplex_proto::mask::apply(&mut data, key, 0);
/// assert_eq!(&data, b"hello world");
/// ```
#[inline]
pub fn apply(data: &mut [u8], key: [u8; 4], offset: usize) -> usize {
    let offset = offset & 3;
    let key = rotate(key, offset);
    apply_aligned(data, key);
    (offset + data.len()) & 3
}

/// The key as it stands `offset` bytes in.
#[inline]
fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let k = u32::from_ne_bytes(key);
    // Rotating the native-endian word moves byte `offset` of the key to the front in memory order.
    let r = if cfg!(target_endian = "little") {
        k.rotate_right(8 * offset as u32)
    } else {
        k.rotate_left(8 * offset as u32)
    };
    r.to_ne_bytes()
}

#[inline]
fn apply_aligned(data: &mut [u8], key: [u8; 4]) {
    let k32 = u32::from_ne_bytes(key);
    let k64 = (u64::from(k32) << 32) | u64::from(k32);
    // Whole 32-byte blocks as four u64 lanes: the compiler turns this into vector XORs.
    let mut chunks = data.chunks_exact_mut(32);
    for block in &mut chunks {
        for lane in block.chunks_exact_mut(8) {
            let v = u64::from_ne_bytes(lane.try_into().expect("8-byte lane")) ^ k64;
            lane.copy_from_slice(&v.to_ne_bytes());
        }
    }
    let rest = chunks.into_remainder();
    let mut words = rest.chunks_exact_mut(4);
    for w in &mut words {
        let v = u32::from_ne_bytes(w.try_into().expect("4-byte word")) ^ k32;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i];
    }
}

/// Copies `src` into `dst` (which must be as long) while masking it: used to send a client frame
/// without first copying and then masking in a second pass.
pub fn copy_masked(dst: &mut [u8], src: &[u8], key: [u8; 4]) {
    debug_assert_eq!(dst.len(), src.len());
    dst.copy_from_slice(src);
    apply_aligned(dst, key);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(data: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= key[(i + offset) % 4];
        }
    }

    #[test]
    fn matches_byte_loop_for_every_length_and_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..100 {
            for offset in 0..4 {
                let orig: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut a = orig.clone();
                let mut b = orig.clone();
                let next = apply(&mut a, key, offset);
                naive(&mut b, key, offset);
                assert_eq!(a, b, "len {len} offset {offset}");
                assert_eq!(next, (offset + len) % 4);
            }
        }
    }

    #[test]
    fn piecewise_equals_whole() {
        let key = [1, 2, 3, 4];
        let orig: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut whole = orig.clone();
        apply(&mut whole, key, 0);
        let mut pieces = orig.clone();
        let mut off = 0;
        for chunk in pieces.chunks_mut(13) {
            off = apply(chunk, key, off);
        }
        assert_eq!(whole, pieces);
    }

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut data = *b"Hello";
        apply(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }
}
