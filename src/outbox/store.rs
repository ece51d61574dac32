//! The outbox's storage: one SQLite file in WAL mode with synchronous
//! writes, so that a message is on disk before its caller hears
//! `202 Accepted`. This is the storage seam: everything the workers, the
//! daemon and `mailrules outbox` do goes through these methods, and a
//! PostgreSQL store would implement the same ones (README, "Sharing an
//! outbox").

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::group::Group;
use super::{Claimed, Enqueued, NewMessage, State};

/// Why the outbox could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the outbox `{}`: {error}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        error: rusqlite::Error,
    },
    #[error("no outbox at `{}`", path.display())]
    Missing { path: PathBuf },
    #[error("the outbox `{}` was deleted or replaced while in use: nothing more is accepted into it", path.display())]
    Gone { path: PathBuf },
    #[error("`{}` is a directory, not an outbox file", path.display())]
    NotAFile { path: PathBuf },
    #[error("`{}` is an SQLite database, but not a mailrules outbox", path.display())]
    Foreign { path: PathBuf },
    #[error("the outbox `{}` was written by a newer mailrules (schema {found}, this one knows {known})", path.display())]
    Newer {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("outbox: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the outbox `{}` is being delivered by another mailrules{}", path.display(), holder.as_ref().map(|pid| format!(" (process {pid})")).unwrap_or_default())]
    Busy {
        path: PathBuf,
        holder: Option<String>,
    },
    #[error("cannot lock the outbox `{}` for delivery: {error}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("outbox: cannot write: {0}")]
    Write(String),
    #[error("cannot start the outbox's delivery thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "idempotency key `{key}` was used before for a different request (message {id}): a key names one request"
    )]
    KeyReused { key: String, id: String },
}

impl StoreError {
    pub fn hint(&self) -> Option<String> {
        match self {
            StoreError::Open { error, .. } => Some(open_hint(error).into()),
            StoreError::Gone { .. } => Some(
                "restart mailrules to open the outbox file anew; messages still queued in the old file were not delivered".into(),
            ),
            StoreError::Missing { .. } => Some(
                "check the path (--outbox or MAILRULES_OUTBOX); an outbox is made by `serve --outbox`, `send --queue` or `outbox deliver`".into(),
            ),
            StoreError::NotAFile { path } => Some(format!(
                "give a file name, e.g. `{}`",
                path.join("outbox.db").display()
            )),
            StoreError::Foreign { .. } => Some(
                "it is left as it is: give the outbox's own path, or a new file name for a new outbox".into(),
            ),
            StoreError::Newer { .. } => Some("run the newer mailrules, or use another outbox file".into()),
            StoreError::Busy { .. } => Some(
                "one daemon (or `outbox deliver`) delivers from an outbox at a time, so that no message is sent twice: stop the other one, or give this one an outbox of its own; `send --queue` and `outbox list|show|retry|purge` work beside it".into(),
            ),
            StoreError::Lock { .. } => {
                Some("the lock file beside the outbox (FILE.lock) must be a regular file (not a symlink) this user can create and write".into())
            }
            StoreError::Sql(_) | StoreError::Write(_) | StoreError::Thread(_) => None,
            StoreError::KeyReused { .. } => {
                Some("send a new key for a new request; repeat a key only to repeat the same request".into())
            }
        }
    }
}

/// What to do about a file SQLite could not open as an outbox.
fn open_hint(error: &rusqlite::Error) -> &'static str {
    let text = error.to_string();
    if text.contains("not a database") {
        "the file is not an outbox (not an SQLite database): give the outbox's path, or a new file name"
    } else if text.contains("malformed") {
        "the file is damaged: restore it from a backup (`sqlite3 FILE .backup COPY` makes one), or try `sqlite3 FILE .recover`"
    } else if text.contains("readonly") || text.contains("read-only") {
        "the outbox file and its directory (for the -wal and -shm files) must be writable by this user"
    } else {
        "the directory must exist and be writable; the outbox is one SQLite file (with -wal, -shm and .lock beside it)"
    }
}

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE messages (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    idempotency_key TEXT UNIQUE,
    request_hash    TEXT NOT NULL,
    caller_id       TEXT,
    message_id      TEXT NOT NULL,
    profile         TEXT NOT NULL,
    generation      INTEGER NOT NULL,
    context         TEXT NOT NULL,
    envelope        TEXT NOT NULL,
    bcc             TEXT NOT NULL,
    body            BLOB NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    uncertain       INTEGER NOT NULL DEFAULT 0,
    accepted_at     INTEGER NOT NULL,
    -- The maximum age counts from here: acceptance, or `outbox retry`.
    age_from        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    finished_at     INTEGER,
    last_reply      TEXT,
    last_error      TEXT,
    transport       TEXT,
    copy_status     TEXT,
    copy_error      TEXT,
    notified        INTEGER NOT NULL DEFAULT 0
);
-- The dispatcher asks these on every wake-up (each accepted message):
-- both indexes answer by seeking, not by reading every queued message.
CREATE INDEX messages_due ON messages (state, profile, next_attempt_at);
CREATE INDEX messages_next ON messages (state, next_attempt_at);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// The outbox file, with one connection: SQLite takes one writer at a
/// time anyway, and each write here is a short transaction.
pub struct Store {
    path: PathBuf,
    /// The file opened (device and inode), to notice it being deleted or
    /// replaced under a running daemon.
    identity: (u64, u64),
    connection: Mutex<Connection>,
    writes: Group<Write>,
}

/// Device and inode of the file at `path`.
fn identity_of(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path)?;
    Ok((metadata.dev(), metadata.ino()))
}

/// A message as `GET /v1/messages/{id}` and `outbox show` report it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: String,
    pub state: State,
    pub message_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub profile: String,
    /// The configuration generation that accepted it.
    pub generation: u64,
    /// MAIL FROM and RCPT TO (BCC included).
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub attempts: u32,
    /// Deliveries whose outcome was not known (a crash or a broken
    /// connection after the message was handed over): each may have
    /// arrived, so the recipient may see it twice (same Message-ID).
    pub uncertain: u32,
    pub accepted_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reply: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_error: Option<String>,
    /// Bytes of the stored message.
    pub size: u64,
}

/// A dead message the administrator has not been told about.
#[derive(Debug, Clone)]
pub struct DeadNotice {
    pub id: String,
    pub message_id: String,
    pub profile: String,
    pub to: Vec<String>,
    pub reason: String,
}

/// What the workers write back after one try.
#[derive(Debug, Clone)]
pub enum Finish {
    Sent {
        reply: String,
        transport: String,
        /// The sent copy's status (`stored`, `failed`) and error.
        copy: Option<(String, Option<String>)>,
    },
    /// Queued again, to be tried at `next_at` (ms).
    Retry {
        next_at: i64,
        error: String,
        reply: Option<String>,
        uncertain: bool,
        /// The transport tried, when the context still resolved.
        transport: Option<String>,
    },
    Dead {
        error: String,
        reply: Option<String>,
        transport: Option<String>,
    },
}

const VIEW_COLUMNS: &str = "id, state, message_id, caller_id, idempotency_key, profile, generation, envelope, attempts, uncertain, accepted_at, next_attempt_at, last_attempt_at, finished_at, last_reply, last_error, transport, copy_status, copy_error, length(body)";

impl Store {
    /// Opens the outbox at `path`, creating it if there is none.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, true)
    }

    /// Opens an outbox that must exist already (`outbox list`, `show`,
    /// ...): a mistyped path is an error, not a new empty outbox.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        Store::open_with(path, false)
    }

    fn open_with(path: &Path, create: bool) -> Result<Store, StoreError> {
        let opened = |error| StoreError::Open {
            path: path.to_path_buf(),
            error,
        };
        if path.is_dir() {
            return Err(StoreError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let connection = Connection::open(path).map_err(opened)?;
        // The daemon and `mailrules outbox retry` may write at once.
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(opened)?;
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(opened)?;
        let has_messages: bool = connection
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'messages'",
                [],
                |row| row.get(0),
            )
            .map_err(opened)?;
        let tables: i64 = connection
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
            .map_err(opened)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Newer {
                path: path.to_path_buf(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        // Only an empty file becomes an outbox: another program's database
        // is never taken over.
        let empty = version == 0 && tables == 0;
        let ours = version == SCHEMA_VERSION && has_messages;
        if !(ours || empty && create) {
            return Err(StoreError::Foreign {
                path: path.to_path_buf(),
            });
        }
        // WAL: readers (the API, `outbox list`) never block the writer.
        // synchronous=FULL: a committed message survives a power cut, not
        // only a crash of the process.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(opened)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(opened)?;
        if empty {
            connection
                .execute_batch(&format!(
                    "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(opened)?;
        }
        // Gone already: removed between opening and here.
        let identity = identity_of(path).map_err(|_| StoreError::Gone {
            path: path.to_path_buf(),
        })?;
        Ok(Store {
            path: path.to_path_buf(),
            identity,
            connection: Mutex::new(connection),
            writes: Group::new(),
        })
    }

    /// The outbox file is still the one this store opened. SQLite keeps
    /// writing to a deleted file without complaint: a message accepted
    /// into it would be lost at the next start.
    fn check_still_there(&self) -> Result<(), StoreError> {
        match identity_of(&self.path) {
            Ok(identity) if identity == self.identity => Ok(()),
            _ => Err(StoreError::Gone {
                path: self.path.clone(),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a new message, committed (with the messages of other
    /// callers, in one group commit) before this returns. With an
    /// idempotency key used before for the same request, the first message
    /// is returned instead (`duplicate: true`).
    pub fn enqueue(&self, message: NewMessage, now: i64) -> Result<Enqueued, StoreError> {
        self.check_still_there()?;
        let enqueued = Enqueued {
            id: message.id.clone(),
            message_id: message.message_id.clone(),
            profile: message.profile.clone(),
            state: State::Queued,
            duplicate: false,
        };
        let key = message.idempotency_key.clone();
        let hash = message.request_hash.clone();
        match self.commit(Write::Enqueue(Box::new(message), now)) {
            Ok(()) => Ok(enqueued),
            // Refused by the key's unique index: a request with the same
            // key was stored a moment before.
            Err(error) => match key {
                Some(key) => self.find_key(&key, &hash)?.ok_or(error),
                None => Err(error),
            },
        }
    }

    fn commit(&self, write: Write) -> Result<(), StoreError> {
        self.writes
            .commit(&self.connection, write, apply)
            .map_err(StoreError::Write)
    }

    /// The message first stored under idempotency key `key`, if any; an
    /// error if it was stored for another request.
    pub fn find_key(&self, key: &str, request_hash: &str) -> Result<Option<Enqueued>, StoreError> {
        first_with_key(&self.connection(), key, request_hash)
    }

    /// After a crash: messages left `sending` had been handed to a
    /// transport with no outcome recorded. They are queued again (same
    /// Message-ID) and counted as uncertain. Returns their ids and
    /// Message-IDs, to log.
    pub fn recover(&self, now: i64) -> Result<Vec<(String, String)>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "UPDATE messages SET state = 'queued', uncertain = uncertain + 1, next_attempt_at = ?1,
                 last_error = 'the delivery was interrupted (mailrules stopped): it may have arrived; sent again with the same Message-ID'
             WHERE state = 'sending' RETURNING id, message_id",
        )?;
        let rows = statement.query_map([now], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Profiles with messages due at `now`.
    pub fn due_profiles(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let connection = self.connection();
        // A skip scan: one index seek per profile with queued messages,
        // then one for its earliest due time. `SELECT DISTINCT profile
        // ... WHERE next_attempt_at <= now` read every queued message, on
        // every wake-up: with 20,000 queued that capped accepting.
        let mut statement = connection.prepare_cached(
            "WITH RECURSIVE queued(profile) AS (
                 SELECT (SELECT min(profile) FROM messages WHERE state = 'queued')
                 UNION ALL
                 SELECT (SELECT min(profile) FROM messages
                         WHERE state = 'queued' AND profile > queued.profile)
                 FROM queued WHERE queued.profile IS NOT NULL)
             SELECT profile FROM queued
             WHERE profile IS NOT NULL
               AND (SELECT min(next_attempt_at) FROM messages
                    WHERE state = 'queued' AND profile = queued.profile) <= ?1",
        )?;
        let rows = statement.query_map([now], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the next queued message is due (ms), if any is queued.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let connection = self.connection();
        Ok(connection.query_row(
            "SELECT min(next_attempt_at) FROM messages WHERE state = 'queued'",
            [],
            |row| row.get(0),
        )?)
    }

    /// When the first queued message not yet due at `now` falls due (ms).
    pub fn next_due_after(&self, now: i64) -> Result<Option<i64>, StoreError> {
        let connection = self.connection();
        Ok(connection.query_row(
            "SELECT min(next_attempt_at) FROM messages WHERE state = 'queued' AND next_attempt_at > ?1",
            [now],
            |row| row.get(0),
        )?)
    }

    /// Marks up to `limit` due messages of `profile` as `sending` (one
    /// commit, before any of them is handed to a transport) and returns them.
    pub fn claim(&self, profile: &str, limit: usize, now: i64) -> Result<Vec<Claimed>, StoreError> {
        let mut connection = self.connection();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let claimed = {
            let mut statement = transaction.prepare_cached(
                "UPDATE messages SET state = 'sending', attempts = attempts + 1, last_attempt_at = ?3
                 WHERE seq IN (SELECT seq FROM messages
                               WHERE state = 'queued' AND profile = ?1 AND next_attempt_at <= ?3
                               ORDER BY next_attempt_at, seq LIMIT ?2)
                 RETURNING id, message_id, profile, context, envelope, bcc, body, attempts, age_from",
            )?;
            let rows = statement.query_map(params![profile, limit as i64, now], |row| {
                Ok(Claimed {
                    id: row.get(0)?,
                    message_id: row.get(1)?,
                    profile: row.get(2)?,
                    context: row.get(3)?,
                    envelope: row.get(4)?,
                    bcc: row.get(5)?,
                    body: row.get(6)?,
                    attempts: row.get(7)?,
                    age_from: row.get(8)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        transaction.commit()?;
        Ok(claimed)
    }

    /// Records the outcome of one try of a claimed message.
    pub fn finish(&self, id: &str, finish: Finish, now: i64) -> Result<(), StoreError> {
        self.commit(Write::Finish(id.to_string(), finish, now))
    }

    /// How the sent copy of message `id` went (`stored` or `failed`).
    pub fn record_copy(
        &self,
        id: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.commit(Write::Copy(
            id.to_string(),
            status.to_string(),
            error.map(str::to_string),
        ))
    }

    pub fn get(&self, id: &str) -> Result<Option<MessageView>, StoreError> {
        let connection = self.connection();
        Ok(connection
            .query_row(
                &format!("SELECT {VIEW_COLUMNS} FROM messages WHERE id = ?1"),
                [id],
                view,
            )
            .optional()?)
    }

    /// Messages in `state` (all when `None`), oldest first, at most `limit`.
    pub fn list(&self, state: Option<State>, limit: usize) -> Result<Vec<MessageView>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!(
            "SELECT {VIEW_COLUMNS} FROM messages WHERE ?1 IS NULL OR state = ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let rows = statement.query_map(params![state.map(State::name), limit as i64], view)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many messages are in each state.
    pub fn counts(&self) -> Result<Vec<(State, u64)>, StoreError> {
        let connection = self.connection();
        let mut statement =
            connection.prepare("SELECT state, count(*) FROM messages GROUP BY state")?;
        let rows = statement.query_map([], |row| {
            Ok((
                State::parse(&row.get::<_, String>(0)?),
                row.get::<_, i64>(1)? as u64,
            ))
        })?;
        let found: Vec<(State, u64)> = rows.collect::<Result<_, _>>()?;
        Ok(State::ALL
            .iter()
            .map(|state| {
                let count = found.iter().find(|(s, _)| s == state).map_or(0, |f| f.1);
                (*state, count)
            })
            .collect())
    }

    /// Queues a dead message again, at once, with its attempts kept.
    /// Returns false when there is no dead message with this id.
    pub fn retry(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let connection = self.connection();
        let changed = connection.execute(
            "UPDATE messages SET state = 'queued', next_attempt_at = ?2, finished_at = NULL,
                 age_from = ?2, notified = 0 WHERE id = ?1 AND state = 'dead'",
            params![id, now],
        )?;
        Ok(changed == 1)
    }

    /// Deletes finished messages (`sent`, `dead`) in `states` that
    /// finished before `before` (ms). Returns how many.
    pub fn purge(&self, states: &[State], before: i64) -> Result<u64, StoreError> {
        let connection = self.connection();
        let mut deleted = 0;
        for state in states.iter().filter(|s| s.is_final()) {
            deleted += connection.execute(
                "DELETE FROM messages WHERE state = ?1 AND finished_at < ?2",
                params![state.name(), before],
            )? as u64;
        }
        Ok(deleted)
    }

    /// Dead messages the administrator has not been told about, oldest first.
    pub fn unnotified_dead(&self) -> Result<Vec<DeadNotice>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT id, message_id, profile, envelope, coalesce(last_error, ''), last_reply
             FROM messages WHERE state = 'dead' AND notified = 0 ORDER BY seq",
        )?;
        let rows = statement.query_map([], |row| {
            let envelope: String = row.get(3)?;
            let error: String = row.get(4)?;
            let reply: Option<String> = row.get(5)?;
            // A refusal's error quotes the server's reply already.
            let reason = match reply {
                Some(reply) if !error.contains(&reply) => format!("{error}: {reply}"),
                _ => error,
            };
            Ok(DeadNotice {
                id: row.get(0)?,
                message_id: row.get(1)?,
                profile: row.get(2)?,
                to: super::Envelope::parse(&envelope).to,
                reason,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn mark_notified(&self, ids: &[String], now: i64) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for id in ids {
            transaction.execute("UPDATE messages SET notified = 1 WHERE id = ?1", [id])?;
        }
        transaction.execute(
            "INSERT INTO meta (key, value) VALUES ('last_admin_notice', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [now],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// When the administrator was last mailed (ms), kept across restarts
    /// so that a restart does not send a second summary at once.
    pub fn last_admin_notice(&self) -> Result<Option<i64>, StoreError> {
        let connection = self.connection();
        Ok(connection
            .query_row(
                "SELECT value FROM meta WHERE key = 'last_admin_notice'",
                [],
                |row| row.get(0),
            )
            .optional()?)
    }
}

/// The writes that go through the group commit: the two that every
/// message makes (being accepted, and each try's outcome).
enum Write {
    Enqueue(Box<NewMessage>, i64),
    Finish(String, Finish, i64),
    /// A message's id, its copy's status and error.
    Copy(String, String, Option<String>),
}

fn apply(connection: &Connection, write: &Write) -> rusqlite::Result<()> {
    match write {
        Write::Enqueue(message, now) => connection.execute(
            "INSERT INTO messages (id, idempotency_key, request_hash, caller_id, message_id, profile, generation, context, envelope, bcc, body, state, accepted_at, age_from, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'queued', ?12, ?12, ?12)",
            params![
                message.id,
                message.idempotency_key,
                message.request_hash,
                message.caller_id,
                message.message_id,
                message.profile,
                message.generation as i64,
                message.context,
                message.envelope,
                message.bcc,
                message.body,
                now,
            ],
        )?,
        Write::Finish(id, Finish::Sent { reply, transport, copy }, now) => connection.execute(
            "UPDATE messages SET state = 'sent', finished_at = ?2, last_reply = ?3, last_error = NULL,
                 transport = ?4, copy_status = ?5, copy_error = ?6 WHERE id = ?1",
            params![
                id,
                now,
                reply,
                transport,
                copy.as_ref().map(|c| &c.0),
                copy.as_ref().and_then(|c| c.1.as_ref())
            ],
        )?,
        Write::Finish(id, Finish::Retry { next_at, error, reply, uncertain, transport }, _) => connection.execute(
            "UPDATE messages SET state = 'queued', next_attempt_at = ?2, last_error = ?3,
                 last_reply = coalesce(?4, last_reply), uncertain = uncertain + ?5,
                 transport = coalesce(?6, transport) WHERE id = ?1",
            params![id, next_at, error, reply, *uncertain as i64, transport],
        )?,
        Write::Copy(id, status, error) => connection.execute(
            "UPDATE messages SET copy_status = ?2, copy_error = ?3 WHERE id = ?1",
            params![id, status, error],
        )?,
        Write::Finish(id, Finish::Dead { error, reply, transport }, now) => connection.execute(
            "UPDATE messages SET state = 'dead', finished_at = ?2, last_error = ?3,
                 last_reply = coalesce(?4, last_reply), transport = coalesce(?5, transport)
             WHERE id = ?1",
            params![id, now, error, reply, transport],
        )?,
    };
    Ok(())
}

fn first_with_key(
    connection: &Connection,
    key: &str,
    request_hash: &str,
) -> Result<Option<Enqueued>, StoreError> {
    let first: Option<(String, String, String, String, String)> = connection
        .query_row(
            "SELECT id, request_hash, message_id, state, profile FROM messages WHERE idempotency_key = ?1",
            [key],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
        )
        .optional()?;
    let Some((id, hash, message_id, state, profile)) = first else {
        return Ok(None);
    };
    if hash != request_hash {
        return Err(StoreError::KeyReused {
            key: key.to_string(),
            id,
        });
    }
    Ok(Some(Enqueued {
        id,
        message_id,
        profile,
        state: State::parse(&state),
        duplicate: true,
    }))
}

fn view(row: &rusqlite::Row<'_>) -> rusqlite::Result<MessageView> {
    let state = State::parse(&row.get::<_, String>(1)?);
    let envelope = super::Envelope::parse(&row.get::<_, String>(7)?);
    let time = |ms: Option<i64>| ms.map(super::rfc3339);
    Ok(MessageView {
        id: row.get(0)?,
        state,
        message_id: row.get(2)?,
        caller_id: row.get(3)?,
        idempotency_key: row.get(4)?,
        profile: row.get(5)?,
        generation: row.get::<_, i64>(6)? as u64,
        mail_from: envelope.from,
        rcpt_to: envelope.to,
        attempts: row.get(8)?,
        uncertain: row.get(9)?,
        accepted_at: super::rfc3339(row.get(10)?),
        next_attempt_at: (state == State::Queued)
            .then(|| time(row.get(11).ok()))
            .flatten(),
        last_attempt_at: time(row.get(12)?),
        finished_at: time(row.get(13)?),
        last_reply: row.get(14)?,
        last_error: row.get(15)?,
        transport: row.get(16)?,
        copy_status: row.get(17)?,
        copy_error: row.get(18)?,
        size: row.get::<_, i64>(19)? as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, profile: &str) -> NewMessage {
        NewMessage {
            id: id.into(),
            idempotency_key: None,
            request_hash: String::new(),
            caller_id: None,
            message_id: format!("<{id}@test>"),
            profile: profile.into(),
            generation: 1,
            context: "{}".into(),
            envelope: "{}".into(),
            bcc: String::new(),
            body: b"Subject: x\r\n\r\nx\r\n".to_vec(),
        }
    }

    #[test]
    fn due_profiles_and_due_times_follow_each_profiles_earliest_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("outbox.db")).unwrap();
        assert_eq!(store.due_profiles(1_000).unwrap(), Vec::<String>::new());
        assert_eq!(store.next_due_after(0).unwrap(), None);
        // alerts at 100 and 300; billing at 200; sales at 500.
        for (id, profile, at) in [
            ("a1", "alerts", 100),
            ("b1", "billing", 200),
            ("a2", "alerts", 300),
            ("s1", "sales", 500),
        ] {
            store.enqueue(message(id, profile), at).unwrap();
        }
        assert_eq!(store.due_profiles(99).unwrap(), Vec::<String>::new());
        assert_eq!(store.due_profiles(100).unwrap(), vec!["alerts"]);
        assert_eq!(store.due_profiles(250).unwrap(), vec!["alerts", "billing"]);
        assert_eq!(
            store.due_profiles(500).unwrap(),
            vec!["alerts", "billing", "sales"]
        );
        assert_eq!(store.next_due_after(100).unwrap(), Some(200));
        assert_eq!(store.next_due_after(300).unwrap(), Some(500));
        assert_eq!(store.next_due_after(500).unwrap(), None);
        // A claimed (sending) message is not queued: billing is not due.
        let claimed = store.claim("billing", 10, 250).unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(store.due_profiles(250).unwrap(), vec!["alerts"]);
        assert_eq!(store.next_due().unwrap(), Some(100));
    }
}
