//! COPY and MOVE (RFC 4918 §9.8, §9.9) within this cluster, across domains
//! too. A copied file refers to the same blob (same sha256, one more
//! reference committed in the same batch as the new key record): no byte
//! is copied when this node holds the source; a source held elsewhere is
//! copied here first, like a replica. A MOVE is a COPY then a DELETE of the source; between the
//! two, both names exist (no cross-shard transaction), and the source is
//! only deleted if it is still the version that was copied.

use std::rc::Rc;

use cairn_engine::Meta;
use http::request::Parts;
use http::{Response, StatusCode};

use super::locks;
use super::path::{self, DavPath, Destination};
use super::resource::{self, collection_in_cluster, resolve, settle, Resource, BATCH_LEN};
use super::{conflict, no_parent, not_found, parent_of, preconditions, remove, Target};
use crate::http::ErrorKind;
use crate::http::{ApiError, ResBody};
use cairn_node::listing::key_page;
use cairn_node::shard::{CollectionOp, Shard};
use cairn_node::NodeError;

use crate::http::auth::Need;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Copy,
    Move,
}

pub async fn transfer(
    shard: &Rc<Shard>,
    request: &Parts,
    path: DavPath,
    transfer: Transfer,
) -> Result<Response<ResBody>, ApiError> {
    let (target, overwrite, deep) = transfer_headers(&request.headers, transfer)?;
    let target_domain = Need::Write(&target.domain);
    crate::http::auth::check(shard, request, Some(target_domain))?;
    let source = resolve(&shard.node, &path).await?.ok_or_else(|| not_found(&path))?;
    if target.is_root() {
        return Err(forbidden("a domain's root cannot be overwritten"));
    }
    let target_path = match &source {
        Resource::File { .. } => target.name.clone(),
        Resource::Collection { .. } => target.prefix(),
    };
    if target.domain == path.domain
        && (target_path == source.path()
            || (source.is_collection() && target_path.starts_with(source.path())))
    {
        return Err(forbidden("the destination is the source or inside it"));
    }
    let target_parent = parent_of(&target_path).unwrap_or_default();
    if collection_in_cluster(&shard.node, &target.domain, &target_parent).await?.is_none() {
        return Err(no_parent());
    }
    let existing = resolve(&shard.node, &target).await?;
    let targets = locked_targets(&path, &source, &target, &target_path, &existing, transfer);
    if let Some(refused) = preconditions(&shard.node, request, &path, &targets).await? {
        return Ok(refused);
    }
    if let Some(existing) = &existing {
        if !overwrite {
            return Err(ApiError::new(
                ErrorKind::ExistsNoOverwrite,
                "the destination exists and Overwrite is F",
            ));
        }
        remove(shard, &target.domain, existing).await?;
    }
    // Detached: a client that goes away must not stop a transfer half way.
    let (task_shard, task_source, task_path, task_target) =
        (shard.clone(), source.clone(), path.clone(), target.clone());
    glommio::spawn_local(async move {
        run(
            &task_shard,
            &task_source,
            &task_path.domain,
            &task_target.domain,
            &target_path,
            deep,
            transfer,
        )
        .await
    })
    .detach()
    .await
    .ok_or_else(|| ApiError::from(std::io::Error::other("transfer task was cancelled")))??;
    let status = if existing.is_some() { StatusCode::NO_CONTENT } else { StatusCode::CREATED };
    Ok(Response::builder().status(status).body(ResBody::empty()).expect("valid"))
}

/// The Destination, whether to overwrite, and whether to go deep.
fn transfer_headers(
    headers: &http::HeaderMap,
    transfer: Transfer,
) -> Result<(DavPath, bool, bool), ApiError> {
    let target = match path::destination(headers)? {
        Destination::Here(target) => target,
        Destination::Elsewhere => {
            return Err(ApiError::new(
                ErrorKind::ForeignDestination,
                "the Destination is not a WebDAV resource of this server",
            ));
        }
    };
    let overwrite = match headers.get("overwrite").map(|v| v.as_bytes()) {
        None | Some(b"T") | Some(b"t") => true,
        Some(b"F") | Some(b"f") => false,
        Some(_) => return Err(ApiError::new(ErrorKind::BadOverwrite, "Overwrite is T or F")),
    };
    let deep = match headers.get("depth").map(|v| v.as_bytes()) {
        None => true,
        Some(value) if value.eq_ignore_ascii_case(b"infinity") => true,
        Some(b"0") if transfer == Transfer::Copy => false,
        Some(_) => {
            return Err(ApiError::new(
                ErrorKind::BadDepth,
                "Depth must be infinity (or 0 for COPY)",
            ))
        }
    };
    Ok((target, overwrite, deep))
}

/// The resources whose locks a COPY or MOVE must respect.
fn locked_targets(
    path: &DavPath,
    source: &Resource,
    target: &DavPath,
    target_path: &str,
    existing: &Option<Resource>,
    transfer: Transfer,
) -> Vec<Target> {
    let mut targets = vec![Target::new(&target.domain, target_path, true)];
    targets.extend(Target::parent(&target.domain, target_path));
    if let Some(existing) = existing {
        targets.push(Target::new(&target.domain, existing.path(), true));
    }
    if transfer == Transfer::Move {
        targets.push(Target::new(&path.domain, source.path(), true));
        targets.extend(Target::parent(&path.domain, source.path()));
    }
    targets
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Forbidden, message)
}

async fn run(
    shard: &Rc<Shard>,
    source: &Resource,
    source_domain: &str,
    target_domain: &str,
    target_path: &str,
    deep: bool,
    transfer: Transfer,
) -> Result<(), ApiError> {
    let meta = shard.node.meta.clone();
    match source {
        Resource::File { key, .. } => {
            let copied =
                crate::http::key::copy(shard, source_domain, key, target_domain, target_path, None);
            let version =
                copied.await.map(|record| record.version).map_err(|error| match error.kind {
                    ErrorKind::NotFound => conflict("the source went away during the copy"),
                    _ => error,
                })?;
            if transfer == Transfer::Move {
                let removed = cairn_node::delete::delete_version(
                    shard,
                    source_domain.to_string(),
                    key.clone(),
                    Some(version),
                )
                .await;
                match removed {
                    Ok(()) | Err(NodeError::NotFound | NodeError::Unknown { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
                locks::table().forget(source_domain, key);
            }
        }
        Resource::Collection { prefix, .. } => {
            copy_tree(shard, &meta, source_domain, prefix, target_domain, target_path, deep)
                .await?;
            if transfer == Transfer::Move {
                resource::delete_tree(shard, source_domain, prefix).await?;
                locks::table().forget(source_domain, prefix);
            }
        }
    }
    Ok(())
}

/// Copies a collection: its record and properties, then (when `deep`)
/// every key and collection record under it, a bounded batch at a time.
async fn copy_tree(
    shard: &Rc<Shard>,
    meta: &Meta,
    source_domain: &str,
    source_prefix: &str,
    target_domain: &str,
    target_prefix: &str,
    deep: bool,
) -> Result<(), ApiError> {
    // A lone node keeps folders as records; a cluster as keys (see `mkcol`).
    let alone = shard.node.control.is_alone();
    if alone {
        let props = meta.props(source_domain, source_prefix)?;
        shard
            .collection(target_domain.into(), target_prefix.into(), CollectionOp::Copy(props))
            .await?;
    } else {
        super::mark_collection(shard, target_domain, target_prefix).await?;
    }
    if !deep {
        return Ok(());
    }
    let mut start = source_prefix.to_string();
    loop {
        let page = key_page(&shard.node, source_domain, source_prefix, &start, BATCH_LEN).await?;
        if page.keys.is_empty() && page.next_after.is_none() {
            break;
        }
        let next = page.keys.last().map(|(last, _)| last.clone()).or(page.next_after);
        start = cairn_cluster::start_after(&next.unwrap_or_default());
        let tasks = page
            .keys
            .into_iter()
            .map(|(key, _)| {
                let target_key = format!("{target_prefix}{}", &key[source_prefix.len()..]);
                let shard = shard.clone();
                let (source_domain, target_domain) =
                    (source_domain.to_string(), target_domain.to_string());
                glommio::spawn_local(async move {
                    let copied = crate::http::key::copy(
                        &shard,
                        &source_domain,
                        &key,
                        &target_domain,
                        &target_key,
                        None,
                    );
                    copied.await.map(|_| ())
                })
                .detach()
            })
            .collect();
        settle(tasks).await?;
    }
    if !alone {
        return Ok(());
    }
    let mut start = source_prefix.to_string();
    loop {
        let page = meta.list_collections_from(source_domain, source_prefix, &start, BATCH_LEN)?;
        let Some((last, _)) = page.last() else { break };
        start = format!("{last}\0");
        for (marked, _) in page.into_iter().filter(|(marked, _)| marked != source_prefix) {
            let props = meta.props(source_domain, &marked)?;
            let target = format!("{target_prefix}{}", &marked[source_prefix.len()..]);
            shard.collection(target_domain.into(), target, CollectionOp::Copy(props)).await?;
        }
    }
    Ok(())
}
