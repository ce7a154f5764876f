//! The MogileFS tracker protocol (`--mogile-listen`), served by every
//! shard like the HTTP API: one listening socket per shard on one port,
//! a connection living on the shard that accepted it.
//!
//! This module owns the connection loop (one answer per request line, in
//! order), the commands (`commands`), the changes they make to keys on the
//! keys' shards (`keys`), the cluster-wide definitions they read (`admin`)
//! and the expiry of uploads opened and never closed. The line format
//! itself is `cairn_net::tracker`; the upload's bytes travel over the HTTP
//! API (`PUT /v1/_mogile/{fid}`, `upload`).

mod admin;
mod commands;
mod relay;
pub mod upload;

use std::rc::Rc;
use std::time::Duration;

use cairn_net::mogile_line::{err_line, ok_line, parse_line, Line, LineError, LineReader};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use cairn_node::pending::KeyOp;
use cairn_node::Shard;
use commands::Client;

pub use upload::UPLOAD_PATH_PREFIX;

/// Open tracker connections per shard; more are closed at once.
const CONNECTIONS_PER_SHARD_MAX: usize = 4 * 1024;
/// Pending uploads looked at per expiry pass.
const EXPIRY_BATCH_MAX: usize = 256;
/// Bounds of the time between two expiry passes (a quarter of the TTL).
const EXPIRY_INTERVAL_MIN: Duration = Duration::from_millis(200);
const EXPIRY_INTERVAL_MAX: Duration = Duration::from_secs(60);

pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Accepts tracker connections on this shard's socket, and runs this
/// shard's part of the expiry of unclosed uploads.
pub async fn serve(shard: Rc<Shard>, listener: glommio::net::TcpListener) {
    glommio::spawn_local(expire_uploads(shard.clone())).detach();
    crate::http::server::accept_connections(
        shard,
        listener,
        CONNECTIONS_PER_SHARD_MAX,
        |shard, stream| async move {
            if let Err(error) = serve_connection(&shard, stream).await {
                tracing::debug!(%error, "tracker connection ended with an error");
            }
        },
    )
    .await;
}

/// Answers each request line in order until the client closes. A bad line
/// gets an `ERR` answer and the connection goes on with the next one.
async fn serve_connection(
    shard: &Rc<Shard>,
    mut stream: glommio::net::TcpStream,
) -> std::io::Result<()> {
    let client = Client::new(stream.local_addr()?.ip());
    stream.set_read_timeout(Some(shard.node.config.mogile_idle_timeout))?;
    let mut reader = LineReader::new();
    loop {
        loop {
            let answer = match reader.next_line() {
                Line::Incomplete => break,
                Line::TooLong => err_line("line_too_long", &LineError::TooLong.to_string()),
                Line::Complete(line) => {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let _active = shard.enter_request();
                    match parse_line(line) {
                        Ok(request)
                            if shard.node.config.no_store
                                && relay::goes_to_a_store(&request.command) =>
                        {
                            relay::relay(shard, line, &request).await
                        }
                        Ok(request) => match commands::answer(shard, &client, &request).await {
                            Ok(pairs) => {
                                ok_line(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
                            }
                            Err(refusal) => err_line(refusal.code, &refusal.message),
                        },
                        Err(LineError::NoCommand) => err_line(
                            "unknown_command",
                            commands::standard_message("unknown_command").unwrap_or_default(),
                        ),
                        Err(LineError::TooLong) => {
                            err_line("line_too_long", &LineError::TooLong.to_string())
                        }
                        Err(error) => err_line("bad_params", &error.to_string()),
                    }
                }
            };
            stream.write_all(&answer).await?;
        }
        let read = match stream.read(reader.buffer_mut()).await {
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => return Ok(()),
            other => other?,
        };
        if read == 0 {
            return Ok(());
        }
        reader.filled(read);
    }
}

/// Drops uploads opened longer than `--mogile-upload-ttl` ago and never
/// closed (each on its key's shard), with the bytes they received.
async fn expire_uploads(shard: Rc<Shard>) {
    let ttl = shard.node.config.mogile_upload_ttl;
    let interval = (ttl / 4).clamp(EXPIRY_INTERVAL_MIN, EXPIRY_INTERVAL_MAX);
    let mut cursor = None;
    loop {
        glommio::timer::sleep(interval).await;
        let batch = match shard.node.meta.pending_uploads_after(cursor, EXPIRY_BATCH_MAX) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "cannot list pending tracker uploads");
                continue;
            }
        };
        cursor = if batch.len() < EXPIRY_BATCH_MAX { None } else { batch.last().map(|p| p.0) };
        let opened_before_unix_ms = unix_ms_now().saturating_sub(ttl.as_millis() as u64);
        for (fid, pending) in batch {
            let mine = shard.key_shard(&pending.domain, &pending.key) == shard.id;
            if !mine || pending.opened_unix_ms >= opened_before_unix_ms {
                continue;
            }
            let op = KeyOp::Expire {
                fid,
                domain: pending.domain,
                key: pending.key,
                opened_before_unix_ms,
            };
            match shard.key_op(op).await {
                Ok(_) => tracing::info!(fid, "expired a tracker upload never closed"),
                Err(error) => tracing::warn!(fid, %error, "cannot expire a tracker upload"),
            }
        }
    }
}
