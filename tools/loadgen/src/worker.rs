//! One load-generating connection: it takes slots from the schedule, picks an op and a key,
//! performs the request within its deadline, and tallies the outcome in its own histogram and
//! counters. Tallies are merged once at the end, so connections share nothing on the hot path
//! but the schedule's counter and the progress counters.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::body::RequestBody;
use crate::client::{Connection, Failure, Target};
use crate::config::{Mix, Op, Workload};
use crate::payload::Payloads;
use crate::progress::Live;
use crate::rng::Rng;
use crate::schedule::{Schedule, Slot};
use crate::verify::{ExpectedDigests, Sha256Digest};

/// Latencies above an hour saturate; the per-request timeout keeps real ones far below.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Without a pause a refused connect would spin the loop as fast as the kernel says no.
const CONNECT_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// What every connection of a run shares.
pub struct Plan {
    pub target: Arc<Target>,
    pub payloads: Arc<Payloads>,
    pub expected: Option<Arc<ExpectedDigests>>,
    /// `Some` when every PUT body gets a unique stamp.
    pub stamp_nonce: Option<u64>,
    pub workload: Workload,
    pub mix: Mix,
    pub keys: u64,
    pub timeout: Duration,
    pub open_loop: bool,
    pub schedule: Schedule,
    pub live: Arc<Live>,
}

/// One connection's results.
pub struct Tally {
    /// Successful counted requests only: a refused connect is not a fast response.
    pub latency_us: Histogram<u64>,
    /// Counted requests, successful or not.
    pub ops: u64,
    pub ok_ops: u64,
    /// Payload bytes of successful counted requests: sent for PUT, received for GET.
    pub bytes: u64,
    pub errors: BTreeMap<String, u64>,
    pub warmup_ops: u64,
    pub last_counted_done: Option<Instant>,
}

pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds are valid")
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_us: new_latency_histogram(),
            ops: 0,
            ok_ops: 0,
            bytes: 0,
            errors: BTreeMap::new(),
            warmup_ops: 0,
            last_counted_done: None,
        }
    }
}

/// Runs one connection until the schedule says stop. The loop is bounded by the schedule: the
/// closed loop stops at the end of the window or the request budget, the open loop after its
/// fixed number of slots.
pub async fn drive(plan: Arc<Plan>, worker_index: u64, seed: u64) -> Tally {
    let mut connection = Connection::new(Arc::clone(&plan.target));
    let mut rng = Rng::new(seed ^ worker_index.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut tally = Tally::new();
    loop {
        let (intended, counted) = match plan.schedule.next(Instant::now()) {
            Slot::Warmup { intended } => (intended, false),
            Slot::Counted { intended } => (intended, true),
            Slot::Stop => break,
        };
        if plan.open_loop {
            tokio::time::sleep_until(intended).await;
        }
        let op = match plan.workload {
            Workload::Put => Op::Put,
            Workload::Get => Op::Get,
            Workload::Delete => Op::Delete,
            Workload::Mixed => plan.mix.pick(rng.next_u64()),
        };
        let key_index = rng.below(plan.keys);
        // In the open loop the deadline, like the latency, runs from the intended send time:
        // a request already late by the whole timeout is a timeout without being sent.
        let budget =
            plan.timeout.saturating_sub(Instant::now().saturating_duration_since(intended));
        let outcome = if budget.is_zero() {
            Err(Failure::Timeout)
        } else {
            perform(&plan, &mut connection, op, key_index, budget).await
        };
        // The response is complete here; checking it is loadgen's work, not the server's.
        let done = Instant::now();
        let outcome = match outcome {
            Ok(moved) => check(&plan, key_index, moved).await,
            Err(failure) => Err(failure),
        };
        plan.live.finished.fetch_add(1, Ordering::Relaxed);
        if counted {
            tally.ops += 1;
            tally.last_counted_done = Some(done);
            plan.live.counted.fetch_add(1, Ordering::Relaxed);
        } else {
            tally.warmup_ops += 1;
        }
        match outcome {
            Ok(bytes) if counted => {
                let latency_us = u64::try_from(done.duration_since(intended).as_micros())
                    .unwrap_or(MAX_LATENCY_US);
                tally.latency_us.saturating_record(latency_us.max(1));
                tally.ok_ops += 1;
                tally.bytes += bytes;
            }
            Ok(_) => {}
            Err(failure) => {
                if counted {
                    *tally.errors.entry(failure.label()).or_default() += 1;
                    plan.live.errors.fetch_add(1, Ordering::Relaxed);
                }
                if failure == Failure::Connect {
                    tokio::time::sleep(CONNECT_RETRY_PAUSE).await;
                }
            }
        }
    }
    tally
}

/// A response that arrived whole.
struct Moved {
    /// Payload bytes: sent for PUT, received for GET.
    bytes: u64,
    /// SHA-256 of a GET body, when verifying.
    digest: Option<Sha256Digest>,
}

/// One request within its deadline.
async fn perform(
    plan: &Plan,
    connection: &mut Connection,
    op: Op,
    key_index: u64,
    budget: Duration,
) -> Result<Moved, Failure> {
    let (body, size_bytes) = match op {
        Op::Put => {
            let payload = plan.payloads.for_key(key_index);
            let body = match plan.stamp_nonce {
                Some(nonce) => RequestBody::stamped(payload.bytes, nonce),
                None => RequestBody::whole(payload.bytes),
            };
            (body, payload.size_bytes)
        }
        Op::Get | Op::Delete => (RequestBody::whole(Bytes::new()), 0),
    };
    let hash_body = op == Op::Get && plan.expected.is_some();
    let received = connection.request(op, key_index, body, hash_body, budget).await?;
    let bytes = if op == Op::Get { received.body_bytes } else { size_bytes };
    Ok(Moved { bytes, digest: received.digest })
}

/// With `--verify`, a GET body must hash like the payload its key was PUT with.
async fn check(plan: &Plan, key_index: u64, moved: Moved) -> Result<u64, Failure> {
    if let (Some(expected), Some(digest)) = (&plan.expected, moved.digest) {
        let payload = plan.payloads.for_key(key_index);
        if expected.for_payload(&payload).await != digest {
            return Err(Failure::Verify);
        }
    }
    Ok(moved.bytes)
}
