//! Waiting for the signals that stop a program.

/// Resolves with the signal's name when SIGTERM or SIGINT arrives. Both
/// handlers are installed before this returns, so a signal sent right
/// after start-up is not lost. Needs a tokio runtime.
pub fn termination()
-> std::io::Result<impl std::future::Future<Output = &'static str> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    })
}

/// The shutdown future a server hands its library: [`termination`], and
/// `SIGTERM received` (or `SIGINT received`) logged when it comes. The
/// handlers are installed before this returns.
pub fn shutdown_requested()
-> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let termination = termination()?;
    Ok(async move {
        let name = termination.await;
        tracing::info!("{name} received");
    })
}
