//! The `cairn` binary: `cairn serve` runs a node; the other commands are a
//! client of a node's HTTP API.

mod cache;
mod classes;
mod client;
mod dav;
mod http;
mod metrics;
mod node;
mod serve;
mod shard;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cairn", version, about = "A distributed blob store that replaces MogileFS")]
struct Cli {
    /// The node a client command talks to.
    #[arg(long, global = true, env = "CAIRN_SERVER", default_value = "http://127.0.0.1:7500")]
    server: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node.
    Serve(serve::ServeArgs),
    /// Store FILE (or standard input with `-`) under DOMAIN/KEY.
    Put {
        target: String,
        file: String,
        #[arg(long)]
        class: Option<String>,
    },
    /// Fetch DOMAIN/KEY into FILE (standard output when absent or `-`).
    Get { target: String, file: Option<String> },
    /// Delete DOMAIN/KEY.
    Rm { target: String },
    /// Show the state of DOMAIN/KEY.
    Stat { target: String },
    /// List the keys of DOMAIN.
    Ls {
        domain: String,
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Show the node's status.
    Status,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let client = client::Client::new(&cli.server);
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::Put { target, file, class } => client.put(&target, &file, class.as_deref()),
        Command::Get { target, file } => client.get(&target, file.as_deref()),
        Command::Rm { target } => client.rm(&target),
        Command::Stat { target } => client.stat(&target),
        Command::Ls { domain, prefix } => client.ls(&domain, &prefix),
        Command::Status => client.status(),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cairn: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
