//! The permessage-deflate codec: C zlib through `libz-sys` (see the [parent module](super) for
//! why zlib and for the 8-bit window), one compressor and one decompressor per connection, each
//! allocated on first use and either freed after each message (no context takeover) or kept
//! until released by the connection when it has been quiet (see [`Compressor::release`] and
//! [`Decompressor::release`]).
//!
//! zlib allocates through [`zalloc`] / [`zfree`], which use Rust's global allocator: what the
//! codecs hold is counted by a counting allocator like the rest of the connection.

use std::alloc::{alloc, dealloc, Layout};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_uint, CStr};
use std::ptr;

use libz_sys as z;

use super::TRAILER;

/// The codec is compiled in: the handshake may offer and accept permessage-deflate.
pub(crate) const AVAILABLE: bool = true;

/// The two codecs of a connection whose own side compresses with `own` (window bits, no context
/// takeover) at `level` and `mem_level`, and whose peer's messages are inflated with `peer`.
pub(crate) fn codecs(
    level: u32,
    mem_level: u8,
    own: (u8, bool),
    peer: (u8, bool),
) -> Option<(Compressor, Decompressor)> {
    Some((Compressor::new(level, own.0, own.1).mem_level(mem_level), Decompressor::new(peer.0, peer.1)))
}

/// The window zlib can compress with for `negotiated` bits: raw deflate refuses 8 and is served
/// by 9 (see the [module docs](super)).
pub(crate) fn codec_window_bits(negotiated: u8) -> u8 {
    negotiated.clamp(9, 15)
}

// zlib's allocator hooks, on Rust's global allocator. Each block carries its size in a 16-byte
// header (zlib frees without a size; 16 keeps the block aligned as malloc's would be).
const HEADER: usize = 16;

unsafe extern "C" fn zalloc(_opaque: z::voidpf, items: z::uInt, size: z::uInt) -> z::voidpf {
    let Some(total) = (items as usize).checked_mul(size as usize).and_then(|n| n.checked_add(HEADER)) else {
        return ptr::null_mut();
    };
    let Ok(layout) = Layout::from_size_align(total, HEADER) else {
        return ptr::null_mut();
    };
    // SAFETY: `layout` has a non-zero size (at least HEADER).
    let p = unsafe { alloc(layout) };
    if p.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `p` is valid for `total >= HEADER` bytes and aligned to 16, enough for a usize.
    unsafe {
        p.cast::<usize>().write(total);
        p.add(HEADER).cast()
    }
}

unsafe extern "C" fn zfree(_opaque: z::voidpf, address: z::voidpf) {
    if address.is_null() {
        return;
    }
    // SAFETY: zlib only frees what `zalloc` returned: HEADER bytes past a block whose first word
    // is its total size, allocated with that size and an alignment of HEADER.
    unsafe {
        let p = address.cast::<u8>().sub(HEADER);
        let total = p.cast::<usize>().read();
        dealloc(p, Layout::from_size_align_unchecked(total, HEADER));
    }
}

/// A zeroed stream with our allocator, boxed: zlib's state points back at it, so it must not move.
fn new_stream() -> Box<z::z_stream> {
    Box::new(z::z_stream {
        next_in: ptr::null_mut(),
        avail_in: 0,
        total_in: 0,
        next_out: ptr::null_mut(),
        avail_out: 0,
        total_out: 0,
        msg: ptr::null_mut(),
        state: ptr::null_mut(),
        zalloc,
        zfree,
        opaque: ptr::null_mut(),
        data_type: 0,
        adler: 0,
        reserved: 0,
    })
}

/// zlib's message for the last error of `strm`, or its code.
fn error_text(strm: &z::z_stream, code: c_int) -> String {
    if strm.msg.is_null() {
        format!("zlib error {code}")
    } else {
        // SAFETY: zlib's `msg` is a static NUL-terminated string when not null.
        unsafe { CStr::from_ptr(strm.msg as *const c_char) }.to_string_lossy().into_owned()
    }
}

const STREAM_SIZE: c_int = std::mem::size_of::<z::z_stream>() as c_int;

// Not in libz-sys' bindings (its test generator cannot parse it); in zlib since 1.2.7.1.
extern "C" {
    fn inflateGetDictionary(strm: z::z_streamp, dictionary: *mut u8, dict_length: *mut c_uint) -> c_int;
}

/// An initialised raw deflate stream; `deflateEnd` on drop.
struct Deflate(Box<z::z_stream>);

// SAFETY: the stream is owned, its state is only reached through `&mut self`, and zlib keeps no
// thread-local state.
unsafe impl Send for Deflate {}
unsafe impl Sync for Deflate {}

impl Deflate {
    fn new(level: u32, bits: u8, mem_level: u8) -> Deflate {
        let mut s = new_stream();
        // SAFETY: `s` is a valid stream with allocator hooks; the version and size are the ones
        // libz-sys was written against.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *s,
                level as c_int,
                z::Z_DEFLATED,
                -c_int::from(bits),
                c_int::from(mem_level),
                z::Z_DEFAULT_STRATEGY,
                z::zlibVersion(),
                STREAM_SIZE,
            )
        };
        // Only out of memory or arguments we clamp (level 0..=9, bits 9..=15, memLevel 1..=9).
        assert_eq!(rc, z::Z_OK, "deflateInit2: {}", error_text(&s, rc));
        Deflate(s)
    }
}

impl Drop for Deflate {
    fn drop(&mut self) {
        // SAFETY: initialised by deflateInit2_, ended once.
        unsafe { z::deflateEnd(&mut *self.0) };
    }
}

/// An initialised raw inflate stream; `inflateEnd` on drop.
struct Inflate(Box<z::z_stream>);

// SAFETY: as for `Deflate`.
unsafe impl Send for Inflate {}
unsafe impl Sync for Inflate {}

impl Inflate {
    fn new(bits: u8, dictionary: &[u8]) -> Inflate {
        let mut s = new_stream();
        // SAFETY: as for deflateInit2_.
        let rc = unsafe { z::inflateInit2_(&mut *s, -c_int::from(bits), z::zlibVersion(), STREAM_SIZE) };
        assert_eq!(rc, z::Z_OK, "inflateInit2: {}", error_text(&s, rc));
        let mut i = Inflate(s);
        if !dictionary.is_empty() {
            // SAFETY: a raw inflate stream takes a dictionary at any time; zlib copies it.
            let rc = unsafe { z::inflateSetDictionary(&mut *i.0, dictionary.as_ptr(), dictionary.len() as c_uint) };
            assert_eq!(rc, z::Z_OK, "inflateSetDictionary: {}", error_text(&i.0, rc));
        }
        i
    }

    /// A copy of the window: the last (up to) 2^bits bytes inflated.
    fn window(&mut self) -> Vec<u8> {
        let mut len: c_uint = 0;
        // SAFETY: with a null buffer zlib only reports the length.
        unsafe { inflateGetDictionary(&mut *self.0, ptr::null_mut(), &mut len) };
        let mut w = Vec::with_capacity(len as usize);
        // SAFETY: `w` has room for `len` bytes, which zlib fills.
        unsafe {
            inflateGetDictionary(&mut *self.0, w.as_mut_ptr(), &mut len);
            w.set_len(len as usize);
        }
        w
    }
}

impl Drop for Inflate {
    fn drop(&mut self) {
        // SAFETY: initialised by inflateInit2_, ended once.
        unsafe { z::inflateEnd(&mut *self.0) };
    }
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deflate")
    }
}

impl std::fmt::Debug for Inflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inflate")
    }
}

// ---------------------------------------------------------------------------- shared mode

// Without context takeover a codec lives for one message. Rather than allocate and free one per
// message, each thread keeps a few, reset, for the next message of any connection on it: taken
// when a message starts, given back when it ends (a message arriving over several reads keeps
// its inflater until it ends), so a connection between messages holds none.

/// Codecs kept per thread and kind: enough for the messages in flight at once on one thread
/// (usually one), few enough that a thread holds at most a few hundred KiB.
const POOL_KEEP: usize = 4;

type DeflateKey = (u32, u8, u8);

thread_local! {
    static DEFLATERS: RefCell<Vec<(DeflateKey, Deflate)>> = const { RefCell::new(Vec::new()) };
    static INFLATERS: RefCell<Vec<(u8, Inflate)>> = const { RefCell::new(Vec::new()) };
}

fn take_deflate(key: DeflateKey) -> Deflate {
    let pooled = DEFLATERS
        .try_with(|p| {
            let mut p = p.borrow_mut();
            p.iter().rposition(|(k, _)| *k == key).map(|i| p.swap_remove(i).1)
        })
        .ok()
        .flatten();
    pooled.unwrap_or_else(|| Deflate::new(key.0, key.1, key.2))
}

fn give_deflate(key: DeflateKey, mut d: Deflate) {
    // SAFETY: an initialised stream; reset keeps its allocations and forgets its history.
    if unsafe { z::deflateReset(&mut *d.0) } != z::Z_OK {
        return;
    }
    let _ = DEFLATERS.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_KEEP {
            p.push((key, d));
        }
    });
}

fn take_inflate(bits: u8) -> Inflate {
    let pooled = INFLATERS
        .try_with(|p| {
            let mut p = p.borrow_mut();
            p.iter().rposition(|(k, _)| *k == bits).map(|i| p.swap_remove(i).1)
        })
        .ok()
        .flatten();
    pooled.unwrap_or_else(|| Inflate::new(bits, &[]))
}

fn give_inflate(bits: u8, mut i: Inflate) {
    // SAFETY: as for deflateReset.
    if unsafe { z::inflateReset(&mut *i.0) } != z::Z_OK {
        return;
    }
    let _ = INFLATERS.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_KEEP {
            p.push((bits, i));
        }
    });
}

/// The memLevel used when none is given (zlib's own default, 8): for one-shot compression,
/// where the state lives only while a message is compressed.
pub(crate) const ONE_SHOT_MEM_LEVEL: u8 = 8;

/// The compressor of one direction: allocated on the first compressed message, dropped after
/// each message when no context takeover applies, or when the connection releases it.
#[derive(Debug)]
pub(crate) struct Compressor {
    level: u32,
    window_bits: u8,
    mem_level: u8,
    no_context_takeover: bool,
    z: Option<Deflate>,
}

impl Compressor {
    pub(crate) fn new(level: u32, negotiated_bits: u8, no_context_takeover: bool) -> Self {
        Compressor {
            level: level.min(9),
            window_bits: codec_window_bits(negotiated_bits),
            mem_level: ONE_SHOT_MEM_LEVEL,
            no_context_takeover,
            z: None,
        }
    }

    /// Sets zlib's memLevel (1..=9): its hash table has 2^(m+7) entries and its symbol buffer
    /// 2^(m+6), so the state costs about 2^(m+9) bytes besides the window's 2^(w+2).
    pub(crate) fn mem_level(mut self, mem_level: u8) -> Self {
        self.mem_level = mem_level.clamp(1, 9);
        self
    }

    /// Whether the zlib state is allocated.
    pub(crate) fn is_allocated(&self) -> bool {
        self.z.is_some()
    }

    pub(crate) fn window_bits(&self) -> u8 {
        self.window_bits
    }

    pub(crate) fn memory_level(&self) -> u8 {
        self.mem_level
    }

    /// Frees the state between messages. Always valid at a message boundary: the next message
    /// starts a fresh stream whose matches never reach into the old one, and the peer's inflater
    /// needs no reset for that (its window only holds more than we use).
    pub(crate) fn release(&mut self) {
        self.z = None;
    }

    /// Compresses `input` (a whole message, or one fragment of one) and appends the result to
    /// `out`, ending with a sync flush so the peer can inflate all of it. `end` marks the end of
    /// the message: its trailing `00 00 ff ff` is removed (RFC 7692 §7.2.1) and, without context
    /// takeover, the compressor freed.
    pub(crate) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>, end: bool) {
        let key = (self.level, self.window_bits, self.mem_level);
        let pooled = self.no_context_takeover;
        let z =
            self.z.get_or_insert_with(|| if pooled { take_deflate(key) } else { Deflate::new(key.0, key.1, key.2) });
        let s = &mut *z.0;
        let start = out.len();
        out.reserve(input.len() / 4 + 64);
        let mut rest = input;
        loop {
            let chunk = rest.len().min(c_uint::MAX as usize);
            s.next_in = rest.as_ptr().cast_mut();
            s.avail_in = chunk as c_uint;
            let room = (out.capacity() - out.len()).min(c_uint::MAX as usize);
            s.next_out = out.spare_capacity_mut().as_mut_ptr().cast();
            s.avail_out = room as c_uint;
            // SAFETY: next_in/avail_in describe `rest`, which zlib only reads; next_out/avail_out
            // the uninitialised tail of `out`, of which zlib initialises the first
            // `room - avail_out` bytes.
            let rc = unsafe { z::deflate(s, z::Z_SYNC_FLUSH) };
            let written = room - s.avail_out as usize;
            let used = chunk - s.avail_in as usize;
            // SAFETY: see above.
            unsafe { out.set_len(out.len() + written) };
            rest = &rest[used..];
            s.next_in = ptr::null_mut();
            s.next_out = ptr::null_mut();
            // Z_BUF_ERROR: nothing to do (a flush right after a flush). Anything else but Z_OK is a
            // corrupt state or bad arguments, neither of which a caller (let alone the peer) can
            // cause.
            assert!(rc == z::Z_OK || rc == z::Z_BUF_ERROR, "deflate: {}", error_text(s, rc));
            // Done when all input is taken and the flush did not fill the buffer (zlib's rule).
            if rest.is_empty() && s.avail_out != 0 {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if end {
            if out.ends_with(&TRAILER) && out.len() - start >= TRAILER.len() {
                out.truncate(out.len() - TRAILER.len());
            } else if out.len() == start {
                // Nothing since the last sync flush (an empty last fragment, or an empty message
                // after another): send the first byte of an empty stored block, which the peer's
                // appended trailer completes (RFC 7692 §7.2.3.6). An empty payload would leave the
                // peer's inflater inside a stored block of 0xff00 bytes (found by fuzzing).
                out.push(0x00);
            }
            if self.no_context_takeover {
                if let Some(d) = self.z.take() {
                    give_deflate(key, d);
                }
            }
        }
    }
}

/// What one call of [`Decompressor::inflate`] did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inflated {
    /// Input bytes consumed.
    pub consumed: usize,
    /// It stopped because `out` reached its cap; more output may be pending.
    pub full: bool,
}

/// The decompressor of the peer's messages: allocated on the first compressed message received,
/// dropped after each message when the peer does not take over its context. Released by the
/// connection when quiet, it keeps only a copy of its window (what the peer's next message may
/// refer to), primed back as a preset dictionary into the next inflater.
#[derive(Debug)]
pub(crate) struct Decompressor {
    window_bits: u8,
    no_context_takeover: bool,
    z: Option<Inflate>,
    /// The window of a released inflater (empty when there is none or no context to keep).
    history: Box<[u8]>,
    /// The peer ended the DEFLATE stream (a block with BFINAL set): the rest of the message,
    /// including the appended trailer, is ignored (RFC 7692 §7.2.3.4 allows BFINAL).
    ended: bool,
}

impl Decompressor {
    pub(crate) fn new(negotiated_bits: u8, no_context_takeover: bool) -> Self {
        // zlib's raw inflate takes every window RFC 7692 allows, 8 included.
        Decompressor {
            window_bits: negotiated_bits.clamp(8, 15),
            no_context_takeover,
            z: None,
            history: Box::default(),
            ended: false,
        }
    }

    /// Whether the zlib state is allocated.
    pub(crate) fn is_allocated(&self) -> bool {
        self.z.is_some()
    }

    /// Bytes of window kept by a released inflater.
    pub(crate) fn history_len(&self) -> usize {
        self.history.len()
    }

    pub(crate) fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// Frees the inflater between messages, keeping a copy of its window when the peer takes
    /// over its context. Call only at a message boundary.
    pub(crate) fn release(&mut self) {
        if let Some(mut i) = self.z.take() {
            if !self.no_context_takeover {
                self.history = i.window().into_boxed_slice();
            }
        }
    }

    /// Inflates `input` into `out` without letting `out` grow past `cap` bytes: the buffer grows
    /// with the output actually produced, never by what the input claims, so a decompression bomb
    /// costs at most `cap` bytes. Returns when the input is used up (and nothing is pending), or
    /// when `out` holds `cap` bytes.
    pub(crate) fn inflate(&mut self, mut input: &[u8], out: &mut Vec<u8>, cap: usize) -> Result<Inflated, String> {
        let mut consumed = 0;
        loop {
            if self.ended {
                return Ok(Inflated { consumed: consumed + input.len(), full: false });
            }
            if out.len() >= cap {
                return Ok(Inflated { consumed, full: true });
            }
            if out.len() == out.capacity() {
                // Grow with what is produced: double, at least 1 KiB, never past the cap (and
                // straight to the cap rather than leave a sliver that would cost another copy).
                let left = cap - out.len();
                let grow = out.len().max(input.len()).max(1024);
                out.reserve_exact(if left - grow.min(left) < grow { left } else { grow });
            }
            let (bits, history, pooled) = (self.window_bits, &mut self.history, self.no_context_takeover);
            let z = self.z.get_or_insert_with(|| {
                if pooled {
                    take_inflate(bits)
                } else {
                    Inflate::new(bits, &std::mem::take(history))
                }
            });
            let s = &mut *z.0;
            let room = (out.capacity() - out.len()).min(cap - out.len()).min(c_uint::MAX as usize);
            let chunk = input.len().min(c_uint::MAX as usize);
            s.next_in = input.as_ptr().cast_mut();
            s.avail_in = chunk as c_uint;
            s.next_out = out.spare_capacity_mut().as_mut_ptr().cast();
            s.avail_out = room as c_uint;
            // SAFETY: next_in/avail_in describe `input`, which zlib only reads; next_out/avail_out
            // the uninitialised tail of `out`, of which zlib initialises the first
            // `room - avail_out` bytes.
            let rc = unsafe { z::inflate(s, z::Z_SYNC_FLUSH) };
            let used = chunk - s.avail_in as usize;
            let written = room - s.avail_out as usize;
            s.next_in = ptr::null_mut();
            s.next_out = ptr::null_mut();
            // SAFETY: see above.
            unsafe { out.set_len(out.len() + written) };
            input = &input[used..];
            consumed += used;
            match rc {
                z::Z_STREAM_END => self.ended = true,
                z::Z_OK | z::Z_BUF_ERROR => {
                    if written < room && input.is_empty() {
                        return Ok(Inflated { consumed, full: false });
                    }
                    if used == 0 && written == 0 {
                        return Err("inflate made no progress".into());
                    }
                }
                // Z_NEED_DICT cannot happen in a raw stream; Z_DATA_ERROR is the peer's bad data.
                rc => return Err(error_text(s, rc)),
            }
        }
    }

    /// The message is complete: forget a stream end, and free the state if the peer does not
    /// take over its context (or ended its stream, which leaves no context to take over).
    pub(crate) fn end_message(&mut self) {
        if self.no_context_takeover || self.ended {
            match self.z.take() {
                Some(i) if self.no_context_takeover => give_inflate(self.window_bits, i),
                _ => {}
            }
            self.history = Box::default();
        }
        self.ended = false;
    }
}

// What zlib 1.2.13 allocates on x86-64, plus our 16-byte header per block (measured by
// `deflate::tests::memory_per_codec`): deflate_state and headers 6,144 B, then window 2·2^w, prev
// 2·2^w, head 2·2^(m+7), pending 4·2^(m+6); inflate_state and headers 7,304 B, then the window 2^w
// on first output.
const DEFLATE_STATE: usize = 6_144;
const INFLATE_STATE: usize = 7_304;

/// Heap bytes of a compressor with a `bits` window and `mem_level`.
pub(crate) fn compressor_heap_size(bits: u8, mem_level: u8) -> usize {
    DEFLATE_STATE + (4 << bits) + (1 << (mem_level + 9))
}

/// Heap bytes of a decompressor with a `bits` window, once it has inflated something.
pub(crate) fn decompressor_heap_size(bits: u8) -> usize {
    INFLATE_STATE + (1 << bits)
}
