//! Small filesystems for the disk-full tests, mounted by the test itself
//! (root only, as CI runs) and unmounted on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    /// A tmpfs of `size` (`24m`).
    pub fn tmpfs(size: &str) -> SmallDisk {
        let dir = tempfile::Builder::new().prefix("cairn-full-").tempdir().expect("a temp dir");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).expect("mount point");
        let size = format!("size={size}");
        run("mount", &["-t", "tmpfs", "-o", &size, "tmpfs", mount.to_str().expect("utf-8")]);
        SmallDisk { mount, _dir: dir }
    }

    /// An ext4 filesystem of `mib` MiB in a file, on a loop device.
    pub fn ext4(mib: u64) -> SmallDisk {
        let dir = tempfile::Builder::new().prefix("cairn-full-").tempdir().expect("a temp dir");
        let image = dir.path().join("disk.img");
        let file = std::fs::File::create(&image).expect("image");
        file.set_len(mib << 20).expect("image size");
        run("mkfs.ext4", &["-q", "-F", image.to_str().expect("utf-8")]);
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).expect("mount point");
        let (image, at) = (image.to_str().expect("utf-8"), mount.to_str().expect("utf-8"));
        run("mount", &["-o", "loop", image, at]);
        SmallDisk { mount, _dir: dir }
    }

    pub fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().expect(program);
    assert!(status.success(), "{program} {args:?} (needs root)");
}
