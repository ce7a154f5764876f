//! `--prefill`: PUT every key of the key space once before the run, so GETs find their keys and
//! `--verify` has something to check. Untimed; the report only gives its totals.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use tokio::task::JoinSet;

use crate::body::RequestBody;
use crate::client::{Connection, Target};
use crate::config::Op;
use crate::payload::Payloads;

/// A prefill that fails this often is not going to make a useful run: stop it rather than
/// wait out a timeout for every key of the key space.
pub const MAX_PREFILL_ERRORS: u64 = 10;

#[derive(Debug, Default)]
pub struct PrefillTally {
    pub ops: u64,
    pub errors: BTreeMap<String, u64>,
}

/// PUTs keys `0..keys` over up to `connections` connections. Bounded: each key is taken once,
/// and the whole prefill fails after `MAX_PREFILL_ERRORS` errors.
pub async fn prefill(
    target: Arc<Target>,
    payloads: Arc<Payloads>,
    keys: u64,
    connections: usize,
    timeout: Duration,
) -> Result<PrefillTally> {
    let next_key = Arc::new(AtomicU64::new(0));
    let error_count = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    let connections = u64::try_from(connections).unwrap_or(u64::MAX).min(keys);
    for _ in 0..connections {
        let next_key = Arc::clone(&next_key);
        let error_count = Arc::clone(&error_count);
        let payloads = Arc::clone(&payloads);
        let mut connection = Connection::new(Arc::clone(&target));
        tasks.spawn(async move {
            let mut tally = PrefillTally::default();
            loop {
                let key_index = next_key.fetch_add(1, Ordering::Relaxed);
                if key_index >= keys || error_count.load(Ordering::Relaxed) >= MAX_PREFILL_ERRORS {
                    break tally;
                }
                let body = RequestBody::whole(payloads.for_key(key_index).bytes);
                match connection.request(Op::Put, key_index, body, false, timeout).await {
                    Ok(_) => tally.ops += 1,
                    Err(failure) => {
                        error_count.fetch_add(1, Ordering::Relaxed);
                        *tally.errors.entry(failure.label()).or_default() += 1;
                    }
                }
            }
        });
    }
    let mut total = PrefillTally::default();
    while let Some(joined) = tasks.join_next().await {
        let tally = joined.context("a prefill connection panicked")?;
        total.ops += tally.ops;
        for (label, count) in tally.errors {
            *total.errors.entry(label).or_default() += count;
        }
    }
    let errors_total: u64 = total.errors.values().sum();
    ensure!(
        errors_total < MAX_PREFILL_ERRORS,
        "prefill stopped after {errors_total} failed PUTs ({:?}); is the server up at that URL?",
        total.errors
    );
    Ok(total)
}
