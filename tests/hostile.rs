//! A hostile peer must never panic the server, and what it can make the server hold must stay
//! bounded.
//!
//! The server runs in-process ([`wire::EchoServer`], every connection task watched for panics), so
//! its memory is this process's memory. Two instruments:
//!
//! - a counting global allocator ([`Counting`]): bytes currently allocated and the largest single
//!   allocation. This is what catches a *reservation*: `Vec::with_capacity(declared_len)` asks the
//!   allocator for the bytes at once even though the pages stay untouched;
//! - the process's resident set (`VmRSS` of `/proc/self/status`), which catches memory actually
//!   touched, but NOT a large reservation: glibc serves big allocations with `mmap`, whose pages
//!   cost nothing until written. A server that reserved the 10 MiB each header announces would
//!   add 10 GiB to the allocator's count for 1000 connections and next to nothing to the RSS; so
//!   the RSS bound alone would not catch it, and the allocator bound is the sharp one.
//!
//! The tests take [`LOCK`] so that they run one at a time: the counters are process-wide.

mod wire;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::time::timeout;
use wire::*;

// ---------------------------------------------------------------------------------------------
// Instruments

/// The system allocator, counting.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One test at a time: the counters and the RSS are the whole process's.
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: usize = 1 << 20;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The resident set size, from `/proc/self/status`.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Waits until the live heap stops moving (the server has processed what it was sent): no change
/// over 64 KiB for 300 ms, at most 15 s. Returns the live heap then.
async fn settled_live() -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = live();
    let mut stable_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = live();
        if now.abs_diff(last) > 64 * 1024 {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= Duration::from_millis(300) || Instant::now() > deadline {
            return now;
        }
    }
}

/// How many connections this process can hold: each costs two descriptors here (the peer's and
/// the server's), so at most half the soft `RLIMIT_NOFILE` minus some headroom.
fn connection_budget(wanted: usize) -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1024);
    let n = wanted.min(soft.saturating_sub(128) / 2);
    if n < wanted {
        eprintln!("RLIMIT_NOFILE is {soft}: testing {n} connections instead of {wanted}");
    }
    n
}

/// The header of a masked binary frame announcing `len` bytes, in the 64-bit form, without
/// checking `len` (so it can be any 64-bit value).
fn header64(opcode: u8, fin: bool, len: u64) -> Vec<u8> {
    let mut h = vec![(if fin { 0x80 } else { 0 }) | opcode, 0x80 | 127];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&MASK_KEY);
    h
}

/// A small deterministic generator (xorshift64*), so a failing case can be replayed by its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A fresh connection still echoes: the server is alive.
async fn still_serving(server: &mut EchoServer) {
    let mut p = Peer::open(server.addr).await;
    p.write(&client_frame(TEXT, b"still there?")).await;
    p.expect_message(TEXT, b"still there?").await;
    p.write(&client_frame(CLOSE, &close_payload(1000, b""))).await;
    p.expect_close(1000).await;
    p.expect_eof().await;
    drop(p);
    assert!(matches!(server.next_end().await, End::Closed(_)));
    assert_eq!(server.panics(), 0);
}

// ---------------------------------------------------------------------------------------------
// Huge declared lengths

/// A header announcing 2^62 bytes (and other lengths no frame may have) is refused from the
/// header alone — 1009 for sizes over the limit, 1002 for a length with the top bit set — before
/// anything is reserved for it; the server keeps serving.
#[tokio::test]
async fn header_announcing_2_pow_62_bytes_is_1009_and_allocates_nothing() {
    let _one_at_a_time = LOCK.lock().await;
    let mut server = EchoServer::start().await; // default limits
                                                // Warm up what a connection allocates once per thread (the read scratch buffer).
    still_serving(&mut server).await;

    LARGEST.store(0, Ordering::Relaxed);
    let mut p = Peer::open(server.addr).await;
    p.write(&header64(BINARY, true, 1 << 62)).await;
    p.expect_fail(1009).await;
    server.expect_failed(p, 1009).await;
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest < MIB, "a 2^62-byte header made the process allocate {largest} bytes at once");

    for (case, bytes, code) in [
        ("2^63 - 1 bytes", header64(TEXT, true, u64::MAX >> 1), 1009),
        ("2^63 bytes (top bit set)", header64(BINARY, true, 1 << 63), 1002),
        ("u64::MAX bytes", header64(BINARY, true, u64::MAX), 1002),
        ("2^62 bytes, non-final first fragment", header64(BINARY, false, 1 << 62), 1009),
        (
            "2^62 bytes in a continuation",
            [client_fragment(false, BINARY, b"start"), header64(CONT, true, 1 << 62)].concat(),
            1009,
        ),
    ] {
        eprintln!("case: {case}");
        let mut p = Peer::open(server.addr).await;
        p.write(&bytes).await;
        p.expect_fail(code).await;
        server.expect_failed(p, code).await;
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest < MIB, "huge headers made the process allocate {largest} bytes at once");
    still_serving(&mut server).await;
}

/// 1000 connections each send the header of a 10 MiB frame, then nothing. The server reserves at
/// most 64 KiB up front per frame (`initial_reservation` in duplex-proto), growing as bytes really
/// arrive, so the allocator sees about 1000 x 64 KiB; a server that reserved the declared size
/// would show 1000 x 10 MiB (and RSS would not show it, as those pages are never touched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_connections_announcing_10_mib_frames_stay_bounded() {
    let _one_at_a_time = LOCK.lock().await;
    let n = connection_budget(1000);
    let mut server = EchoServer::start().await;
    still_serving(&mut server).await;
    let (live0, rss0) = (settled_live().await, rss());
    LARGEST.store(0, Ordering::Relaxed);

    let mut peers = Vec::with_capacity(n);
    for _ in 0..n {
        let mut p = Peer::open(server.addr).await;
        p.write(&header64(BINARY, true, 10 << 20)).await;
        peers.push(p);
    }
    let grown = settled_live().await.saturating_sub(live0);
    let rss_grown = rss().saturating_sub(rss0);
    let largest = LARGEST.load(Ordering::Relaxed);
    eprintln!(
        "{n} connections: heap +{} MiB (largest allocation {} KiB), RSS +{} MiB",
        grown / MIB,
        largest / 1024,
        rss_grown / MIB
    );
    // Per connection: the 64 KiB reservation plus the socket, task and buffers (well under 64 KiB).
    let heap_bound = n * (128 * 1024) + 32 * MIB;
    assert!(grown <= heap_bound, "heap grew by {grown} bytes for {n} headers (bound {heap_bound})");
    assert!(largest <= 128 * 1024, "one allocation of {largest} bytes: the declared size was reserved?");
    assert!(rss_grown <= 200 * MIB, "RSS grew by {} MiB", rss_grown / MIB);

    // The server still serves, and every one of those connections ends cleanly when dropped.
    still_serving(&mut server).await;
    drop(peers);
    for _ in 0..n {
        match server.next_end_within(Duration::from_secs(30)).await {
            End::Failed(duplex::Error::AbnormalClosure | duplex::Error::Io(_)) => {}
            other => panic!("unexpected end {other:?}"),
        }
    }
    assert_eq!(server.panics(), 0);
    let left = settled_live().await.saturating_sub(live0);
    assert!(left < 16 * MIB, "{} MiB still allocated after every connection ended", left / MIB);
}

// ---------------------------------------------------------------------------------------------
// Peers that do not read

/// Writes `unit` repeatedly, up to `total` bytes, and stops early once the server stops reading
/// (a write makes no progress for a second): that is backpressure, which is what we want.
async fn flood(p: &mut Peer, unit: &[u8], total: usize) -> usize {
    let batch: Vec<u8> = unit.iter().copied().cycle().take(unit.len() * (64 * 1024 / unit.len()).max(1)).collect();
    let mut sent = 0;
    while sent < total {
        match timeout(Duration::from_secs(1), p.stream.write_all(&batch)).await {
            Ok(Ok(())) => sent += batch.len(),
            Ok(Err(e)) => panic!("the server reset the connection after {sent} bytes: {e}"),
            Err(_) => break,
        }
    }
    sent
}

/// A peer that sends pings and never reads the pongs. RFC 6455 §5.5.3 lets the server answer
/// only the latest ping; either way, what it queues for a peer that does not read must stay
/// bounded (by `Config::write_buffer_limit`, 1 MiB by default) instead of growing with what the
/// peer sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_from_a_peer_that_never_reads_stays_bounded() {
    let _one_at_a_time = LOCK.lock().await;
    let mut server = EchoServer::start().await;
    still_serving(&mut server).await;
    let live0 = settled_live().await;

    let mut p = Peer::open(server.addr).await;
    let sent = flood(&mut p, &client_frame(PING, &[0x55; 125]), 64 * MIB).await;
    let grown = settled_live().await.saturating_sub(live0);
    eprintln!("sent {} MiB of pings; server heap +{} MiB", sent / MIB, grown / MIB);
    assert!(
        grown <= 8 * MIB,
        "the server queued {} MiB of pongs for a peer that never reads ({} MiB of pings sent)",
        grown / MIB,
        sent / MIB
    );
    drop(p);
    assert!(matches!(server.next_end_within(Duration::from_secs(30)).await, End::Failed(_)));
    assert_eq!(server.panics(), 0);
}

/// The same with messages: the echo application's `send` waits once more than
/// `write_buffer_limit` is queued, so it stops calling `recv`, and the server stops reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_flood_from_a_peer_that_never_reads_stays_bounded() {
    let _one_at_a_time = LOCK.lock().await;
    let mut server = EchoServer::start().await;
    still_serving(&mut server).await;
    let live0 = settled_live().await;

    let mut p = Peer::open(server.addr).await;
    let sent = flood(&mut p, &client_frame(BINARY, &pattern(4000)), 64 * MIB).await;
    let grown = settled_live().await.saturating_sub(live0);
    eprintln!("sent {} MiB of messages; server heap +{} MiB", sent / MIB, grown / MIB);
    assert!(grown <= 8 * MIB, "the server queued {} MiB for a peer that never reads", grown / MIB);
    drop(p);
    assert!(matches!(server.next_end_within(Duration::from_secs(30)).await, End::Failed(_) | End::SendFailed(_)));
    assert_eq!(server.panics(), 0);
}

// ---------------------------------------------------------------------------------------------
// Garbage and broken connections

/// Random bytes after the handshake, 256 seeds. Whatever they decode to, the server never panics
/// and ends each connection; when the very first header is already invalid (RSV bits, reserved
/// opcode or no mask: 250 of every 256 random headers), the answer is exactly a close frame with
/// 1002 followed by the TCP close.
#[tokio::test]
async fn random_garbage_after_the_handshake_is_closed_with_1002() {
    let _one_at_a_time = LOCK.lock().await;
    let mut server = EchoServer::start().await;
    let mut exact = 0;
    for seed in 1..=256u64 {
        let mut garbage = vec![0u8; 4096];
        XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)).fill(&mut garbage);
        let (b0, b1) = (garbage[0], garbage[1]);
        let reserved_opcode = matches!(b0 & 0x0f, 3..=7 | 0xb..=0xf);
        let first_header_invalid = b0 & 0x70 != 0 || reserved_opcode || b1 & 0x80 == 0;

        let mut p = Peer::open(server.addr).await;
        p.write(&garbage).await;
        // Our side is done: a server still waiting for the rest of a frame sees EOF.
        p.stream.shutdown().await.unwrap();
        let mut frames = Vec::new();
        loop {
            match p.next_frame().await {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => panic!("seed {seed}: {e}; frames so far {frames:?}"),
            }
        }
        if first_header_invalid {
            assert_eq!(frames.len(), 1, "seed {seed}: {frames:?}");
            assert_eq!(frames[0].close_code(), Some(1002), "seed {seed}: {frames:?}");
            exact += 1;
        }
        if let Some(close) = frames.iter().find(|f| f.opcode == CLOSE) {
            assert!(
                matches!(close.close_code(), Some(1002 | 1007 | 1009)),
                "seed {seed}: unexpected close {close:?} ({})",
                reason(close)
            );
            assert_eq!(close, frames.last().unwrap(), "seed {seed}: frames after the close: {frames:?}");
        }
        drop(p);
        match server.next_end().await {
            End::Failed(_) | End::Closed(_) => {}
            other => panic!("seed {seed}: {other:?}"),
        }
        assert_eq!(server.panics(), 0, "seed {seed} panicked the server");
    }
    assert!(exact > 200, "only {exact} of 256 seeds started with an invalid header?");
    still_serving(&mut server).await;
}

/// A peer that disappears in the middle of things: the server's `recv()` reports an error, its
/// task ends, nothing panics.
#[tokio::test]
async fn peer_disconnecting_mid_frame_ends_recv_with_an_error() {
    let _one_at_a_time = LOCK.lock().await;
    let mut server = EchoServer::start().await;
    let payload = pattern(100);
    let whole = client_frame(BINARY, &payload);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("inside the first header byte pair", whole[..1].to_vec()),
        ("inside the masking key", header64(BINARY, true, 70_000)[..12].to_vec()),
        ("inside the payload", whole[..whole.len() - 40].to_vec()),
        ("inside a fragmented message", client_fragment(false, TEXT, b"to be continued")),
        ("inside a control frame", client_frame(PING, b"cut short")[..8].to_vec()),
    ];
    for (case, bytes) in &cases {
        for reset in [false, true] {
            eprintln!("case: {case}, reset: {reset}");
            let mut p = Peer::open(server.addr).await;
            p.write(bytes).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
            if reset {
                // An abortive close: RST instead of FIN.
                p.stream.set_zero_linger().unwrap();
            }
            drop(p);
            match server.next_end().await {
                End::Failed(duplex::Error::AbnormalClosure) => {}
                End::Failed(duplex::Error::Io(e)) if reset => {
                    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{case}: {e}");
                }
                other => panic!("{case}, reset {reset}: {other:?}"),
            }
            assert_eq!(server.panics(), 0);
        }
    }
    // Mid-handshake.
    let mut p = Peer::connect(server.addr).await;
    p.write(&request(server.addr, &[])[..30]).await;
    drop(p);
    assert!(matches!(server.next_end().await, End::Handshake(duplex::Error::Io(_))));
    still_serving(&mut server).await;
}
