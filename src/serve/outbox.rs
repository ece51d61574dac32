//! The daemon's outbox (`serve --outbox FILE`): `POST /v1/send` stores the
//! message and answers `202 Accepted`; workers deliver it under the
//! generation serving then; `GET /v1/messages[/{id}]` shows where each is.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::cli::request::Request;
use crate::cli::{Prepared, report};
use crate::outbox::{self, AcceptError, Attempted, Configs, Store, StoreError, Worker};
use crate::transport::Transports;

use super::api::{App, Problem, Refusal};
use super::live::{Generation, Live};
use super::metrics::Metrics;

/// The outbox of a running daemon.
pub struct Outbox {
    pub store: Arc<Store>,
    pub worker: Worker,
}

/// Deliveries run under the serving generation, with its connections.
struct LiveConfigs(Arc<Live>);

impl Configs for LiveConfigs {
    fn with_current(&self, f: &mut dyn FnMut(&Prepared, &Transports, u64)) {
        let generation = self.0.current();
        let transports = generation.transports.load_full();
        f(&generation.prepared, &transports, generation.number);
    }
}

/// Opens the outbox, queues again what a crash left in delivery, and
/// starts the workers.
pub fn start(
    settings: &super::OutboxSettings,
    live: &Arc<Live>,
    metrics: &Arc<Metrics>,
) -> Result<Outbox, StoreError> {
    let store = Arc::new(Store::open(&settings.path)?);
    let observed = Arc::clone(metrics);
    let observer = Box::new(move |attempt: &Attempted| observe(&observed, attempt));
    let worker = Worker::start(
        Arc::clone(&store),
        Arc::new(LiveConfigs(Arc::clone(live))),
        settings.worker,
        observer,
    )?;
    tracing::info!(outbox = %settings.path.display(), "outbox open");
    Ok(Outbox { store, worker })
}

/// Metrics and one log line per delivery try.
fn observe(metrics: &Metrics, attempt: &Attempted) {
    let transport = attempt.transport.as_deref().unwrap_or_default();
    let status = if attempt.outcome == "sent" {
        "sent"
    } else {
        "failed"
    };
    if attempt.transport.is_some() {
        metrics.message(&attempt.profile, transport, status, attempt.seconds);
    }
    let ms = (attempt.seconds * 1000.0).round() as u64;
    let (id, message_id, profile) = (&attempt.id, &attempt.message_id, &attempt.profile);
    let error = attempt.error.as_deref().unwrap_or_default();
    match attempt.outcome {
        "sent" => tracing::info!(
            id,
            message_id,
            profile,
            transport,
            attempt = attempt.attempts,
            ms,
            "sent"
        ),
        "retry" => tracing::warn!(
            id,
            message_id,
            profile,
            transport,
            attempt = attempt.attempts,
            error,
            "not sent; retrying later"
        ),
        _ => tracing::error!(
            id,
            message_id,
            profile,
            transport,
            attempt = attempt.attempts,
            error,
            "dead letter: not sent, given up"
        ),
    }
}

/// The `Idempotency-Key` header, if given (once).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let mut given = headers.get_all("idempotency-key").iter();
    let Some(value) = given.next() else {
        return Ok(None);
    };
    let refused = |problem: &str, hint: String| {
        let problem = Problem {
            field: Some("Idempotency-Key".into()),
            hint: Some(hint),
            ..Problem::new(problem)
        };
        Refusal(StatusCode::BAD_REQUEST, problem)
    };
    if given.next().is_some() {
        return Err(refused(
            "the `Idempotency-Key` header is given more than once",
            "send one key per request".into(),
        ));
    }
    let key = value.to_str().ok().map(str::trim).unwrap_or_default();
    outbox::check_idempotency_key(key)
        .map_err(|hint| refused("the `Idempotency-Key` header is not a valid key", hint))?;
    Ok(Some(key.to_string()))
}

/// `POST /v1/send` with an outbox: stored (committed) before the answer.
pub async fn send(
    outbox: &Outbox,
    generation: Arc<Generation>,
    request: Request,
    headers: &HeaderMap,
) -> Result<Response, Refusal> {
    let key = idempotency_key(headers)?;
    let caller_id = request.id.clone();
    let store = Arc::clone(&outbox.store);
    let handed = Arc::clone(&generation);
    let accepted = tokio::task::spawn_blocking(move || {
        outbox::accept(&store, &handed.prepared, handed.number, request, key)
    })
    .await
    .map_err(|_| {
        Refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            Problem::new("the request stopped unexpectedly"),
        )
    })?;
    let enqueued = match accepted {
        Ok(enqueued) => enqueued,
        Err(AcceptError::Message(error)) => {
            tracing::warn!(id = caller_id.unwrap_or_default(), error = %report::one_line(&error.to_string()), "request refused");
            return Err(Refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                Problem::from(&error),
            ));
        }
        Err(AcceptError::Store(error @ StoreError::KeyReused { .. })) => {
            let problem = Problem {
                field: Some("Idempotency-Key".into()),
                hint: error.hint(),
                ..Problem::new(error.to_string())
            };
            return Err(Refusal(StatusCode::CONFLICT, problem));
        }
        Err(AcceptError::Store(error)) => {
            tracing::error!(error = %error, "outbox: cannot store a message");
            let hint = match error.hint() {
                Some(hint) => format!("nothing was stored; {hint}"),
                None => "nothing was stored: send the request again later".into(),
            };
            let problem = Problem {
                hint: Some(hint),
                ..Problem::new(error.to_string())
            };
            return Err(Refusal(StatusCode::SERVICE_UNAVAILABLE, problem));
        }
    };
    if !enqueued.duplicate {
        outbox.worker.wake();
        tracing::info!(
            id = enqueued.id,
            message_id = enqueued.message_id,
            profile = enqueued.profile,
            "accepted into the outbox"
        );
    }
    let status = if enqueued.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut body = serde_json::to_value(&enqueued).unwrap_or_default();
    if let Some(object) = body.as_object_mut() {
        object.insert("generation".into(), generation.number.into());
        if let Some(caller_id) = caller_id {
            object.insert("caller_id".into(), caller_id.into());
        }
    }
    Ok((status, axum::Json(body)).into_response())
}

fn no_outbox() -> Refusal {
    let problem = Problem {
        hint: Some("start the daemon with --outbox FILE to keep and track messages".into()),
        ..Problem::new("this daemon runs without an outbox")
    };
    Refusal(StatusCode::NOT_FOUND, problem)
}

fn unavailable(error: &StoreError) -> Refusal {
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        Problem::new(error.to_string()),
    )
}

/// `GET /v1/messages/{id}`.
pub async fn message(
    State(app): State<Arc<App>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, Refusal> {
    let outbox = app.outbox.as_ref().ok_or_else(no_outbox)?;
    let store = Arc::clone(&outbox.store);
    let found = tokio::task::spawn_blocking(move || store.get(&id)).await;
    match found {
        Ok(Ok(Some(view))) => Ok(axum::Json(view).into_response()),
        Ok(Ok(None)) => Err(Refusal(
            StatusCode::NOT_FOUND,
            Problem {
                hint: Some("use the `id` that POST /v1/send answered (not the Message-ID)".into()),
                ..Problem::new("no message with this id in the outbox")
            },
        )),
        Ok(Err(error)) => Err(unavailable(&error)),
        Err(_) => Err(Refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            Problem::new("the request stopped unexpectedly"),
        )),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    limit: Option<usize>,
}

/// The most messages one list returns.
const MAX_LIST: usize = 10_000;

/// `GET /v1/messages?state=queued&limit=100`: oldest first, with the
/// counts of every state.
pub async fn messages(
    State(app): State<Arc<App>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Refusal> {
    let outbox = app.outbox.as_ref().ok_or_else(no_outbox)?;
    let Query(query) = query.map_err(|rejection| {
        let problem = Problem {
            hint: Some("take `state` (queued, sending, sent, dead) and `limit`".into()),
            ..Problem::new(rejection.body_text())
        };
        Refusal(StatusCode::BAD_REQUEST, problem)
    })?;
    let state = match query.state.as_deref() {
        None | Some("") => None,
        Some(name) => Some(
            outbox::State::ALL
                .into_iter()
                .find(|s| s.name() == name)
                .ok_or_else(|| {
                    let problem = Problem {
                        field: Some("state".into()),
                        hint: Some("one of queued, sending, sent, dead".into()),
                        ..Problem::new(format!("unknown state `{name}`"))
                    };
                    Refusal(StatusCode::BAD_REQUEST, problem)
                })?,
        ),
    };
    // Refused, not cut down: a caller asking for more than the maximum
    // would otherwise take a short list for all there is.
    let limit = query.limit.unwrap_or(100);
    if limit > MAX_LIST {
        let problem = Problem {
            field: Some("limit".into()),
            hint: Some(format!(
                "ask for at most {MAX_LIST} messages (`limit=0`: only the counts)"
            )),
            ..Problem::new(format!(
                "`limit` is {limit}, more than the maximum of {MAX_LIST}"
            ))
        };
        return Err(Refusal(StatusCode::BAD_REQUEST, problem));
    }
    let store = Arc::clone(&outbox.store);
    let listed = tokio::task::spawn_blocking(move || {
        Ok::<_, StoreError>((store.list(state, limit)?, store.counts()?))
    })
    .await;
    match listed {
        Ok(Ok((messages, counts))) => {
            let counts: serde_json::Map<String, serde_json::Value> = counts
                .iter()
                .map(|(state, n)| (state.name().to_string(), (*n).into()))
                .collect();
            Ok(axum::Json(json!({"counts": counts, "messages": messages})).into_response())
        }
        Ok(Err(error)) => Err(unavailable(&error)),
        Err(_) => Err(Refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            Problem::new("the request stopped unexpectedly"),
        )),
    }
}
