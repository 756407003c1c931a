//! The data directory itself: created private, locked by one process for its whole life, and
//! probed for free space before the database is reopened in it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::StoreError;

/// The lock file. sled locks its own files too, but it lets go of them while the database is
/// reopened after a fault; this lock is held from open to exit, so a second process cannot slip
/// in between.
const LOCK_FILE: &str = "lock";

/// A probe written before a reopen: a full disk must fail here, not halfway through a reopen.
const PROBE_FILE: &str = "space-probe";
const PROBE_BYTES: usize = 256 * 1024;

/// The data directory, held locked.
pub(super) struct Home {
    pub dir: PathBuf,
    /// Holds the exclusive lock; dropping it releases the directory.
    _lock: File,
}

impl Home {
    /// Creates `dir` (mode 0700) if needed, makes what is in it private, and locks it.
    pub fn claim(dir: &Path) -> Result<Home, StoreError> {
        prepare(dir).map_err(sled::Error::Io)?;
        let lock = open_private(&dir.join(LOCK_FILE)).map_err(sled::Error::Io)?;
        match lock.try_lock() {
            Ok(()) => Ok(Home { dir: dir.to_path_buf(), _lock: lock }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(dir.display().to_string())),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Sled(sled::Error::Io(e))),
        }
    }

    /// Writes, syncs and removes a small file: does the filesystem take writes again?
    pub fn probe(&self) -> std::io::Result<()> {
        let path = self.dir.join(PROBE_FILE);
        let result = (|| {
            let mut f = open_private(&path)?;
            f.write_all(&[0u8; PROBE_BYTES])?;
            f.sync_all()
        })();
        let _ = std::fs::remove_file(&path);
        result
    }
}

fn open_private(path: &Path) -> std::io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Creates the data directory private to the server's user, and takes group and other access
/// away from what an earlier release (or the storage engine, which follows the umask) created in
/// it. The directory's own mode is what keeps other users out of files created later.
pub fn prepare(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        restrict(dir, 3)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Removes group and other permissions below `dir`, `depth` levels deep.
#[cfg(unix)]
fn restrict(dir: &Path, depth: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if depth == 0 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode & !0o077))?;
        }
        if meta.is_dir() {
            restrict(&entry.path(), depth - 1)?;
        }
    }
    Ok(())
}
