//! The `frontier` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use frontier::cli::Cli;

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
