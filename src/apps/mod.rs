//! Applications that server commands mount by path on a [`duplex_apps::router::Router`], written
//! against the public library API.

pub mod pubsub;

/// `1 connection`, `2 connections`.
pub fn connections(n: usize) -> String {
    format!("{n} connection{}", if n == 1 { "" } else { "s" })
}
