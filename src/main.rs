//! The `cairn` binary: `cairn serve` runs a node; the other commands are a
//! client of a node's HTTP API.

mod client;
mod serve;

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
    Serve(Box<serve::ServeArgs>),
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
    /// Show the cluster's members, their state and disk use.
    Status {
        /// Print the node's full status as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Change the cluster: classes, domains, node states, join token.
    #[command(subcommand)]
    Admin(Admin),
}

#[derive(Subcommand, Debug)]
enum Admin {
    /// Storage classes (how many copies).
    #[command(subcommand)]
    Class(ClassCommand),
    /// Domains (key namespaces).
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Node states.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Print the join token of the node whose data directory is DATA.
    JoinToken {
        #[arg(long, env = "CAIRN_DATA", default_value = "./cairn-data")]
        data: std::path::PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ClassCommand {
    /// Create a class or change its copy count.
    Add {
        name: String,
        replicas: u32,
        /// Define it for one domain only (MogileFS style).
        #[arg(long)]
        domain: Option<String>,
    },
    /// List the classes.
    Ls,
    /// Delete a class.
    Rm {
        name: String,
        #[arg(long)]
        domain: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum DomainCommand {
    Add { name: String },
    Ls,
    Rm { name: String },
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Set a node's state: alive, drain or readonly.
    State { id: String, state: String },
}

fn run_admin(client: &client::Client, admin: Admin) -> anyhow::Result<()> {
    use serde_json::json;
    match admin {
        Admin::Class(ClassCommand::Add { name, replicas, domain }) => client
            .admin_post("classes", json!({ "name": name, "replicas": replicas, "domain": domain })),
        Admin::Class(ClassCommand::Ls) => client.admin_get("classes"),
        Admin::Class(ClassCommand::Rm { name, domain }) => {
            let query = domain.map(|d| format!("?domain={d}")).unwrap_or_default();
            client.admin_delete(&format!("classes/{name}{query}"))
        }
        Admin::Domain(DomainCommand::Add { name }) => {
            client.admin_post("domains", json!({ "name": name }))
        }
        Admin::Domain(DomainCommand::Ls) => client.admin_get("domains"),
        Admin::Domain(DomainCommand::Rm { name }) => {
            client.admin_delete(&format!("domains/{name}"))
        }
        Admin::Node(NodeCommand::State { id, state }) => {
            client.admin_post(&format!("nodes/{id}/state"), json!({ "state": state }))
        }
        Admin::JoinToken { data } => {
            let path = data.join("join-token");
            let token = std::fs::read_to_string(&path).map_err(|error| {
                anyhow::anyhow!("cannot read {}: {error} (start the node once)", path.display())
            })?;
            println!("{}", token.trim());
            Ok(())
        }
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=error")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let client = client::Client::new(&cli.server);
    let result = match cli.command {
        Command::Serve(args) => serve::serve(*args),
        Command::Put { target, file, class } => client.put(&target, &file, class.as_deref()),
        Command::Get { target, file } => client.get(&target, file.as_deref()),
        Command::Rm { target } => client.rm(&target),
        Command::Stat { target } => client.stat(&target),
        Command::Ls { domain, prefix } => client.ls(&domain, &prefix),
        Command::Status { json } => client.status(json),
        Command::Admin(admin) => run_admin(&client, admin),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cairn: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
