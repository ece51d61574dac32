//! `mailrules serve`: the daemon. It loads the configuration with the same
//! loader as `validate` (and refuses to start on an invalid one), watches
//! the files, swaps in a new generation only when it is valid, and answers
//! the HTTP API. See docs/serve.md.

mod api;
mod live;
mod metrics;
mod outbox;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::ConfigSource;
use crate::config::{LoadError, Secret};
use crate::transport::read_secret;

pub use watch::{WatchError, WatchMode, WatchSettings};

use live::{Live, Trigger};
use metrics::Metrics;

/// How the daemon runs.
pub struct Settings {
    pub listen: SocketAddr,
    /// Where the API's bearer token is; required beyond loopback.
    pub token: Option<Secret>,
    pub transport_override: Option<PathBuf>,
    pub watch: WatchSettings,
    /// How often the files are compared with what serves, in case an event
    /// was lost; `None`: never.
    pub recheck: Option<Duration>,
    /// Keep accepted messages in this outbox and deliver from it.
    pub outbox: Option<OutboxSettings>,
}

/// `serve --outbox FILE` and its delivery settings.
pub struct OutboxSettings {
    pub path: PathBuf,
    pub worker: crate::outbox::WorkerSettings,
}

/// Why the daemon did not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("listening on {listen} (beyond loopback) needs a bearer token")]
    NoToken { listen: SocketAddr },
    #[error("cannot read the API token from {reference}: {problem}")]
    Token { reference: String, problem: String },
    #[error("cannot listen on {listen}: {error}")]
    Listen {
        listen: SocketAddr,
        #[source]
        error: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Outbox(#[from] crate::outbox::StoreError),
}

impl ServeError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ServeError::Load(_) => None,
            ServeError::Watch(error) => Some(error.hint.clone()),
            ServeError::NoToken { .. } => Some(
                "pass --token env:NAME or --token file:PATH (callers send `Authorization: Bearer <token>`), or listen on 127.0.0.1".into(),
            ),
            ServeError::Token { .. } => Some("set the variable, or make the file readable".into()),
            ServeError::Listen { .. } => {
                Some("choose another --listen address, or stop what is using this one".into())
            }
            ServeError::Runtime(_) => None,
            ServeError::Outbox(error) => error.hint(),
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT; in-flight requests finish first.
pub fn run(source: ConfigSource, settings: Settings) -> Result<(), ServeError> {
    let token = api_token(&settings)?;
    let metrics = Arc::new(Metrics::default());
    let config_path = source.path.clone();
    let live = Arc::new(Live::start(
        source,
        settings.transport_override.clone(),
        Arc::clone(&metrics),
    )?);
    let generation = live.current();
    tracing::info!(
        generation = generation.number,
        hash = %generation.hash,
        files = generation.prepared.loaded.files.len(),
        "configuration loaded"
    );
    let watched = Arc::clone(&live);
    let _watch = watch::start(&config_path, settings.watch, move || {
        watched.reload(Trigger::Watch);
    })?;
    if let Some(every) = settings.recheck {
        start_recheck(Arc::clone(&live), every).map_err(ServeError::Runtime)?;
    }
    let outbox = match &settings.outbox {
        Some(outbox) => Some(outbox::start(outbox, &live, &metrics)?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let app = Arc::new(api::App {
        live,
        metrics,
        token,
        outbox,
    });
    let served = runtime.block_on(serve(Arc::clone(&app), settings.listen));
    if let Some(outbox) = &app.outbox {
        // Accepted messages stay queued; the ones in delivery finish.
        outbox.worker.stop();
        tracing::info!("outbox: deliveries in flight finished");
    }
    served
}

fn api_token(settings: &Settings) -> Result<Option<String>, ServeError> {
    let Some(reference) = &settings.token else {
        if settings.listen.ip().is_loopback() {
            return Ok(None);
        }
        return Err(ServeError::NoToken {
            listen: settings.listen,
        });
    };
    let token = read_secret(reference).map_err(|error| ServeError::Token {
        reference: reference.to_string(),
        problem: error.to_string(),
    })?;
    if token.trim().is_empty() {
        return Err(ServeError::Token {
            reference: reference.to_string(),
            problem: "it is empty".into(),
        });
    }
    Ok(Some(token))
}

/// The backstop for lost events (and the only check on a file system
/// without them): compare the files with what serves, now and then.
fn start_recheck(live: Arc<Live>, every: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("config-recheck".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                if live.changed_on_disk() {
                    live.reload(Trigger::Recheck);
                }
            }
        })
        .map(drop)
}

async fn serve(app: Arc<api::App>, listen: SocketAddr) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| ServeError::Listen { listen, error })?;
    let bound = listener
        .local_addr()
        .map_err(|error| ServeError::Listen { listen, error })?;
    // The handlers are in place before the line below tells the world
    // that the daemon runs: a SIGHUP right after it must reload, not kill.
    use tokio::signal::unix::{SignalKind, signal};
    let hangups = signal(SignalKind::hangup());
    let stops = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    tokio::spawn(reload_on_sighup(Arc::clone(&app.live), hangups));
    // The one line on stdout: where to reach the API (`--listen :0`
    // picks a free port).
    println!("mailrules serve: listening on http://{bound}");
    tracing::info!(%bound, "listening");
    axum::serve(listener, api::router(app))
        .with_graceful_shutdown(shutdown_signal(stops))
        .await
        .map_err(|error| ServeError::Listen { listen, error })?;
    tracing::info!("stopped; in-flight requests finished");
    Ok(())
}

type SignalStream = std::io::Result<tokio::signal::unix::Signal>;

async fn reload_on_sighup(live: Arc<Live>, hangups: SignalStream) {
    let Ok(mut hangups) = hangups else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /v1/reload");
        return;
    };
    while hangups.recv().await.is_some() {
        let live = Arc::clone(&live);
        let _ = tokio::task::spawn_blocking(move || live.reload(Trigger::Signal)).await;
    }
}

async fn shutdown_signal(stops: (SignalStream, SignalStream)) {
    let (Ok(mut terminate), Ok(mut interrupt)) = stops else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tracing::info!("shutting down: no new requests, finishing the ones in flight");
}
