//! The `loadgen` binary: parses the command line, builds a small tokio runtime (`--threads`),
//! runs the load and prints the report as text or JSON.

use anyhow::{Context, Result};
use clap::Parser;

use loadgen::cli::Cli;

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(cli.threads))
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let report = runtime.block_on(loadgen::run(cli.config()))?;
    if cli.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(())
}
