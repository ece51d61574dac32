//! Turns file events into reloads. The watcher loads nothing: it decides
//! whether an event can change the configuration, waits for a quiet period
//! so that one save (or one `git checkout` of many files) is one reload,
//! and calls back. A periodic content check backs it up for lost events.

use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::event::{EventKind, MetadataKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

/// How file changes are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchMode {
    /// The OS's file events (inotify on Linux).
    Native,
    /// Looking at the files every `--poll-interval`: for network file
    /// systems, where no events arrive.
    Poll,
    /// No watching: reload on SIGHUP or `POST /v1/reload` only.
    Off,
}

#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    pub mode: WatchMode,
    /// The quiet period after the last event before reloading.
    pub debounce: Duration,
    pub poll_interval: Duration,
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch `{}`: {problem}", path.display())]
pub struct WatchError {
    pub path: PathBuf,
    pub problem: String,
    pub hint: String,
}

/// Keeps the watch alive; dropping it stops watching.
pub struct WatchHandle {
    _watcher: Option<Arc<Mutex<Box<dyn Watcher + Send>>>>,
}

/// Watches the configuration at `config` (a directory, or one file) and
/// calls `reload` once per burst of relevant events.
pub fn start(
    config: &Path,
    settings: WatchSettings,
    reload: impl Fn() + Send + 'static,
) -> Result<WatchHandle, WatchError> {
    if settings.mode == WatchMode::Off {
        return Ok(WatchHandle { _watcher: None });
    }
    // Events name absolute paths (the watcher joins a relative one to the
    // working directory); symlinks stay as they are.
    let absolute =
        std::path::absolute(config).map_err(|e| watch_error(config, notify::Error::io(e)))?;
    let config = absolute.as_path();
    let (events, received) = mpsc::channel::<()>();
    let relevance = Relevance::new(config);
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(event) if relevance.counts(&event) => {
            let _ = events.send(());
        }
        Ok(_) => {}
        // Watches added later (a new directory) can hit the OS limit: the
        // periodic content check still sees those files change.
        Err(error) => tracing::warn!(%error, "file watching reported an error"),
    };
    let error = |error: notify::Error| watch_error(config, error);
    let mut watcher: Box<dyn Watcher + Send> = match settings.mode {
        WatchMode::Native => {
            Box::new(RecommendedWatcher::new(handler, follow_symlinks()).map_err(error)?)
        }
        WatchMode::Poll | WatchMode::Off => Box::new(
            // notify's poller compares modification times in whole
            // seconds: a change within the second would be missed. Config
            // directories are small, so it compares contents too.
            notify::PollWatcher::new(
                handler,
                follow_symlinks()
                    .with_poll_interval(settings.poll_interval)
                    .with_compare_contents(true),
            )
            .map_err(error)?,
        ),
    };
    for (path, mode) in watch_targets(config) {
        watcher.watch(&path, mode).map_err(error)?;
    }
    let watcher = Arc::new(Mutex::new(watcher));
    let mut followed = Followed {
        config: config.to_path_buf(),
        target: std::fs::canonicalize(config).ok(),
        watcher: Arc::clone(&watcher),
    };
    std::thread::Builder::new()
        .name("config-debounce".into())
        .spawn(move || {
            debounce(&received, settings.debounce, || {
                followed.follow_swap();
                reload();
            });
        })
        .map_err(|e| watch_error(config, notify::Error::io(e)))?;
    Ok(WatchHandle {
        _watcher: Some(watcher),
    })
}

/// The directory a symlinked configuration path points at. The recursive
/// watch was set up through the link, on the directory it pointed at
/// then: when the link is swapped, the watch moves to the new directory.
struct Followed {
    config: PathBuf,
    target: Option<PathBuf>,
    watcher: Arc<Mutex<Box<dyn Watcher + Send>>>,
}

impl Followed {
    fn follow_swap(&mut self) {
        let target = std::fs::canonicalize(&self.config).ok();
        if target == self.target || !self.config.is_dir() {
            return;
        }
        self.target = target;
        let mut watcher = self.watcher.lock().unwrap_or_else(|e| e.into_inner());
        let _ = watcher.unwatch(&self.config);
        if let Err(error) = watcher.watch(&self.config, RecursiveMode::Recursive) {
            tracing::warn!(%error, "cannot watch the new configuration directory; the periodic check still sees changes");
        }
    }
}

/// A mounted config volume is a tree of symlinks into a hidden data
/// directory: the watch must follow them to see anything change.
fn follow_symlinks() -> notify::Config {
    notify::Config::default().with_follow_symlinks(true)
}

/// A directory is watched recursively. A single file is watched through
/// its directory (editors replace the file, which ends a watch on it). When
/// the configuration path is itself a symlink, its directory is watched too,
/// so that pointing the link at another directory is seen.
fn watch_targets(config: &Path) -> Vec<(PathBuf, RecursiveMode)> {
    let parent = match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let is_link = config.symlink_metadata().is_ok_and(|m| m.is_symlink());
    if config.is_dir() {
        let mut targets = vec![(config.to_path_buf(), RecursiveMode::Recursive)];
        if is_link {
            targets.push((parent, RecursiveMode::NonRecursive));
        }
        targets
    } else {
        vec![(parent, RecursiveMode::NonRecursive)]
    }
}

/// Waits for the first event, then for `quiet` without events, then
/// reloads. A steady stream of events still reloads every 20 quiet periods,
/// so that a busy directory cannot hold back a change forever.
fn debounce(received: &mpsc::Receiver<()>, quiet: Duration, mut reload: impl FnMut()) {
    let longest = quiet * 20;
    while received.recv().is_ok() {
        let first = Instant::now();
        loop {
            match received.recv_timeout(quiet) {
                Ok(()) if first.elapsed() < longest => continue,
                Ok(()) | Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        reload();
    }
}

/// Which events can change the configuration.
struct Relevance {
    /// The configuration path as given (a directory or a file).
    config: PathBuf,
    is_dir: bool,
}

impl Relevance {
    fn new(config: &Path) -> Self {
        Relevance {
            config: config.to_path_buf(),
            is_dir: config.is_dir(),
        }
    }

    fn counts(&self, event: &notify::Event) -> bool {
        // Our own reads are Access events; metadata (touch, chmod) does not
        // change what the files say. The polling watcher reports a write
        // as a new modification time.
        let changes = match event.kind {
            EventKind::Access(_) => false,
            EventKind::Modify(ModifyKind::Metadata(what)) => what == MetadataKind::WriteTime,
            _ => true,
        };
        changes && event.paths.iter().any(|path| self.path_counts(path))
    }

    fn path_counts(&self, path: &Path) -> bool {
        // The configuration path itself: a file saved, or a symlink swapped.
        if path == self.config {
            return true;
        }
        if !self.is_dir {
            return false;
        }
        let Ok(relative) = path.strip_prefix(&self.config) else {
            // An event on the parent, watched for a swap of the link only.
            return false;
        };
        let names: Vec<String> = relative
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let Some((name, directories)) = names.split_last() else {
            return false;
        };
        // Inside a hidden directory (`.git`, a volume's `..2026_12_03…`):
        // never read as config; its swap shows as an event on the link.
        if directories.iter().any(|d| d.starts_with('.')) {
            return false;
        }
        match path.symlink_metadata() {
            // A new or swapped directory, or a symlink (`..data` or a file's
            // link into it): whatever it holds may be new.
            Ok(meta) if meta.is_dir() || meta.is_symlink() => true,
            Ok(_) => is_config_name(name),
            // Gone: a config file deleted or renamed away, or a directory
            // moved out.
            Err(_) => is_config_name(name) || (!is_editor_file(name) && !name.contains('.')),
        }
    }
}

/// What the loader reads: `*.yaml` and `*.yml`, not hidden.
fn is_config_name(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// Files editors write beside the one being edited.
fn is_editor_file(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('#') || name.ends_with('~') || name == "4913" // vim's test whether the directory is writable
}

fn watch_error(config: &Path, error: notify::Error) -> WatchError {
    let path = error
        .paths
        .first()
        .cloned()
        .unwrap_or_else(|| config.to_path_buf());
    let (problem, hint) = match &error.kind {
        notify::ErrorKind::MaxFilesWatch => (
            "the operating system's limit of file watches is reached".to_string(),
            "raise it (sysctl fs.inotify.max_user_watches=524288), or run with --watch poll"
                .to_string(),
        ),
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::EMFILE) => (
            format!("{io}: the limit of inotify instances is reached"),
            "raise it (sysctl fs.inotify.max_user_instances=1024), or run with --watch poll"
                .to_string(),
        ),
        notify::ErrorKind::PathNotFound => (
            "it does not exist".to_string(),
            "point --config at the configuration directory".to_string(),
        ),
        _ => (
            error.to_string(),
            "run with --watch poll, or --watch off and reload with SIGHUP".to_string(),
        ),
    };
    WatchError {
        path,
        problem,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, path: &Path) -> notify::Event {
        notify::Event::new(kind).add_path(path.to_path_buf())
    }

    #[test]
    fn editor_files_and_hidden_directories_do_not_count_config_files_do() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("..2026_12_03")).unwrap();
        std::fs::create_dir(root.join("templates")).unwrap();
        for file in [
            "profiles.yaml",
            ".profiles.yaml.swp",
            "profiles.yaml~",
            "4913",
            "README.md",
            "..2026_12_03/profiles.yaml",
        ] {
            std::fs::write(root.join(file), "x").unwrap();
        }
        let relevance = Relevance::new(root);
        let write = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        let counts = |name: &str| relevance.counts(&event(write, &root.join(name)));
        assert!(counts("profiles.yaml"));
        assert!(counts("templates"), "a directory may hold new files");
        assert!(counts("gone"), "a directory moved away");
        assert!(counts("gone.yml"), "a config file deleted");
        for ignored in [
            ".profiles.yaml.swp",
            "profiles.yaml~",
            "4913",
            "README.md",
            "..2026_12_03/profiles.yaml",
            "#profiles.yaml#",
        ] {
            assert!(!counts(ignored), "{ignored} should not count");
        }
        let read = EventKind::Access(notify::event::AccessKind::Any);
        assert!(!relevance.counts(&event(read, &root.join("profiles.yaml"))));
    }

    #[test]
    fn the_watch_limit_names_the_sysctl_and_the_polling_mode() {
        let error = watch_error(
            Path::new("/etc/mailrules"),
            notify::Error::new(notify::ErrorKind::MaxFilesWatch),
        );
        assert_eq!(
            error.to_string(),
            "cannot watch `/etc/mailrules`: the operating system's limit of file watches is reached"
        );
        assert!(error.hint.contains("fs.inotify.max_user_watches"));
        assert!(error.hint.contains("--watch poll"));
    }
}
