//! Gives memory freed by the allocator back to the system, every few seconds, in the servers of
//! the command line (`duplex echo`, `duplex serve`).
//!
//! Connections free their permessage-deflate codecs when quiet (`DeflateConfig::release_after`),
//! 30-40 KiB each. glibc's malloc keeps freed blocks in the middle of its heap resident (it only
//! trims the top), so without this the freed codecs would be reused by the next busy connections
//! but never leave the process's RSS. `malloc_trim(0)` hands whole free pages back
//! (`madvise(MADV_DONTNEED)`); it walks the free lists under the arena lock, about a millisecond
//! for a heap of 100 MB, hence every few seconds rather than per release. A library user picks
//! their own policy (or an allocator that returns memory itself): this is the application's call.

use std::time::Duration;

/// How often the servers trim.
const EVERY: Duration = Duration::from_secs(3);

/// Starts the periodic trim on the current runtime (glibc only; elsewhere nothing to do).
pub fn start() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // SAFETY: malloc_trim has no preconditions; it only returns free pages.
            unsafe { libc::malloc_trim(0) };
        }
    });
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = EVERY;
}
