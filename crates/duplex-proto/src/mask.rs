//! Masking and unmasking of payload bytes (RFC 6455 §5.3).
//!
//! A client masks every frame it sends with a fresh 32-bit key; the server unmasks. The operation is
//! a XOR with the key repeated, so the same function does both. This is the hottest loop of the
//! receive path for large messages, so it works a SIMD register at a time: on x86-64, AVX-512 or
//! AVX2 chosen at run time (AVX-512 only when built by Rust 1.89 or later, see build.rs),
//! elsewhere machine words that the compiler vectorises.

use std::mem::MaybeUninit;

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

/// Below this length the portable loop is as fast as any: the feature check would cost more
/// than the wider registers save.
#[cfg(target_arch = "x86_64")]
const WIDE_FROM: usize = 128;

/// From this length AVX-512 (where built and available) takes over from AVX2: its loop works in
/// 256-byte blocks.
#[cfg(all(target_arch = "x86_64", duplex_avx512))]
const AVX512_FROM: usize = 256;

/// The loop that unmasks a run of bytes, chosen per call from its length and the CPU (the feature
/// checks are cached loads after the first call).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum Wide {
    /// 64-byte registers: built by Rust 1.89 and later (build.rs), used when the CPU has AVX-512F.
    #[cfg(duplex_avx512)]
    Avx512,
    Avx2,
    Portable,
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn wide(len: usize) -> Wide {
    if len < WIDE_FROM {
        return Wide::Portable;
    }
    #[cfg(duplex_avx512)]
    if len >= AVX512_FROM && std::arch::is_x86_feature_detected!("avx512f") {
        return Wide::Avx512;
    }
    if std::arch::is_x86_feature_detected!("avx2") {
        Wide::Avx2
    } else {
        Wide::Portable
    }
}

#[inline]
fn apply_aligned(data: &mut [u8], key: [u8; 4]) {
    #[cfg(target_arch = "x86_64")]
    match wide(data.len()) {
        // SAFETY (both): the function only requires the CPU feature `wide` just checked.
        #[cfg(duplex_avx512)]
        Wide::Avx512 => unsafe { apply_avx512(data, key) },
        Wide::Avx2 => unsafe { apply_avx2(data, key) },
        Wide::Portable => apply_portable(data, key),
    }
    #[cfg(not(target_arch = "x86_64"))]
    apply_portable(data, key);
}

/// AVX-512: four 64-byte XORs per 256-byte block, with the load folded into each XOR (two
/// instructions per 64 bytes, a third of the AVX2 loop's per byte); the tail goes to the portable
/// loop, compiled here with the same features.
#[cfg(all(target_arch = "x86_64", duplex_avx512))]
#[target_feature(enable = "avx512f")]
fn apply_avx512(data: &mut [u8], key: [u8; 4]) {
    let blocks = data.len() / 256;
    let p = data.as_mut_ptr();
    // SAFETY: `data` holds `blocks` 256-byte blocks, read and written in place through `p`; this
    // function's own target feature is the one `xor_blocks_avx512` needs.
    unsafe { xor_blocks_avx512(p, p, blocks, key) };
    apply_portable(&mut data[blocks * 256..], key);
}

/// XORs `blocks` 256-byte blocks read from `src` with the key into `dst` (which may be `src`).
///
/// # Safety
/// `src` must be readable and `dst` writable for `blocks * 256` bytes (no alignment needed), and
/// the CPU must have AVX-512F.
#[cfg(all(target_arch = "x86_64", duplex_avx512))]
#[target_feature(enable = "avx512f")]
#[allow(clippy::incompatible_msrv)] // only built by Rust 1.89 and later (build.rs)
unsafe fn xor_blocks_avx512(src: *const u8, dst: *mut u8, blocks: usize, key: [u8; 4]) {
    use std::arch::x86_64::{__m512i, _mm512_set1_epi32, _mm512_xor_si512};
    let k = _mm512_set1_epi32(i32::from_ne_bytes(key));
    for at in (0..blocks * 256).step_by(64) {
        // SAFETY: at + 64 <= blocks * 256, within both buffers (the caller's promise).
        unsafe {
            let v = src.add(at).cast::<__m512i>().read_unaligned();
            dst.add(at).cast::<__m512i>().write_unaligned(_mm512_xor_si512(v, k));
        }
    }
}

/// The same loop compiled for AVX2: the compiler turns each 32-byte block into one 256-bit XOR
/// instead of two 128-bit ones (x86-64's baseline is SSE2), which halves the instructions per
/// byte of a large message's unmasking.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn apply_avx2(data: &mut [u8], key: [u8; 4]) {
    apply_portable(data, key);
}

#[inline(always)]
fn apply_portable(data: &mut [u8], key: [u8; 4]) {
    let k32 = u32::from_ne_bytes(key);
    let k64 = (u64::from(k32) << 32) | u64::from(k32);
    // 256-byte blocks, then 32-byte ones, as u64 lanes: the compiler turns a block into vector
    // XORs (eight 256-bit ones for 256 bytes with AVX2), with one loop test per block. Every
    // block is a multiple of 4 bytes long, so each starts at key byte 0.
    let mut blocks = data.chunks_exact_mut(256);
    for b in &mut blocks {
        xor_in_place::<256>(b, k64);
    }
    let mut blocks = blocks.into_remainder().chunks_exact_mut(32);
    for b in &mut blocks {
        xor_in_place::<32>(b, k64);
    }
    let mut words = blocks.into_remainder().chunks_exact_mut(4);
    for w in &mut words {
        let v = u32::from_ne_bytes(w.try_into().expect("4-byte word")) ^ k32;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i];
    }
}

#[inline(always)]
fn xor_in_place<const N: usize>(data: &mut [u8], k64: u64) {
    let data: &mut [u8; N] = data.try_into().expect("a block");
    for lane in data.chunks_exact_mut(8) {
        let v = u64::from_ne_bytes(lane.try_into().expect("8-byte lane")) ^ k64;
        lane.copy_from_slice(&v.to_ne_bytes());
    }
}

/// Unmasked payloads are copied this many bytes at a time, which keeps every `memcpy` under
/// glibc's `rep movsb` threshold (4 KiB with AVX2): measured here, `rep movsb` from a receive
/// buffer into a message ran at half the speed of the vector loop, and halved a 16 KiB echo's
/// throughput. (Masked bytes are not copied by `memcpy` at all: see [`extend_unmasked`].)
pub const COPY_PIECE: usize = 2048;

/// Copies `src` into `dst` (which must be as long) while masking it, in one pass.
pub fn copy_masked(dst: &mut [u8], src: &[u8], key: [u8; 4]) {
    debug_assert_eq!(dst.len(), src.len());
    // SAFETY: a `[u8]` is a `[MaybeUninit<u8>]` of the same length and layout; `xor_into` only
    // writes initialised bytes into it, so `dst` stays initialised.
    let dst = unsafe { &mut *(std::ptr::from_mut(dst) as *mut [MaybeUninit<u8>]) };
    xor_into(dst, src, key);
}

/// Writes `src` masked with `key` (from key byte 0) into `dst`, which must be as long and may be
/// uninitialised: every byte of it is written. Used to send a client frame straight into the
/// write queue's free capacity.
pub(crate) fn mask_into(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4]) {
    assert_eq!(dst.len(), src.len(), "mask_into: destination and source lengths differ");
    xor_into(dst, src, key);
}

/// Appends `src` to `dst`, unmasked with `key` from `offset` bytes into the key stream if there
/// is a key; returns the offset for the next piece (as [`apply`]). One pass: each byte is read
/// from `src`, unmasked and written to `dst`'s free capacity, instead of a copy and then a
/// second pass over the copy.
pub fn extend_unmasked(dst: &mut Vec<u8>, src: &[u8], key: Option<[u8; 4]>, offset: usize) -> usize {
    dst.reserve(src.len());
    let Some(key) = key else {
        // In pieces: see COPY_PIECE.
        for piece in src.chunks(COPY_PIECE) {
            dst.extend_from_slice(piece);
        }
        return offset;
    };
    let key = rotate(key, offset & 3);
    xor_into(&mut dst.spare_capacity_mut()[..src.len()], src, key);
    // SAFETY: `xor_into` wrote every one of the first `src.len()` bytes of the spare capacity
    // (reserved above), so they are initialised.
    unsafe { dst.set_len(dst.len() + src.len()) };
    (offset + src.len()) & 3
}

/// Writes `src` XOR the key stream (from key byte 0) into `dst`, which is as long: with AVX2 when
/// it is worth it and the CPU has it.
#[inline]
fn xor_into(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4]) {
    #[cfg(target_arch = "x86_64")]
    match wide(src.len()) {
        // SAFETY (both): the function only requires the CPU feature `wide` just checked.
        #[cfg(duplex_avx512)]
        Wide::Avx512 => unsafe { copy_unmasked_avx512(dst, src, key) },
        Wide::Avx2 => unsafe { copy_unmasked_avx2(dst, src, key) },
        Wide::Portable => copy_unmasked(dst, src, key),
    }
    #[cfg(not(target_arch = "x86_64"))]
    copy_unmasked(dst, src, key);
}

/// [`copy_unmasked`] with 64-byte registers (see [`apply_avx512`]).
#[cfg(all(target_arch = "x86_64", duplex_avx512))]
#[target_feature(enable = "avx512f")]
fn copy_unmasked_avx512(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4]) {
    let src = &src[..dst.len()];
    let blocks = src.len() / 256;
    // SAFETY: both slices are `src.len()` long, so they hold `blocks` 256-byte blocks; `dst` only
    // receives written bytes; this function's own target feature is the one needed.
    unsafe { xor_blocks_avx512(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), blocks, key) };
    let done = blocks * 256;
    copy_unmasked(&mut dst[done..], &src[done..], key);
}

/// [`copy_unmasked`] compiled for AVX2 (see [`apply_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn copy_unmasked_avx2(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4]) {
    copy_unmasked(dst, src, key);
}

/// Writes `src` XOR the key stream (starting at key byte 0) into `dst`, which is as long: the
/// blocks of [`apply_portable`], read from one slice and written to another.
#[inline(always)]
fn copy_unmasked(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4]) {
    let src = &src[..dst.len()];
    let k32 = u32::from_ne_bytes(key);
    let k64 = (u64::from(k32) << 32) | u64::from(k32);
    let (mut d_blocks, mut s_blocks) = (dst.chunks_exact_mut(256), src.chunks_exact(256));
    for (d, s) in (&mut d_blocks).zip(&mut s_blocks) {
        xor_block::<256>(d, s, k64);
    }
    let (dst, src) = (d_blocks.into_remainder(), s_blocks.remainder());
    let (mut d_blocks, mut s_blocks) = (dst.chunks_exact_mut(32), src.chunks_exact(32));
    for (d, s) in (&mut d_blocks).zip(&mut s_blocks) {
        xor_block::<32>(d, s, k64);
    }
    let (dst, src) = (d_blocks.into_remainder(), s_blocks.remainder());
    let mut d_words = dst.chunks_exact_mut(4);
    let mut s_words = src.chunks_exact(4);
    for (d, s) in (&mut d_words).zip(&mut s_words) {
        let v = u32::from_ne_bytes(s.try_into().expect("4-byte word")) ^ k32;
        for (d, b) in d.iter_mut().zip(v.to_ne_bytes()) {
            d.write(b);
        }
    }
    for (i, (d, s)) in d_words.into_remainder().iter_mut().zip(s_words.remainder()).enumerate() {
        d.write(s ^ key[i]);
    }
}

#[inline(always)]
fn xor_block<const N: usize>(dst: &mut [MaybeUninit<u8>], src: &[u8], k64: u64) {
    let dst: &mut [MaybeUninit<u8>; N] = dst.try_into().expect("a block");
    let src: &[u8; N] = src.try_into().expect("a block");
    for (d, s) in dst.chunks_exact_mut(8).zip(src.chunks_exact(8)) {
        let v = u64::from_ne_bytes(s.try_into().expect("8-byte lane")) ^ k64;
        for (d, b) in d.iter_mut().zip(v.to_ne_bytes()) {
            d.write(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_unmasked_matches_copy_then_apply_at_every_offset_and_length() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let src: Vec<u8> = (0..3 * COPY_PIECE as u32 + 7).map(|i| (i * 7) as u8).collect();
        for offset in 0..4 {
            for len in [0, 1, 3, 4, 31, 32, 33, COPY_PIECE - 1, COPY_PIECE, COPY_PIECE + 5, src.len()] {
                let mut want = b"prefix".to_vec();
                want.extend_from_slice(&src[..len]);
                let next = apply(&mut want[6..], key, offset);
                let mut got = b"prefix".to_vec();
                assert_eq!(extend_unmasked(&mut got, &src[..len], Some(key), offset), next);
                assert_eq!(got, want, "offset {offset}, len {len}");
                let mut plain = Vec::new();
                assert_eq!(extend_unmasked(&mut plain, &src[..len], None, offset), offset);
                assert_eq!(plain, &src[..len]);
            }
        }
    }

    #[test]
    fn copy_masked_matches_apply_across_pieces() {
        let key = [9, 8, 7, 6];
        let src: Vec<u8> = (0..2 * COPY_PIECE as u32 + 3).map(|i| i as u8).collect();
        let mut dst = vec![0; src.len()];
        copy_masked(&mut dst, &src, key);
        let mut want = src.clone();
        apply(&mut want, key, 0);
        assert_eq!(dst, want);
    }

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
    fn the_wide_path_matches_the_byte_loop_around_its_threshold() {
        // Lengths from below the AVX2 threshold to several blocks past AVX-512's, at every
        // offset, in place and copied: on a CPU with AVX2 or AVX-512 these take the wide paths,
        // elsewhere the portable one (same answer).
        let key = [0xde, 0xad, 0xbe, 0xef];
        for len in (100..200).chain([255, 256, 257, 319, 320, 383, 511, 512, 513, 767, 1023, 4099]) {
            for offset in 0..4 {
                let orig: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
                let mut a = orig.clone();
                let mut b = orig.clone();
                assert_eq!(apply(&mut a, key, offset), (offset + len) % 4);
                naive(&mut b, key, offset);
                assert_eq!(a, b, "len {len} offset {offset}");
                // Unaligned starts inside a larger buffer.
                let mut c = orig.clone();
                let mut d = orig.clone();
                apply(&mut c[1..], key, offset);
                naive(&mut d[1..], key, offset);
                assert_eq!(c, d, "len {len} offset {offset}, from byte 1");
                // Copied out of the same buffer, from an unaligned start.
                let mut e = Vec::new();
                assert_eq!(extend_unmasked(&mut e, &orig[1..], Some(key), offset), (offset + len - 1) % 4);
                assert_eq!(e, d[1..], "len {len} offset {offset}, copied from byte 1");
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
