//! The run configuration (what to send, how hard, for how long) and the parsers that turn
//! command-line text (sizes, size distributions, op mixes, durations) into it.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};

pub const DEFAULT_URL_TEMPLATE: &str = "http://127.0.0.1:7500/v1/{domain}/{key}";

/// Bounds that keep a typo from allocating the machine away or opening a socket storm.
pub const MAX_CONCURRENCY: usize = 10_000;
pub const MAX_SIZE_BYTES: u64 = 1 << 30;
pub const MAX_KEYS: u64 = 1_000_000_000;
pub const MAX_RATE_PER_S: f64 = 10_000_000.0;
/// More distinct sizes would mean more pre-generated buffers than memory comfortably holds.
pub const MAX_SIZE_CLASSES: usize = 16;

/// The HTTP operation of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
    Delete,
}

/// What the run sends: one operation for every request, or a weighted mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    Put,
    Get,
    Mixed,
    Delete,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::Mixed => "mixed",
            Workload::Delete => "delete",
        }
    }
}

/// Relative weights of the operations in a `mixed` run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    pub put: u32,
    pub get: u32,
    pub delete: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix { put: 1, get: 9, delete: 0 }
    }
}

impl Mix {
    /// Parses `put=1,get=9` (also `delete=N`); operations not named get weight 0.
    pub fn parse(text: &str) -> Result<Mix> {
        let mut mix = Mix { put: 0, get: 0, delete: 0 };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .with_context(|| format!("mix entry `{part}` is not op=weight"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .with_context(|| format!("mix weight `{weight}` is not a whole number"))?;
            match name.trim().to_ascii_lowercase().as_str() {
                "put" => mix.put = weight,
                "get" => mix.get = weight,
                "delete" => mix.delete = weight,
                other => bail!("mix names unknown op `{other}` (use put, get, delete)"),
            }
        }
        ensure!(mix.total() > 0, "mix `{text}` has no positive weight");
        Ok(mix)
    }

    fn total(&self) -> u64 {
        u64::from(self.put) + u64::from(self.get) + u64::from(self.delete)
    }

    /// Picks an operation from a uniformly random `r`.
    pub fn pick(&self, r: u64) -> Op {
        let point = scale(r, self.total());
        if point < u64::from(self.put) {
            Op::Put
        } else if point < u64::from(self.put) + u64::from(self.get) {
            Op::Get
        } else {
            Op::Delete
        }
    }

    pub fn describe(&self) -> String {
        format!("put={},get={},delete={}", self.put, self.get, self.delete)
    }
}

/// Payload sizes: one size, or several with weights. Which size a key gets is a fixed function
/// of the key (see `payload`), so the weights hold across a uniformly drawn key space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeDist {
    classes: Vec<SizeClass>,
    spec: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeClass {
    pub size_bytes: u64,
    pub weight: u32,
}

impl Default for SizeDist {
    fn default() -> Self {
        SizeDist::parse("4k").expect("the default size parses")
    }
}

impl SizeDist {
    /// Parses `4k`, `300k`, `1m`, `123` (bytes) or `4k:80,1m:20` (size:weight, weight 1 if
    /// left out). `k`, `m` and `g` are binary (1k = 1024 bytes).
    pub fn parse(text: &str) -> Result<SizeDist> {
        let mut classes: Vec<SizeClass> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (size, weight) = match part.split_once(':') {
                Some((size, weight)) => {
                    let weight: u32 = weight
                        .trim()
                        .parse()
                        .with_context(|| format!("size weight `{weight}` is not a number"))?;
                    (size, weight)
                }
                None => (part, 1),
            };
            let size_bytes = parse_size_bytes(size)?;
            match classes.iter_mut().find(|c| c.size_bytes == size_bytes) {
                Some(class) => class.weight = class.weight.saturating_add(weight),
                None => classes.push(SizeClass { size_bytes, weight }),
            }
        }
        ensure!(!classes.is_empty(), "size `{text}` names no size");
        ensure!(
            classes.len() <= MAX_SIZE_CLASSES,
            "size `{text}` has more than {MAX_SIZE_CLASSES} distinct sizes"
        );
        ensure!(classes.iter().any(|c| c.weight > 0), "size `{text}` has no positive weight");
        classes.retain(|c| c.weight > 0);
        Ok(SizeDist { classes, spec: text.trim().to_string() })
    }

    pub fn classes(&self) -> &[SizeClass] {
        &self.classes
    }

    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Picks a size from a uniformly random `r`.
    pub fn pick(&self, r: u64) -> u64 {
        let total: u64 = self.classes.iter().map(|c| u64::from(c.weight)).sum();
        let mut point = scale(r, total);
        for class in &self.classes {
            let weight = u64::from(class.weight);
            if point < weight {
                return class.size_bytes;
            }
            point -= weight;
        }
        self.classes.last().expect("a parsed distribution has a class").size_bytes
    }

    /// The weighted mean size, which is the exact size for a single class.
    pub fn mean_bytes(&self) -> u64 {
        let total: u128 = self.classes.iter().map(|c| u128::from(c.weight)).sum();
        let sum: u128 =
            self.classes.iter().map(|c| u128::from(c.size_bytes) * u128::from(c.weight)).sum();
        u64::try_from(sum / total.max(1)).unwrap_or(u64::MAX)
    }
}

/// Maps a uniform `r` onto `0..n` without the bias of `%`.
fn scale(r: u64, n: u64) -> u64 {
    ((u128::from(r) * u128::from(n)) >> 64) as u64
}

/// Parses `4096`, `4k`, `4kb`, `4kib`, `1.5m`, `1g` into bytes (binary multiples).
pub fn parse_size_bytes(text: &str) -> Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let multiplier: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => bail!("size unit `{other}` in `{text}` is not one of b, k, m, g"),
    };
    let number: f64 = number.parse().with_context(|| format!("size `{text}` has no number"))?;
    let size_bytes = (number * multiplier as f64).round();
    ensure!(
        size_bytes.is_finite() && size_bytes >= 0.0 && size_bytes <= MAX_SIZE_BYTES as f64,
        "size `{text}` is outside 0..={MAX_SIZE_BYTES} bytes"
    );
    Ok(size_bytes as u64)
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: f64 = number.parse().with_context(|| format!("duration `{text}` has no number"))?;
    let unit_s = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "us" => 0.000_001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => bail!("duration unit `{other}` in `{text}` is not one of us, ms, s, m, h"),
    };
    Duration::try_from_secs_f64(number * unit_s).with_context(|| format!("duration `{text}`"))
}

/// Everything one run needs. `Default` gives the command line's defaults.
#[derive(Clone, Debug)]
pub struct Config {
    pub workload: Workload,
    pub mix: Mix,
    pub sizes: SizeDist,
    /// Keys are `k000000` up to `keys - 1`.
    pub keys: u64,
    /// Closed loop: connections, each with one request in flight. Open loop: the most
    /// connections in use at once.
    pub concurrency: usize,
    /// `Some` selects the open loop: requests at fixed intended times, this many per second.
    pub rate_per_s: Option<f64>,
    /// The measured window, after the warmup.
    pub duration: Duration,
    pub warmup: Duration,
    /// Stop after this many counted requests (the duration still caps the run).
    pub requests: Option<u64>,
    /// `{domain}` and `{key}` are substituted; only `http://` is supported.
    pub url_template: String,
    pub domain: String,
    /// PUT every key once before the run so GETs find something.
    pub prefill: bool,
    /// Check GET bodies against the deterministic payload for their key.
    pub verify: bool,
    /// Stamp every PUT body so no two are equal (defeats deduplication; excludes `verify`).
    pub unique_bodies: bool,
    /// Per request; in the open loop measured from the intended send time.
    pub timeout: Duration,
    /// Report this process's CPU time over the measured window.
    pub server_pid: Option<u32>,
    /// A one-line status on stderr every second.
    pub progress: bool,
    /// Seeds key and op choices; payloads do not depend on it, so verification works across
    /// runs with different seeds.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workload: Workload::Put,
            mix: Mix::default(),
            sizes: SizeDist::default(),
            keys: 1000,
            concurrency: 1,
            rate_per_s: None,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            requests: None,
            url_template: DEFAULT_URL_TEMPLATE.to_string(),
            domain: "bench".to_string(),
            prefill: false,
            verify: false,
            unique_bodies: false,
            timeout: Duration::from_secs(30),
            server_pid: None,
            progress: false,
            seed: 1,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            !(self.verify && self.unique_bodies),
            "--verify needs the deterministic payloads that --unique-bodies replaces"
        );
        ensure!(
            (1..=MAX_CONCURRENCY).contains(&self.concurrency),
            "concurrency must be 1..={MAX_CONCURRENCY}"
        );
        ensure!((1..=MAX_KEYS).contains(&self.keys), "keys must be 1..={MAX_KEYS}");
        if let Some(rate) = self.rate_per_s {
            ensure!(
                rate.is_finite() && rate > 0.0 && rate <= MAX_RATE_PER_S,
                "rate must be above 0 and at most {MAX_RATE_PER_S} per second"
            );
        }
        ensure!(!self.duration.is_zero(), "duration must be above zero");
        ensure!(!self.timeout.is_zero(), "timeout must be above zero");
        ensure!(self.requests != Some(0), "requests must be above zero");
        Ok(())
    }

    pub fn is_open_loop(&self) -> bool {
        self.rate_per_s.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary_multiples() {
        assert_eq!(parse_size_bytes("1k").unwrap(), 1024);
        assert_eq!(parse_size_bytes("4K").unwrap(), 4096);
        assert_eq!(parse_size_bytes("300k").unwrap(), 300 * 1024);
        assert_eq!(parse_size_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size_bytes("1.5kib").unwrap(), 1536);
        assert_eq!(parse_size_bytes("123").unwrap(), 123);
        assert!(parse_size_bytes("2x").is_err());
        assert!(parse_size_bytes("k").is_err());
        assert!(parse_size_bytes("4g").is_err());
    }

    #[test]
    fn size_distribution_parses_weights() {
        let dist = SizeDist::parse("4k:80,1m:20").unwrap();
        let sizes: Vec<_> = dist.classes().iter().map(|c| (c.size_bytes, c.weight)).collect();
        assert_eq!(sizes, vec![(4096, 80), (1 << 20, 20)]);
        assert_eq!(dist.mean_bytes(), (4096 * 80 + (1 << 20) * 20) / 100);
        assert_eq!(dist.pick(0), 4096);
        assert_eq!(dist.pick(u64::MAX), 1 << 20);
        assert_eq!(SizeDist::parse("64k").unwrap().mean_bytes(), 65536);
        assert!(SizeDist::parse("4k:0").is_err());
        assert!(SizeDist::parse("").is_err());
    }

    #[test]
    fn mix_parses_and_picks_by_weight() {
        let mix = Mix::parse("put=1,get=9").unwrap();
        assert_eq!(mix, Mix { put: 1, get: 9, delete: 0 });
        assert_eq!(mix.pick(0), Op::Put);
        assert_eq!(mix.pick(u64::MAX), Op::Get);
        assert_eq!(Mix::parse("delete=1").unwrap().pick(12345), Op::Delete);
        assert!(Mix::parse("post=1").is_err());
        assert!(Mix::parse("put=0").is_err());
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
        let bad = Config { concurrency: 0, ..Config::default() };
        assert!(bad.validate().is_err());
        let bad = Config { rate_per_s: Some(0.0), ..Config::default() };
        assert!(bad.validate().is_err());
    }
}
