//! The `frontier` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use frontier::cli::Cli;

/// mimalloc: the bus moves 1.24x the messages per second it moves on glibc's malloc and the
/// model runs 1.05x faster offline (README, "Benchmarks").
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    keep_transparent_huge_pages_off();
    let cli = Cli::parse();
    match cli.run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP` asks for them.
///
/// mimalloc advises the kernel to back its arenas with 2 MiB pages and hands freed pages back a
/// second after a burst; the next burst then faults them in again, and the kernel zeroes a whole
/// 2 MiB page for each. In `frontier bench serve` that zeroing was 17 % of the process's CPU at
/// the start of a phase (`perf`: `clear_page_erms` under `FuturesUnordered::push`); with 4 KiB
/// pages the first 5 s of the warmer-on phase had a median p99 of 1.3 s instead of 4.1 s, and the
/// model served 1.25x the texts per second (README, "Benchmarks"). The flag is checked at each page
/// fault, so the arena mimalloc mapped before `main` is covered too.
fn keep_transparent_huge_pages_off() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours. It can
        // only fail on kernels before 3.15, and then the process runs as it always did.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}
