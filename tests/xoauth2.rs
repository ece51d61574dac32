//! OAuth 2.0 for SMTP (XOAUTH2) against real servers on 127.0.0.1: a token
//! endpoint shaped like Microsoft's (tests/servers/token_server.py) and
//! the SMTP test server, which accepts only tokens that endpoint issued
//! and that have not expired.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    Daemon, EXAMPLE, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, OAUTH_REFRESH_TOKEN, OAUTH_TENANT,
    SmtpServer, TokenServer, invoice_request, invoices, mailrules, run,
};

const MAILBOX: &str = "facturen@acme.nl";

/// An SMTP server that accepts the tokens `tokens` issues.
fn smtp_for(tokens: &TokenServer, extra: &[&str]) -> SmtpServer {
    let file = tokens.tokens_file();
    let mut args = vec!["--xoauth2-tokens", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    SmtpServer::start_with("starttls", &args)
}

fn client_credentials(url: &str) -> String {
    format!(
        "{{client_credentials: {{token_url: \"{url}\", client_id: {OAUTH_CLIENT_ID}, client_secret: {{env: TEST_CLIENT_SECRET}}, scope: \"https://outlook.office365.com/.default\"}}}}"
    )
}

fn refresh_token(url: &str) -> String {
    format!(
        "{{refresh_token: {{token_url: \"{url}\", client_id: {OAUTH_CLIENT_ID}, refresh_token: {{env: TEST_REFRESH_TOKEN}}}}}}"
    )
}

/// `send` of one invoice through `override_file`, with the test secrets
/// (`client_secret` may be a wrong one).
fn send(override_file: &Path, client_secret: &str) -> common::Run {
    run(mailrules()
        .args(["send", "--config", EXAMPLE])
        .args(["-a", "acme-nl", "-u", "anna", "-p", "sales_invoice"])
        .args(["--to", "klant@example.com"])
        .args(["--data", &format!("{EXAMPLE}/data/sales_invoice.json")])
        .arg("--transport-override")
        .arg(override_file)
        .env("TEST_CLIENT_SECRET", client_secret)
        .env("TEST_REFRESH_TOKEN", OAUTH_REFRESH_TOKEN))
}

#[test]
fn a_batch_shares_one_token_among_its_concurrent_logins() {
    // A slow endpoint: eight logins wait for the same fetch.
    let tokens = TokenServer::start(3600, &["--delay", "0.5"]);
    let smtp = smtp_for(&tokens, &[]);
    let override_file =
        smtp.xoauth2_override(MAILBOX, &client_credentials(&tokens.url(OAUTH_TENANT)));
    let dir = tempfile::tempdir().unwrap();
    let batch = invoices(dir.path(), 40);
    let result = run(mailrules()
        .args(["send", "--config", EXAMPLE, "--batch"])
        .arg(&batch)
        .args(["--concurrency", "8", "--transport-override"])
        .arg(&override_file)
        .env("TEST_CLIENT_SECRET", OAUTH_CLIENT_SECRET));
    assert_eq!(result.code, 0, "{}{}", result.stdout, result.stderr);
    assert!(
        result.stdout.contains("batch: 40 sent"),
        "{}",
        result.stdout
    );

    assert_eq!(tokens.requests(), ["client_credentials"], "one fetch");
    let received = smtp.received();
    assert_eq!(received.len(), 40);
    assert!(
        received
            .iter()
            .all(|m| m.auth_user.as_deref() == Some(MAILBOX))
    );
    let logins = smtp.xoauth2_logins();
    assert!((1..=8).contains(&logins.len()), "{logins:?}");
    assert!(
        logins
            .iter()
            .all(|(verdict, user, token)| verdict == "accepted"
                && user == MAILBOX
                && *token == logins[0].2),
        "every connection logged in with the one token: {logins:?}"
    );
    let output = format!("{}{}", result.stdout, result.stderr);
    assert!(!output.contains(&logins[0].2), "the token is never printed");
    assert!(!output.contains(OAUTH_CLIENT_SECRET));
}

/// A daemon sends now and then; the server closes idle connections, so
/// each send logs in anew. Tokens live 4 s and are renewed when a fifth of
/// that is left (after 3.2 s): never is an expired one presented.
#[test]
fn a_token_is_fetched_again_shortly_before_it_expires() {
    let tokens = TokenServer::start(4, &[]);
    let smtp = smtp_for(&tokens, &["--idle-timeout", "0.5"]);
    let override_file =
        smtp.xoauth2_override(MAILBOX, &client_credentials(&tokens.url(OAUTH_TENANT)));
    let config = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .args(["-r", EXAMPLE])
        .arg(config.path().join("config"))
        .status()
        .unwrap();
    assert!(status.success());
    let daemon = Daemon::start_with(
        &config.path().join("config"),
        &["--transport-override", override_file.to_str().unwrap()],
        &[("TEST_CLIENT_SECRET", OAUTH_CLIENT_SECRET)],
    );
    let request = invoice_request("klant@example.com", serde_json::json!({}));
    for wait in [0.0, 1.5, 2.1] {
        std::thread::sleep(Duration::from_secs_f64(wait));
        let reply = daemon.post("/v1/send", &request);
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let logins = smtp.xoauth2_logins();
    assert_eq!(logins.len(), 3, "one login per send: {logins:?}");
    assert!(
        logins.iter().all(|(verdict, ..)| verdict == "accepted"),
        "{logins:?}"
    );
    assert_eq!(
        logins[0].2, logins[1].2,
        "at 1.5 s the token is still fresh"
    );
    assert_ne!(logins[1].2, logins[2].2, "at 3.6 s it was renewed");
    assert_eq!(tokens.requests().len(), 2, "one fetch per lifetime");
    assert!(
        !daemon.logs().contains(&logins[0].2),
        "the token is never logged"
    );
}

/// A batch that outlives its tokens: they live 2 s and are renewed when
/// 0.4 s are left; the server takes three messages per connection, so the
/// four workers log in again and again, concurrently, throughout. Each
/// renewal is one fetch (the others wait for it), no two fetches fall in
/// one lifetime, and no login ever presents an expired token.
#[test]
fn a_batch_across_several_expiries_refreshes_once_per_expiry() {
    let tokens = TokenServer::start(2, &["--delay", "0.2"]);
    let smtp = smtp_for(
        &tokens,
        &["--max-messages-per-connection", "3", "--data-delay", "0.15"],
    );
    let override_file =
        smtp.xoauth2_override(MAILBOX, &client_credentials(&tokens.url(OAUTH_TENANT)));
    let dir = tempfile::tempdir().unwrap();
    let batch = invoices(dir.path(), 120);
    let result = run(mailrules()
        .args(["send", "--config", EXAMPLE, "--batch"])
        .arg(&batch)
        .args(["--concurrency", "4", "--transport-override"])
        .arg(&override_file)
        .env("TEST_CLIENT_SECRET", OAUTH_CLIENT_SECRET));
    assert_eq!(result.code, 0, "{}{}", result.stdout, result.stderr);
    assert!(
        result.stdout.contains("batch: 120 sent"),
        "{}",
        result.stdout
    );
    assert_eq!(smtp.received().len(), 120, "each message once");

    let logins = smtp.xoauth2_logins();
    assert!(logins.len() >= 40, "a login per three messages: {logins:?}");
    assert!(
        logins.iter().all(|(verdict, ..)| verdict == "accepted"),
        "no expired token presented: {logins:?}"
    );
    // The endpoint's issued tokens, with their expiry times, in order.
    let issued: Vec<(String, f64)> = std::fs::read_to_string(tokens.tokens_file())
        .unwrap()
        .lines()
        .map(|line| {
            let (token, expiry) = line.split_once(' ').unwrap();
            (token.to_string(), expiry.parse().unwrap())
        })
        .collect();
    assert_eq!(tokens.requests().len(), issued.len());
    assert!(
        issued.len() >= 3,
        "the batch (over 4.5 s: 120 messages of 0.15 s on 4 workers) spans at least two renewals: {issued:?}"
    );
    for pair in issued.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(
            gap >= 1.5,
            "a token is renewed only when a fifth of its 2 s life is left, once: {issued:?}"
        );
    }
    for (token, _) in &issued {
        assert!(
            logins.iter().any(|(_, _, used)| used == token),
            "every fetched token was used: no fetch was wasted"
        );
    }
}

#[test]
fn a_refresh_token_and_a_token_command_are_token_sources_too() {
    let tokens = TokenServer::start(3600, &[]);
    let smtp = smtp_for(&tokens, &[]);
    let override_file = smtp.xoauth2_override(MAILBOX, &refresh_token(&tokens.url(OAUTH_TENANT)));
    let result = send(&override_file, "unused");
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert_eq!(tokens.requests(), ["refresh_token"]);

    // An external helper: here one that prints a token the endpoint issued
    // (the first line of its token file) as JSON.
    let helper = smtp.dir.path().join("token-helper.sh");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nprintf '{{\"access_token\": \"%s\", \"expires_in\": 600}}' \"$(cut -d' ' -f1 {} | head -n1)\"\n",
            tokens.tokens_file().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let override_file =
        smtp.xoauth2_override(MAILBOX, &format!("{{command: [\"{}\"]}}", helper.display()));
    let result = send(&override_file, "unused");
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert_eq!(smtp.received().len(), 2);
    assert_eq!(tokens.requests().len(), 1, "the helper fetched nothing new");
}

#[test]
fn check_obtains_a_token_and_logs_in_without_sending() {
    let tokens = TokenServer::start(3600, &[]);
    let smtp = smtp_for(&tokens, &[]);
    let override_file =
        smtp.xoauth2_override(MAILBOX, &client_credentials(&tokens.url(OAUTH_TENANT)));
    let result = run(mailrules()
        .args([
            "check",
            "--config",
            EXAMPLE,
            "--profile",
            "billing",
            "--transport-override",
        ])
        .arg(&override_file)
        .env("TEST_CLIENT_SECRET", OAUTH_CLIENT_SECRET));
    assert_eq!(result.code, 0, "{}{}", result.stdout, result.stderr);
    assert!(
        result
            .stdout
            .contains("XOAUTH2 login `facturen@acme.nl` accepted (token obtained)"),
        "{}",
        result.stdout
    );
    assert_eq!(smtp.xoauth2_logins().len(), 1);
    assert!(smtp.received().is_empty(), "nothing sent");
}

/// Each failure names what failed and what to check; configuration
/// errors are permanent, an unreachable endpoint temporary.
#[test]
fn every_token_failure_says_what_to_check() {
    let tokens = TokenServer::start(3600, &[]);
    let no_consent = TokenServer::start(3600, &["--no-consent"]);
    let outage = TokenServer::start(3600, &["--outage", "503"]);
    let throttled = TokenServer::start(3600, &["--outage", "429"]);
    let smtp = smtp_for(&tokens, &[]);
    let url = tokens.url(OAUTH_TENANT);
    let nobody_listens = format!(
        "http://127.0.0.1:{}/{OAUTH_TENANT}/oauth2/v2.0/token",
        common::free_port()
    );
    let cases: Vec<(&str, String, &str, &str, &str)> = vec![
        (
            "wrong client secret",
            client_credentials(&url),
            "wrong-secret",
            "invalid_client: AADSTS7000215",
            "check `client_id` and the client secret",
        ),
        (
            "unknown tenant",
            client_credentials(&tokens.url("fabrikam.example")),
            OAUTH_CLIENT_SECRET,
            "AADSTS90002",
            "the tenant in `token_url` is unknown",
        ),
        (
            "unknown client id",
            client_credentials(&url).replace(OAUTH_CLIENT_ID, "0000-not-registered"),
            OAUTH_CLIENT_SECRET,
            "AADSTS700016",
            "no app with this `client_id` in the tenant",
        ),
        (
            "delegated scope in the app-only flow",
            client_credentials(&url).replace(".default", "SMTP.Send"),
            OAUTH_CLIENT_SECRET,
            "invalid_scope: AADSTS1002012",
            "check `scope`: https://outlook.office365.com/.default",
        ),
        (
            "endpoint outage",
            client_credentials(&outage.url(OAUTH_TENANT)),
            OAUTH_CLIENT_SECRET,
            "HTTP 503 without an OAuth 2.0 answer",
            "retries this as a temporary failure",
        ),
        (
            "endpoint throttling",
            client_credentials(&throttled.url(OAUTH_TENANT)),
            OAUTH_CLIENT_SECRET,
            "HTTP 429 without an OAuth 2.0 answer",
            "retries this as a temporary failure",
        ),
        (
            "no admin consent",
            client_credentials(&no_consent.url(OAUTH_TENANT)),
            OAUTH_CLIENT_SECRET,
            "AADSTS65001",
            "the app has no consent: an administrator must grant admin consent",
        ),
        (
            "revoked refresh token",
            refresh_token(&url).replace("TEST_REFRESH_TOKEN", "TEST_CLIENT_SECRET"),
            "a-revoked-refresh-token",
            "invalid_grant",
            "obtain a new refresh token",
        ),
        (
            "endpoint down",
            client_credentials(&nobody_listens),
            OAUTH_CLIENT_SECRET,
            "no token from http://127.0.0.1:",
            "retries this as a temporary failure",
        ),
        (
            "helper fails",
            "{command: [\"sh\", \"-c\", \"echo not signed in >&2; exit 3\"]}".to_string(),
            OAUTH_CLIENT_SECRET,
            "the token command `sh` failed: exit status: 3: not signed in",
            "run the command by hand",
        ),
        (
            "helper prints without end",
            "{command: [\"sh\", \"-c\", \"yes AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]}".to_string(),
            OAUTH_CLIENT_SECRET,
            "the token command `sh` failed: it printed more than 64 KiB: it must print only the token",
            "run the command by hand",
        ),
        (
            "helper prints JSON with an empty token",
            r#"{command: ["sh", "-c", "echo '{\"access_token\": \"\", \"expires_in\": 600}'"]}"#
                .to_string(),
            OAUTH_CLIENT_SECRET,
            "the token command `sh` failed: it printed something that starts with `{` but is not JSON with a non-empty `access_token`",
            "run the command by hand",
        ),
        (
            "helper prints cut-off JSON",
            r#"{command: ["sh", "-c", "printf '{\"access_token\": \"tok-'"]}"#.to_string(),
            OAUTH_CLIENT_SECRET,
            "it printed something that starts with `{` but is not JSON with a non-empty `access_token`",
            "run the command by hand",
        ),
        (
            "token the server does not accept",
            "{command: [\"echo\", \"tok-not-issued\"]}".to_string(),
            OAUTH_CLIENT_SECRET,
            "the server refused the XOAUTH2 login (permanent): 535 5.7.8",
            "`username` must be the mailbox the token is for",
        ),
    ];
    for (what, token, secret, error, hint) in cases {
        let override_file = smtp.xoauth2_override(MAILBOX, &token);
        let result = send(&override_file, secret);
        assert_eq!(result.code, 1, "{what}: {}", result.stderr);
        assert!(result.stderr.contains(error), "{what}: {}", result.stderr);
        assert!(
            result.stderr.contains("= hint: ") && result.stderr.contains(hint),
            "{what}: {}",
            result.stderr
        );
        assert!(
            !result.stderr.contains(secret),
            "{what}: the secret is never shown"
        );
    }
    assert!(smtp.received().is_empty());

    // An endpoint that does not answer within the profile's timeout.
    let silent = TokenServer::start(3600, &["--delay", "5"]);
    let override_file =
        smtp.xoauth2_override(MAILBOX, &client_credentials(&silent.url(OAUTH_TENANT)));
    common::edit(
        &override_file,
        "  security: starttls\n",
        "  security: starttls\n  timeout_seconds: 1\n",
    );
    let result = send(&override_file, OAUTH_CLIENT_SECRET);
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result.stderr.contains("timed out: no answer within 1 s"),
        "{}",
        result.stderr
    );

    // In a batch the endpoint being down is temporary (retried), a refused
    // secret is not.
    let dir = tempfile::tempdir().unwrap();
    let batch = invoices(dir.path(), 1);
    for (n, (token, temporary)) in [
        (client_credentials(&nobody_listens), true),
        (client_credentials(&outage.url(OAUTH_TENANT)), true),
        (client_credentials(&url), false),
        (
            client_credentials(&url).replace(".default", "SMTP.Send"),
            false,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let override_file = smtp.xoauth2_override(MAILBOX, &token);
        let results = dir.path().join(format!("results-{n}.jsonl"));
        let result = run(mailrules()
            .args(["send", "--config", EXAMPLE, "--batch"])
            .arg(&batch)
            .args(["--retries", "0", "--results"])
            .arg(&results)
            .arg("--transport-override")
            .arg(&override_file)
            .env("TEST_CLIENT_SECRET", "wrong-secret"));
        assert_eq!(result.code, 1);
        let line: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&results).unwrap().trim()).unwrap();
        assert_eq!(line["temporary"], temporary, "{line}");
    }
}

/// An endpoint that echoes the request in its error (some do) shows
/// neither the client secret nor the refresh token: each is masked, as
/// given and as form-encoded in the request; the escape sequence before it
/// is blanked out. The error still names the refusal, and its hint.
#[test]
fn an_endpoint_echoing_the_request_does_not_leak_its_secrets() {
    let echo = TokenServer::start(3600, &["--echo-request"]);
    let smtp = smtp_for(&echo, &[]);
    let url = echo.url(OAUTH_TENANT);
    // Characters that are percent-encoded in the form, as sent.
    let secret = "LEAK-cl1ent/s3cret+with=odd&chars% and space";
    let sent = "LEAK-cl1ent%2Fs3cret%2Bwith%3Dodd%26chars%25%20and%20space";
    for token in [client_credentials(&url), refresh_token(&url)] {
        let override_file = smtp.xoauth2_override(MAILBOX, &token);
        let result = send(&override_file, secret);
        assert_eq!(result.code, 1, "{}", result.stderr);
        assert!(
            result
                .stderr
                .contains("refused (HTTP 401): invalid_client: ")
                && result.stderr.contains("bad request: grant_type="),
            "{}",
            result.stderr
        );
        assert!(result.stderr.contains("=***"), "{}", result.stderr);
        assert!(
            result
                .stderr
                .contains("check `client_id` and the client secret"),
            "{}",
            result.stderr
        );
        for leak in [secret, sent, "LEAK", OAUTH_REFRESH_TOKEN, "\x1b"] {
            assert!(
                !result.stderr.contains(leak),
                "{leak:?} shown: {}",
                result.stderr
            );
        }
    }
    assert_eq!(echo.requests(), ["client_credentials", "refresh_token"]);
}

/// Even at MAILRULES_LOG=trace the HTTP client's own trace, a hex dump of
/// each request and answer (the client secret and the access token in
/// them), stays out of the logs.
#[test]
fn trace_logs_leave_out_the_http_clients_dump_of_requests() {
    let tokens = TokenServer::start(3600, &[]);
    let smtp = smtp_for(&tokens, &[]);
    let override_file =
        smtp.xoauth2_override(MAILBOX, &client_credentials(&tokens.url(OAUTH_TENANT)));
    let daemon = Daemon::start_with(
        Path::new(EXAMPLE),
        &["--transport-override", override_file.to_str().unwrap()],
        &[
            ("TEST_CLIENT_SECRET", OAUTH_CLIENT_SECRET),
            // A directive naming ureq's own module is overruled too.
            ("MAILRULES_LOG", "trace,ureq_proto::util=trace"),
        ],
    );
    let request = invoice_request("klant@example.com", serde_json::json!({}));
    let reply = daemon.post("/v1/send", &request);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let logs = daemon.logs();
    assert!(logs.contains(" TRACE "), "trace is on: {logs}");
    // ureq dumps 16 bytes a row, first in hex ("7b22 746f 6b65 6e5f ...",
    // "----" past the end), then as text: a secret is cut over rows.
    let hex_dump = |line: &str| {
        let Some((_, message)) = line.split_once(" TRACE ") else {
            return false;
        };
        let groups: Vec<&str> = message.split(' ').take(8).collect();
        groups.len() == 8
            && groups.iter().all(|group| {
                group.len() == 4 && group.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
            })
    };
    assert!(
        !logs.lines().any(hex_dump),
        "an HTTP dump in the logs: {logs}"
    );
    assert!(!logs.contains("Connected TcpStream"), "{logs}");
    assert!(!logs.contains(OAUTH_CLIENT_SECRET), "{logs}");
    let logins = smtp.xoauth2_logins();
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert!(!logs.contains(&logins[0].2), "the token is never logged");
}

#[test]
fn validate_refuses_a_secret_in_the_yaml_and_a_token_endpoint_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let write = |auth: &str| {
        std::fs::write(
            &config,
            format!(
                "system: {{profile: m365, default_language: nl, languages: [nl], processes: [invoice]}}\nprofiles:\n  m365:\n    from: facturen@acme.nl\n    smtp:\n      host: smtp.office365.com\n      auth:\n{auth}\n"
            ),
        )
        .unwrap();
        run(mailrules().arg("validate").arg("--config").arg(&config))
    };
    let literal = write(
        "        mechanism: xoauth2\n        username: facturen@acme.nl\n        token:\n          client_credentials:\n            token_url: https://login.microsoftonline.com/contoso/oauth2/v2.0/token\n            client_id: app\n            client_secret: Sup3rS3cretValue\n            scope: https://outlook.office365.com/.default",
    );
    assert_eq!(literal.code, 1);
    assert!(
        literal
            .stderr
            .contains("a secret must be a reference, not a value"),
        "{}",
        literal.stderr
    );
    assert!(
        literal.stderr.contains("`client_secret: {env: NAME}`"),
        "{}",
        literal.stderr
    );
    assert!(
        !literal.stderr.contains("Sup3rS3cretValue"),
        "{}",
        literal.stderr
    );

    let plain_http = write(
        "        mechanism: xoauth2\n        username: facturen@acme.nl\n        token:\n          refresh_token:\n            token_url: http://login.example.com/token\n            client_id: app\n            refresh_token: {env: GMAIL_REFRESH_TOKEN}",
    );
    assert_eq!(plain_http.code, 1);
    assert!(
        plain_http
            .stderr
            .contains("token endpoint `http://login.example.com/token` is not https://"),
        "{}",
        plain_http.stderr
    );
    assert!(
        plain_http.stderr.contains("config.yaml:12:24"),
        "{}",
        plain_http.stderr
    );

    let both = write(
        "        mechanism: xoauth2\n        username: facturen@acme.nl\n        password: {env: X}\n        token: {command: [get-token]}",
    );
    assert_eq!(both.code, 1);
    assert!(
        both.stderr
            .contains("a password is given but not used by this login"),
        "{}",
        both.stderr
    );

    let missing = write("        mechanism: xoauth2\n        username: facturen@acme.nl");
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("token"), "{}", missing.stderr);
}
