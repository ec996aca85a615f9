//! What the server and its connections report through the [`metrics`](https://docs.rs/metrics)
//! facade (cargo feature `metrics`): connections, handshakes and their refusals, messages and
//! bytes, close codes, keepalive round trips, slow consumers. docs/metrics.md lists every metric.
//!
//! Nothing here picks an exporter: install a recorder (the `duplex` command line's
//! `--metrics ADDR` installs its Prometheus one), then call [`register`] **before the first
//! connection**. It registers every metric once and keeps the handles for the life of the
//! process; a count is then an atomic add through a handle: no lookup by name and no allocation
//! on the send path. Until `register` runs, nothing is counted and a count costs one load and
//! branch. Without the feature every function here is empty and compiles away.
//!
//! No label carries a peer's address, a path or anything a client sent: each label has a fixed
//! set of values (`transport`, `reason`, `opcode`, `code`, `action`), so the number of series is
//! bounded whatever the traffic.

use duplex_proto::{CloseInfo, MessageKind};
use tokio::time::Instant;

/// Why an opening handshake was refused (the `reason` label of
/// `duplex_handshakes_rejected_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code, reason = "without `metrics` none is read; without `ip-limits`, PerIp and Rate are not made")]
pub(crate) enum Rejection {
    /// The `Origin` is not allowed (403).
    Origin,
    /// A malformed request, or one RFC 6455 §4.2.1 refuses (400, 426, 431).
    BadRequest,
    /// The TLS or HTTP handshake did not finish in time.
    Timeout,
    /// The TLS handshake failed.
    Tls,
    /// The server was at [`Config::max_connections`](crate::Config::max_connections) (503).
    MaxConnections,
    /// The client's address had its most connections (429).
    PerIp,
    /// The client's address was over its handshake rate (429).
    Rate,
    /// The server was shutting down (503).
    ShuttingDown,
    /// A PROXY protocol header was malformed, or came from a peer that is not trusted.
    Proxy,
}

#[cfg(feature = "metrics")]
mod imp {
    use std::sync::OnceLock;

    use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
    use metrics::{Counter, Gauge, Histogram};

    use super::Rejection;

    /// The `reason` label values, in [`Rejection`] order.
    const REASONS: [&str; 9] =
        ["origin", "bad_request", "timeout", "tls", "max_connections", "per_ip", "rate", "shutting_down", "proxy"];
    const TRANSPORTS: [&str; 2] = ["ws", "wss"];
    const OPCODES: [&str; 2] = ["text", "binary"];
    const CONTROL: [&str; 3] = ["ping", "pong", "close"];
    /// Close codes a server sends, by label; any other code counts as `other`.
    const CODES: [(u16, &str); 13] = [
        (1000, "1000"),
        (1001, "1001"),
        (1002, "1002"),
        (1003, "1003"),
        (1007, "1007"),
        (1008, "1008"),
        (1009, "1009"),
        (1010, "1010"),
        (1011, "1011"),
        (1012, "1012"),
        (1013, "1013"),
        (1014, "1014"),
        (0, "other"),
    ];

    pub(super) struct Handles {
        pub(super) accepted: [Counter; 2],
        pub(super) active: [Gauge; 2],
        pub(super) rejected: [Counter; 9],
        pub(super) handshake_seconds: Histogram,
        pub(super) messages_in: [Counter; 2],
        pub(super) messages_out: [Counter; 2],
        pub(super) payload_in: [Counter; 2],
        pub(super) payload_out: [Counter; 2],
        pub(super) control_in: [Counter; 3],
        pub(super) wire_in: Counter,
        pub(super) wire_out: Counter,
        pub(super) close_sent: [Counter; 13],
        pub(super) ping_rtt: Histogram,
        pub(super) slow_closed: Counter,
        pub(super) slow_dropped: Counter,
    }

    static HANDLES: OnceLock<Handles> = OnceLock::new();

    /// The handles, once [`register`](super::register) has run: until then nothing is counted,
    /// at the cost of one load and branch per call.
    #[inline]
    pub(super) fn handles() -> Option<&'static Handles> {
        HANDLES.get()
    }

    pub(super) fn register_all() {
        HANDLES.get_or_init(register);
    }

    pub(super) fn reason_index(r: Rejection) -> usize {
        r as usize
    }

    pub(super) fn code_index(code: u16) -> usize {
        CODES.iter().position(|&(c, _)| c == code).unwrap_or(CODES.len() - 1)
    }

    fn register() -> Handles {
        describe_counter!(
            "duplex_connections_accepted_total",
            "WebSocket connections opened (101 sent), by transport (ws, wss)"
        );
        describe_gauge!("duplex_connections_active", "WebSocket connections open now, by transport");
        describe_counter!("duplex_handshakes_rejected_total", "Opening handshakes refused, by reason");
        describe_histogram!(
            "duplex_handshake_duration_seconds",
            Unit::Seconds,
            "From accept to the 101 response written (TLS handshake included)"
        );
        describe_counter!("duplex_messages_received_total", "Data messages received, by opcode (text, binary)");
        describe_counter!("duplex_messages_sent_total", "Data messages sent, by opcode (text, binary)");
        describe_counter!(
            "duplex_payload_bytes_received_total",
            Unit::Bytes,
            "Payload bytes of the data messages received (after decompression), by opcode"
        );
        describe_counter!(
            "duplex_payload_bytes_sent_total",
            Unit::Bytes,
            "Payload bytes of the data messages sent (before compression), by opcode"
        );
        describe_counter!("duplex_control_frames_received_total", "Control frames received, by opcode");
        describe_counter!(
            "duplex_wire_bytes_received_total",
            Unit::Bytes,
            "WebSocket bytes read (frames as sent, compressed; under TLS, before decryption)"
        );
        describe_counter!(
            "duplex_wire_bytes_sent_total",
            Unit::Bytes,
            "WebSocket bytes written (frames as sent, compressed; under TLS, before encryption)"
        );
        describe_counter!("duplex_close_codes_sent_total", "Close handshakes this end started, by close code");
        describe_histogram!("duplex_ping_rtt_seconds", Unit::Seconds, "Keepalive ping to pong round-trip time");
        describe_counter!(
            "duplex_slow_consumer_total",
            "Messages dropped for, and connections closed for, a client over its write buffer limit, by action"
        );
        Handles {
            accepted: TRANSPORTS.map(|t| counter!("duplex_connections_accepted_total", "transport" => t)),
            active: TRANSPORTS.map(|t| gauge!("duplex_connections_active", "transport" => t)),
            rejected: REASONS.map(|r| counter!("duplex_handshakes_rejected_total", "reason" => r)),
            handshake_seconds: histogram!("duplex_handshake_duration_seconds"),
            messages_in: OPCODES.map(|o| counter!("duplex_messages_received_total", "opcode" => o)),
            messages_out: OPCODES.map(|o| counter!("duplex_messages_sent_total", "opcode" => o)),
            payload_in: OPCODES.map(|o| counter!("duplex_payload_bytes_received_total", "opcode" => o)),
            payload_out: OPCODES.map(|o| counter!("duplex_payload_bytes_sent_total", "opcode" => o)),
            control_in: CONTROL.map(|o| counter!("duplex_control_frames_received_total", "opcode" => o)),
            wire_in: counter!("duplex_wire_bytes_received_total"),
            wire_out: counter!("duplex_wire_bytes_sent_total"),
            close_sent: CODES.map(|(_, c)| counter!("duplex_close_codes_sent_total", "code" => c)),
            ping_rtt: histogram!("duplex_ping_rtt_seconds"),
            slow_closed: counter!("duplex_slow_consumer_total", "action" => "closed"),
            slow_dropped: counter!("duplex_slow_consumer_total", "action" => "dropped"),
        }
    }
}

#[cfg(feature = "metrics")]
#[inline]
fn opcode(kind: MessageKind) -> usize {
    match kind {
        MessageKind::Text => 0,
        MessageKind::Binary => 1,
    }
}

/// Starts counting: registers every metric with the recorder installed now (so that a scrape
/// shows them at zero before any traffic) and returns whether the feature is on. Call it after
/// installing the recorder and before serving; nothing is counted before.
pub fn register() -> bool {
    #[cfg(feature = "metrics")]
    {
        imp::register_all();
        true
    }
    #[cfg(not(feature = "metrics"))]
    false
}

#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
mod record {
    use super::*;

    #[inline]
    pub(crate) fn connection_opened(tls: bool) {
        #[cfg(feature = "metrics")]
        {
            let Some(h) = imp::handles() else { return };
            h.accepted[tls as usize].increment(1);
            h.active[tls as usize].increment(1.0);
        }
    }

    #[inline]
    pub(crate) fn connection_closed(tls: bool) {
        #[cfg(feature = "metrics")]
        if let Some(h) = imp::handles() {
            h.active[tls as usize].decrement(1.0);
        }
    }

    #[inline]
    #[cfg_attr(not(feature = "server"), allow(dead_code, reason = "only the server refuses handshakes"))]
    pub(crate) fn rejected(reason: Rejection) {
        #[cfg(feature = "metrics")]
        if let Some(h) = imp::handles() {
            h.rejected[imp::reason_index(reason)].increment(1);
        }
    }

    /// The 101 response is written; the connection was accepted at `deadline - timeout`.
    #[inline]
    #[cfg_attr(not(feature = "server"), allow(dead_code, reason = "only the server times handshakes"))]
    pub(crate) fn handshake_done(deadline: Instant, timeout: std::time::Duration) {
        #[cfg(feature = "metrics")]
        if let Some(accepted) = deadline.checked_sub(timeout) {
            if let Some(h) = imp::handles() {
                h.handshake_seconds.record(accepted.elapsed().as_secs_f64());
            }
        }
    }

    #[inline]
    pub(crate) fn message_received(kind: MessageKind, len: usize) {
        #[cfg(feature = "metrics")]
        {
            let Some(h) = imp::handles() else { return };
            h.messages_in[opcode(kind)].increment(1);
            h.payload_in[opcode(kind)].increment(len as u64);
        }
    }

    #[inline]
    pub(crate) fn message_sent(kind: MessageKind, len: usize) {
        #[cfg(feature = "metrics")]
        {
            let Some(h) = imp::handles() else { return };
            h.messages_out[opcode(kind)].increment(1);
            h.payload_out[opcode(kind)].increment(len as u64);
        }
    }

    /// A control frame arrived: 0 ping, 1 pong, 2 close.
    #[inline]
    pub(crate) fn control_received(which: usize) {
        #[cfg(feature = "metrics")]
        if let Some(h) = imp::handles() {
            h.control_in[which].increment(1);
        }
    }

    #[inline]
    pub(crate) fn wire_received(n: usize) {
        #[cfg(feature = "metrics")]
        if let Some(h) = imp::handles() {
            h.wire_in.increment(n as u64);
        }
    }

    #[inline]
    pub(crate) fn wire_sent(n: usize) {
        #[cfg(feature = "metrics")]
        if let Some(h) = imp::handles() {
            h.wire_out.increment(n as u64);
        }
    }

    /// The connection is over: count the close code if this end started the close handshake.
    #[inline]
    pub(crate) fn closed(info: Option<CloseInfo>) {
        #[cfg(feature = "metrics")]
        if let Some(info) = info {
            if info.initiator == duplex_proto::Side::Local {
                if let Some(h) = imp::handles() {
                    h.close_sent[imp::code_index(info.code().0)].increment(1);
                }
            }
        }
    }

    #[inline]
    pub(crate) fn ping_rtt(sent: std::time::Instant) {
        #[cfg(feature = "metrics")]
        if let Some(h) = imp::handles() {
            h.ping_rtt.record(sent.elapsed().as_secs_f64());
        }
    }

    #[inline]
    pub(crate) fn slow_consumer_dropped() {
        #[cfg(feature = "metrics")]
        if let Some(h) = imp::handles() {
            h.slow_dropped.increment(1);
        }
    }

    #[inline]
    pub(crate) fn slow_consumer_closed() {
        #[cfg(feature = "metrics")]
        if let Some(h) = imp::handles() {
            h.slow_closed.increment(1);
        }
    }
}

pub(crate) use record::*;
