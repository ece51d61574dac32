//! XOAUTH2 access tokens: fetched from the OAuth 2.0 token endpoint (or
//! printed by a helper command), kept in memory per login, and fetched
//! anew shortly before they expire. One fetch at a time: logins that need
//! a token while it is being fetched wait and use the same one. A token is
//! never printed, logged or put in an error.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::secret::{SecretError, read_secret};
use crate::config::TokenSource;

/// A fetched token is used until this much of its lifetime is left.
const MARGIN: Duration = Duration::from_secs(300);
/// How long a bare token printed by a command is used (it says no expiry).
const COMMAND_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// A token command prints a token: a few KiB at most. More is a runaway
/// helper (`yes`), which would otherwise fill memory until the timeout.
const MAX_COMMAND_OUTPUT: usize = 64 * 1024;
/// How much of an endpoint's error, or a command's complaint, is shown.
const MAX_SHOWN: usize = 300;
/// Form fields that carry a secret: never shown, not even when the
/// endpoint echoes them back in its error.
const SECRET_FIELDS: [&str; 2] = ["client_secret", "refresh_token"];

pub struct Tokens {
    source: TokenSource,
    timeout: Duration,
    cached: Mutex<Option<Token>>,
}

struct Token {
    value: String,
    fresh_until: Instant,
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The endpoint answered with an OAuth 2.0 error (`invalid_client`, …).
    #[error("the token endpoint {url} refused (HTTP {status}): {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        url: String,
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// No answer, or not an OAuth 2.0 answer (a proxy's error page, 5xx).
    #[error("no token from {url}: {problem}")]
    Unreachable {
        url: String,
        problem: String,
        temporary: bool,
    },
    #[error("the token command `{program}` failed: {problem}")]
    Command { program: String, problem: String },
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl TokenError {
    /// Network trouble and the endpoint's own outages pass; a refused
    /// secret or grant is a configuration error.
    pub fn is_temporary(&self) -> bool {
        match self {
            TokenError::Refused { status, error, .. } => {
                *status >= 500 || *status == 429 || error == "temporarily_unavailable"
            }
            TokenError::Unreachable { temporary, .. } => *temporary,
            TokenError::Command { .. } | TokenError::Secret(_) => false,
        }
    }

    pub fn hint(&self) -> String {
        match self {
            TokenError::Refused {
                error, description, ..
            } => refusal_hint(error, description.as_deref().unwrap_or_default()).to_string(),
            TokenError::Unreachable {
                temporary: true, ..
            } => "check the network path (proxy, firewall, DNS) to the token endpoint; a send (a batch, the outbox) retries this as a temporary failure".into(),
            TokenError::Unreachable { .. } => {
                "check `token_url`: it must be the provider's OAuth 2.0 token endpoint".into()
            }
            TokenError::Command { .. } => {
                "run the command by hand: it must print only the access token (or JSON with `access_token`) and exit 0".into()
            }
            TokenError::Secret(e) => e.hint(),
        }
    }
}

/// What to check, by the OAuth 2.0 error and Microsoft's AADSTS codes.
fn refusal_hint(error: &str, description: &str) -> &'static str {
    let has = |code: &str| description.contains(code);
    if has("AADSTS90002") || has("AADSTS900023") || has("AADSTS90013") {
        "the tenant in `token_url` is unknown: use the directory (tenant) id or the primary domain from the app registration's overview"
    } else if has("AADSTS65001") || error == "consent_required" {
        "the app has no consent: an administrator must grant admin consent for its API permission (Office 365 Exchange Online: SMTP.SendAsApp)"
    } else if has("AADSTS700016") {
        "no app with this `client_id` in the tenant: copy the application (client) id from the app registration"
    } else if has("AADSTS7000215") || has("AADSTS7000222") || error == "invalid_client" {
        "check `client_id` and the client secret (secrets expire: create a new one in the app registration and store it in the secret)"
    } else if error == "invalid_grant" {
        "the refresh token is expired or revoked (a password change or a sign-out everywhere does this): obtain a new refresh token and store it in the secret"
    } else if error == "invalid_scope" {
        "check `scope`: https://outlook.office365.com/.default for Microsoft 365 (app-only), https://mail.google.com/ for Gmail"
    } else if error == "unauthorized_client" {
        "the app may not use this flow: enable it for the app (client credentials need an application permission, a refresh token a delegated one)"
    } else {
        "the provider refused to issue a token: check the app registration and the values under `token:`"
    }
}

/// A token endpoint's answer (RFC 6749 §5.1 and §5.2).
#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    /// A number, though some providers send it as text.
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

impl Tokens {
    pub fn new(source: TokenSource, timeout: Duration) -> Self {
        Tokens {
            source,
            timeout,
            cached: Mutex::new(None),
        }
    }

    /// A token that is good for a while yet; fetched when needed. The lock
    /// is held while fetching, so that concurrent logins share one fetch.
    pub fn get(&self) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.fresh_until
        {
            return Ok(token.value.clone());
        }
        let token = self.fetch()?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    /// The server refused the token: the next login fetches a new one.
    pub fn forget(&self) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn fetch(&self) -> Result<Token, TokenError> {
        match &self.source {
            TokenSource::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                let secret = read_secret(client_secret)?;
                self.post(
                    token_url,
                    &[
                        ("grant_type", "client_credentials"),
                        ("client_id", client_id),
                        ("client_secret", &secret),
                        ("scope", scope),
                    ],
                )
            }
            TokenSource::RefreshToken {
                token_url,
                client_id,
                client_secret,
                refresh_token,
                scope,
            } => {
                let refresh = read_secret(refresh_token)?;
                let secret = client_secret.as_ref().map(read_secret).transpose()?;
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id.as_str()),
                    ("refresh_token", refresh.as_str()),
                ];
                if let Some(secret) = &secret {
                    form.push(("client_secret", secret));
                }
                if let Some(scope) = scope {
                    form.push(("scope", scope));
                }
                self.post(token_url, &form)
            }
            TokenSource::Command(argv) => run_command(argv, self.timeout),
        }
    }

    fn post(&self, url: &str, form: &[(&str, &str)]) -> Result<Token, TokenError> {
        let unreachable = |problem: String, temporary: bool| TokenError::Unreachable {
            url: url.to_string(),
            problem,
            temporary,
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(self.timeout))
            .build()
            .into();
        let started = Instant::now();
        let failed = |error: ureq::Error| match error {
            // ureq says "timeout: global": say what it means.
            ureq::Error::Timeout(_) => super::no_answer_within(self.timeout),
            other => other.to_string(),
        };
        // Encoded here rather than by ureq, so that we know how each secret
        // looks in the request and can mask it if the endpoint echoes it.
        let request_body = form
            .iter()
            .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        let secrets: Vec<&str> = form
            .iter()
            .filter(|(name, _)| SECRET_FIELDS.contains(name))
            .map(|&(_, value)| value)
            .collect();
        let mut response = agent
            .post(url)
            .content_type("application/x-www-form-urlencoded")
            .send(&request_body)
            .map_err(|e| unreachable(failed(e), true))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .map_err(|e| unreachable(failed(e), true))?;
        let Ok(answer) = serde_json::from_str::<Answer>(&body) else {
            // Not JSON: a proxy's page or an outage. The body is not shown:
            // it could echo what was sent.
            let temporary = status >= 500 || status == 429;
            return Err(unreachable(
                format!("HTTP {status} without an OAuth 2.0 answer"),
                temporary,
            ));
        };
        match answer {
            Answer {
                access_token: Some(value),
                expires_in,
                ..
            } if (200..300).contains(&status) && !value.is_empty() => {
                let lifetime = expires_in
                    .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                    .map_or(Duration::from_secs(3600), Duration::from_secs);
                Ok(Token {
                    value,
                    fresh_until: fresh_until(started, lifetime),
                })
            }
            Answer {
                error: Some(error),
                error_description,
                ..
            } => Err(TokenError::Refused {
                url: url.to_string(),
                status,
                error: shown(&error, &secrets),
                description: error_description.map(|d| shown(&d, &secrets)),
            }),
            _ => Err(unreachable(
                format!("HTTP {status} without `access_token`"),
                status >= 500,
            )),
        }
    }
}

/// Until when a token obtained at `started` is used. No token is trusted
/// for more than a day, whatever the endpoint says its lifetime is.
fn fresh_until(started: Instant, lifetime: Duration) -> Instant {
    let lifetime = lifetime.min(Duration::from_secs(24 * 3600));
    started + lifetime - margin(lifetime)
}

/// Refresh this long before expiry: five minutes, or a fifth of a short
/// lifetime.
fn margin(lifetime: Duration) -> Duration {
    MARGIN.min(lifetime / 5)
}

/// Percent-encodes all but the unreserved characters (RFC 3986 §2.3): a
/// valid `application/x-www-form-urlencoded` value, and a plain rule.
fn form_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Text from outside (an endpoint's error, a command's stderr) made fit to
/// print and log:
/// - every secret that was sent is masked, as given and as form-encoded:
///   some endpoints echo the request in their error;
/// - only the first line is kept: providers' descriptions run over lines
///   (trace ids, timestamps);
/// - control characters become spaces: an escape sequence must not reach
///   a terminal;
/// - at most `MAX_SHOWN` characters are kept.
fn shown(text: &str, secrets: &[&str]) -> String {
    // Longest first, so that a shorter secret inside a longer one does
    // not leave pieces of the longer one to be seen.
    let mut masks: Vec<String> = secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .flat_map(|secret| [secret.to_string(), form_encode(secret)])
        .collect();
    masks.sort_by_key(|mask| std::cmp::Reverse(mask.len()));
    let mut text = text.to_string();
    for mask in &masks {
        text = text.replace(mask.as_str(), "***");
    }
    let line = text.trim_start().lines().next().unwrap_or_default();
    let line: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim_end();
    if line.chars().count() > MAX_SHOWN {
        let cut: String = line.chars().take(MAX_SHOWN).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

fn run_command(argv: &[String], timeout: Duration) -> Result<Token, TokenError> {
    let program = argv.first().cloned().unwrap_or_default();
    let failed = |problem: String| TokenError::Command {
        program: program.clone(),
        problem,
    };
    let started = Instant::now();
    let output = output_within(argv, timeout).map_err(failed)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(failed(format!(
            "{}: {}",
            output.status,
            shown(&stderr, &[])
        )));
    }
    let stdout = String::from_utf8(output.stdout)
        .map_err(|_| failed("it printed something that is not text".into()))?;
    let printed = stdout.trim();
    // `{` means JSON was meant: a helper's error object or a cut-off answer
    // must fail here, not be presented to the server as the token.
    let (value, lifetime) = if printed.starts_with('{') {
        match serde_json::from_str::<Answer>(printed) {
            Ok(Answer {
                access_token: Some(value),
                expires_in,
                ..
            }) if !value.is_empty() => {
                let seconds = expires_in.and_then(|v| v.as_u64());
                (
                    value,
                    seconds.map_or(COMMAND_TOKEN_LIFETIME, Duration::from_secs),
                )
            }
            _ => {
                return Err(failed(
                    "it printed something that starts with `{` but is not JSON with a non-empty `access_token`".into(),
                ));
            }
        }
    } else {
        (printed.to_string(), COMMAND_TOKEN_LIFETIME)
    };
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(failed(
            "it printed no token (expected one line with the access token)".into(),
        ));
    }
    Ok(Token {
        value,
        fresh_until: fresh_until(started, lifetime),
    })
}

/// Runs the command and returns what it printed. A helper that hangs is
/// stopped after `timeout`, one that prints more than `MAX_COMMAND_OUTPUT`
/// at once: only that much is ever held in memory.
fn output_within(argv: &[String], timeout: Duration) -> Result<std::process::Output, String> {
    use std::process::{Command, Stdio};
    let deadline = Instant::now() + timeout;
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    // Each pipe is read in a thread, so that the helper never blocks on a
    // full one. Of stdout one byte more than allowed is read: enough to
    // know that it printed too much. Of stderr (shown as one line) the
    // start is kept and the rest read and dropped.
    let out = std::thread::spawn(move || read_at_most(stdout, MAX_COMMAND_OUTPUT + 1));
    let err = std::thread::spawn(move || {
        let kept = read_at_most(&mut stderr, MAX_COMMAND_OUTPUT);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        kept
    });
    let timed_out = || format!("no token within {} s", timeout.as_secs());

    // Stdout ends when the helper is done printing, or at the limit.
    if !wait_until(deadline, || out.is_finished()) {
        return Err(stop(&mut child, timed_out()));
    }
    let stdout = match out.join() {
        Ok(Ok(bytes)) if bytes.len() <= MAX_COMMAND_OUTPUT => bytes,
        Ok(Ok(_)) => {
            let problem = format!(
                "it printed more than {} KiB: it must print only the token",
                MAX_COMMAND_OUTPUT / 1024
            );
            return Err(stop(&mut child, problem));
        }
        Ok(Err(problem)) => return Err(stop(&mut child, problem)),
        Err(_) => return Err(stop(&mut child, "reading its output failed".into())),
    };
    // Then it exits, and its stderr ends. (Should `try_wait` fail, the
    // helper counts as still running: it is stopped at the deadline.)
    let mut status = None;
    let exited = wait_until(deadline, || {
        if status.is_none() {
            status = child.try_wait().ok().flatten();
        }
        status.is_some() && err.is_finished()
    });
    let Some(status) = status.filter(|_| exited) else {
        return Err(stop(&mut child, timed_out()));
    };
    let stderr = err.join().map_err(|_| "reading its stderr failed")??;
    Ok(std::process::Output {
        status,
        stdout,
        stderr,
    })
}

/// Kills the helper and says why. Through its handle, which also reaps it:
/// never a signal to a pid that may have been reused meanwhile.
fn stop(child: &mut std::process::Child, problem: String) -> String {
    let _ = child.kill();
    let _ = child.wait();
    problem
}

/// Up to `limit` bytes from `reader`, until its end.
fn read_at_most(reader: impl std::io::Read, limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    reader
        .take(limit as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Polls `done` until it holds (true) or `deadline` has passed (false).
fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_refreshed_five_minutes_or_a_fifth_of_its_life_before_expiry() {
        assert_eq!(margin(Duration::from_secs(3600)), Duration::from_secs(300));
        assert_eq!(margin(Duration::from_secs(10)), Duration::from_secs(2));
    }

    #[test]
    fn an_absurd_lifetime_is_capped_at_a_day() {
        let now = Instant::now();
        let until = fresh_until(now, Duration::from_secs(u64::MAX));
        assert_eq!(until - now, Duration::from_secs(24 * 3600 - 300));
    }

    #[test]
    fn an_echoed_secret_is_masked_as_given_and_as_sent() {
        let secrets = ["s3cret/+=", "r3fresh"];
        let shown = |text| shown(text, &secrets);
        assert_eq!(
            shown("client_secret=s3cret%2F%2B%3D&refresh_token=r3fresh"),
            "client_secret=***&refresh_token=***"
        );
        assert_eq!(
            shown("got s3cret/+= twice: s3cret/+="),
            "got *** twice: ***"
        );
        // An empty secret masks nothing.
        assert_eq!(super::shown("a b", &[""]), "a b");
    }

    #[test]
    fn shown_text_is_one_line_without_control_characters_and_capped() {
        assert_eq!(
            shown("\x1b[31mbad\tthing\r\nTrace ID: 1", &[]),
            " [31mbad thing"
        );
        assert_eq!(shown("\n\nsecond line", &[]), "second line");
        let long = "é".repeat(MAX_SHOWN + 1);
        let cut = shown(&long, &[]);
        assert_eq!(cut.chars().count(), MAX_SHOWN + 1);
        assert!(cut.ends_with("é…"));
        assert_eq!(shown(&long[..2 * MAX_SHOWN], &[]), "é".repeat(MAX_SHOWN));
    }

    #[test]
    fn microsoft_and_oauth_errors_get_their_own_hints() {
        let hint = |error, description| refusal_hint(error, description);
        assert!(hint("invalid_request", "AADSTS90002: Tenant 'x' not found.").contains("tenant"));
        assert!(
            hint(
                "invalid_grant",
                "AADSTS65001: The user or administrator has not consented"
            )
            .contains("consent")
        );
        assert!(
            hint(
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided."
            )
            .contains("client secret")
        );
        assert!(
            hint("invalid_grant", "Token has been expired or revoked.").contains("refresh token")
        );
    }
}
