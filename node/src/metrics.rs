//! Counters of the node: keys and bytes by state, requests and their
//! latency by method, rendered as JSON (`/v1/status`) and Prometheus text
//! (`/metrics`). Each shard writes only its own `ShardMetrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cairn_engine::{KeyState, NodeStats};
use http::Method;

const METHODS: [&str; 5] = ["GET", "HEAD", "PUT", "DELETE", "OTHER"];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Upper bounds of the latency buckets, in seconds (Prometheus `le`).
const LATENCY_BOUNDS_S: [f64; 14] =
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
pub struct ShardMetrics {
    requests: [[AtomicU64; 5]; 5],
    latency_buckets: [[AtomicU64; LATENCY_BOUNDS_S.len() + 1]; 5],
    latency_sum_us: [AtomicU64; 5],
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Bytes held by the shard's blob cache.
    pub cache_bytes: AtomicU64,
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        _ => 4,
    }
}

impl ShardMetrics {
    pub fn observe(&self, method: &Method, status: u16, elapsed: Duration) {
        let m = method_index(method);
        let class = (usize::from(status / 100)).clamp(1, 5) - 1;
        self.requests[m][class].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket =
            LATENCY_BOUNDS_S.iter().position(|&b| seconds <= b).unwrap_or(LATENCY_BOUNDS_S.len());
        self.latency_buckets[m][bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us[m].fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn requests_total(&self) -> u64 {
        self.requests.iter().flatten().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// What each series means: its `# HELP` line (docs/metrics.md says more).
const HELP: [(&str, &str); 16] = [
    ("cairn_keys", "Keys this node holds, by state."),
    ("cairn_key_bytes", "Bytes of the keys this node holds, by state."),
    ("cairn_corrupt_reads_total", "Reads of this node's copy that failed a checksum."),
    ("cairn_copies_in_total", "Copies of keys this node took from other holders."),
    ("cairn_ranges_differing_total", "Anti-entropy ranges that differed from the homes'."),
    ("cairn_tombstones_collected_total", "Deletion records dropped after their grace."),
    ("cairn_clock_ahead_total", "Versions seen from a clock too far ahead."),
    ("cairn_quarantined_total", "Blob files moved to quarantine as damaged."),
    ("cairn_scrub_passes_total", "Scrub passes finished over every blob."),
    ("cairn_scrub_blobs_total", "Blobs re-read and checked by scrub."),
    ("cairn_scrub_bytes_total", "Bytes re-read by scrub."),
    ("cairn_scrub_damaged_total", "Blobs scrub found damaged."),
    ("cairn_requests_total", "HTTP requests answered, by method and status class."),
    ("cairn_request_duration_seconds", "Time from a request's head to its answer's head."),
    ("cairn_cache_bytes", "Bytes held by the caches of small hot blobs."),
    ("cairn_http_bytes_total", "HTTP body bytes taken in and sent out."),
];

/// A series' `# HELP` and `# TYPE` lines.
fn head(out: &mut String, name: &str, kind: &str) {
    let help = HELP.iter().find(|(n, _)| *n == name).map_or("", |(_, help)| help);
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The node's counters, by their Prometheus names.
fn counters(stats: &NodeStats, clock: &cairn_engine::Clock) -> [(&'static str, u64); 10] {
    [
        ("cairn_corrupt_reads_total", stats.corrupt_reads.load(Ordering::Relaxed)),
        ("cairn_copies_in_total", stats.copies_in.load(Ordering::Relaxed)),
        ("cairn_ranges_differing_total", stats.ranges_differing.load(Ordering::Relaxed)),
        ("cairn_tombstones_collected_total", stats.tombstones_collected.load(Ordering::Relaxed)),
        ("cairn_clock_ahead_total", clock.ahead_seen()),
        ("cairn_quarantined_total", stats.quarantined.load(Ordering::Relaxed)),
        ("cairn_scrub_passes_total", stats.scrub_passes.load(Ordering::Relaxed)),
        ("cairn_scrub_blobs_total", stats.scrub_blobs.load(Ordering::Relaxed)),
        ("cairn_scrub_bytes_total", stats.scrub_bytes.load(Ordering::Relaxed)),
        ("cairn_scrub_damaged_total", stats.scrub_damaged.load(Ordering::Relaxed)),
    ]
}

/// Renders the Prometheus text exposition of the node.
pub fn render_prometheus(
    stats: &NodeStats,
    shards: &[std::sync::Arc<ShardMetrics>],
    clock: &cairn_engine::Clock,
) -> String {
    let mut out = String::with_capacity(8192);
    head(&mut out, "cairn_keys", "gauge");
    for state in KeyState::ALL {
        let _ = writeln!(out, "cairn_keys{{state=\"{}\"}} {}", state.as_str(), stats.get(state).0);
    }
    head(&mut out, "cairn_key_bytes", "gauge");
    for state in KeyState::ALL {
        let _ =
            writeln!(out, "cairn_key_bytes{{state=\"{}\"}} {}", state.as_str(), stats.get(state).1);
    }
    let counters = counters(stats, clock);
    for (name, value) in counters {
        head(&mut out, name, "counter");
        let _ = writeln!(out, "{name} {value}");
    }
    head(&mut out, "cairn_requests_total", "counter");
    for (m, method) in METHODS.iter().enumerate() {
        for (c, class) in STATUS_CLASSES.iter().enumerate() {
            let total: u64 = shards.iter().map(|s| s.requests[m][c].load(Ordering::Relaxed)).sum();
            if total > 0 {
                let _ = writeln!(
                    out,
                    "cairn_requests_total{{method=\"{method}\",status=\"{class}\"}} {total}"
                );
            }
        }
    }
    head(&mut out, "cairn_request_duration_seconds", "histogram");
    for (m, method) in METHODS.iter().enumerate() {
        let mut cumulative = 0;
        for bucket in 0..=LATENCY_BOUNDS_S.len() {
            cumulative += shards
                .iter()
                .map(|s| s.latency_buckets[m][bucket].load(Ordering::Relaxed))
                .sum::<u64>();
            let le = LATENCY_BOUNDS_S.get(bucket).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "cairn_request_duration_seconds_bucket{{method=\"{method}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let sum_us: u64 = shards.iter().map(|s| s.latency_sum_us[m].load(Ordering::Relaxed)).sum();
        let _ = writeln!(
            out,
            "cairn_request_duration_seconds_sum{{method=\"{method}\"}} {}",
            sum_us as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "cairn_request_duration_seconds_count{{method=\"{method}\"}} {cumulative}"
        );
    }
    head(&mut out, "cairn_cache_bytes", "gauge");
    let cache_bytes: u64 = shards.iter().map(|s| s.cache_bytes.load(Ordering::Relaxed)).sum();
    let _ = writeln!(out, "cairn_cache_bytes {cache_bytes}");
    head(&mut out, "cairn_http_bytes_total", "counter");
    let bytes_in: u64 = shards.iter().map(|s| s.bytes_in.load(Ordering::Relaxed)).sum();
    let bytes_out: u64 = shards.iter().map(|s| s.bytes_out.load(Ordering::Relaxed)).sum();
    let _ = writeln!(out, "cairn_http_bytes_total{{direction=\"in\"}} {bytes_in}");
    let _ = writeln!(out, "cairn_http_bytes_total{{direction=\"out\"}} {bytes_out}");
    out
}
