//! Group commit: a synchronous commit costs one `fsync` (about 230 µs on
//! the machines here), so committing each accepted message alone would
//! cap the outbox at a few thousand a second. Writers queue here instead;
//! whoever holds the connection next commits every write queued meanwhile
//! in one transaction (one `fsync`), each in a savepoint of its own so that one
//! failing write (a repeated idempotency key) does not undo the others.
//! Every writer still returns only after its write is committed.

use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

/// Writes waiting for a commit, each with the slot its writer waits on.
pub(super) struct Group<W> {
    pending: Mutex<Vec<(W, Arc<Slot>)>>,
}

/// Where a write's outcome is left for its writer.
#[derive(Default)]
struct Slot(Mutex<Option<Result<(), String>>>);

impl Slot {
    fn take(&self) -> Option<Result<(), String>> {
        lock(&self.0).take()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<W> Group<W> {
    pub fn new() -> Group<W> {
        Group {
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Commits `write` (with `apply`), together with the writes of others
    /// that queued while the connection was busy. Returns once it is
    /// committed, or why it was not.
    pub fn commit(
        &self,
        connection: &Mutex<Connection>,
        write: W,
        apply: impl Fn(&Connection, &W) -> rusqlite::Result<()>,
    ) -> Result<(), String> {
        let slot = Arc::new(Slot::default());
        lock(&self.pending).push((write, Arc::clone(&slot)));
        let mut connection = lock(connection);
        // The writer before us may have committed ours with its own.
        if let Some(done) = slot.take() {
            return done;
        }
        let batch = std::mem::take(&mut *lock(&self.pending));
        let results = match run(&mut connection, &batch, &apply) {
            Ok(results) => results,
            Err(error) => vec![Err(error.to_string()); batch.len()],
        };
        for ((_, waiting), result) in batch.iter().zip(results) {
            *lock(&waiting.0) = Some(result);
        }
        drop(connection);
        slot.take()
            .unwrap_or_else(|| Err("the write was not committed".into()))
    }
}

fn run<W>(
    connection: &mut Connection,
    batch: &[(W, Arc<Slot>)],
    apply: &impl Fn(&Connection, &W) -> rusqlite::Result<()>,
) -> rusqlite::Result<Vec<Result<(), String>>> {
    // IMMEDIATE: take the write lock at the start, where SQLite's busy
    // timeout waits for another process's writer (a deferred transaction
    // that upgrades fails at once with "database is locked").
    let mut transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    for (write, _) in batch {
        let savepoint = transaction.savepoint()?;
        match apply(&savepoint, write) {
            Ok(()) => {
                savepoint.commit()?;
                results.push(Ok(()));
            }
            // Dropping the savepoint rolls back this write alone.
            Err(error) => results.push(Err(error.to_string())),
        }
    }
    transaction.commit()?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Mutex<Connection> {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .unwrap();
        Mutex::new(connection)
    }

    fn insert(connection: &Connection, key: &String) -> rusqlite::Result<()> {
        connection.execute("INSERT INTO t (k) VALUES (?1)", [key])?;
        Ok(())
    }

    #[test]
    fn concurrent_writers_are_each_committed_and_a_failing_one_alone_refused() {
        let connection = table();
        let group = Group::new();
        let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..200)
                .map(|n| {
                    let (group, connection) = (&group, &connection);
                    // Two writers of each key: one of each pair must fail.
                    scope.spawn(move || group.commit(connection, format!("k{}", n / 2), insert))
                })
                .collect();
            writers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 100);
        let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(failed.len(), 100);
        assert!(failed.iter().all(|e| e.contains("UNIQUE")), "{failed:?}");
        let stored: i64 = lock(&connection)
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(stored, 100);
    }
}
