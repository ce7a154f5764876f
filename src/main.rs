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
    /// A file holding the access key client commands send, `<id>:<secret>`
    /// (or set `CAIRN_KEY`); by default `DATA/admin-key` when it is there.
    #[arg(long, global = true, env = "CAIRN_KEY_FILE", value_name = "FILE")]
    key_file: Option<std::path::PathBuf>,
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
    /// Access keys: who may read, write or administer what.
    #[command(subcommand)]
    Key(KeyCommand),
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
    Add {
        name: String,
    },
    Ls,
    Rm {
        name: String,
    },
    /// Change a domain's settings: `public-read=true` lets anyone read its
    /// keys without credentials.
    Set {
        name: String,
        setting: String,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Make a key; prints its secret, which is shown only this once.
    Add {
        #[arg(long, default_value = "")]
        name: String,
        /// The key may administer the whole cluster.
        #[arg(long)]
        admin: bool,
    },
    /// List the keys (never their secrets).
    Ls,
    /// Revoke a key.
    Rm { id: String },
    /// Set what a key may do in DOMAIN (`metrics` for `/metrics`); with no
    /// flag, it may do nothing there any more.
    Allow {
        id: String,
        domain: String,
        #[arg(long)]
        read: bool,
        #[arg(long)]
        write: bool,
        #[arg(long)]
        owner: bool,
    },
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
        Admin::Domain(DomainCommand::Set { name, setting }) => {
            let public_read = match setting.as_str() {
                "public-read=true" => true,
                "public-read=false" => false,
                other => anyhow::bail!("unknown setting {other:?}: public-read=true|false"),
            };
            client.admin_post(&format!("domains/{name}"), json!({ "public_read": public_read }))
        }
        Admin::Key(KeyCommand::Add { name, admin }) => {
            client.admin_post("keys", json!({ "name": name, "admin": admin }))
        }
        Admin::Key(KeyCommand::Ls) => client.admin_get("keys"),
        Admin::Key(KeyCommand::Rm { id }) => client.admin_delete(&format!("keys/{id}")),
        Admin::Key(KeyCommand::Allow { id, domain, read, write, owner }) => client.admin_post(
            &format!("keys/{id}/allow"),
            json!({ "domain": domain, "read": read, "write": write, "owner": owner }),
        ),
        Admin::Node(NodeCommand::State { id, state }) => {
            client.admin_post(&format!("nodes/{id}/state"), json!({ "state": state }))
        }
        Admin::JoinToken { data } => {
            let path = data.join("cluster-secret");
            let token = cairn_cluster::read_secret_file(&path)?.ok_or_else(|| {
                anyhow::anyhow!("{} does not exist yet (start the node once)", path.display())
            })?;
            println!("{token}");
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
    let client = match client::Client::new(&cli.server, cli.key_file.as_deref()) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("cairn: {error:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
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
