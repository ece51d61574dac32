//! One deliverer per outbox: two daemons (or a daemon and `outbox
//! deliver`) on one file would each take the other's messages in delivery
//! for a crash's leftovers and send them again. The deliverer holds an
//! exclusive `flock` on `FILE.lock`; the kernel drops it when the process
//! ends, however it ends, so a crash leaves no stale lock.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::StoreError;

pub(super) struct DeliveryLock {
    _file: File,
}

impl DeliveryLock {
    pub fn take(outbox: &Path) -> Result<DeliveryLock, StoreError> {
        let path = PathBuf::from(format!("{}.lock", outbox.display()));
        let failed = |error| StoreError::Lock {
            path: path.clone(),
            error,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            // The holder's pid is written into it: a symlink planted at
            // this name must not make that write land in another file.
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(failed)?;
        if !file.metadata().map_err(failed)?.is_file() {
            return Err(failed(std::io::Error::other("not a regular file")));
        }
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::WouldBlock {
                return Err(failed(error));
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(StoreError::Busy {
                path: outbox.to_path_buf(),
                holder: (!holder.is_empty()).then(|| holder.to_string()),
            });
        }
        // Who holds it, for the other one's error message.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(DeliveryLock { _file: file })
    }
}
