//! `send --batch` against the aiosmtpd test server on 127.0.0.1: connection
//! reuse, retries of temporary refusals only, an idle connection the server
//! closed, and a connection lost after the whole message was sent.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use common::*;

/// A transport override in `dir` that writes messages into `outbox`.
fn file_override(dir: &Path, outbox: &Path) -> PathBuf {
    let path = dir.join("file.yaml");
    std::fs::write(&path, format!("file: {{dir: {}}}\n", outbox.display())).unwrap();
    path
}

fn send_batch(server: &SmtpServer, batch: &Path, extra: &[&str]) -> Run {
    run(&mut batch_command(server, batch, extra, SMTP_PASSWORD))
}

/// `send --batch` to `server`, logging in with `password`.
fn batch_command(
    server: &SmtpServer,
    batch: &Path,
    extra: &[&str],
    password: &str,
) -> std::process::Command {
    let mut command = mailrules();
    command
        .args(["send", "--config", EXAMPLE, "--batch"])
        .arg(batch)
        .arg("--transport-override")
        .arg(server.override_file("starttls", "TEST_RELAY_PASSWORD"))
        .args(extra)
        .env("TEST_RELAY_PASSWORD", password);
    command
}

/// A server that answers `command` (`--rcpt-reply`, `--data-reply`) with
/// `reply` once, then accepts.
fn refusing_once(command: &str, reply: &str) -> SmtpServer {
    SmtpServer::start_with("starttls", &[command, reply, "--reply-count", "1"])
}

/// The results file's lines, by request id.
fn results(batch: &Path) -> std::collections::HashMap<String, serde_json::Value> {
    let text = std::fs::read_to_string(batch.with_file_name("invoices.results.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            (value["id"].as_str().unwrap().to_string(), value)
        })
        .collect()
}

/// The recipient of each received message: who got how many.
fn recipients(server: &SmtpServer) -> Vec<String> {
    let mut to: Vec<String> = server
        .received()
        .iter()
        .map(|r| r.rcpt_to[0].clone())
        .collect();
    to.sort();
    to
}

#[test]
fn a_batch_reuses_connections_and_records_every_message() {
    let server = SmtpServer::start("starttls");
    let dir = tempfile::tempdir().unwrap();
    let batch = invoices(dir.path(), 30);
    let result = send_batch(&server, &batch, &["--concurrency", "3"]);
    assert_eq!(result.code, 0, "stderr: {}", result.stderr);
    assert!(
        result.stdout.contains("batch: 30 sent, 0 failed"),
        "{}",
        result.stdout
    );
    assert_eq!(
        result.stderr, "",
        "no progress bar when stderr is not a terminal"
    );

    let received = server.received();
    let mut expected: Vec<String> = (1..=30).map(|n| format!("klant{n}@example.com")).collect();
    expected.sort();
    assert_eq!(recipients(&server), expected, "each invoice arrives once");
    let connections: HashSet<u64> = received.iter().map(|r| r.connection).collect();
    assert!(
        connections.len() <= 3,
        "30 messages over at most 3 connections, not {}",
        connections.len()
    );

    let results = results(&batch);
    assert_eq!(results.len(), 30);
    let sent_ids: HashSet<&str> = results
        .values()
        .map(|r| {
            assert_eq!(r["status"], "sent", "{r}");
            assert_eq!(r["profile"], "billing");
            assert!(
                r["reply"]
                    .as_str()
                    .unwrap()
                    .starts_with("250 2.0.0 Ok: queued")
            );
            r["message_id"].as_str().unwrap()
        })
        .collect();
    let arrived_ids: HashSet<String> = received
        .iter()
        .map(|r| {
            let text = String::from_utf8_lossy(&r.data);
            let line = text
                .lines()
                .find(|l| l.starts_with("Message-ID: "))
                .expect("a Message-ID header")
                .to_string();
            line["Message-ID: ".len()..].to_string()
        })
        .collect();
    assert_eq!(
        sent_ids,
        arrived_ids.iter().map(String::as_str).collect(),
        "the results name the Message-IDs that arrived"
    );
}

#[test]
fn bad_lines_fail_alone_and_a_second_run_cannot_overwrite_the_results() {
    let server = SmtpServer::start("starttls");
    let dir = tempfile::tempdir().unwrap();
    let batch = invoices(dir.path(), 2);
    let mut text = std::fs::read_to_string(&batch).unwrap();
    text.push_str("{\"id\": \"typo\", \"administration\": \"acme-nl\", \"user\": \"anna\", \"process\": \"sales_invoice\", \"to\": [\"a@example.com\"], \"bc\": [\"b@example.com\"]}\n");
    text.push_str("{\"id\": \"nobody\", \"administration\": \"acme-nl\", \"user\": \"anna\", \"process\": \"sales_invoice\", \"to\": [\"not an address\"]}\n");
    text.push_str("{oops\n");
    let first_line_text = text.lines().next().unwrap().to_string();
    text.push_str(&format!("{first_line_text}\n")); // inv-1 again
    std::fs::write(&batch, text).unwrap();

    let result = send_batch(&server, &batch, &[]);
    assert_eq!(result.code, 1, "a failed request fails the batch");
    assert!(
        result.stdout.contains("batch: 2 sent, 4 failed"),
        "{}",
        result.stdout
    );
    // The column points at the repeated `id` (json! sorts the keys).
    let id_column = first_line_text.find("\"id\":").unwrap() + 1;
    let duplicate =
        format!("invoices.jsonl:6:{id_column} (inv-1): the `id` is also on line 1: not sent");
    assert!(result.stderr.contains(&duplicate), "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("invoices.jsonl:3:117 (typo): unknown field `bc`, expected one of"),
        "{}",
        result.stderr
    );
    assert!(
        result
            .stderr
            .contains("invoices.jsonl:4:91 (nobody): `to`:"),
        "{}",
        result.stderr
    );
    assert!(
        result
            .stderr
            .contains("invoices.jsonl:5:2 (line-5): key must be a string"),
        "{}",
        result.stderr
    );
    assert_eq!(
        server.received().len(),
        2,
        "the good lines went out, inv-1 once"
    );
    let results = results(&batch);
    assert_eq!(results["typo"]["status"], "failed");
    assert_eq!(results["typo"]["temporary"], false);
    assert_eq!(results["line-5"]["column"], 2);

    let unwritable = send_batch(
        &server,
        &batch,
        &["--results", "/nonexistent/results.jsonl"],
    );
    assert_eq!(unwritable.code, 2);
    assert!(
        unwritable
            .stderr
            .contains("cannot write `/nonexistent/results.jsonl`"),
        "{}",
        unwritable.stderr
    );

    let again = send_batch(&server, &batch, &[]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("the results file"),
        "{}",
        again.stderr
    );
    assert!(again.stderr.contains("exists"), "{}", again.stderr);
    assert_eq!(server.received().len(), 2, "nothing was sent twice");
}

/// A 4xx to RCPT, or a 421 to the message itself (a reply: the server
/// did not take it), is retried; the message then arrives once.
#[test]
fn a_temporary_refusal_is_retried_and_then_the_message_goes_out_once() {
    let cases = [
        ("--rcpt-reply", "451 4.3.0 Mailbox temporarily unavailable"),
        ("--data-reply", "421 4.3.2 Service shutting down"),
    ];
    for (command, reply) in cases {
        let server = refusing_once(command, reply);
        let dir = tempfile::tempdir().unwrap();
        let batch = invoices(dir.path(), 1);
        let result = send_batch(
            &server,
            &batch,
            &["--retries", "1", "--retry-delay", "10ms"],
        );
        assert_eq!(result.code, 0, "{reply}: {}", result.stderr);
        assert_eq!(recipients(&server), ["klant1@example.com"], "{reply}");
        let results = results(&batch);
        assert_eq!(results["inv-1"]["status"], "sent", "{reply}");
        assert_eq!(results["inv-1"]["attempts"], 2, "{reply}");
    }
}

#[test]
fn without_retries_a_temporary_refusal_is_reported_as_temporary() {
    let server = refusing_once("--rcpt-reply", "451 4.3.0 Mailbox temporarily unavailable");
    let dir = tempfile::tempdir().unwrap();
    let batch = invoices(dir.path(), 1);
    let result = send_batch(&server, &batch, &["--retries", "0"]);
    assert_eq!(result.code, 1);
    assert!(
        result
            .stderr
            .contains("451 4.3.0 Mailbox temporarily unavailable"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("may be sent again later"),
        "{}",
        result.stderr
    );
    let results = results(&batch);
    assert_eq!(results["inv-1"]["status"], "failed");
    assert_eq!(results["inv-1"]["temporary"], true);
    assert_eq!(
        results["inv-1"]["reply"],
        "451 4.3.0 Mailbox temporarily unavailable"
    );
    assert!(server.received().is_empty());
}

#[test]
fn a_permanent_refusal_is_never_retried() {
    let server = SmtpServer::start_with("starttls", &["--rcpt-reply", "550 5.1.1 No such user"]);
    let dir = tempfile::tempdir().unwrap();
    let batch = invoices(dir.path(), 2);
    let result = send_batch(
        &server,
        &batch,
        &["--retries", "3", "--retry-delay", "10ms"],
    );
    assert_eq!(result.code, 1);
    let results = results(&batch);
    for id in ["inv-1", "inv-2"] {
        assert_eq!(results[id]["status"], "failed");
        assert_eq!(results[id]["temporary"], false);
        assert_eq!(results[id]["attempts"], 1, "a 5xx is not retried");
        assert_eq!(results[id]["reply"], "550 5.1.1 No such user");
    }
    assert!(server.received().is_empty());
}

/// The server closes a kept connection while the batch waits (here: for a
/// retry); the next message on it fails before MAIL FROM is answered, and
/// goes out over a new connection, once.
#[test]
fn a_connection_the_server_closed_while_idle_is_replaced_without_duplicates() {
    let server = SmtpServer::start_with(
        "starttls",
        &[
            "--idle-timeout",
            "0.5",
            "--rcpt-reply",
            "451 4.3.0 Try again in a moment",
            "--reply-count",
            "1",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let batch = invoices(dir.path(), 3);
    let result = send_batch(
        &server,
        &batch,
        &[
            "--concurrency",
            "1",
            "--retries",
            "1",
            "--retry-delay",
            "1500ms",
        ],
    );
    assert_eq!(result.code, 0, "stderr: {}", result.stderr);
    assert_eq!(
        recipients(&server),
        [
            "klant1@example.com",
            "klant2@example.com",
            "klant3@example.com"
        ],
        "every message exactly once"
    );
    let connections: HashSet<u64> = server.received().iter().map(|r| r.connection).collect();
    assert_eq!(
        connections.len(),
        1,
        "the three messages share the replacement connection"
    );
    assert!(
        !connections.contains(&1),
        "the first connection was closed by the server"
    );
    let results = results(&batch);
    assert_eq!(results["inv-1"]["attempts"], 2, "the 451, then the retry");
}

/// The server stores the message and drops the connection without a reply:
/// it may have been delivered, so it is reported, not sent again.
#[test]
fn a_connection_lost_after_the_whole_message_is_not_retried() {
    let server = SmtpServer::start_with("starttls", &["--hang-up-after-data", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let batch = invoices(dir.path(), 2);
    let result = send_batch(
        &server,
        &batch,
        &[
            "--concurrency",
            "1",
            "--retries",
            "3",
            "--retry-delay",
            "10ms",
        ],
    );
    assert_eq!(result.code, 1, "an unknown outcome fails the batch");
    assert!(
        result.stdout.contains("1 unknown (may have arrived)"),
        "{}",
        result.stdout
    );
    assert!(
        result.stderr.contains("look for the Message-ID"),
        "{}",
        result.stderr
    );
    assert_eq!(
        recipients(&server),
        ["klant1@example.com", "klant2@example.com"],
        "the first message arrived once, not twice"
    );
    let results = results(&batch);
    assert_eq!(results["inv-1"]["status"], "unknown");
    assert_eq!(results["inv-1"]["attempts"], 1);
    assert_eq!(results["inv-2"]["status"], "sent");
}

#[test]
fn a_refused_login_is_not_tried_again_for_every_message() {
    let server = SmtpServer::start("starttls");
    let dir = tempfile::tempdir().unwrap();
    let batch = invoices(dir.path(), 20);
    let extra = ["--concurrency", "1"];
    let result = run(&mut batch_command(
        &server,
        &batch,
        &extra,
        "wrong-password",
    ));
    assert_eq!(result.code, 1);
    assert!(
        result.stdout.contains("0 sent, 20 failed"),
        "{}",
        result.stdout
    );
    let log = server.dir.path().join("spool/refused-logins.log");
    let refused = std::fs::read_to_string(log).unwrap_or_default();
    assert_eq!(refused.lines().count(), 1, "one refused login, not 20");
    for outcome in results(&batch).values() {
        assert!(
            outcome["reply"].as_str().unwrap().starts_with("535"),
            "{outcome}"
        );
    }
}

/// The server dies in the middle of a TLS batch: every request is still
/// accounted for, nothing arrives twice, and the exit code says so.
#[test]
fn a_server_that_dies_mid_batch_leaves_every_request_accounted_for() {
    let mut server = SmtpServer::start("starttls");
    let dir = tempfile::tempdir().unwrap();
    let batch = invoices(dir.path(), 300);
    let extra = ["--concurrency", "4", "--retries", "0"];
    let mut child = batch_command(&server, &batch, &extra, SMTP_PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server.received().len() < 10 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.kill();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "exit 1, not killed by a signal");

    let results = results(&batch);
    assert_eq!(results.len(), 300, "one result per request");
    let arrived = server.received();
    let mut seen = HashSet::new();
    for message in &arrived {
        assert!(
            seen.insert(message.rcpt_to[0].clone()),
            "nothing arrives twice"
        );
    }
    let sent = results.values().filter(|r| r["status"] == "sent").count();
    let unknown = results
        .values()
        .filter(|r| r["status"] == "unknown")
        .count();
    assert!(sent <= arrived.len() && arrived.len() <= sent + unknown);
}

#[test]
fn the_file_transport_never_replaces_a_message_with_the_same_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let override_file = file_override(dir.path(), &outbox);
    let line = |id: &str, to: &str| {
        serde_json::json!({
            "id": id, "administration": "acme-nl", "user": "anna", "template": "order_confirmation-nl",
            "to": [to], "message_id": "<same@acme.nl>",
            "data": serde_json::from_str::<serde_json::Value>(
                &std::fs::read_to_string(format!("{DATA}/order_confirmation.json")).unwrap()
            ).unwrap(),
        })
        .to_string()
    };
    let batch = dir.path().join("invoices.jsonl");
    let lines = [
        line("a", "first@example.com"),
        line("b", "second@example.com"),
    ];
    std::fs::write(&batch, lines.join("\n")).unwrap();
    let result = run(mailrules()
        .args(["send", "--config", EXAMPLE, "--concurrency", "1", "--batch"])
        .arg(&batch)
        .arg("--transport-override")
        .arg(&override_file));
    assert_eq!(result.code, 1, "{}{}", result.stdout, result.stderr);
    assert!(
        result.stdout.contains("1 sent, 1 failed"),
        "{}",
        result.stdout
    );
    assert!(
        result.stderr.contains("is already in") && result.stderr.contains("not replaced"),
        "{}",
        result.stderr
    );
    let stored = std::fs::read_to_string(outbox.join("same@acme.nl.eml")).unwrap();
    let envelope = std::fs::read_to_string(outbox.join("same@acme.nl.envelope.json")).unwrap();
    assert!(stored.contains("first@example.com") && envelope.contains("first@example.com"));
    let names: Vec<_> = std::fs::read_dir(&outbox).unwrap().collect();
    assert_eq!(names.len(), 2, "no temporary files left behind");
}

/// Errors found while resolving and rendering point into the batch line
/// (the field) and, for a template, at the template's file:line:column.
#[test]
fn resolution_and_template_errors_point_at_the_line_field_and_template() {
    let dir = tempfile::tempdir().unwrap();
    let override_file = file_override(dir.path(), &dir.path().join("out"));
    let unknown = r#"{"id": "u", "administration": "acme-nll", "user": "anna", "process": "sales_invoice", "to": ["a@example.com"]}"#;
    let no_data = r#"{"id": "d", "administration": "acme-nl", "user": "anna", "process": "sales_invoice", "to": ["a@example.com"], "data": {}}"#;
    let batch = dir.path().join("invoices.jsonl");
    std::fs::write(&batch, format!("{unknown}\n{no_data}\n")).unwrap();
    let result = run(mailrules()
        .args(["send", "--config", EXAMPLE, "--batch"])
        .arg(&batch)
        .arg("--transport-override")
        .arg(&override_file));
    assert_eq!(result.code, 1);
    let administration = unknown.find("\"administration\"").unwrap() + 1;
    assert!(
        result.stderr.contains(&format!(
            "invoices.jsonl:1:{administration} (u): unknown administration `acme-nll`"
        )),
        "{}",
        result.stderr
    );
    let data = no_data.find("\"data\"").unwrap() + 1;
    assert!(
        result.stderr.contains(&format!(
            "invoices.jsonl:2:{data} (d): template `sales_invoice-nl`"
        )),
        "{}",
        result.stderr
    );
    assert!(
        result
            .stderr
            .contains("  --> examples/acme/config/templates/sales_invoice.yaml:"),
        "{}",
        result.stderr
    );
    let results = results(&batch);
    assert!(
        results["d"]["template_at"]
            .as_str()
            .unwrap()
            .contains("sales_invoice.yaml:")
    );
}

/// On a terminal (here a pseudo-terminal made by util-linux's `script`)
/// the batch draws a progress bar on stderr.
#[test]
fn a_terminal_gets_a_progress_bar() {
    let dir = tempfile::tempdir().unwrap();
    let override_file = file_override(dir.path(), &dir.path().join("out"));
    let batch = invoices(dir.path(), 50);
    let binary = assert_cmd::cargo::cargo_bin("mailrules");
    let command = format!(
        "{} send --config {EXAMPLE} --batch {} --transport-override {} --concurrency 1",
        binary.display(),
        batch.display(),
        override_file.display()
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("MAILRULES_CONFIG")
        .output()
        .expect("util-linux `script` runs");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("/50 sent or failed"), "{shown}");
    assert!(shown.contains("batch: 50 sent, 0 failed"), "{shown}");
}
