//! Running a program's main future on a Tokio runtime.
//!
//! Every daemon's `main` does the same three things: build a runtime (one
//! thread or a few named workers), run one future on it, and then give the
//! tasks still running (a stuck router connection, a log flusher) at most a
//! second before the process exits, rather than the unbounded wait of
//! dropping a runtime. [`block_on`] is that sequence; the caller reports a
//! runtime that cannot be built in its own words and with its own exit
//! status.

use std::future::Future;
use std::time::Duration;

/// How many threads the runtime gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// Everything on the calling thread (`new_current_thread`).
    Current,
    /// A pool of this many worker threads (at least one).
    Workers(usize),
    /// A pool of one worker per CPU core (Tokio's default).
    PerCore,
}

/// How long tasks still running when the main future ends may take.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Builds a runtime with `threads` (workers named `name`), runs `future` to
/// completion on it, and shuts the runtime down within [`SHUTDOWN_GRACE`].
/// Fails only when the runtime cannot be built (no threads, no epoll).
pub fn block_on<F: Future>(name: &str, threads: Threads, future: F) -> std::io::Result<F::Output> {
    let mut builder = match threads {
        Threads::Current => tokio::runtime::Builder::new_current_thread(),
        Threads::Workers(count) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(count.max(1));
            builder
        }
        Threads::PerCore => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder.thread_name(name).enable_all().build()?;
    let output = runtime.block_on(future);
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_the_future_on_the_chosen_threads_and_returns_its_output() {
        let on_caller =
            block_on("t", Threads::Current, async { std::thread::current().id() }).unwrap();
        assert_eq!(on_caller, std::thread::current().id());
        let name = block_on("tb-worker", Threads::Workers(2), async {
            tokio::spawn(async { std::thread::current().name().map(str::to_owned) })
                .await
                .unwrap()
        })
        .unwrap();
        assert_eq!(name.as_deref(), Some("tb-worker"));
    }

    #[test]
    fn a_stuck_task_does_not_hold_up_the_exit_beyond_the_grace() {
        let started = std::time::Instant::now();
        block_on("t", Threads::Workers(1), async {
            // A task that never ends, as a dead peer's read would.
            tokio::spawn(std::future::pending::<()>());
            tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_secs(30)));
        })
        .unwrap();
        assert!(started.elapsed() < SHUTDOWN_GRACE + Duration::from_secs(5));
    }
}
