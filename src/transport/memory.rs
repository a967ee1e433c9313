//! Giving freed session memory back to the operating system. glibc's allocator keeps freed
//! heap pages for reuse, so after a burst of sessions closes the process stays at its peak
//! size; `malloc_trim` releases the free pages.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::http::OpenSessions;

/// How often the number of open sessions is looked at (a read lock and a length: cheap;
/// rarer checks would miss a burst of sessions that opens and expires between two).
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Hand free heap memory back to the OS (a no-op where the allocator is not glibc's).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and shrinks the allocator's own free lists; it takes
    // the allocator's locks like any malloc call and touches no memory still in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Until `shutdown`: after open sessions have dropped well below their high point, release
/// the memory they held. A trim walks the heap, so it runs only after a real drop.
pub async fn reclaim_after_sessions_close(sessions: OpenSessions, shutdown: CancellationToken) {
    let mut high = 0usize;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
        let open = sessions.count().await;
        high = high.max(open);
        // a drop of 16 sessions frees on the order of a megabyte: worth a trim
        if high >= open + 16 {
            let closed = high - open;
            tokio::task::spawn_blocking(release_free_memory).await.ok();
            tracing::debug!(closed, open, "released the memory of closed sessions");
            high = open;
        }
    }
}
