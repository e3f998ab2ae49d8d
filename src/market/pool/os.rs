//! Running CPU work at a lower OS priority, and handing memory back after heavy work.

use crate::process::{set_thread_nice, thread_nice};

/// Hands freed heap memory back to the system after a burst of heavy analyses (glibc keeps it
/// otherwise: 1.18 GB stayed resident after one). Both allocators are asked: the binary's is
/// mimalloc, tests and librdkafka's C code use glibc's.
pub(super) fn trim_heap() {
    // SAFETY: mi_collect takes no pointers; it only frees mimalloc's own unused pages.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap; it takes no pointers from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs `work` on the blocking pool at nice value `nice` (restored afterwards, since the
/// thread goes back to the pool), so heavy work yields the cores to everything else.
pub async fn run_blocking<T: Send + 'static>(
    nice: i32,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        let _niced = (nice > 0).then(|| Niced::set(nice));
        work()
    })
    .await
}

/// This thread's nice value for a while.
struct Niced {
    before: i32,
}

impl Niced {
    fn set(nice: i32) -> Niced {
        let before = thread_nice();
        set_thread_nice(nice);
        Niced { before }
    }
}

impl Drop for Niced {
    fn drop(&mut self) {
        set_thread_nice(self.before);
    }
}
