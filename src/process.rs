//! Other processes: signals to the autoscaler's local instances and the chaos suite's workers,
//! and throwaway Redis servers for faults that must not touch the stack's.

/// Sends `signal` (`libc::SIGTERM`, `SIGKILL`, `SIGSTOP`, `SIGCONT`, ...) to process `pid`.
/// Fails with the OS error when the process is gone (ESRCH) or not ours (EPERM).
pub fn signal(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) takes two integers and has no memory effects.
    let sent = unsafe { libc::kill(pid, signal) };
    if sent == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// A `redis-server` on 127.0.0.1:`port` that keeps nothing on disk (no RDB, no AOF): a Redis
/// of one test or chaos run, to kill and restart empty. Its output is the caller's to direct.
pub fn redis_server(port: u16) -> std::process::Command {
    let mut command = std::process::Command::new("redis-server");
    command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    command
}

/// The calling thread's nice value (0 where threads have none of their own).
#[cfg(target_os = "linux")]
pub fn thread_nice() -> i32 {
    // SAFETY: gettid and getpriority take plain integers and touch no memory of ours.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

/// Sets the calling thread's nice value, so its CPU work yields the cores to other threads.
#[cfg(target_os = "linux")]
pub fn set_thread_nice(nice: i32) {
    // SAFETY: as above. On Linux PRIO_PROCESS with a thread id sets that thread's nice value.
    // Lowering it again needs no privilege only back to where it was (RLIMIT_NICE); a refusal
    // leaves the thread as it is, which costs fairness, not correctness.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice);
    }
}

/// Sets the nice value of every thread of this process; threads started later inherit their
/// starter's. On Linux a nice value belongs to a thread, so `setpriority` on the process id
/// alone (what `renice` does) would leave every thread but the first where it was.
#[cfg(target_os = "linux")]
pub fn set_process_nice(nice: i32) -> std::io::Result<()> {
    for task in std::fs::read_dir("/proc/self/task")? {
        let Some(tid) = task?.file_name().to_str().and_then(|name| name.parse::<libc::id_t>().ok()) else { continue };
        // SAFETY: setpriority takes plain integers and touches no memory of ours.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } != 0 {
            let error = std::io::Error::last_os_error();
            // A thread that ended since the listing is no failure.
            if error.raw_os_error() != Some(libc::ESRCH) {
                return Err(error);
            }
        }
    }
    Ok(())
}

/// Sets the nice value of every thread of this process (nothing where there are none).
#[cfg(not(target_os = "linux"))]
pub fn set_process_nice(_nice: i32) -> std::io::Result<()> {
    Ok(())
}

/// The calling thread's nice value (0 where threads have none of their own).
#[cfg(not(target_os = "linux"))]
pub fn thread_nice() -> i32 {
    0
}

/// Sets the calling thread's nice value (nothing where threads have none of their own).
#[cfg(not(target_os = "linux"))]
pub fn set_thread_nice(_nice: i32) {}
