//! Running CPU work at a lower OS priority, and handing memory back after heavy work.

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

#[cfg(target_os = "linux")]
fn thread_nice() -> i32 {
    // SAFETY: gettid and getpriority take plain integers and touch no memory of ours.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(target_os = "linux")]
fn set_thread_nice(nice: i32) {
    // SAFETY: as above. On Linux PRIO_PROCESS with a thread id sets that thread's nice value.
    // Lowering it again needs no privilege only back to where it was (RLIMIT_NICE); a refusal
    // leaves the thread as it is, which costs fairness, not correctness.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice);
    }
}

#[cfg(not(target_os = "linux"))]
fn thread_nice() -> i32 {
    0
}

#[cfg(not(target_os = "linux"))]
fn set_thread_nice(_nice: i32) {}
