//! The command line: flags, their defaults and help text, and their translation into a
//! `Config`. Only `--threads` and `--json` stay here, since they shape the process, not the run.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Parser;

use crate::config::{parse_duration, Config, Mix, SizeDist, Workload, DEFAULT_URL_TEMPLATE};

/// More worker threads than this would only compete with the server for the same cores.
pub const MAX_THREADS: i64 = 256;

/// HTTP/1.1 load generator for PUT/GET blob servers (cairn, WebDAV, ...).
///
/// Closed loop by default: --concurrency connections, each with one request in flight.
/// With --rate it runs an open loop: requests at fixed intended send times, latency measured
/// from the intended time so queueing behind a slow server is not hidden. Sizes use binary
/// units (1k = 1024 bytes); throughput is reported in MB of 10^6 bytes.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version)]
pub struct Cli {
    /// Operation of every request, or `mixed` for a weighted mix (see --mix).
    #[arg(long, value_enum, default_value = "put")]
    pub op: Workload,

    /// Weights for --op mixed, e.g. put=1,get=9 (delete=N also allowed).
    #[arg(long, default_value = "put=1,get=9", value_parser = Mix::parse)]
    pub mix: Mix,

    /// Payload size: 1k, 4k, 64k, 1m, 64m, any size like 300k, or a weighted distribution
    /// like 4k:80,1m:20. A key always gets the same size and bytes.
    #[arg(long, default_value = "4k", value_parser = SizeDist::parse)]
    pub size: SizeDist,

    /// Size of the key space: keys k000000 .. k(N-1), chosen uniformly.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,

    /// Connections (closed loop), or the most connections in use (open loop).
    #[arg(long, short = 'c', default_value_t = 1)]
    pub concurrency: usize,

    /// Open loop: requests per second at fixed intended send times.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Length of the measured window, e.g. 10s, 500ms, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Time before the measured window whose requests are not counted.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Stop after this many counted requests (--duration still caps the run).
    #[arg(long)]
    pub requests: Option<u64>,

    /// Request URL; {domain} and {key} are substituted. Plain http:// only.
    #[arg(long, env = "LOADGEN_URL_TEMPLATE", default_value = DEFAULT_URL_TEMPLATE)]
    pub url_template: String,

    /// Value for {domain} in the URL template.
    #[arg(long, default_value = "bench")]
    pub domain: String,

    /// PUT every key once before the run, so GETs hit.
    #[arg(long)]
    pub prefill: bool,

    /// Check GET bodies (SHA-256) against the payload PUT for their key; mismatches count as
    /// `verify` errors.
    #[arg(long)]
    pub verify: bool,

    /// Stamp every PUT body with 16 unique bytes, so a deduplicating server cannot skip the
    /// write (not with --verify).
    #[arg(long)]
    pub unique_bodies: bool,

    /// Per-request timeout (open loop: from the intended send time).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Report this process's CPU seconds over the measured window (Linux /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,

    /// Status line on stderr every second even when stderr is not a terminal.
    #[arg(long)]
    pub progress: bool,

    /// Tokio worker threads for loadgen itself.
    #[arg(
        long,
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=MAX_THREADS)
    )]
    pub threads: u16,

    /// Seed for key and op choices (payload bytes do not depend on it).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl Cli {
    pub fn config(&self) -> Config {
        Config {
            workload: self.op,
            mix: self.mix,
            sizes: self.size.clone(),
            keys: self.keys,
            concurrency: self.concurrency,
            rate_per_s: self.rate,
            duration: self.duration,
            warmup: self.warmup,
            requests: self.requests,
            url_template: self.url_template.clone(),
            domain: self.domain.clone(),
            prefill: self.prefill,
            verify: self.verify,
            unique_bodies: self.unique_bodies,
            timeout: self.timeout,
            server_pid: self.server_pid,
            progress: self.progress || std::io::stderr().is_terminal(),
            seed: self.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_reach_the_config() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "--op",
            "mixed",
            "--mix",
            "put=1,get=3",
            "--size",
            "4k:80,1m:20",
            "--rate",
            "250",
            "-c",
            "8",
            "--duration",
            "3s",
            "--warmup",
            "0",
            "--requests",
            "100",
            "--url-template",
            "http://127.0.0.1:8080/{key}",
        ])
        .unwrap();
        let config = cli.config();
        assert_eq!(config.workload, Workload::Mixed);
        assert_eq!(config.mix, Mix { put: 1, get: 3, delete: 0 });
        assert_eq!(config.sizes.classes().len(), 2);
        assert_eq!(config.rate_per_s, Some(250.0));
        assert_eq!(config.concurrency, 8);
        assert_eq!(config.duration, Duration::from_secs(3));
        assert_eq!(config.warmup, Duration::ZERO);
        assert_eq!(config.requests, Some(100));
        config.validate().unwrap();
    }

    #[test]
    fn defaults_match_the_library_defaults() {
        let config = Cli::try_parse_from(["loadgen"]).unwrap().config();
        let library = Config::default();
        assert_eq!(config.workload, library.workload);
        assert_eq!(config.sizes, library.sizes);
        assert_eq!(config.duration, library.duration);
        assert_eq!(config.warmup, library.warmup);
        assert_eq!(config.timeout, library.timeout);
        assert_eq!(config.keys, library.keys);
        assert_eq!(config.domain, library.domain);
    }
}
