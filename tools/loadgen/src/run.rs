//! One run from start to end: resolve the target, generate the payloads, prefill, start the
//! connections under the schedule, take CPU times at the edges of the measured window, and
//! build the report.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::Target;
use crate::config::Config;
use crate::cpu::Snapshot;
use crate::payload::Payloads;
use crate::prefill::{prefill, PrefillTally};
use crate::progress::{self, Live};
use crate::report::{Measured, Report};
use crate::schedule::Schedule;
use crate::verify::ExpectedDigests;
use crate::worker::{drive, Plan};

/// Runs the load described by `config` and reports on it. Ends by itself: after the warmup
/// and the duration (or the request budget), plus at most one timeout for requests in flight.
pub async fn run(config: Config) -> Result<Report> {
    config.validate()?;
    let target = Arc::new(Target::resolve(&config.url_template, &config.domain).await?);
    let sizes = config.sizes.clone();
    // Generating up to a gigabyte of payload must not stall a runtime worker.
    let payloads = tokio::task::spawn_blocking(move || Payloads::new(&sizes))
        .await
        .context("generating payloads failed")?;
    let payloads = Arc::new(payloads);
    let prefilled = prefill_if_asked(&config, &target, &payloads).await?;

    // The first snapshot runs `getconf` once; better here than at the edge of the window.
    let _ = Snapshot::take(config.server_pid);
    let start = Instant::now();
    let schedule = schedule_of(&config, start);
    let measure_start = schedule.measure_start();
    let live = Arc::new(Live::default());
    let plan = Arc::new(Plan {
        target,
        payloads,
        expected: config.verify.then(|| Arc::new(ExpectedDigests::default())),
        stamp_nonce: config.unique_bodies.then(stamp_nonce),
        workload: config.workload,
        mix: config.mix,
        keys: config.keys,
        timeout: config.timeout,
        open_loop: config.is_open_loop(),
        schedule,
        live: Arc::clone(&live),
    });

    let server_pid = config.server_pid;
    let cpu_at_start = tokio::spawn(async move {
        tokio::time::sleep_until(measure_start).await;
        Snapshot::take(server_pid)
    });
    let progress = config.progress.then(|| {
        // Past warmup + duration + one timeout nothing is left to show.
        let tick_limit = (config.warmup + config.duration + config.timeout).as_secs() + 2;
        tokio::spawn(progress::show(Arc::clone(&live), start, measure_start, tick_limit))
    });

    let mut workers = JoinSet::new();
    for worker_index in 0..config.concurrency {
        workers.spawn(drive(Arc::clone(&plan), worker_index as u64, config.seed));
    }
    let mut tallies = Vec::with_capacity(config.concurrency);
    while let Some(joined) = workers.join_next().await {
        tallies.push(joined.context("a connection task panicked")?);
    }
    let cpu_at_end = Snapshot::take(server_pid);
    let finished_at = Instant::now();
    let cpu_at_start = cpu_at_start.await.context("the CPU sampling task failed")?;
    if let Some(progress) = progress {
        progress.abort();
        progress::finish();
    }

    let last_counted_done = tallies.iter().filter_map(|t| t.last_counted_done).max();
    let duration_s = last_counted_done
        .unwrap_or(finished_at)
        .saturating_duration_since(measure_start)
        .as_secs_f64();
    let (server_cpu_s, loadgen_cpu_s) = cpu_at_end.since(&cpu_at_start);
    let measured = Measured { duration_s, prefill: prefilled, server_cpu_s, loadgen_cpu_s };
    Ok(Report::new(&config, tallies, measured))
}

async fn prefill_if_asked(
    config: &Config,
    target: &Arc<Target>,
    payloads: &Arc<Payloads>,
) -> Result<PrefillTally> {
    if !config.prefill {
        return Ok(PrefillTally::default());
    }
    let (keys, connections) = (config.keys, config.concurrency);
    prefill(Arc::clone(target), Arc::clone(payloads), keys, connections, config.timeout).await
}

fn schedule_of(config: &Config, start: Instant) -> Schedule {
    match config.rate_per_s {
        Some(rate_per_s) => {
            Schedule::open(start, rate_per_s, config.warmup, config.duration, config.requests)
        }
        None => Schedule::closed(start, config.warmup, config.duration, config.requests),
    }
}

/// Distinguishes this run's stamped bodies from those of earlier runs against the same server.
fn stamp_nonce() -> u64 {
    let since_epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    since_epoch.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(48)
}
