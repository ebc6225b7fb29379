//! A future of the matcher's that must be polled whatever the matcher does.

/// Runs `work` (database access) as a task of its own rather than as a future of the
/// matcher's context, and returns a future of its output.
///
/// While one of the matcher's atomic responses runs (a recovery; routing that waits for a
/// full executor mailbox), actix polls none of the futures spawned in its context. A query
/// spawned there that the pool had just handed its connection to would then keep it
/// unpolled: on SQLite, with its one pooled connection, everyone else waited out the
/// pool's acquire timeout (30 s), the recovery in progress and the executors that must
/// drain those mailboxes included. A task of its own is polled whatever the matcher does.
pub fn detached<T: 'static>(
    work: impl std::future::Future<Output = T> + 'static,
) -> impl std::future::Future<Output = T> {
    let task = actix_rt::spawn(work);
    async move {
        match task.await {
            Ok(output) => output,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the arbiter is stopping, and the matcher with it.
            Err(_) => std::future::pending().await,
        }
    }
}
