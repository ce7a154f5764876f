//! `GET /v1/status` (JSON) and `GET /metrics` (Prometheus text).

use std::sync::atomic::Ordering;

use cairn_engine::KeyState;
use http::{header, Response};
use serde_json::json;

use crate::http::ApiError;
use crate::http::ResBody;
use cairn_node::metrics::render_prometheus;
use cairn_node::Shard;

/// Blobs waiting for deletion counted at most, so status stays cheap.
const TO_DELETE_COUNT_MAX: usize = 100_000;

pub async fn status(shard: &Shard) -> Result<Response<ResBody>, ApiError> {
    let node = &shard.node;
    let data = node.data.clone();
    let disk = glommio::executor().spawn_blocking(move || data.disk_usage_blocking()).await?;
    let mut keys = serde_json::Map::new();
    for state in KeyState::ALL {
        let (count, bytes) = node.stats.get(state);
        keys.insert(state.as_str().into(), json!({ "keys": count, "bytes": bytes }));
    }
    // Up to 100k records to scan: off the reactor.
    let meta = node.meta.clone();
    let to_delete = glommio::executor()
        .spawn_blocking(move || meta.gc_candidates(TO_DELETE_COUNT_MAX).map(|c| c.len()))
        .await?;
    keys.insert(KeyState::ToDelete.as_str().into(), json!({ "blobs": to_delete }));
    let shards: Vec<_> = node
        .shard_metrics
        .iter()
        .enumerate()
        .map(|(id, metrics)| {
            json!({
                "id": id,
                "requests": metrics.requests_total(),
                "bytes_in": metrics.bytes_in.load(Ordering::Relaxed),
                "bytes_out": metrics.bytes_out.load(Ordering::Relaxed),
                "cache_bytes": metrics.cache_bytes.load(Ordering::Relaxed),
            })
        })
        .collect();
    let body = json!({
        "node_id": node.node_id_hex(),
        "version": env!("CARGO_PKG_VERSION"),
        "disks": [{
            "path": node.data.root().display().to_string(),
            "total_bytes": disk.total_bytes,
            "free_bytes": disk.free_bytes,
        }],
        "keys": keys,
        "corrupt_reads": node.stats.corrupt_reads.load(Ordering::Relaxed),
        "quarantined": node.stats.quarantined.load(Ordering::Relaxed),
        "scrub": {
            "passes": node.stats.scrub_passes.load(Ordering::Relaxed),
            "blobs": node.stats.scrub_blobs.load(Ordering::Relaxed),
            "bytes": node.stats.scrub_bytes.load(Ordering::Relaxed),
            "damaged": node.stats.scrub_damaged.load(Ordering::Relaxed),
        },
        "cluster": {
            "leader": node.control.leader().map(cairn_cluster::node_id_text),
            "term": node.control.term(),
        },
        "shards": shards,
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(ResBody::json(&body))
        .expect("valid"))
}

pub fn metrics(shard: &Shard) -> Response<ResBody> {
    let text = render_prometheus(&shard.node.stats, &shard.node.shard_metrics, &shard.node.clock);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(ResBody::bytes(text))
        .expect("valid")
}
