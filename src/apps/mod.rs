//! Applications that server commands mount by path, written against the public library API.

pub mod demos;
pub mod pubsub;

use duplex::WebSocket;

/// Logs how connection `id` ended, as `duplex serve` does (`#3 closed 1000 bye`), with `suffix`
/// appended (`; room /lobby has 2 connections`).
pub fn log_closed<S>(id: u64, ws: &WebSocket<S>, error: Option<duplex::Error>, suffix: &str) {
    let by = |us: bool| if us { " (closed by the server)" } else { "" };
    match (ws.closing_frame(), error) {
        (Some((Some(f), us)), _) => tracing::info!("#{id} closed {} {}{}{suffix}", f.code, f.reason, by(us)),
        (Some((None, us)), _) => tracing::info!("#{id} closed 1005 (no status code){}{suffix}", by(us)),
        (None, Some(e)) => tracing::info!("#{id} closed {} ({e}){suffix}", e.close_code()),
        (None, None) => tracing::info!("#{id} closed 1006 (connection lost){suffix}"),
    }
}

/// `1 connection`, `2 connections`.
pub fn connections(n: usize) -> String {
    format!("{n} connection{}", if n == 1 { "" } else { "s" })
}
