//! The HTTP API: JSON in, JSON out. Each request takes the serving
//! generation once, at its start, and uses it to the end.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::delivery::{self, Delivery, RetryPolicy, Status};
use crate::cli::request::{self, Invalid};
use crate::cli::{CliError, explain, message_input_with, report};
use crate::render;
use crate::resolve;

use super::live::{Generation, Live, Outcome, Trigger};
use super::metrics::Metrics;

/// What every handler shares.
pub struct App {
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    /// The bearer token callers must present; `None` on loopback without one.
    pub token: Option<String>,
    /// With `--outbox`: `POST /v1/send` queues, workers deliver.
    pub outbox: Option<super::outbox::Outbox>,
}

pub fn router(app: Arc<App>) -> Router {
    let protected = Router::new()
        .route("/v1/send", post(send))
        .route("/v1/explain", post(explain))
        .route("/v1/preview", post(preview))
        .route("/v1/config", get(config))
        .route("/v1/reload", post(reload))
        .route("/v1/alerts/{name}", post(alert))
        .route("/v1/messages", get(super::outbox::messages))
        .route("/v1/messages/{id}", get(super::outbox::message))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&app), authorize));
    Router::new()
        // Liveness probes carry no token.
        .route("/healthz", get(healthz))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(refuse_large_bodies))
        .with_state(app)
}

/// Why a request was not carried out, as the caller gets it.
#[derive(Debug, Serialize)]
pub(super) struct Problem {
    pub error: String,
    /// The request field the error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The template part that failed to render (file:line:column).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_at: Option<String>,
}

impl Problem {
    pub fn new(error: impl Into<String>) -> Self {
        Problem {
            error: error.into(),
            field: None,
            hint: None,
            template_at: None,
        }
    }

    fn respond(self, status: StatusCode) -> Response {
        (status, axum::Json(self)).into_response()
    }
}

impl From<Invalid> for Problem {
    fn from(invalid: Invalid) -> Self {
        Problem {
            field: invalid.field,
            ..Problem::new(invalid.problem)
        }
    }
}

impl From<&CliError> for Problem {
    fn from(error: &CliError) -> Self {
        Problem {
            error: report::one_line(&error.to_string()),
            field: delivery::field_of(error).map(str::to_string),
            hint: report::hint(error),
            template_at: match error {
                CliError::Render(render) => render.location().map(ToString::to_string),
                _ => None,
            },
        }
    }
}

/// The largest request body: a message's data, never its attachments.
const MAX_BODY: usize = 2 << 20;

fn too_large() -> Problem {
    Problem {
        hint: Some("a request is at most 2 MiB of JSON; attachments belong in the template".into()),
        ..Problem::new("the body is too large")
    }
}

/// A body announced as too large is refused before it is read. (A body
/// without a length is cut off at the limit while it is read.)
async fn refuse_large_bodies(request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if announced.is_some_and(|length| length > MAX_BODY) {
        return too_large().respond(StatusCode::PAYLOAD_TOO_LARGE);
    }
    next.run(request).await
}

/// A request that is not carried out: its status and what the caller is told.
pub(super) struct Refusal(pub StatusCode, pub Problem);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        self.1.respond(self.0)
    }
}

impl From<Invalid> for Refusal {
    fn from(invalid: Invalid) -> Self {
        Refusal(StatusCode::BAD_REQUEST, Problem::from(invalid))
    }
}

async fn authorize(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(token) = &app.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            // The scheme's name is case-insensitive (RFC 9110 §11.1).
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        if !given.is_some_and(|given| same_secret(given.as_bytes(), token.as_bytes())) {
            let mut response = Problem {
                hint: Some("send `Authorization: Bearer <token>` with the token the daemon was started with".into()),
                ..Problem::new("missing or wrong bearer token")
            }
            .respond(StatusCode::UNAUTHORIZED);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

/// Compares without stopping at the first difference, so that the time
/// taken does not tell a caller how much of a guess was right.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let generation = app.live.current().number;
    axum::Json(json!({"status": "ok", "generation": generation})).into_response()
}

async fn wrong_method() -> Response {
    Problem {
        hint: Some("/v1/send, /v1/explain, /v1/preview, /v1/alerts/NAME and /v1/reload take POST; /v1/config, /v1/messages, /healthz and /metrics GET".into()),
        ..Problem::new("this endpoint does not take this method")
    }
    .respond(StatusCode::METHOD_NOT_ALLOWED)
}

async fn not_found() -> Response {
    Problem {
        hint: Some("the API is POST /v1/send, /v1/explain, /v1/preview, /v1/alerts/NAME, /v1/reload; GET /v1/config, /v1/messages[/ID], /healthz, /metrics".into()),
        ..Problem::new("no such endpoint")
    }
    .respond(StatusCode::NOT_FOUND)
}

/// The body as text; JSON is UTF-8. Bodies are limited to 2 MiB.
fn text(body: &Result<Bytes, BytesRejection>) -> Result<&str, Refusal> {
    let body = body.as_ref().map_err(|rejection| {
        let problem = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => too_large(),
            _ => Problem::new(rejection.body_text()),
        };
        Refusal(rejection.status(), problem)
    })?;
    std::str::from_utf8(body).map_err(|_| {
        Refusal(
            StatusCode::BAD_REQUEST,
            Problem::new("the body is not UTF-8 text: send a JSON object"),
        )
    })
}

/// A `send` or `preview` request. `attach` is refused: the daemon does not
/// read files on a caller's behalf (that would let any caller mail itself
/// any file the daemon can read); attachments belong in the template.
fn message_request(body: &Result<Bytes, BytesRejection>) -> Result<request::Request, Refusal> {
    let request = request::parse(text(body)?, Path::new("."))?;
    if !request.message.attach.is_empty() {
        let problem = Problem {
            field: Some("attach".into()),
            hint: Some(
                "declare the attachment in the template, or send with `mailrules send --attach`"
                    .into(),
            ),
            ..Problem::new("`attach`: the daemon does not read files named in a request")
        };
        return Err(Refusal(StatusCode::BAD_REQUEST, problem));
    }
    Ok(request)
}

/// The delivery as the caller gets it, with the generation that handled
/// it and the caller's `id`, if it gave one.
fn answer(generation: &Generation, id: Option<String>, delivery: &Delivery) -> Value {
    let mut value = serde_json::to_value(delivery).unwrap_or(Value::Null);
    if let Value::Object(object) = &mut value {
        object.insert("generation".into(), generation.number.into());
        if let Some(id) = id {
            object.insert("id".into(), id.into());
        }
    }
    value
}

async fn send(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let generation = app.live.current();
    let request = message_request(&body)?;
    if let Some(outbox) = &app.outbox {
        return super::outbox::send(outbox, generation, request, &headers).await;
    }
    // Without an outbox nothing remembers a key: sending twice would send
    // twice, which is what the caller's key was meant to prevent.
    if headers.contains_key("idempotency-key") {
        let problem = Problem {
            field: Some("Idempotency-Key".into()),
            hint: Some(
                "idempotency keys need the outbox: start the daemon with --outbox FILE, or leave the header out".into(),
            ),
            ..Problem::new("`Idempotency-Key` is given, but this daemon has no outbox to remember it")
        };
        return Err(Refusal(StatusCode::BAD_REQUEST, problem));
    }
    let id = request.id.clone();
    let started = Instant::now();
    let handed = Arc::clone(&generation);
    let delivered = tokio::task::spawn_blocking(move || {
        let transports = handed.transports.load_full();
        delivery::deliver(&handed.prepared, &transports, request, RetryPolicy::ONCE)
    })
    .await;
    let Ok(delivery) = delivered else {
        let problem = Problem::new("the send stopped unexpectedly");
        return Err(Refusal(StatusCode::INTERNAL_SERVER_ERROR, problem));
    };
    record(&app, id.as_deref(), &delivery, started);
    let status = match (delivery.status, delivery.attempts, delivery.temporary) {
        (Status::Sent, ..) => StatusCode::OK,
        // Nothing reached a transport: the request (or the config) is wrong.
        (Status::Failed, 0, _) => StatusCode::UNPROCESSABLE_ENTITY,
        (Status::Failed, _, Some(true)) => StatusCode::SERVICE_UNAVAILABLE,
        (Status::Failed | Status::Unknown, ..) => StatusCode::BAD_GATEWAY,
    };
    Ok((status, axum::Json(answer(&generation, id, &delivery))).into_response())
}

/// Metrics for a message that reached a transport, and one log line.
fn record(app: &App, id: Option<&str>, delivery: &Delivery, started: Instant) {
    let status = match delivery.status {
        Status::Sent => "sent",
        Status::Failed => "failed",
        Status::Unknown => "unknown",
    };
    let seconds = started.elapsed().as_secs_f64();
    let ms = (seconds * 1000.0).round() as u64;
    let id = id.unwrap_or_default();
    let error = delivery.error.as_deref().unwrap_or_default();
    let (Some(profile), Some(transport), Some(message_id)) = (
        delivery.profile.as_deref(),
        delivery.transport.as_deref(),
        delivery.message_id.as_deref(),
    ) else {
        // No message was made: an unknown name, a template error.
        tracing::warn!(id, error, "request refused");
        return;
    };
    if delivery.attempts > 0 {
        app.metrics.message(profile, transport, status, seconds);
    }
    if let Some(copy) = delivery.copy.as_ref().filter(|c| c.status == "failed") {
        let copy_error = copy.error.as_deref().unwrap_or_default();
        tracing::warn!(
            id,
            message_id,
            copy_error,
            attempts = copy.attempts,
            "sent, but its copy was not stored"
        );
    }
    match delivery.status {
        Status::Sent => tracing::info!(id, message_id, profile, transport, ms, "sent"),
        _ => tracing::warn!(
            id, message_id, profile, transport, status, error, ms, "not sent"
        ),
    }
}

async fn explain(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let generation = app.live.current();
    let context = request::parse_context(text(&body)?)?;
    let prepared = &generation.prepared;
    let resolution = resolve::resolve(&prepared.loaded.config, &prepared.request(&context))
        .map_err(|error| unprocessable(&CliError::from(error)))?;
    let mut explanation = explain::Explanation::of(&resolution);
    explanation.generation = Some(generation.number);
    Ok(axum::Json(explanation).into_response())
}

/// A valid request that cannot be carried out under this configuration.
fn unprocessable(error: &CliError) -> Refusal {
    Refusal(StatusCode::UNPROCESSABLE_ENTITY, Problem::from(error))
}

async fn preview(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let generation = app.live.current();
    let request = message_request(&body)?;
    let prepared = &generation.prepared;
    let resolution = resolve::resolve(&prepared.loaded.config, &prepared.request(&request.context))
        .map_err(|error| unprocessable(&CliError::from(error)))?;
    let input = message_input_with(&request.message, request.data)
        .map_err(|error| unprocessable(&error))?;
    let rendered = render::render(&resolution, &input)
        .map_err(|error| unprocessable(&CliError::from(error)))?;
    let envelope = rendered.envelope();
    let body = json!({
        "generation": generation.number,
        "id": request.id,
        "profile": resolution.profile.id,
        "message_id": rendered.message_id,
        "language": rendered.language.as_ref().map(ToString::to_string),
        "envelope": {
            "from": envelope.from().map(ToString::to_string),
            "to": envelope.to().iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        // The rendered message is 7-bit (lettre encodes every part).
        "message": String::from_utf8_lossy(&rendered.bytes()),
    });
    Ok(axum::Json(body).into_response())
}

/// The body of `POST /v1/alerts/{name}`: optional template variables.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AlertRequest {
    data: Option<serde_json::Map<String, Value>>,
}

async fn alert(
    State(app): State<Arc<App>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let generation = app.live.current();
    let text = text(&body)?;
    let request: AlertRequest = if text.trim().is_empty() {
        AlertRequest::default()
    } else {
        serde_json::from_str(text).map_err(|e| {
            Refusal(
                StatusCode::BAD_REQUEST,
                Problem {
                    hint: Some(
                        "send {\"data\": {...}} with the template variables, or no body".into(),
                    ),
                    ..Problem::new(e.to_string())
                },
            )
        })?
    };
    let data = Value::Object(request.data.unwrap_or_default());
    let started = Instant::now();
    let handed = Arc::clone(&generation);
    let sent = tokio::task::spawn_blocking(move || {
        let transports = handed.transports.load_full();
        crate::cli::alert::send(&handed.prepared, &transports, &name, data)
    })
    .await;
    let Ok(outcome) = sent else {
        let problem = Problem::new("the alert stopped unexpectedly");
        return Err(Refusal(StatusCode::INTERNAL_SERVER_ERROR, problem));
    };
    record(&app, None, &outcome.delivery, started);
    let status = match (outcome.delivery.status, outcome.delivery.attempts) {
        (Status::Sent, _) => StatusCode::OK,
        (_, 0) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::BAD_GATEWAY,
    };
    let mut body = serde_json::to_value(&outcome).unwrap_or(Value::Null);
    if let Value::Object(object) = &mut body {
        object.insert("generation".into(), generation.number.into());
    }
    Ok((status, axum::Json(body)).into_response())
}

async fn config(State(app): State<Arc<App>>) -> Response {
    let generation = app.live.current();
    let body = json!({
        "generation": generation.number,
        "hash": generation.hash,
        "loaded_at": humantime::format_rfc3339_millis(generation.loaded_at).to_string(),
        "files": generation.prepared.loaded.files.len(),
        "last_reload": app.live.last_reload(),
    });
    axum::Json(body).into_response()
}

async fn reload(State(app): State<Arc<App>>) -> Response {
    let live = Arc::clone(&app.live);
    let Ok(outcome) = tokio::task::spawn_blocking(move || live.reload(Trigger::Api)).await else {
        return Problem::new("the reload stopped unexpectedly")
            .respond(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let status = match outcome {
        Outcome::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Outcome::Applied { .. } | Outcome::Unchanged { .. } => StatusCode::OK,
    };
    (status, axum::Json(outcome)).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    if let Some(outbox) = &app.outbox {
        let store = Arc::clone(&outbox.store);
        if let Ok(Ok(counts)) = tokio::task::spawn_blocking(move || store.counts()).await {
            app.metrics.outbox(&counts);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.text(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_equal_only_when_every_byte_is() {
        assert!(super::same_secret(b"s3cret", b"s3cret"));
        assert!(!super::same_secret(b"s3cres", b"s3cret"));
        assert!(!super::same_secret(b"s3cre", b"s3cret"));
        assert!(!super::same_secret(b"", b"s3cret"));
    }
}
