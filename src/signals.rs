//! SIGINT and SIGTERM: the first starts a graceful shutdown, a second one exits at once.

use duplex::ShutdownHandle;

/// Watches for SIGINT/SIGTERM in the background and shuts `server` down on the first.
pub fn shutdown_on_signals(server: ShutdownHandle) {
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM ({e}); Ctrl-C still works");
                let _ = tokio::signal::ctrl_c().await;
                server.shutdown();
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down (again to exit at once)"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down (again to exit at once)"),
        }
        server.shutdown();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("second signal: exiting without waiting");
        std::process::exit(130);
    });
}
