//! Writes each message as `<message-id>.eml` into a directory, atomically
//! (temporary file, then a link to the final name), with its envelope
//! beside it as JSON. An existing message is never replaced.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::config::FileDrop;

use super::{Deliver, Outgoing, Receipt, SendError};

pub struct FileDeliver {
    dir: PathBuf,
}

impl FileDeliver {
    pub fn new(file: &FileDrop) -> Self {
        FileDeliver {
            dir: file.dir.clone(),
        }
    }
}

impl Deliver for FileDeliver {
    fn deliver(&self, message: Outgoing<'_>) -> Result<Receipt, SendError> {
        let local = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                SendError::Local(format!(
                    "a message with the Message-ID {} is already in `{}`: not replaced; give each message its own Message-ID",
                    message.message_id,
                    self.dir.display()
                ))
            } else {
                SendError::Local(format!("cannot write to `{}`: {e}", self.dir.display()))
            }
        };
        std::fs::create_dir_all(&self.dir).map_err(local)?;
        let stem: String = message
            .message_id
            .trim_matches(['<', '>'])
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "@.-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let envelope = json!({
            "from": message.envelope.from().map(ToString::to_string),
            "to": message.envelope.to().iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        let envelope = serde_json::to_vec_pretty(&envelope).expect("JSON of strings");
        // The envelope first: a reader that sees the .eml can rely on it.
        write_atomically(&self.dir, &format!("{stem}.envelope.json"), &envelope).map_err(local)?;
        let path =
            write_atomically(&self.dir, &format!("{stem}.eml"), message.bytes).map_err(local)?;
        Ok(Receipt {
            reply: format!("written to {}", path.display()),
        })
    }
}

/// Writes a uniquely named temporary file, then links it to `name`: the
/// file appears complete or not at all, and an existing file of that name
/// (the same Message-ID sent before) is never replaced.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let target = dir.join(name);
    let temporary = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4()));
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, &target));
    let _ = std::fs::remove_file(&temporary);
    linked.map(|()| target)
}
