//! The proxy role over the tracker protocol (docs/design.md §1): a node
//! started with `--no-store` keeps no blobs, so the commands that put bytes
//! or a key's record on a node (`create_open`, `create_close`, `rename`,
//! `updateclass`) are sent on, line for line, to a store's tracker port,
//! and the store's answer line is the answer. Every other command is
//! answered here, from the cluster. A store is tried after another only
//! when it does not take the connection, so no command runs twice.

use std::rc::Rc;
use std::time::Duration;

use cairn_net::mogile_line::{err_line, Line, LineReader, Request};
use cairn_node::Shard;
use cairn_raft::{Member, MemberState, NodeId};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::admin;

/// A store that does not take the connection in this time is skipped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A store that does not answer a command in this time fails it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a proxy sends `command` on to a store.
pub fn goes_to_a_store(command: &str) -> bool {
    matches!(command, "create_open" | "create_close" | "rename" | "updateclass")
}

/// The store's answer to `line` (the request as the client sent it).
pub async fn relay(shard: &Rc<Shard>, line: &[u8], request: &Request) -> Vec<u8> {
    let stores = candidates(shard, request).await;
    if stores.is_empty() {
        return match request.command.as_str() {
            "create_close" => err_line("invalid_destdev", "no store has this device id"),
            _ => err_line("no_devices", "no store is alive to take this"),
        };
    }
    let mut reason = String::new();
    for (_, store) in stores {
        match TcpStream::connect_timeout(store.mogile.as_str(), CONNECT_TIMEOUT).await {
            Ok(stream) => return ask(stream, &store.mogile, line).await,
            Err(error) => reason = format!("{}: {error}", store.mogile),
        }
    }
    err_line("no_devices", &format!("no store could be reached ({reason})"))
}

/// The stores that may answer `request`, best first.
async fn candidates(shard: &Rc<Shard>, request: &Request) -> Vec<(NodeId, Member)> {
    let control = &shard.node.control;
    let domain = request.nonempty("domain").unwrap_or_default();
    let stores = |key: &str| -> Vec<(NodeId, Member)> {
        control.stores_for(domain, key).into_iter().filter(|(_, m)| !m.mogile.is_empty()).collect()
    };
    match request.command.as_str() {
        // The upload is open at the store whose device was handed out.
        "create_close" => {
            let devid = request.nonempty("devid").and_then(|d| d.parse::<u64>().ok());
            control.read(|s| {
                s.members()
                    .iter()
                    .filter(|(id, r)| !r.member.no_store && Some(admin::host_id(**id)) == devid)
                    .map(|(id, r)| (*id, r.member.clone()))
                    .collect()
            })
        }
        "rename" | "updateclass" => {
            let key = request.nonempty("from_key").or(request.nonempty("key")).unwrap_or_default();
            // A holder changes the key without copying it first.
            let mut ordered = holders(shard, domain, key).await;
            for store in stores(key) {
                if !ordered.iter().any(|(id, _)| *id == store.0) {
                    ordered.push(store);
                }
            }
            ordered
        }
        _ => stores(request.nonempty("key").unwrap_or_default()),
    }
}

/// The alive stores the key's homes name as holders.
async fn holders(shard: &Rc<Shard>, domain: &str, key: &str) -> Vec<(NodeId, Member)> {
    let control = &shard.node.control;
    let Ok(Some(entry)) = control.lookup(domain, key).await else { return Vec::new() };
    control.read(|s| {
        entry
            .holders
            .iter()
            .filter_map(|id| {
                let record = s.member(*id)?;
                let usable = record.state == MemberState::Alive
                    && !record.member.no_store
                    && !record.member.mogile.is_empty();
                usable.then(|| (*id, record.member.clone()))
            })
            .collect()
    })
}

async fn ask(mut stream: TcpStream, address: &str, line: &[u8]) -> Vec<u8> {
    let exchange = async {
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        let mut request = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
        request.extend_from_slice(b"\r\n");
        stream.write_all(&request).await?;
        let mut reader = LineReader::new();
        loop {
            if let Line::Complete(answer) = reader.next_line() {
                let mut answer = answer.strip_suffix(b"\r").unwrap_or(answer).to_vec();
                answer.extend_from_slice(b"\r\n");
                return Ok::<_, std::io::Error>(answer);
            }
            let read = stream.read(reader.buffer_mut()).await?;
            if read == 0 {
                return Err(std::io::Error::other("the store closed the connection"));
            }
            reader.filled(read);
        }
    };
    match exchange.await {
        Ok(answer) => answer,
        Err(error) => err_line("failure", &format!("the store at {address} failed: {error}")),
    }
}
