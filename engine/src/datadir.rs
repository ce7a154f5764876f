//! The data directory: where everything of one node lives on disk.
//!
//! ```text
//! DATA/node-id          this node's id, 16 hex digits, made once
//! DATA/meta/            RocksDB (metadata)
//! DATA/tmp/<uuid>       uploads in progress (O_DIRECT)
//! DATA/blobs/aaa/bbb/<rest>.fid   finished blobs, named by SHA-256
//! DATA/quarantine/<sha256>.<inode>.fid   copies that failed a checksum
//! DATA/.probe           4 KiB read at every shard start (glommio issue 605)
//! DATA/ports.json       the ports bound, written once all are listening
//! ```
//!
//! The functions named `*_blocking` do synchronous file-system calls: run
//! them on a blocking pool, never on a reactor.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::reader::FileIdentity;

const PROBE_SIZE_BYTES: usize = 4096;

#[derive(Clone, Copy, Debug)]
pub struct DiskUsage {
    pub total_bytes: u64,
    pub free_bytes: u64,
}

#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

/// What placing a finished upload found.
#[derive(Debug, PartialEq, Eq)]
pub enum Placed {
    /// The upload became the blob file.
    New,
    /// The same bytes were already stored; the upload replaced them.
    Shared,
}

impl DataDir {
    /// Opens `root`, creating the layout on first use.
    pub fn open(root: &Path) -> io::Result<DataDir> {
        let dir = DataDir { root: root.to_path_buf() };
        for sub in [dir.tmp_dir(), dir.blobs_dir(), dir.quarantine_dir(), dir.meta_dir()] {
            fs::create_dir_all(&sub)?;
        }
        let probe = dir.probe_path();
        if fs::metadata(&probe).map(|m| m.len()).unwrap_or(0) < PROBE_SIZE_BYTES as u64 {
            write_durably(&probe, &[0x5a; PROBE_SIZE_BYTES], 0o644)?;
        }
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn meta_dir(&self) -> PathBuf {
        self.root.join("meta")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    pub fn probe_path(&self) -> PathBuf {
        self.root.join(".probe")
    }

    pub fn tmp_path(&self, upload_id: &str) -> PathBuf {
        self.tmp_dir().join(upload_id)
    }

    pub fn fid_path(&self, sha256: &Digest) -> PathBuf {
        self.blobs_dir().join(sha256.fid_relative_path())
    }

    /// This node's id: read from `node-id`, or made and stored on first use.
    pub fn node_id(&self) -> io::Result<u64> {
        let path = self.root.join("node-id");
        match fs::read_to_string(&path) {
            Ok(text) => u64::from_str_radix(text.trim(), 16).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{} is damaged", path.display()))
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let id = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
                write_durably(&path, format!("{id:016x}\n").as_bytes(), 0o644)?;
                sync_dir(&self.root)?;
                Ok(id)
            }
            Err(error) => Err(error),
        }
    }

    /// Removes every upload left in `tmp/` (run at start, before serving).
    pub fn clear_tmp_blocking(&self) -> io::Result<usize> {
        let mut count = 0;
        for entry in fs::read_dir(self.tmp_dir())? {
            fs::remove_file(entry?.path())?;
            count += 1;
        }
        Ok(count)
    }

    /// Moves a finished, synced upload to its place under `blobs/` and syncs
    /// the directory entries. When the same bytes are already there the
    /// upload still replaces them: the existing file may be damaged or not
    /// yet durable, the new one was just verified and synced.
    pub fn place_blocking(&self, tmp: &Path, sha256: &Digest) -> io::Result<Placed> {
        let target = self.fid_path(sha256);
        let existed = target.exists();
        let leaf = target.parent().expect("a fid path has parent directories");
        create_dirs_durably(&self.blobs_dir(), leaf)?;
        fs::rename(tmp, &target)?;
        // The new name must survive a crash; the old one in tmp/ need not
        // (tmp/ is emptied at start).
        sync_dir(leaf)?;
        Ok(if existed { Placed::Shared } else { Placed::New })
    }

    /// Moves a damaged copy out of `blobs/` so it is never served again and
    /// a good copy can take its place, but only if the file at the path is
    /// still `damaged` (a good copy may have been placed since it was
    /// read). Answers whether it moved the file.
    pub fn quarantine_blocking(&self, sha256: &Digest, damaged: FileIdentity) -> io::Result<bool> {
        let path = self.fid_path(sha256);
        match fs::metadata(&path) {
            Ok(metadata) if FileIdentity::of_metadata(&metadata) == damaged => {}
            Ok(_) => return Ok(false),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(error),
        }
        let target = self.quarantine_dir().join(format!("{sha256}.{}.fid", damaged.inode));
        fs::rename(path, target)?;
        Ok(true)
    }

    /// Removes a blob file; `Ok(false)` when it was already gone.
    pub fn remove_blob_blocking(&self, sha256: &Digest) -> io::Result<bool> {
        match fs::remove_file(self.fid_path(sha256)) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Calls `visit` with the digest of every blob file.
    pub fn walk_fids_blocking(&self, mut visit: impl FnMut(Digest)) -> io::Result<()> {
        // Anything that is not a directory where directories belong is
        // skipped, not fatal: the sweep must get through a damaged tree.
        for first in fs::read_dir(self.blobs_dir())? {
            let first = first?;
            let Ok(seconds) = fs::read_dir(first.path()) else { continue };
            for second in seconds {
                let second = second?;
                let Ok(files) = fs::read_dir(second.path()) else { continue };
                for file in files {
                    let file = file?;
                    let name = file.file_name();
                    let Some(rest) = name.to_str().and_then(|n| n.strip_suffix(".fid")) else {
                        continue;
                    };
                    let hex = format!(
                        "{}{}{rest}",
                        first.file_name().to_string_lossy(),
                        second.file_name().to_string_lossy()
                    );
                    if let Some(digest) = Digest::from_hex(&hex) {
                        visit(digest);
                    }
                }
            }
        }
        Ok(())
    }

    /// Size and free space of the file system holding the data directory.
    pub fn disk_usage_blocking(&self) -> io::Result<DiskUsage> {
        let path = std::ffi::CString::new(self.root.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has NUL"))?;
        let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `path` is NUL-terminated and `stats` is a valid out-pointer.
        if unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: statvfs returned 0, so it filled `stats`.
        let stats = unsafe { stats.assume_init() };
        let fragment = stats.f_frsize;
        Ok(DiskUsage {
            total_bytes: stats.f_blocks * fragment,
            free_bytes: stats.f_bavail * fragment,
        })
    }

    /// Writes `name` in the data directory atomically and durably.
    pub fn write_file_durably(&self, name: &str, contents: &[u8]) -> io::Result<()> {
        self.write_durably_with_mode(name, contents, 0o644)
    }

    /// Like [`DataDir::write_file_durably`], readable by the owner only
    /// (secrets such as the cluster's join token).
    pub fn write_secret_durably(&self, name: &str, contents: &[u8]) -> io::Result<()> {
        self.write_durably_with_mode(name, contents, 0o600)
    }

    /// Reads a small file of the data directory; `None` when it is absent.
    pub fn read_file(&self, name: &str) -> io::Result<Option<String>> {
        match fs::read_to_string(self.root.join(name)) {
            Ok(text) => Ok(Some(text)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn write_durably_with_mode(&self, name: &str, contents: &[u8], mode: u32) -> io::Result<()> {
        let staging = self.root.join(format!(".{name}.new"));
        let _ = fs::remove_file(&staging);
        write_durably(&staging, contents, mode)?;
        fs::rename(&staging, self.root.join(name))?;
        sync_dir(&self.root)
    }
}

fn write_durably(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Creates the directories between `base` and `leaf`, syncing each parent
/// whose entries changed so that the new directories survive a crash.
fn create_dirs_durably(base: &Path, leaf: &Path) -> io::Result<()> {
    let relative = leaf
        .strip_prefix(base)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "leaf is not below base"))?;
    let mut parent = base.to_path_buf();
    for part in relative.components() {
        let child = parent.join(part);
        match fs::create_dir(&child) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        // Synced even when it already existed: another shard may have just
        // made it and not synced its parent yet. A clean directory syncs
        // at once.
        sync_dir(&parent)?;
        parent = child;
    }
    Ok(())
}

fn sync_dir(path: &Path) -> io::Result<()> {
    fs::File::open(path)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_moves_then_shares() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(root.path()).expect("open");
        let digest = Digest([0xab; 32]);
        let first = dir.tmp_path("one");
        fs::write(&first, b"hello").unwrap();
        assert_eq!(dir.place_blocking(&first, &digest).unwrap(), Placed::New);
        assert!(!first.exists());
        assert_eq!(fs::read(dir.fid_path(&digest)).unwrap(), b"hello");
        let second = dir.tmp_path("two");
        fs::write(&second, b"hello").unwrap();
        assert_eq!(dir.place_blocking(&second, &digest).unwrap(), Placed::Shared);
        assert!(!second.exists());
        let mut seen = Vec::new();
        dir.walk_fids_blocking(|d| seen.push(d)).unwrap();
        assert_eq!(seen, vec![digest]);
    }

    #[test]
    fn quarantine_moves_only_the_damaged_file() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(root.path()).expect("open");
        let digest = Digest([0xcd; 32]);
        let first = dir.tmp_path("one");
        fs::write(&first, b"damaged").unwrap();
        dir.place_blocking(&first, &digest).unwrap();
        let damaged = FileIdentity::of_metadata(&fs::metadata(dir.fid_path(&digest)).unwrap());
        // A good copy replaces it before the quarantine runs.
        let second = dir.tmp_path("two");
        fs::write(&second, b"good").unwrap();
        fs::rename(&second, dir.fid_path(&digest)).unwrap();
        assert!(!dir.quarantine_blocking(&digest, damaged).unwrap());
        assert_eq!(fs::read(dir.fid_path(&digest)).unwrap(), b"good");
        let good = FileIdentity::of_metadata(&fs::metadata(dir.fid_path(&digest)).unwrap());
        assert!(dir.quarantine_blocking(&digest, good).unwrap());
        assert!(!dir.fid_path(&digest).exists());
    }

    #[test]
    fn node_id_is_kept() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(root.path()).expect("open");
        let id = dir.node_id().unwrap();
        assert_eq!(DataDir::open(root.path()).unwrap().node_id().unwrap(), id);
    }
}
