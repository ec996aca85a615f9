//! Tests of permessage-deflate: negotiation tables (RFC 7692 §5, §7.1), the codec, and two
//! [`Connection`]s exchanging compressed messages in memory, with a counting allocator to check
//! what compression costs and that a decompression bomb is stopped at the limit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::connection::tests::drain_outgoing;
use crate::connection::{Connection, Event, Role};
use crate::error::Violation;
use crate::message::{Message, MessageKind};
use crate::{CloseCode, Config};

// ============================================================================ counting allocator

/// Counts the bytes allocated by each thread, so a test can measure what one operation costs
/// while other tests run on other threads.
struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + delta;
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            track(l.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            track(l.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(p, l) };
        track(-(l.size() as isize));
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            // Count the moment both blocks may exist: the peak is what matters.
            track(new as isize);
            track(-(l.size() as isize));
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result, the peak of bytes allocated (and not yet freed) on this
/// thread above the level at the start, and the bytes still allocated at the end.
pub(super) fn measure<R>(f: impl FnOnce() -> R) -> (R, usize, isize) {
    let start = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let r = f();
    let peak = PEAK.with(Cell::get) - start;
    let net = CURRENT.with(Cell::get) - start;
    (r, peak.max(0) as usize, net)
}

// ============================================================================ negotiation: server

fn negotiate(config: &DeflateConfig, offers: &[&str]) -> Option<(DeflateParams, String)> {
    config.negotiate(offers.iter().copied())
}

pub(super) fn params(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: sbits,
        client_max_window_bits: cbits,
    }
}

/// A config with RFC 7692's own windows (15 bits both ways), so that answers show what the offer
/// asked rather than our defaults.
fn wide() -> DeflateConfig {
    DeflateConfig::default().server_max_window_bits(15).client_max_window_bits(15)
}

#[test]
fn defaults_answer_browsers_with_small_windows() {
    // Chromium's, Firefox's and python-websockets' offer.
    let browser = "permessage-deflate; client_max_window_bits";
    let (p, answer) = negotiate(&DeflateConfig::default(), &[browser]).unwrap();
    assert_eq!(answer, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=11");
    assert_eq!(p, params(false, false, 12, 11));
    // A client that does not allow a smaller window keeps 15 (§7.1.2.2); ours is still 12.
    let (p, answer) = negotiate(&DeflateConfig::default(), &["permessage-deflate"]).unwrap();
    assert_eq!((answer.as_str(), p), ("permessage-deflate; server_max_window_bits=12", params(false, false, 12, 15)));
    // As a client we offer the same windows, and accept the answer of a server that grants them.
    let d = DeflateConfig::default();
    assert_eq!(d.offer(), "permessage-deflate; server_max_window_bits=12; client_max_window_bits=11");
    assert_eq!(d.accept_response(&answer), Ok(Some(params(false, false, 12, 11))));
}

#[test]
fn server_accepts_rfc_7692_offers() {
    let d = wide();
    let small = wide().server_max_window_bits(12).client_max_window_bits(10);
    let forced = wide().server_no_context_takeover(true).client_no_context_takeover(true);
    #[rustfmt::skip]
    let table: &[(&DeflateConfig, &[&str], &str, DeflateParams)] = &[
        // §5.1 / §7: the simplest offer, accepted as is.
        (&d, &["permessage-deflate"], "permessage-deflate", params(false, false, 15, 15)),
        // §7.1.2.2: client_max_window_bits without a value: the server may answer a value, or not.
        (&d, &["permessage-deflate; client_max_window_bits"], "permessage-deflate", params(false, false, 15, 15)),
        (&small, &["permessage-deflate; client_max_window_bits"],
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10", params(false, false, 12, 10)),
        // Without client_max_window_bits in the offer it must not be answered (§7.1.2.2).
        (&small, &["permessage-deflate"], "permessage-deflate; server_max_window_bits=12", params(false, false, 12, 15)),
        // A client value is a cap the client keeps anyway; the answer repeats it (or less).
        (&d, &["permessage-deflate; client_max_window_bits=12"],
            "permessage-deflate; client_max_window_bits=12", params(false, false, 15, 12)),
        (&small, &["permessage-deflate; client_max_window_bits=9"],
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=9", params(false, false, 12, 9)),
        // §7.1.2.1: server_max_window_bits offered: answered with the same or a smaller value.
        (&d, &["permessage-deflate; server_max_window_bits=10"],
            "permessage-deflate; server_max_window_bits=10", params(false, false, 10, 15)),
        (&d, &["permessage-deflate; server_max_window_bits=15"],
            "permessage-deflate; server_max_window_bits=15", params(false, false, 15, 15)),
        (&small, &["permessage-deflate; server_max_window_bits=14"],
            "permessage-deflate; server_max_window_bits=12", params(false, false, 12, 15)),
        // §7.1.1: context takeover parameters, offered or forced by the server.
        (&d, &["permessage-deflate; server_no_context_takeover"],
            "permessage-deflate; server_no_context_takeover", params(true, false, 15, 15)),
        (&d, &["permessage-deflate; client_no_context_takeover"],
            "permessage-deflate; client_no_context_takeover", params(false, true, 15, 15)),
        (&forced, &["permessage-deflate; client_max_window_bits"],
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover", params(true, true, 15, 15)),
        // Every parameter at once, 8-bit windows (served by 9 bits in the codec).
        (&d, &["permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8"],
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8",
            params(true, true, 8, 8)),
        // §5: several offers in preference order; the first acceptable one wins.
        (&d, &["permessage-deflate; server_max_window_bits=10, permessage-deflate"],
            "permessage-deflate; server_max_window_bits=10", params(false, false, 10, 15)),
        (&d, &["permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits"],
            "permessage-deflate", params(false, false, 15, 15)),
        // ... across several header lines, among other extensions.
        (&d, &["x-webkit-deflate-frame", "permessage-deflate; mystery, permessage-deflate; server_no_context_takeover"],
            "permessage-deflate; server_no_context_takeover", params(true, false, 15, 15)),
        // RFC 6455 §9.1: a value may be a quoted string that unquotes to a token.
        (&d, &["permessage-deflate; server_max_window_bits=\"10\""],
            "permessage-deflate; server_max_window_bits=10", params(false, false, 10, 15)),
        // Whitespace and case are not significant.
        (&d, &["  Permessage-Deflate ;Client_Max_Window_Bits = 9 , "],
            "permessage-deflate; client_max_window_bits=9", params(false, false, 15, 9)),
    ];
    for (config, offers, answer, expected) in table {
        let got = negotiate(config, offers);
        assert_eq!(got, Some((*expected, answer.to_string())), "offers {offers:?}");
        // The answer, read back by a client that made such an offer, gives the same parameters.
        assert_eq!(
            wide().accept_response(answer).map(|p| p.map(|p| p.server_max_window_bits)),
            Ok(Some(expected.server_max_window_bits))
        );
    }
}

#[test]
fn server_declines_invalid_offers() {
    let d = wide();
    for offer in [
        "permessage-deflate; foo", // unknown parameter
        "permessage-deflate; foo=1",
        "permessage-deflate; server_max_window_bits",    // value required
        "permessage-deflate; server_max_window_bits=16", // out of range
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=08", // leading zero
        "permessage-deflate; server_max_window_bits=1e1",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; server_no_context_takeover=1", // takes no value
        "permessage-deflate; client_no_context_takeover=\"\"",
        "permessage-deflate; client_max_window_bits; client_max_window_bits", // duplicates
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=\"1 0\"", // quoted non-token
        "permessage-deflate; server_max_window_bits=\"10",    // unterminated quote
        "permessage-deflate; =10",
        "x-webkit-deflate-frame", // not ours
        "",
    ] {
        assert_eq!(negotiate(&d, &[offer]), None, "offer {offer:?} should be declined");
    }
    // Nothing offered at all, or compression disabled.
    assert_eq!(negotiate(&d, &[]), None);
    assert_eq!(negotiate(&d.clone().enabled(false), &["permessage-deflate"]), None);
}

// ============================================================================ negotiation: client

#[test]
fn client_offers_from_its_config() {
    let d = wide();
    assert_eq!(d.offer(), "permessage-deflate; client_max_window_bits");
    let all = d.clone().server_max_window_bits(9).client_max_window_bits(8).client_no_context_takeover(true);
    assert_eq!(
        all.offer(),
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8"
    );
    // Every offer we can make is one we accept as a server.
    assert!(negotiate(&d, &[&all.offer()]).is_some());
    assert!(negotiate(&d, &[&d.offer()]).is_some());
}

#[test]
fn client_checks_the_answer() {
    let d = wide();
    let wants_small_server = wide().server_max_window_bits(10);
    let wants_nct = wide().server_no_context_takeover(true);
    let small_client = wide().client_max_window_bits(10).client_no_context_takeover(true);
    let defaults = DeflateConfig::default();
    #[rustfmt::skip]
    let ok: &[(&DeflateConfig, &str, Option<DeflateParams>)] = &[
        (&d, "permessage-deflate", Some(params(false, false, 15, 15))),
        (&d, "permessage-deflate; client_max_window_bits=10", Some(params(false, false, 15, 10))),
        (&d, "permessage-deflate; server_max_window_bits=12", Some(params(false, false, 12, 15))),
        (&d, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", Some(params(true, true, 15, 15))),
        (&wants_small_server, "permessage-deflate; server_max_window_bits=9", Some(params(false, false, 9, 15))),
        (&wants_small_server, "permessage-deflate; server_max_window_bits=10", Some(params(false, false, 10, 15))),
        (&wants_nct, "permessage-deflate; server_no_context_takeover", Some(params(true, false, 15, 15))),
        // Our own limits hold whatever the answer says.
        (&small_client, "permessage-deflate", Some(params(false, true, 15, 10))),
        (&small_client, "permessage-deflate; client_max_window_bits=8", Some(params(false, true, 15, 8))),
        // A larger client window than offered: the server ignored the hint (RFC 7692 §7.1.2.2,
        // Autobahn 13.4/13.6); we keep the window the offer promised.
        (&small_client, "permessage-deflate; client_max_window_bits=12", Some(params(false, true, 15, 10))),
        (&defaults, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=15", Some(params(false, false, 12, 11))),
        (&d, "x-other", None),
        (&d, "", None),
    ];
    for (config, answer, expected) in ok {
        assert_eq!(config.accept_response(answer), Ok(*expected), "answer {answer:?}");
    }
    #[rustfmt::skip]
    let bad: &[(&DeflateConfig, &str)] = &[
        (&d, "permessage-deflate; foo"),
        (&d, "permessage-deflate; client_max_window_bits"),                  // a response needs a value
        (&d, "permessage-deflate; server_max_window_bits"),
        (&d, "permessage-deflate; server_max_window_bits=16"),
        (&d, "permessage-deflate; client_max_window_bits=08"),
        (&d, "permessage-deflate; server_no_context_takeover=yes"),
        (&d, "permessage-deflate; client_no_context_takeover; client_no_context_takeover"),
        (&d, "permessage-deflate, permessage-deflate"),                      // accepted twice
        (&wants_small_server, "permessage-deflate"),                          // asked for, not granted
        (&wants_small_server, "permessage-deflate; server_max_window_bits=11"), // larger than asked
        (&wants_nct, "permessage-deflate"),
    ];
    for (config, answer) in bad {
        assert!(
            matches!(config.accept_response(answer), Err(BadResponse(_))),
            "answer {answer:?} should fail the handshake"
        );
    }
}

#[test]
fn params_header_value_reads_back() {
    for p in [params(false, false, 15, 15), params(true, true, 8, 8), params(false, true, 12, 9)] {
        let (back, _) = negotiate(&wide(), &[&p.header_value()]).unwrap();
        assert_eq!(back, p);
    }
}

// ============================================================================ codec

fn compress_message(c: &mut Compressor, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    c.compress(data, &mut out, true);
    out
}

fn inflate_message(d: &mut Decompressor, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut input = data.to_vec();
    input.extend_from_slice(&TRAILER);
    let r = d.inflate(&input, &mut out, usize::MAX).unwrap();
    assert!(!r.full && r.consumed == input.len());
    d.end_message();
    out
}

#[test]
fn rfc_7692_section_7_2_3_examples() {
    // §7.2.3.1: "Hello" compressed without context takeover.
    let mut d = Decompressor::new(15, true);
    assert_eq!(inflate_message(&mut d, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), b"Hello");
    // §7.2.3.2: "Hello" twice with context takeover; the second refers back to the first.
    let mut d = Decompressor::new(15, false);
    assert_eq!(inflate_message(&mut d, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), b"Hello");
    assert_eq!(inflate_message(&mut d, &[0xf2, 0x00, 0x11, 0x00, 0x00]), b"Hello");
    // §7.2.3.3: a stored (uncompressed) block.
    assert_eq!(
        inflate_message(
            &mut Decompressor::new(15, true),
            &[0x00, 0x05, 0x00, 0xfa, 0xff, b'H', b'e', b'l', b'l', b'o', 0x00]
        ),
        b"Hello"
    );
    // §7.2.3.4: a block with BFINAL set, followed by nothing the receiver may read.
    let mut d = Decompressor::new(15, false);
    assert_eq!(inflate_message(&mut d, &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]), b"Hello");
    // ... and the next message starts a fresh stream.
    assert_eq!(inflate_message(&mut d, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), b"Hello");
    // §7.2.3.6: an empty message is the single byte 0x00 (our compressor's output too).
    assert_eq!(inflate_message(&mut Decompressor::new(15, true), &[0x00]), b"");
    assert_eq!(compress_message(&mut Compressor::new(1, 15, true), b""), [0x00]);
}

#[test]
fn context_takeover_shrinks_repeated_messages_and_no_takeover_frees_the_state() {
    let msg = br#"{"type":"price","symbol":"ACME","bid":101.25,"ask":101.5,"ts":1700000000}"#;
    let mut keep = Compressor::new(1, 15, false);
    let first = compress_message(&mut keep, msg);
    let second = compress_message(&mut keep, msg);
    assert!(second.len() < first.len() / 3, "{} then {}", first.len(), second.len());
    assert!(keep.is_allocated());

    let mut fresh = Compressor::new(1, 15, true);
    assert_eq!(compress_message(&mut fresh, msg), compress_message(&mut fresh, msg));
    assert!(!fresh.is_allocated(), "no context takeover: nothing kept between messages");

    let mut d = Decompressor::new(15, false);
    assert_eq!(inflate_message(&mut d, &first), msg);
    assert_eq!(inflate_message(&mut d, &second), msg);
    assert!(d.is_allocated());
}

#[test]
fn eight_bit_windows_stay_within_256_bytes() {
    // Negotiated 8 bits: we compress with 9, whose matches reach back at most 512 - 262 = 250
    // bytes. A decoder that allows only 256 bytes of distance must accept it: zlib-rs' inflate
    // takes 8 bits for raw streams (a second, independent inflater).
    let text: Vec<u8> =
        (0..20_000u32).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[(i * i % 37 % 36) as usize]).collect();
    let mut c = Compressor::new(9, 8, false);
    assert_eq!(c.window_bits(), 9);
    let mut wire = compress_message(&mut c, &text);
    wire.extend_from_slice(&TRAILER);
    let mut strict = zlib_rs::Inflate::new(false, 8);
    let mut out = vec![0u8; text.len() + 16];
    let status = strict.decompress(&wire, &mut out, zlib_rs::InflateFlush::SyncFlush);
    assert!(status.is_ok(), "{status:?}");
    assert_eq!(&out[..strict.total_out() as usize], &text[..]);
}

#[test]
fn corrupt_data_is_an_error_not_a_panic() {
    // Block type 3 is reserved (RFC 1951 §3.2.3).
    let mut d = Decompressor::new(15, false);
    assert!(d.inflate(&[0xff, 0xff, 0xff], &mut Vec::new(), 1 << 20).is_err());
    // A stream that stops making sense halfway: valid "Hello", then a reserved block type.
    let mut d = Decompressor::new(15, false);
    let r =
        d.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff, 0x07], &mut Vec::new(), 1 << 20);
    assert!(r.is_err(), "{r:?}");
    // (zlib, and zlib-rs, do not police the window size: a distance beyond the negotiated window
    // but within the output already produced inflates fine. That is lenient, not unsafe.)
}

/// What the codecs cost, as documented on [`DeflateConfig`]. Run with `--nocapture` to see it.
#[test]
fn memory_per_codec() {
    let mut lines = Vec::new();
    for (bits, mem) in [(9u8, 1u8), (10, 4), (11, 5), (12, 4), (12, 5), (12, 8), (13, 6), (15, 8)] {
        let (c, peak, held) = measure(|| {
            let mut c = Compressor::new(1, bits, false).mem_level(mem);
            compress_message(&mut c, b"hello hello hello hello hello hello hello hello hello hello");
            c
        });
        let estimate = compressor_heap_size(bits, mem) as isize;
        lines.push(format!("compressor w={bits} m={mem}: holds {held} B (peak {peak} B), estimate {estimate} B"));
        assert!((held - estimate).abs() < estimate / 50, "{}", lines.last().unwrap());
        drop(c);
    }
    for bits in [8u8, 9, 10, 12, 15] {
        let (mut d, _, held) = measure(|| {
            let mut d = Decompressor::new(bits, false);
            let mut out = Vec::with_capacity(64);
            d.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff], &mut out, 64).unwrap();
            drop(out);
            d
        });
        let estimate = decompressor_heap_size(bits) as isize;
        lines.push(format!("decompressor w={bits}: holds {held} B, estimate {estimate} B"));
        assert!((held - estimate).abs() < estimate / 50, "{}", lines.last().unwrap());
        // Released, it keeps only the window it filled ("Hello"), primed back on the next message.
        d.release();
        assert!(!d.is_allocated());
        assert_eq!(d.history_len(), 5);
        assert_eq!(inflate_message(&mut d, &[0xf2, 0x00, 0x11, 0x00, 0x00]), b"Hello");
    }
    for l in &lines {
        println!("{l}");
    }
}

#[test]
fn released_codecs_rebuild_and_keep_the_stream_valid() {
    let quotes: Vec<Vec<u8>> = (0..200u32)
        .map(|i| {
            format!(
                r#"{{"type":"quote","symbol":"SYM{}","bid":{}.{},"ask":{}.{},"seq":{i}}}"#,
                i % 7,
                100 + i % 13,
                i % 100,
                101 + i % 11,
                (i * 7) % 100
            )
            .into_bytes()
        })
        .collect();
    // Release both ends at irregular points: every message must still inflate to itself.
    let mut c = Compressor::new(1, 12, false).mem_level(5);
    let mut d = Decompressor::new(12, false);
    for (i, q) in quotes.iter().enumerate() {
        if i % 7 == 3 {
            c.release();
            assert!(!c.is_allocated());
        }
        if i % 5 == 2 {
            d.release();
            assert!(!d.is_allocated() && d.history_len() <= 1 << 12);
        }
        let wire = compress_message(&mut c, q);
        assert_eq!(inflate_message(&mut d, &wire), *q, "message {i}");
    }
    // The released inflater's history is what takeover needs: a message that refers back to
    // the one before the release inflates only with it.
    let mut c = Compressor::new(1, 12, false);
    let mut d = Decompressor::new(12, false);
    let first = compress_message(&mut c, &quotes[0]);
    let second = compress_message(&mut c, &quotes[0]);
    assert!(second.len() < first.len() / 3);
    assert_eq!(inflate_message(&mut d, &first), quotes[0]);
    d.release();
    assert_eq!(inflate_message(&mut d, &second), quotes[0]);
    let mut forgetful = Decompressor::new(12, false);
    let mut input = second.clone();
    input.extend_from_slice(&TRAILER);
    assert!(forgetful.inflate(&input, &mut Vec::new(), 1 << 20).is_err(), "refers to a window it lacks");
}

// ============================================================================ two connections

pub(super) fn pair(p: DeflateParams, client: Config, server: Config) -> (Connection, Connection) {
    (Connection::with_deflate(Role::Client, client, Some(p)), Connection::with_deflate(Role::Server, server, Some(p)))
}

/// All events of `conn` after feeding it `wire` in pieces of `chunk` bytes.
pub(super) fn deliver(conn: &mut Connection, wire: &[u8], chunk: usize) -> Result<Vec<Event>, crate::ConnectionError> {
    let mut out = Vec::new();
    for piece in wire.chunks(chunk.max(1)) {
        conn.receive(piece);
        while let Some(e) = conn.next_event()? {
            out.push(e);
        }
    }
    Ok(out)
}

/// Joins streamed fragments back into messages.
fn join_fragments(events: Vec<Event>) -> Vec<Message> {
    let mut out = Vec::new();
    let mut cur: Option<(MessageKind, Vec<u8>)> = None;
    for e in events {
        let Event::Fragment(f) = e else { panic!("expected fragments, got {e:?}") };
        if f.first {
            assert!(cur.is_none());
            cur = Some((f.kind, Vec::new()));
        }
        let (kind, buf) = cur.as_mut().expect("a fragment after the first");
        assert_eq!(*kind, f.kind);
        buf.extend_from_slice(&f.data);
        if f.last {
            let (kind, buf) = cur.take().unwrap();
            out.push(match kind {
                MessageKind::Text => Message::Text(String::from_utf8(buf).unwrap()),
                MessageKind::Binary => Message::Binary(Bytes::from(buf)),
            });
        }
    }
    assert!(cur.is_none());
    out
}

/// The first byte of each frame in `wire` (FIN, RSV, opcode), walking the headers.
fn frame_heads(mut wire: &[u8]) -> Vec<u8> {
    let mut heads = Vec::new();
    while !wire.is_empty() {
        let (h, n) = crate::frame::FrameHeader::decode(wire).unwrap().unwrap();
        heads.push(wire[0]);
        wire = &wire[n + h.payload_len as usize..];
    }
    heads
}

fn sample_message(kind: bool, seed: u8, len: usize, repetitive: bool) -> Message {
    let text: String = if repetitive {
        "{\"id\":42,\"name\":\"héllo wörld 🌍\",\"tags\":[\"a\",\"b\"]} ".chars().cycle().take(len).collect()
    } else {
        (0..len).map(|i| char::from(b'a' + ((i * 7 + seed as usize) * 31 % 26) as u8)).collect()
    };
    if kind {
        Message::Text(text)
    } else {
        Message::Binary(Bytes::from(text.into_bytes().iter().map(|b| b ^ seed).collect::<Vec<u8>>()))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Messages sent one way through two connections arrive identical, for every window size and
    /// takeover mode, whole or streamed, however the bytes are cut.
    #[test]
    fn round_trip_through_two_connections(
        sbits in 8u8..=15, cbits in 8u8..=15, snct: bool, cnct: bool,
        client_to_server: bool, streaming: bool, min_size in prop::sample::select(vec![0usize, 64, 1000]),
        level in 0u32..=9, chunk in prop::sample::select(vec![1usize, 7, 1000, 1 << 20]),
        msgs in prop::collection::vec((any::<bool>(), any::<u8>(), 0usize..5000, any::<bool>()), 1..8),
    ) {
        let p = params(snct, cnct, sbits, cbits);
        let config = Config::default().streaming(streaming).deflate(DeflateConfig::default().min_size(min_size).level(level));
        let (mut client, mut server) = pair(p, config.clone(), config);
        let (from, to) = if client_to_server { (&mut client, &mut server) } else { (&mut server, &mut client) };
        let msgs: Vec<Message> = msgs.into_iter().map(|(k, s, l, r)| sample_message(k, s, l, r)).collect();
        let mut wire = Vec::new();
        for m in &msgs {
            from.send(m.clone()).unwrap();
            let bytes = drain_outgoing(from);
            let head = frame_heads(&bytes)[0];
            prop_assert_eq!(head & 0x40 != 0, m.len() >= min_size, "RSV1 iff at least min_size");
            wire.extend_from_slice(&bytes);
        }
        let events = deliver(to, &wire, chunk).unwrap();
        let got = if streaming {
            join_fragments(events)
        } else {
            events.into_iter().map(|e| match e { Event::Message(m) => m, e => panic!("{e:?}") }).collect()
        };
        prop_assert_eq!(got, msgs);
        // Without context takeover a direction keeps no codec between messages.
        let (own_nct, peer_nct) = if client_to_server { (cnct, cnct) } else { (snct, snct) };
        if own_nct {
            prop_assert_eq!(from.heap_size(), 0);
        }
        if peer_nct {
            prop_assert_eq!(to.heap_size(), 0);
        }
    }

    /// A message sent in fragments is compressed as one stream: RSV1 on the first frame only.
    #[test]
    fn fragmented_compressed_messages(
        pieces in prop::collection::vec(0usize..3000, 1..6), cnct: bool, text: bool,
    ) {
        let p = params(false, cnct, 15, 15);
        let (mut client, mut server) = pair(p, Config::default(), Config::default());
        let whole = sample_message(text, 3, pieces.iter().sum(), true);
        let bytes = whole.as_bytes();
        // Cut anywhere, even inside a character: fragments are bytes.
        let (mut at, mut first_len) = (0, 0);
        for (i, n) in pieces.iter().enumerate() {
            let last = i == pieces.len() - 1;
            let end = if last { bytes.len() } else { (at + n).min(bytes.len()) };
            client.send_fragment(whole.kind(), &bytes[at..end], i == 0, last).unwrap();
            if i == 0 {
                first_len = end;
            }
            at = end;
        }
        let wire = drain_outgoing(&mut client);
        let heads = frame_heads(&wire);
        let compressed = first_len >= 64;
        prop_assert_eq!(heads[0] & 0x40 != 0, compressed);
        prop_assert!(heads[1..].iter().all(|h| h & 0x70 == 0), "RSV1 only on the first frame");
        let events = deliver(&mut server, &wire, 100).unwrap();
        prop_assert_eq!(events, vec![Event::Message(whole)]);
    }
}

#[test]
fn small_messages_go_plain_and_large_ones_compressed() {
    let (mut client, mut server) = pair(DeflateParams::default(), Config::default(), Config::default());
    server.send_text("short").unwrap();
    let plain = drain_outgoing(&mut server);
    assert_eq!(plain, [0x81, 5, b's', b'h', b'o', b'r', b't']);
    server.send_text(&"x".repeat(1000)).unwrap();
    let wire = drain_outgoing(&mut server);
    assert_eq!(wire[0], 0x80 | 0x40 | 0x1, "FIN, RSV1, text");
    assert!(wire.len() < 20);
    let events = deliver(&mut client, &[plain, wire].concat(), 3).unwrap();
    assert_eq!(events, vec![Event::Message("short".into()), Event::Message(Message::Text("x".repeat(1000)))]);
    // Codecs only once used.
    let idle = Connection::with_deflate(Role::Server, Config::default(), Some(DeflateParams::default()));
    assert_eq!(idle.heap_size(), 0);
}

// ============================================================================ violations

/// A server connection with permessage-deflate and `config`, fed `wire`; its events and error.
fn server_receives(config: Config, wire: &[u8]) -> (Vec<Event>, Option<crate::ConnectionError>) {
    let mut s = Connection::with_deflate(Role::Server, config, Some(DeflateParams::default()));
    s.receive(wire);
    let mut events = Vec::new();
    loop {
        match s.next_event() {
            Ok(Some(e)) => events.push(e),
            Ok(None) => return (events, None),
            Err(e) => return (events, Some(e)),
        }
    }
}

/// A masked client frame with the given first byte.
fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let key = [1, 2, 3, 4];
    let h = crate::frame::FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv: b0 & 0x70,
        opcode: crate::frame::Opcode::from_u8(b0 & 0xf).unwrap(),
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let mut buf = [0u8; 14];
    let n = h.encode(&mut buf);
    let mut v = buf[..n].to_vec();
    let mut p = payload.to_vec();
    crate::mask::apply(&mut p, key, 0);
    v.extend_from_slice(&p);
    v
}

fn deflated(data: &[u8]) -> Vec<u8> {
    compress_message(&mut Compressor::new(6, 15, true), data)
}

#[test]
fn rsv1_only_on_the_first_frame_of_a_data_message() {
    let hello = deflated(b"Hello");
    // A fragmented compressed message: RSV1 on the first frame only is fine.
    let (ev, err) = server_receives(
        Config::default(),
        &[client_frame(0x41, &hello[..3]), client_frame(0x80, &hello[3..])].concat(),
    );
    assert_eq!((ev, err), (vec![Event::Message("Hello".into())], None));
    // RSV1 on a continuation frame: 1002.
    let (_, err) = server_receives(
        Config::default(),
        &[client_frame(0x41, &hello[..3]), client_frame(0xc0, &hello[3..])].concat(),
    );
    let err = err.unwrap();
    assert_eq!((err.violation(), err.code()), (Some(&Violation::ReservedBits(0x40)), CloseCode::PROTOCOL_ERROR));
    // RSV1 on a control frame: 1002.
    for op in [0x8u8, 0x9, 0xA] {
        let (_, err) = server_receives(Config::default(), &client_frame(0xc0 | op, &[]));
        assert_eq!(err.unwrap().code(), CloseCode::PROTOCOL_ERROR, "opcode {op}");
    }
    // RSV2 and RSV3 mean nothing to permessage-deflate: 1002.
    for rsv in [0x20u8, 0x10, 0x60] {
        let (_, err) = server_receives(Config::default(), &client_frame(0x81 | rsv, &hello));
        assert_eq!(err.unwrap().violation(), Some(&Violation::ReservedBits(rsv)));
    }
    // Without permessage-deflate RSV1 is refused too.
    let mut plain = Connection::new(Role::Server, Config::default());
    plain.receive(&client_frame(0xc1, &hello));
    assert_eq!(plain.next_event().unwrap_err().violation(), Some(&Violation::ReservedBits(0x40)));
}

#[test]
fn bad_compressed_data_is_1007() {
    let (_, err) = server_receives(Config::default(), &client_frame(0xc1, &[0xff, 0xff, 0xff, 0xff]));
    let err = err.unwrap();
    assert!(matches!(err.violation(), Some(Violation::BadCompression(_))), "{err}");
    assert_eq!(err.code(), CloseCode::INVALID_PAYLOAD);
    // Valid deflate of invalid UTF-8 in a text message: 1007 as well, whole or streamed.
    for streaming in [false, true] {
        let (_, err) = server_receives(
            Config::default().streaming(streaming),
            &client_frame(0xc1, &deflated(&[b'a', 0xff, b'b'])),
        );
        assert_eq!(err.unwrap().violation(), Some(&Violation::InvalidUtf8));
    }
    // ... and a text message that ends inside a character.
    let (_, err) = server_receives(Config::default(), &client_frame(0xc1, &deflated("é".as_bytes()[..1].as_ref())));
    assert_eq!(err.unwrap().violation(), Some(&Violation::InvalidUtf8));
}

/// A compressed message of `zeros` zero bytes, compressed at level 9 (about 1/1000 of its size).
fn zero_bomb(zeros: usize) -> Vec<u8> {
    let mut c = Compressor::new(9, 15, true);
    let block = vec![0u8; 1 << 20];
    let mut out = Vec::new();
    let mut left = zeros;
    while left > 0 {
        let n = left.min(block.len());
        left -= n;
        c.compress(&block[..n], &mut out, left == 0);
    }
    out
}

#[test]
fn a_gibibyte_bomb_is_stopped_at_the_limit_with_the_default_windows() {
    // Issue 20's case: ~1 MiB on the wire inflating to 1 GiB, to a server with the defaults,
    // whose answer to a browser's offer gives the client an 11-bit window.
    let (params, _) = negotiate(&DeflateConfig::default(), &["permessage-deflate; client_max_window_bits"]).unwrap();
    let mut c = Compressor::new(9, params.client_max_window_bits, true);
    let block = vec![0u8; 1 << 20];
    let mut bomb = Vec::new();
    for i in 0..1024 {
        c.compress(&block, &mut bomb, i == 1023);
    }
    assert!((1 << 20..2 << 20).contains(&bomb.len()), "{} bytes on the wire", bomb.len());
    let wire = client_frame(0xc2, &bomb);
    // The default limit (64 MiB), so the frame passes the check on its wire size and inflating
    // is what stops it.
    let config = Config::default();
    let limit = config.max_message_size;
    let ((_, err), peak, _) = measure(|| {
        let mut s = Connection::with_deflate(Role::Server, config, Some(params));
        s.receive(&wire);
        loop {
            match s.next_event() {
                Ok(Some(_)) => {}
                Ok(None) => return (s.heap_size(), None),
                Err(e) => return (s.heap_size(), Some(e)),
            }
        }
    });
    let err = err.expect("closed");
    assert_eq!(err.code(), CloseCode::MESSAGE_TOO_BIG, "{err}");
    println!("1 GiB bomb of {} B: peak {peak} B for a limit of {limit} B", bomb.len());
    assert!(peak < limit * 3 / 2 + (256 << 10), "peak {peak} B for a limit of {limit} B");
}

#[test]
fn decompression_bomb_is_stopped_at_the_limit() {
    let limit = 1 << 20;
    let bomb = zero_bomb(64 << 20); // 64 MiB of zeros
    assert!(bomb.len() < 80 << 10, "{} bytes on the wire", bomb.len());
    let wire = client_frame(0xc2, &bomb);
    for streaming in [false, true] {
        let config = Config::default().max_message_size(limit).streaming(streaming);
        let ((_, err), peak, _) = measure(|| server_receives(config, &wire));
        let err = err.expect("the bomb must fail the connection");
        assert_eq!(err.code(), CloseCode::MESSAGE_TOO_BIG, "{err}");
        assert!(matches!(err.violation(), Some(Violation::MessageTooBig { .. })));
        // The limit, half of it while the buffer grows, and the decompressor: not 64 MiB.
        println!("bomb of {} B on the wire, limit {limit} B, streaming {streaming}: peak {peak} B", wire.len());
        assert!(peak < limit * 3 / 2 + (256 << 10), "peak {peak} B for a limit of {limit} B");
    }
    // A message just at the limit passes.
    let ok = client_frame(0xc2, &zero_bomb(limit));
    let (events, err) = server_receives(Config::default().max_message_size(limit), &ok);
    assert_eq!(err, None);
    assert!(matches!(&events[..], [Event::Message(Message::Binary(b))] if b.len() == limit));
}

proptest! {
    /// Whatever a peer puts in a compressed message, the connection answers with an event or a
    /// close code, never a panic; a valid prefix followed by garbage too.
    #[test]
    fn garbage_in_compressed_messages_never_panics(
        garbage in prop::collection::vec(any::<u8>(), 0..300), prefix: bool, streaming: bool, text: bool,
        split in 0usize..300,
    ) {
        let mut payload = if prefix { deflated(b"a valid beginning, then noise") } else { Vec::new() };
        payload.extend_from_slice(&garbage);
        let cut = split.min(payload.len());
        let op = if text { 0x1 } else { 0x2 };
        let wire = [client_frame(0x40 | op, &payload[..cut]), client_frame(0x80, &payload[cut..])].concat();
        let config = Config::default().streaming(streaming).max_message_size(4096);
        let (_, err) = server_receives(config, &wire);
        if let Some(e) = err {
            prop_assert!(
                [CloseCode::INVALID_PAYLOAD, CloseCode::MESSAGE_TOO_BIG].contains(&e.code()),
                "unexpected {e}"
            );
        }
    }
}

#[test]
fn one_compressed_frame_for_many_connections() {
    // A server that forces server_no_context_takeover: one compressed frame (per window size) is
    // valid on every connection; between the shared messages each connection compresses itself.
    let server_config = wide().server_no_context_takeover(true);
    let offers = ["permessage-deflate; client_max_window_bits", "permessage-deflate; server_max_window_bits=10"];
    let news = crate::PreparedFrame::new(Message::Text("news ".repeat(50)));
    let mut shared = Vec::new();
    for offer in offers {
        let (p, _) = negotiate(&server_config, &[offer]).unwrap();
        let (mut client, mut server) = pair(p, Config::default(), Config::default());
        server.send_text(&"own ".repeat(40)).unwrap();
        server.send_prepared(&news).unwrap();
        server.send_text(&"own ".repeat(40)).unwrap();
        let events = deliver(&mut client, &drain_outgoing(&mut server), 5).unwrap();
        assert_eq!(
            events,
            vec![
                Event::Message(Message::Text("own ".repeat(40))),
                Event::Message(Message::Text("news ".repeat(50))),
                Event::Message(Message::Text("own ".repeat(40))),
            ]
        );
        shared.push(news.compressed(p.server_max_window_bits, 1).clone());
    }
    // Compressed once per window size, and the bytes are the same allocation every time.
    assert_eq!(news.compressed(15, 1).as_ptr(), shared[0].as_ptr());
    assert_eq!(news.compressed(10, 1).as_ptr(), shared[1].as_ptr());
    assert!(shared[0].len() < 50, "compressed: {} bytes", shared[0].len());
}

#[test]
fn prepared_frames_on_a_connection_with_context_takeover_go_uncompressed() {
    // The connection's compressor keeps its window: a frame it did not compress cannot be shared
    // in its stream, so the prepared frame goes plain (RSV1 clear), and the compressed messages
    // around it still inflate.
    let (mut client, mut server) = pair(DeflateParams::default(), Config::default(), Config::default());
    let news = crate::PreparedFrame::new(Message::Text("news ".repeat(50)));
    server.send_text(&"own ".repeat(40)).unwrap();
    server.send_prepared(&news).unwrap();
    server.send_text(&"own ".repeat(40)).unwrap();
    let wire = drain_outgoing(&mut server);
    assert!(wire.windows(news.plain().len()).any(|w| w == &news.plain()[..]), "the plain frame, shared");
    let events = deliver(&mut client, &wire, 7).unwrap();
    assert_eq!(
        events,
        vec![
            Event::Message(Message::Text("own ".repeat(40))),
            Event::Message(Message::Text("news ".repeat(50))),
            Event::Message(Message::Text("own ".repeat(40))),
        ]
    );
}
