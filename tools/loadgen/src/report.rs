//! The result of a run: merging the connections' tallies, the derived rates and percentiles,
//! and the two renderings (a short text table, and one JSON object with stable field names for
//! scripts).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::config::{Config, Workload};
use crate::prefill::PrefillTally;
use crate::worker::{new_latency_histogram, Tally};

/// Throughput is in MB of 10^6 bytes, as disks and networks are rated.
const BYTES_PER_MB: f64 = 1_000_000.0;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `put`, `get`, `mixed` or `delete`.
    pub op: String,
    /// `mixed` runs only: `put=1,get=9,delete=0`.
    pub mix: Option<String>,
    pub concurrency: usize,
    /// Open loop: intended requests per second. `null` for the closed loop.
    pub rate: Option<f64>,
    /// The weighted mean payload size (the size itself for a single size).
    pub size_bytes: u64,
    /// The `--size` text, e.g. `4k:80,1m:20`.
    pub size_spec: String,
    pub keys: u64,
    /// From the start of the measured window to the last counted completion.
    pub duration_s: f64,
    pub warmup_s: f64,
    /// Counted requests, successful or not.
    pub requests: u64,
    /// Successful counted requests; rates and latencies are over these.
    pub ops: u64,
    pub ops_per_s: f64,
    /// Payload bytes moved by successful requests (PUT bodies sent, GET bodies received).
    pub bytes: u64,
    pub mb_per_s: f64,
    pub latency_ms: LatencyMs,
    /// Failed counted requests by kind: an HTTP status (`404`, `500`) or `connect`,
    /// `timeout`, `verify`, `io`.
    pub errors: BTreeMap<String, u64>,
    pub errors_total: u64,
    pub warmup_requests: u64,
    pub prefill_ops: u64,
    pub prefill_errors: BTreeMap<String, u64>,
    /// CPU seconds the `--server-pid` process used over the measured window.
    pub server_cpu_s: Option<f64>,
    /// CPU seconds loadgen used over the measured window.
    pub loadgen_cpu_s: Option<f64>,
}

/// Latency of successful counted requests, in milliseconds with microsecond resolution.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// What the run measured besides the tallies.
pub struct Measured {
    pub duration_s: f64,
    pub prefill: PrefillTally,
    pub server_cpu_s: Option<f64>,
    pub loadgen_cpu_s: Option<f64>,
}

impl Report {
    pub fn new(config: &Config, tallies: Vec<Tally>, measured: Measured) -> Report {
        let mut latency_us = new_latency_histogram();
        let mut requests = 0;
        let mut ops = 0;
        let mut bytes = 0;
        let mut warmup_requests = 0;
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        for tally in tallies {
            latency_us
                .add(&tally.latency_us)
                .expect("all histograms share the same bounds, so adding cannot overflow them");
            requests += tally.ops;
            ops += tally.ok_ops;
            bytes += tally.bytes;
            warmup_requests += tally.warmup_ops;
            for (label, count) in tally.errors {
                *errors.entry(label).or_default() += count;
            }
        }
        let per_s = |amount: f64| {
            if measured.duration_s > 0.0 {
                amount / measured.duration_s
            } else {
                0.0
            }
        };
        let ms_at = |quantile: f64| latency_us.value_at_quantile(quantile) as f64 / 1000.0;
        let latency_ms = if latency_us.is_empty() {
            LatencyMs::default()
        } else {
            LatencyMs {
                p50: ms_at(0.5),
                p90: ms_at(0.9),
                p99: ms_at(0.99),
                p999: ms_at(0.999),
                max: latency_us.max() as f64 / 1000.0,
            }
        };
        Report {
            op: config.workload.name().to_string(),
            mix: (config.workload == Workload::Mixed).then(|| config.mix.describe()),
            concurrency: config.concurrency,
            rate: config.rate_per_s,
            size_bytes: config.sizes.mean_bytes(),
            size_spec: config.sizes.spec().to_string(),
            keys: config.keys,
            duration_s: measured.duration_s,
            warmup_s: config.warmup.as_secs_f64(),
            requests,
            ops,
            ops_per_s: per_s(ops as f64),
            bytes,
            mb_per_s: per_s(bytes as f64 / BYTES_PER_MB),
            latency_ms,
            errors_total: errors.values().sum(),
            errors,
            warmup_requests,
            prefill_ops: measured.prefill.ops,
            prefill_errors: measured.prefill.errors,
            server_cpu_s: measured.server_cpu_s,
            loadgen_cpu_s: measured.loadgen_cpu_s,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report of numbers and strings always serializes")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pacing = match self.rate {
            Some(rate) => {
                format!("open loop at {rate} req/s, up to {} connections", self.concurrency)
            }
            None => format!("closed loop, {} connections", self.concurrency),
        };
        let op = match &self.mix {
            Some(mix) => format!("mixed ({mix})"),
            None => self.op.clone(),
        };
        writeln!(
            f,
            "loadgen     {op}, {pacing}, size {} ({} B mean), {} keys",
            self.size_spec, self.size_bytes, self.keys
        )?;
        writeln!(
            f,
            "window      {:.3} s after {:.3} s warmup ({} warmup requests, {} prefill PUTs)",
            self.duration_s, self.warmup_s, self.warmup_requests, self.prefill_ops
        )?;
        writeln!(
            f,
            "throughput  {:.1} ops/s, {:.3} MB/s (MB = 10^6 bytes)",
            self.ops_per_s, self.mb_per_s
        )?;
        writeln!(
            f,
            "requests    {} counted: {} ok, {} errors",
            self.requests, self.ops, self.errors_total
        )?;
        let l = &self.latency_ms;
        writeln!(
            f,
            "latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )?;
        if !self.errors.is_empty() {
            writeln!(f, "errors      {}", describe_counts(&self.errors))?;
        }
        if !self.prefill_errors.is_empty() {
            writeln!(f, "prefill     errors {}", describe_counts(&self.prefill_errors))?;
        }
        let cpu = |seconds: Option<f64>| match seconds {
            Some(seconds) => format!("{seconds:.2} s"),
            None => "n/a".to_string(),
        };
        let mut line = format!("cpu         loadgen {}", cpu(self.loadgen_cpu_s));
        if self.server_cpu_s.is_some() {
            line.push_str(&format!(", server {}", cpu(self.server_cpu_s)));
        }
        writeln!(f, "{line} (over the measured window)")
    }
}

fn describe_counts(counts: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> =
        counts.iter().map(|(label, count)| format!("{label} {count}")).collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_stable_field_names() {
        let report = Report::new(
            &Config::default(),
            Vec::new(),
            Measured {
                duration_s: 1.0,
                prefill: PrefillTally::default(),
                server_cpu_s: Some(0.5),
                loadgen_cpu_s: None,
            },
        );
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        for field in [
            "op",
            "concurrency",
            "rate",
            "size_bytes",
            "duration_s",
            "ops",
            "ops_per_s",
            "mb_per_s",
            "latency_ms",
            "errors",
            "server_cpu_s",
            "loadgen_cpu_s",
        ] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        for field in ["p50", "p90", "p99", "p999", "max"] {
            assert!(json["latency_ms"].get(field).is_some(), "missing latency_ms.{field}");
        }
        assert_eq!(json["op"], "put");
        assert_eq!(json["size_bytes"], 4096);
        assert!(report.to_string().contains("MB = 10^6 bytes"));
    }
}
