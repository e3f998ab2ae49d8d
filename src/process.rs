//! Signals to other processes: the autoscaler's local instances, the chaos suite's workers.

/// Sends `signal` (`libc::SIGTERM`, `SIGKILL`, `SIGSTOP`, `SIGCONT`, ...) to process `pid`.
/// Fails with the OS error when the process is gone (ESRCH) or not ours (EPERM).
pub fn signal(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) takes two integers and has no memory effects.
    let sent = unsafe { libc::kill(pid, signal) };
    if sent == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}
