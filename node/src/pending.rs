//! Pending uploads (opened, filled, then closed into a key: the MogileFS
//! protocol's `create_open` → PUT → `create_close`) and the renames and
//! class changes of one key, run on the key's shard under the key's turn
//! (like a PUT's commit), so that a pending upload's bytes, its close, its
//! expiry, a rename and a class change of the same key never interleave.
//!
//! Each change reads what it depends on after taking the turn and commits
//! one batch; a refusal changes nothing and says why as a [`KeyOpRefused`].

use cairn_engine::meta::Batch;
use cairn_engine::{BlobRecord, Digest, KeyRecord, PendingUpload, StoredUpload, Written};

use crate::error::NodeError;
use crate::shard::{state_for, PutCommit, Shard};

pub enum KeyOp {
    /// A PUT to a pending upload's path finished: its blob is placed (and
    /// pinned by the caller until this answers).
    Attach { fid: u64, domain: String, key: String, written: Written, inline: Option<Vec<u8>> },
    /// `create_close`: the upload's bytes become the key's new version.
    Close {
        fid: u64,
        domain: String,
        key: String,
        /// The size the client says it sent, checked when given.
        size_bytes: Option<u64>,
        /// The SHA-256 the client says it sent, checked when given.
        sha256: Option<Digest>,
        replicas: u32,
    },
    /// Drops a pending upload and the reference its bytes held, if it was
    /// opened before `opened_before_unix_ms` (`u64::MAX`: whenever it was).
    Expire { fid: u64, domain: String, key: String, opened_before_unix_ms: u64 },
    /// First half of `rename`: the version becomes `key`'s, unless `key` exists.
    RenameIn { domain: String, key: String, record: KeyRecord },
    /// Second half of `rename`: `key` goes, if it still holds version `fid`.
    RenameOut { domain: String, key: String, fid: u64 },
    /// `updateclass`.
    UpdateClass { domain: String, key: String, class: String, replicas: u32 },
}

impl KeyOp {
    /// The key the change is about (it decides the shard).
    pub fn target(&self) -> (&str, &str) {
        match self {
            KeyOp::Attach { domain, key, .. }
            | KeyOp::Close { domain, key, .. }
            | KeyOp::Expire { domain, key, .. }
            | KeyOp::RenameIn { domain, key, .. }
            | KeyOp::RenameOut { domain, key, .. }
            | KeyOp::UpdateClass { domain, key, .. } => (domain, key),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum KeyOpDone {
    Done,
    /// Nothing changed, for this reason.
    Refused(KeyOpRefused),
}

/// Why a change of a pending upload or a key was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyOpRefused {
    #[error("fid {fid} is not an open upload")]
    UploadNotOpen { fid: u64 },
    #[error("fid {fid} is open for another key")]
    UploadOfOtherKey { fid: u64 },
    /// `create_close` of an upload that received no bytes.
    #[error("Expected: {}; actual: 0 (missing); fid: {fid}", .expected_bytes.map_or(-1, |n| n as i64))]
    NothingReceived { fid: u64, expected_bytes: Option<u64> },
    #[error("Expected: {expected_bytes}; actual: {actual_bytes}; fid: {fid}")]
    SizeMismatch { fid: u64, expected_bytes: u64, actual_bytes: u64 },
    #[error("Expected: SHA-256:{expected}; actual: SHA-256:{actual}")]
    ChecksumMismatch { expected: Digest, actual: Digest },
    /// A rename's target exists.
    #[error("Target key name already exists; can't overwrite.")]
    KeyExists,
    #[error("no such key")]
    NoSuchKey,
}

fn refused(refusal: KeyOpRefused) -> Result<KeyOpDone, NodeError> {
    Ok(KeyOpDone::Refused(refusal))
}

/// Records a new pending upload `fid` (`create_open`); it has no bytes yet.
pub async fn open(shard: &Shard, fid: u64, pending: &PendingUpload) -> Result<(), NodeError> {
    let mut batch = Batch::default();
    batch.put_pending_upload(fid, pending);
    shard.node.meta.commit(batch).await?;
    Ok(())
}

/// Runs `op` under its key's turn; on the key's shard.
pub async fn run(shard: &Shard, op: KeyOp) -> Result<KeyOpDone, NodeError> {
    let (domain, key) = op.target();
    let _turn = shard.key_turn(domain, key).await;
    match op {
        KeyOp::Attach { fid, domain, key, written, inline } => {
            attach(shard, fid, domain, key, written, inline).await
        }
        KeyOp::Close { fid, domain, key, size_bytes, sha256, replicas } => {
            close(shard, fid, domain, key, size_bytes, sha256, replicas).await
        }
        KeyOp::Expire { fid, domain, key, opened_before_unix_ms } => {
            expire(shard, fid, domain, key, opened_before_unix_ms).await
        }
        KeyOp::RenameIn { domain, key, record } => rename_in(shard, domain, key, record).await,
        KeyOp::RenameOut { domain, key, fid } => rename_out(shard, domain, key, fid).await,
        KeyOp::UpdateClass { domain, key, class, replicas } => {
            update_class(shard, domain, key, class, replicas).await
        }
    }
}

/// A PUT to a pending upload's path finished: its blob becomes the upload's.
async fn attach(
    shard: &Shard,
    fid: u64,
    domain: String,
    key: String,
    written: Written,
    inline: Option<Vec<u8>>,
) -> Result<KeyOpDone, NodeError> {
    let meta = &shard.node.meta;
    let Some(mut pending) = meta.pending_upload(fid)? else {
        return refused(KeyOpRefused::UploadNotOpen { fid });
    };
    if pending.domain != domain || pending.key != key {
        return refused(KeyOpRefused::UploadOfOtherKey { fid });
    }
    let sha256 = written.sha256;
    let mut batch = Batch::default();
    let record =
        BlobRecord { size_bytes: written.size_bytes, block_crcs: written.block_crcs, inline };
    batch.put_blob(&sha256, &record);
    batch.add_upload_ref(&sha256, fid);
    if let Some(previous) = pending.stored {
        if previous.sha256 != sha256 {
            batch.remove_upload_ref(&previous.sha256, fid);
            batch.add_gc_candidate(&previous.sha256);
        }
    }
    pending.stored = Some(StoredUpload { sha256, size_bytes: written.size_bytes });
    batch.put_pending_upload(fid, &pending);
    meta.commit(batch).await?;
    Ok(KeyOpDone::Done)
}

/// `create_close`: the upload's bytes become the key's new version.
async fn close(
    shard: &Shard,
    fid: u64,
    domain: String,
    key: String,
    size_bytes: Option<u64>,
    sha256: Option<Digest>,
    replicas: u32,
) -> Result<KeyOpDone, NodeError> {
    let meta = &shard.node.meta;
    let Some(pending) = meta.pending_upload(fid)? else {
        return refused(KeyOpRefused::UploadNotOpen { fid });
    };
    if pending.domain != domain || pending.key != key {
        return refused(KeyOpRefused::UploadOfOtherKey { fid });
    }
    let Some(stored) = pending.stored else {
        return refused(KeyOpRefused::NothingReceived { fid, expected_bytes: size_bytes });
    };
    if let Some(expected) = size_bytes {
        if expected != stored.size_bytes {
            let actual_bytes = stored.size_bytes;
            return refused(KeyOpRefused::SizeMismatch {
                fid,
                expected_bytes: expected,
                actual_bytes,
            });
        }
    }
    if let Some(expected) = sha256 {
        if expected != stored.sha256 {
            let actual = stored.sha256;
            return refused(KeyOpRefused::ChecksumMismatch { expected, actual });
        }
    }
    let blob = meta.blob(&stored.sha256)?.ok_or_else(|| {
        NodeError::Io(std::io::Error::other("a pending upload's blob record is missing"))
    })?;
    let put = PutCommit {
        domain,
        key,
        upload_id: None,
        written: Written {
            sha256: stored.sha256,
            size_bytes: stored.size_bytes,
            block_crcs: blob.block_crcs,
        },
        inline: blob.inline,
        class: pending.class,
        replicas,
        content_type: String::new(),
        headers: String::new(),
        fid: Some(fid),
        closes_upload: Some(fid),
        version: None,
        floor: None,
    };
    shard.commit_put_in_turn(put).await?;
    Ok(KeyOpDone::Done)
}

/// Drops a pending upload opened before the cutoff.
async fn expire(
    shard: &Shard,
    fid: u64,
    domain: String,
    key: String,
    opened_before_unix_ms: u64,
) -> Result<KeyOpDone, NodeError> {
    let meta = &shard.node.meta;
    let Some(pending) = meta.pending_upload(fid)? else {
        return Ok(KeyOpDone::Done);
    };
    if pending.domain != domain
        || pending.key != key
        || pending.opened_unix_ms >= opened_before_unix_ms
    {
        return Ok(KeyOpDone::Done);
    }
    let mut batch = Batch::default();
    forget_pending(&mut batch, fid, &pending);
    meta.commit(batch).await?;
    Ok(KeyOpDone::Done)
}

/// First half of a rename: the version becomes `key`'s.
async fn rename_in(
    shard: &Shard,
    domain: String,
    key: String,
    record: KeyRecord,
) -> Result<KeyOpDone, NodeError> {
    let meta = &shard.node.meta;
    if meta.key(&domain, &key)?.is_some() {
        return refused(KeyOpRefused::KeyExists);
    }
    // A new version of the new name (keeping the fid), so that it passes
    // whatever the homes knew of that name before.
    let version = shard.node.clock.next_after(Some(record.version));
    let record = KeyRecord { version, ..record };
    let mut batch = Batch::default();
    batch.put_key_to_announce(&domain, &key, &record);
    batch.add_ref(&record.sha256, &domain, &key);
    batch.put_fid(record.fid, &domain, &key);
    meta.commit(batch).await?;
    shard.node.stats.replace(None, Some(&record));
    shard.node.control.announce_local(&domain, &key);
    Ok(KeyOpDone::Done)
}

/// Second half of a rename: `key` goes, if it still holds version `fid`.
async fn rename_out(
    shard: &Shard,
    domain: String,
    key: String,
    fid: u64,
) -> Result<KeyOpDone, NodeError> {
    let meta = &shard.node.meta;
    let Some(old) = meta.key(&domain, &key)? else {
        return Ok(KeyOpDone::Done);
    };
    if old.fid != fid {
        // Replaced since the rename read it: the new version stays.
        return Ok(KeyOpDone::Done);
    }
    let mut batch = Batch::default();
    batch.delete_key(&domain, &key);
    batch.remove_ref(&old.sha256, &domain, &key);
    batch.add_gc_candidate(&old.sha256);
    shard.forget_fid(&mut batch, fid, &domain, &key)?;
    meta.commit(batch).await?;
    shard.node.stats.replace(Some(&old), None);
    // The old name is deleted everywhere, like a DELETE of it.
    let tombstone = shard.node.clock.next_after(Some(old.version));
    if shard.node.control.delete_everywhere(&domain, &key, &old.class, tombstone).await == 0 {
        tracing::warn!(%domain, %key, "no home took the rename's deletion of the old name");
    }
    Ok(KeyOpDone::Done)
}

/// Changes the key's class.
async fn update_class(
    shard: &Shard,
    domain: String,
    key: String,
    class: String,
    replicas: u32,
) -> Result<KeyOpDone, NodeError> {
    let meta = &shard.node.meta;
    let Some(old) = meta.key(&domain, &key)? else {
        return refused(KeyOpRefused::NoSuchKey);
    };
    if old.class == class {
        return Ok(KeyOpDone::Done);
    }
    // A new version (same bytes, same fid): the homes take the class
    // change as they take any newer version, and the tracker makes the
    // copies the new class wants.
    let version = shard.node.clock.next_after(Some(old.version));
    let record = KeyRecord { class, state: state_for(replicas), version, ..old.clone() };
    let mut batch = Batch::default();
    batch.put_key_to_announce(&domain, &key, &record);
    meta.commit(batch).await?;
    shard.node.stats.replace(Some(&old), Some(&record));
    shard.node.control.announce_local(&domain, &key);
    Ok(KeyOpDone::Done)
}

/// Adds to `batch` what drops a pending upload: its record, and the
/// reference its bytes held (their blob is then checked by the collector).
fn forget_pending(batch: &mut Batch, fid: u64, pending: &PendingUpload) {
    batch.delete_pending_upload(fid);
    if let Some(stored) = pending.stored {
        batch.remove_upload_ref(&stored.sha256, fid);
        batch.add_gc_candidate(&stored.sha256);
    }
}
