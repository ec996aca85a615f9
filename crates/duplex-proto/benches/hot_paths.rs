//! Micro-benchmarks of the receive path's hot loops: frame headers, unmasking, UTF-8 validation,
//! a whole message through `Connection`, a client's masked send, a permessage-deflate round trip, and what releasing the
//! deflate codecs of a quiet connection costs when its next message comes.
//!
//! `cargo bench -p duplex-proto` (add `-- --quick` for a short run, or a filter such as `unmask`).
//! docs/benchmarks.md has the numbers measured on the project's machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Buf;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use duplex_proto::frame::{FrameHeader, Opcode, MAX_HEADER_LEN};
use duplex_proto::utf8::Utf8Validator;
use duplex_proto::{mask, Config, Connection, DeflateConfig, DeflateParams, Event, Message, Role};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame, as a server receives it.
fn client_frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader { fin: true, rsv: 0, opcode, mask: Some(KEY), payload_len: payload.len() as u64 };
    let mut h = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut h);
    let mut v = h[..n].to_vec();
    v.extend_from_slice(payload);
    mask::apply(&mut v[n..], KEY, 0);
    v
}

fn frame_header(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_header");
    for (name, len) in [("7-bit", 20u64), ("16-bit", 16 << 10), ("64-bit", 1 << 20)] {
        let header = FrameHeader { fin: true, rsv: 0, opcode: Opcode::Binary, mask: Some(KEY), payload_len: len };
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut buf);
        g.bench_function(BenchmarkId::new("decode", name), |b| b.iter(|| FrameHeader::decode(black_box(&buf[..n]))));
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            let mut out = [0u8; MAX_HEADER_LEN];
            b.iter(|| black_box(&header).encode(&mut out))
        });
    }
    g.finish();
}

/// The plain loop `mask::apply` is measured against.
#[inline(never)]
fn unmask_bytewise(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

fn unmask(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    for size in [1usize << 10, 64 << 10, 1 << 20] {
        let mut data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("mask::apply", size), &size, |b, _| {
            b.iter(|| mask::apply(black_box(&mut data), KEY, 0))
        });
        g.bench_with_input(BenchmarkId::new("byte_loop", size), &size, |b, _| {
            b.iter(|| unmask_bytewise(black_box(&mut data), KEY))
        });
    }
    g.finish();
}

fn utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    let ascii: String = "{\"id\":12345,\"name\":\"websocket\",\"ok\":true} ".chars().cycle().take(16 << 10).collect();
    let ascii = ascii.as_bytes();
    let mixed_s = "héllo wörld — 你好世界 — привет мир — 🎉 ".repeat(400);
    let mixed = &mixed_s.as_bytes()[..mixed_s.floor_char_boundary_compat(16 << 10)];
    for (name, data) in [("ascii_16KiB", ascii), ("multibyte_16KiB", mixed)] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(BenchmarkId::new("validate", name), |b| b.iter(|| Utf8Validator::validate(black_box(data))));
        g.bench_function(BenchmarkId::new("feed_1KiB_pieces", name), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::default();
                for piece in black_box(data).chunks(1024) {
                    v.feed(piece).unwrap();
                }
                v.finish()
            })
        });
        g.bench_function(BenchmarkId::new("std_from_utf8", name), |b| {
            b.iter(|| std::str::from_utf8(black_box(data)).is_ok())
        });
    }
    g.finish();
}

/// `str::floor_char_boundary` is unstable: the same for the benchmark's own strings.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for String {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

fn receive(c: &mut Criterion) {
    let mut g = c.benchmark_group("receive");
    let text: String = "{\"id\":12345,\"name\":\"websocket\",\"ok\":true} ".chars().cycle().take(16 << 10).collect();
    let cases = [
        ("binary_20B", client_frame(Opcode::Binary, &[7u8; 20]), 20usize),
        ("binary_16KiB", client_frame(Opcode::Binary, &vec![7u8; 16 << 10]), 16 << 10),
        ("text_16KiB", client_frame(Opcode::Text, text.as_bytes()), 16 << 10),
    ];
    for (name, frame, len) in &cases {
        g.throughput(Throughput::Bytes(*len as u64));
        g.bench_function(BenchmarkId::new("receive+next_event", name), |b| {
            let mut conn = Connection::new(Role::Server, Config::default());
            b.iter(|| {
                conn.receive(black_box(frame));
                match conn.next_event() {
                    Ok(Some(Event::Message(m))) => m,
                    other => panic!("unexpected {other:?}"),
                }
            })
        });
    }
    g.finish();
}

/// A client's send path: the payload copied into the write queue while it is masked, then
/// drained as a socket write would.
fn client_send(c: &mut Criterion) {
    let mut g = c.benchmark_group("client_send");
    for (name, len) in [("binary_20B", 20usize), ("binary_16KiB", 16 << 10)] {
        let payload = vec![7u8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::new("send_binary+drain", name), |b| {
            let mut conn = Connection::new(Role::Client, Config::default());
            b.iter(|| {
                conn.send_binary(black_box(&payload)).expect("open connection");
                let out = conn.outgoing();
                let n = out.remaining();
                out.advance(n);
                n
            })
        });
    }
    g.finish();
}

fn deflate(c: &mut Criterion) {
    let mut g = c.benchmark_group("deflate");
    let text: String =
        (0..400).map(|i| format!("{{\"id\":{i},\"user\":\"user{}\",\"score\":{}}},", i % 37, i * 7 % 1000)).collect();
    let text = &text[..text.len().min(16 << 10)];
    g.throughput(Throughput::Bytes(text.len() as u64));
    for (name, takeover) in [("context_takeover", false), ("no_context_takeover", true)] {
        let params = DeflateParams {
            client_no_context_takeover: takeover,
            server_no_context_takeover: takeover,
            ..DeflateParams::default()
        };
        g.bench_function(BenchmarkId::new("round_trip_16KiB_json", name), |b| {
            let mut client = Connection::with_deflate(Role::Client, Config::default(), Some(params));
            let mut server = Connection::with_deflate(Role::Server, Config::default(), Some(params));
            b.iter(|| {
                client.send_text(black_box(text)).unwrap();
                let n = client.outgoing().remaining();
                let wire = client.outgoing().copy_to_bytes(n);
                server.receive(&wire);
                match server.next_event() {
                    Ok(Some(Event::Message(m))) => m,
                    other => panic!("unexpected {other:?}"),
                }
            })
        });
    }
    g.finish();
}

/// The cost of `DeflateConfig::release_after`: a 1 KiB JSON message from the client, inflated by
/// the server and echoed compressed, with the server's codecs kept (`kept`) or released before
/// every message (`released`: the server is told that its quiet delay passed, so it frees its
/// compressor and inflater, keeping the inflater's window as a dictionary, and builds both again
/// for the message). The difference is one release and rebuild of both codecs.
fn deflate_release(c: &mut Criterion) {
    let mut g = c.benchmark_group("deflate_release");
    let text: String =
        (0..40).map(|i| format!("{{\"id\":{i},\"user\":\"user{}\",\"score\":{}}},", i % 37, i * 7 % 1000)).collect();
    let text = &text[..text.len().min(1024)];
    let params =
        DeflateConfig::default().negotiate(["permessage-deflate; client_max_window_bits"]).expect("accepted").0;
    let quiet = Duration::from_secs(2);
    for (name, release) in [("kept", false), ("released", true)] {
        g.bench_function(BenchmarkId::new("echo_1KiB_json", name), |b| {
            let mut client = Connection::with_deflate(Role::Client, Config::default(), Some(params));
            let server_config = Config::default().deflate(DeflateConfig::default().release_after(Some(quiet)));
            let mut server = Connection::with_deflate(Role::Server, server_config, Some(params));
            let mut now = Instant::now();
            let echo = |client: &mut Connection, server: &mut Connection, now: &mut Instant| {
                client.send_text(black_box(text)).unwrap();
                let n = client.outgoing().remaining();
                server.receive(&client.outgoing().copy_to_bytes(n));
                let Ok(Some(Event::Message(m))) = server.next_event() else { panic!("no message") };
                server.send(m).unwrap();
                let n = server.outgoing().remaining();
                client.receive(&server.outgoing().copy_to_bytes(n));
                let Ok(Some(Event::Message(Message::Text(_)))) = client.next_event() else { panic!("no echo") };
                if release {
                    // The first call starts the quiet period, the second finds it passed.
                    server.handle_timeout(*now);
                    *now += quiet + Duration::from_millis(1);
                    server.handle_timeout(*now);
                    *now += Duration::from_millis(1);
                }
            };
            // What is measured is what the name says: the codecs are freed (or kept) each time.
            echo(&mut client, &mut server, &mut now);
            let held = server.heap_size();
            assert_eq!(held < 8 << 10, release, "server holds {held} bytes after a message");
            b.iter(|| echo(&mut client, &mut server, &mut now))
        });
    }
    g.finish();
}

criterion_group!(benches, frame_header, unmask, utf8, receive, client_send, deflate, deflate_release);
criterion_main!(benches);
