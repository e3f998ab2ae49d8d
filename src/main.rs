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
    let cli = Cli::parse();
    match cli.run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
