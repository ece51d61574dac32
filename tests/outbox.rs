//! The outbox against a real daemon and the real SMTP test server: an
//! accepted message is delivered exactly once through an outage, nothing
//! is lost when the daemon is killed, temporary refusals are retried and
//! permanent ones dead-lettered (with the administrator told), and
//! idempotency keys hold.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, EXAMPLE, SmtpServer, free_port, invoice_request, mailrules, run};
use serde_json::{Value, json};

/// Delivery settings that make a test's retries quick.
const QUICK: [&str; 4] = ["--retry-delay", "100ms", "--retry-max-delay", "500ms"];

fn outbox_in(dir: &Path) -> PathBuf {
    dir.join("outbox.db")
}

/// A daemon on the example with an outbox, sending to `override_file`.
fn daemon(outbox: &Path, override_file: &Path, extra: &[&str]) -> Daemon {
    daemon_on(Path::new(EXAMPLE), outbox, override_file, extra)
}

/// The same on another configuration.
fn daemon_on(config: &Path, outbox: &Path, override_file: &Path, extra: &[&str]) -> Daemon {
    let mut args = vec![
        "--outbox".to_string(),
        outbox.display().to_string(),
        "--transport-override".to_string(),
        override_file.display().to_string(),
    ];
    args.extend(QUICK.iter().map(|a| a.to_string()));
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::start(config, &args)
}

fn invoice(n: usize) -> String {
    invoice_request(
        &format!("Klant {n} <klant{n}@example.com>"),
        json!({"id": format!("inv-{n}")}),
    )
}

/// Polls `GET /v1/messages` until `done` holds for the state counts.
fn wait_for_counts(
    daemon: &Daemon,
    what: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let counts = daemon.get("/v1/messages?limit=0").json["counts"].clone();
        if done(&counts) {
            return counts;
        }
        assert!(
            Instant::now() < deadline,
            "waited {limit:?} for {what}; counts: {counts}\nlogs:\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Message-IDs the server received, and how often each.
fn received_ids(server: &SmtpServer) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for message in server.received() {
        *seen.entry(message.message_id()).or_insert(0) += 1;
    }
    seen
}

/// A directory holding the test server's certificate and key before any
/// server runs there (the server reuses them), so that the daemon can
/// trust a server that starts later.
fn certificate_dir() -> tempfile::TempDir {
    let first = SmtpServer::start("starttls");
    let dir = tempfile::tempdir().unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(first.dir.path().join(file), dir.path().join(file)).unwrap();
    }
    dir
}

/// A `--transport-override` to a port where nothing listens yet.
fn override_to(dir: &Path, server_dir: &Path, port: u16) -> PathBuf {
    let path = dir.join("override.yaml");
    let text = format!(
        "smtp:\n  host: localhost\n  port: {port}\n  security: starttls\n  ca_file: {}\n  timeout_seconds: 5\n  auth:\n    username: {}\n    password: {{env: TEST_SMTP_PASSWORD}}\n",
        server_dir.join("cert.pem").display(),
        common::SMTP_USER
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn messages_accepted_while_the_server_is_down_are_all_delivered_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cert_dir = certificate_dir();
    let override_file = override_to(dir.path(), cert_dir.path(), port);
    let outbox = outbox_in(dir.path());
    let daemon = daemon(&outbox, &override_file, &[]);

    let mut accepted = HashMap::new();
    for n in 1..=1000 {
        let reply = daemon.post("/v1/send", &invoice(n));
        assert_eq!(reply.status, 202, "{}", reply.text);
        assert_eq!(reply.json["state"], "queued");
        assert_eq!(reply.json["caller_id"], format!("inv-{n}"));
        let id = reply.json["id"].as_str().unwrap().to_string();
        accepted.insert(id, reply.json["message_id"].as_str().unwrap().to_string());
    }
    assert_eq!(accepted.len(), 1000, "every message has its own id");
    // Down: tried, refused, queued again with the connection error kept.
    let some = accepted.keys().next().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let waiting = loop {
        let message = daemon.get(&format!("/v1/messages/{some}")).json;
        if message["attempts"].as_u64().unwrap() >= 1 && message["state"] == "queued" {
            break message;
        }
        assert!(Instant::now() < deadline, "never tried: {message}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        waiting["last_error"].as_str().unwrap().contains("refused"),
        "{waiting}"
    );
    assert_eq!(
        daemon.get("/v1/messages?state=sent&limit=0").json["counts"]["sent"],
        0
    );

    let server = SmtpServer::start_in(cert_dir, port, "starttls", &[]);
    wait_for_counts(
        &daemon,
        "every message sent",
        Duration::from_secs(120),
        |c| c["sent"] == 1000,
    );
    let received = received_ids(&server);
    let expected: HashSet<&String> = accepted.values().collect();
    assert_eq!(received.len(), 1000, "1000 different messages arrived");
    assert!(received.values().all(|n| *n == 1), "none arrived twice");
    assert!(received.keys().all(|id| expected.contains(id)));
    let metrics = daemon.get("/metrics").text;
    assert!(
        metrics.contains("mailrules_outbox_messages{state=\"sent\"} 1000"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mailrules_outbox_messages{state=\"queued\"} 0"),
        "{metrics}"
    );
}

/// Posts invoices `numbers` with their number as idempotency key, from
/// four threads; returns key -> outbox id of each one the daemon accepted
/// (a killed daemon accepts no more).
fn post_all(daemon: &Daemon, numbers: &[usize]) -> HashMap<usize, String> {
    let accepted = std::sync::Mutex::new(HashMap::new());
    std::thread::scope(|scope| {
        for part in numbers.chunks(numbers.len().div_ceil(4).max(1)) {
            let accepted = &accepted;
            scope.spawn(move || {
                for n in part {
                    let key = format!("invoice-{n}");
                    let Some(reply) = daemon.try_post_keyed("/v1/send", &invoice(*n), &key) else {
                        return;
                    };
                    assert!(matches!(reply.status, 200 | 202), "{}", reply.text);
                    let id = reply.json["id"].as_str().unwrap().to_string();
                    accepted.lock().unwrap().insert(*n, id);
                }
            });
        }
    });
    accepted.into_inner().unwrap()
}

#[test]
fn a_daemon_killed_mid_batch_loses_nothing_and_sends_again_only_what_was_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    // 10 ms per message: a delivery stays in flight long enough for the
    // kill below to catch it.
    let server = SmtpServer::start_with("starttls", &["--data-delay", "0.01"]);
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");
    let outbox = outbox_in(dir.path());
    let all: Vec<usize> = (1..=5000).collect();

    let first = daemon(&outbox, &override_file, &[]);
    let (before_kill, mut arrived_at_kill) = (std::sync::Mutex::new(HashMap::new()), 0);
    std::thread::scope(|scope| {
        scope.spawn(|| *before_kill.lock().unwrap() = post_all(&first, &all));
        // kill -9 once a good part has arrived, at a moment when messages
        // are in delivery.
        let deadline = Instant::now() + Duration::from_secs(120);
        while server.received().len() < 1000
            || first.get("/v1/messages?limit=0").json["counts"]["sending"] == 0
        {
            assert!(Instant::now() < deadline, "deliveries did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        first.signal("KILL");
        arrived_at_kill = server.received().len();
    });
    let before_kill = before_kill.into_inner().unwrap();
    assert!(arrived_at_kill < 5000, "killed in the middle of the batch");
    assert!(
        before_kill.len() >= 1000,
        "accepted before the kill: {}",
        before_kill.len()
    );

    // Restarted on the same outbox; the caller sends again what it has no
    // answer for, under the same keys.
    let second = daemon(&outbox, &override_file, &[]);
    let missing: Vec<usize> = all
        .iter()
        .copied()
        .filter(|n| !before_kill.contains_key(n))
        .collect();
    let after = post_all(&second, &missing);
    for (n, id) in &before_kill {
        let again = second.post_keyed("/v1/send", &invoice(*n), &format!("invoice-{n}"));
        assert_eq!(
            again.json["id"],
            id.as_str(),
            "a repeated key names the first message"
        );
    }
    assert_eq!(before_kill.len() + after.len(), 5000);
    wait_for_counts(&second, "all 5000 sent", Duration::from_secs(180), |c| {
        c["sent"] == 5000
    });

    let listed = second.get("/v1/messages?state=sent&limit=10000").json;
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        5000,
        "one message per key: {}",
        listed["counts"]
    );
    let uncertain: u64 = messages
        .iter()
        .map(|m| m["uncertain"].as_u64().unwrap())
        .sum();
    let received = received_ids(&server);
    let duplicates: usize = received.values().map(|n| n - 1).sum();
    assert_eq!(received.len(), 5000, "every accepted message arrived");
    for message in messages {
        assert!(received.contains_key(message["message_id"].as_str().unwrap()));
    }
    // Only a message handed to the server when the daemon died can arrive
    // twice, and each such one is counted and logged.
    assert!(
        duplicates as u64 <= uncertain,
        "{duplicates} duplicates, {uncertain} uncertain"
    );
    assert!(
        (1..=8).contains(&uncertain),
        "the kill hit deliveries in flight (at most the profile's 4, twice over): {uncertain}"
    );
    let logs = second.logs();
    assert_eq!(
        logs.matches("delivery state unknown after a restart")
            .count() as u64,
        uncertain,
        "{logs}"
    );
    eprintln!("killed with deliveries in flight: {uncertain} uncertain, {duplicates} duplicate(s)");
}

#[test]
fn a_temporary_refusal_is_retried_and_the_message_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start_with(
        "starttls",
        &[
            "--data-reply",
            "451 4.3.0 Try again later",
            "--reply-count",
            "1",
        ],
    );
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");
    let daemon = daemon(&outbox_in(dir.path()), &override_file, &[]);
    let accepted = daemon.post("/v1/send", &invoice(1));
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let id = accepted.json["id"].as_str().unwrap();
    wait_for_counts(&daemon, "sent", Duration::from_secs(20), |c| c["sent"] == 1);
    let message = daemon.get(&format!("/v1/messages/{id}")).json;
    assert_eq!(message["state"], "sent");
    assert_eq!(message["attempts"], 2, "{message}");
    assert!(
        message["last_reply"].as_str().unwrap().starts_with("250"),
        "{message}"
    );
    assert_eq!(server.received().len(), 1);
    assert_eq!(
        server.received()[0].message_id(),
        accepted.json["message_id"].as_str().unwrap()
    );
    assert!(
        daemon.logs().contains("451 4.3.0 Try again later"),
        "{}",
        daemon.logs()
    );
}

/// Mails to the administrator (`it@acme.nl` in the example) the server got.
fn admin_mails(server: &SmtpServer) -> Vec<String> {
    server
        .received()
        .into_iter()
        .filter(|m| m.rcpt_to == ["it@acme.nl"])
        .map(|m| String::from_utf8_lossy(&m.data).into_owned())
        .collect()
}

#[test]
fn a_permanent_refusal_is_a_dead_letter_at_once_and_the_administrator_gets_one_summary() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start_with("starttls", &["--reject-rcpt", "klant1@example.com"]);
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");
    let daemon = daemon(
        &outbox_in(dir.path()),
        &override_file,
        &["--admin-notice-interval", "1h"],
    );
    let dead = daemon.post("/v1/send", &invoice(1));
    let id = dead.json["id"].as_str().unwrap().to_string();
    wait_for_counts(&daemon, "dead", Duration::from_secs(20), |c| c["dead"] == 1);
    let message = daemon.get(&format!("/v1/messages/{id}")).json;
    assert_eq!(message["attempts"], 1, "a 5xx is not retried: {message}");
    assert!(
        message["last_reply"]
            .as_str()
            .unwrap()
            .starts_with("550 5.1.1"),
        "{message}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin_mails(&server).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no admin mail:\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let summary = &admin_mails(&server)[0];
    assert!(
        summary.contains("Subject: [mailrules] 1 message(s) could not be delivered"),
        "{summary}"
    );
    assert!(
        summary.contains(&id) && summary.contains("550 5.1.1"),
        "{summary}"
    );
    assert_eq!(
        summary.matches("550 5.1.1").count(),
        1,
        "the reply once: {summary}"
    );
    assert!(
        summary.contains("MIME-Version: 1.0\r\n")
            && summary.contains("Content-Type: text/plain; charset=utf-8\r\n"),
        "a MIME message clients decode: {summary}"
    );
    assert!(
        summary.contains("From: \"Acme Alerts\" <alerts@acme.nl>"),
        "sent through the alerts profile: {summary}"
    );

    // A second dead letter within the interval: no second mail yet.
    daemon.post("/v1/send", &invoice(1).replace("inv-1", "inv-1b"));
    wait_for_counts(&daemon, "two dead", Duration::from_secs(20), |c| {
        c["dead"] == 2
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(admin_mails(&server).len(), 1, "rate-limited to one summary");
    assert_eq!(
        server.received().len(),
        1,
        "nothing but the summary arrived"
    );
}

#[test]
fn without_an_admin_address_a_dead_letter_is_only_logged() {
    let copy = common::example_copy();
    let config = copy.path().join("acme/config");
    common::edit(
        &config.join("system.yaml"),
        "  admin_email: \"IT beheer <it@acme.nl>\"\n",
        "",
    );
    let server = SmtpServer::start_with("starttls", &["--reject-rcpt", "klant1@example.com"]);
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");
    let daemon = daemon_on(&config, &outbox_in(copy.path()), &override_file, &[]);
    daemon.post("/v1/send", &invoice(1));
    wait_for_counts(&daemon, "dead", Duration::from_secs(20), |c| c["dead"] == 1);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        server.received().is_empty(),
        "no admin mail without admin_email"
    );
    assert!(daemon.logs().contains("dead letter"), "{}", daemon.logs());
}

#[test]
fn an_idempotency_key_names_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start("starttls");
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");
    let daemon = daemon(&outbox_in(dir.path()), &override_file, &[]);
    let first = daemon.post_keyed("/v1/send", &invoice(7), "INV-2026-0007");
    assert_eq!(first.status, 202, "{}", first.text);
    assert_eq!(first.json["duplicate"], false);
    let again = daemon.post_keyed("/v1/send", &invoice(7), "INV-2026-0007");
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["duplicate"], true);
    assert_eq!(again.json["id"], first.json["id"]);
    assert_eq!(again.json["message_id"], first.json["message_id"]);

    let other = daemon.post_keyed("/v1/send", &invoice(8), "INV-2026-0007");
    assert_eq!(other.status, 409, "{}", other.text);
    assert_eq!(other.json["field"], "Idempotency-Key");
    let bad = daemon.post_keyed("/v1/send", &invoice(8), "has spaces in it");
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(bad.json["field"], "Idempotency-Key");

    // Eight callers at once with one new key (committed in one group):
    // one message, and every caller is told its id.
    let replies: Vec<common::Reply> = std::thread::scope(|scope| {
        let posts: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| daemon.post_keyed("/v1/send", &invoice(9), "INV-2026-0009")))
            .collect();
        posts.into_iter().map(|p| p.join().unwrap()).collect()
    });
    assert_eq!(replies.iter().filter(|r| r.status == 202).count(), 1);
    assert_eq!(replies.iter().filter(|r| r.status == 200).count(), 7);
    let ids: HashSet<&str> = replies
        .iter()
        .map(|r| r.json["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");

    wait_for_counts(&daemon, "sent", Duration::from_secs(20), |c| c["sent"] == 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.received().len(), 2, "each key's message sent once");
    assert_eq!(
        daemon.get("/v1/messages?limit=0").json["counts"]["queued"],
        0
    );
}

#[test]
fn the_api_names_what_is_wrong_with_a_message_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start("starttls");
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");
    let daemon = daemon(&outbox_in(dir.path()), &override_file, &[]);
    let unknown = daemon.get("/v1/messages/no-such-id");
    assert_eq!(unknown.status, 404);
    let state = daemon.get("/v1/messages?state=lost");
    assert_eq!(state.status, 400);
    assert_eq!(state.json["field"], "state");
    let refused = daemon.post(
        "/v1/send",
        &invoice_request("x@example.com", json!({"administration": "acme-xx"})),
    );
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.json["field"], "administration");
    assert_eq!(
        daemon.get("/v1/messages?limit=0").json["counts"]["queued"],
        0,
        "nothing stored"
    );

    let plain = Daemon::start(Path::new(EXAMPLE), &[]);
    let none = plain.get("/v1/messages");
    assert_eq!(none.status, 404);
    assert!(none.json["hint"].as_str().unwrap().contains("--outbox"));
}

/// `mailrules --outbox FILE ...` on the example, sending to `override_file`.
fn cli(outbox: &Path, args: &[&str]) -> common::Run {
    run(mailrules()
        .args(["--config", EXAMPLE, "--outbox"])
        .arg(outbox)
        .args(args)
        .env("TEST_SMTP_PASSWORD", common::SMTP_PASSWORD))
}

fn queue(outbox: &Path, override_file: &Path, to: &str, key: &str) -> common::Run {
    cli(
        outbox,
        &[
            "send",
            "--queue",
            "-a",
            "acme-nl",
            "-u",
            "anna",
            "-p",
            "sales_invoice",
            "--to",
            to,
            "--data",
            "examples/acme/config/data/sales_invoice.json",
            "--idempotency-key",
            key,
            "--transport-override",
            override_file.to_str().unwrap(),
        ],
    )
}

#[test]
fn send_queue_then_outbox_deliver_list_show_retry_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(dir.path());
    let server = SmtpServer::start_with("starttls", &["--reject-rcpt", "gone@example.com"]);
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");

    let queued = queue(&outbox, &override_file, "klant@example.com", "INV-1");
    assert_eq!(queued.code, 0, "{}", queued.stderr);
    assert!(queued.stdout.starts_with("queued "), "{}", queued.stdout);
    let id = queued.stdout.split_whitespace().nth(1).unwrap().to_string();
    let again = queue(&outbox, &override_file, "klant@example.com", "INV-1");
    assert!(
        again.stdout.contains(&id)
            && again.stdout.starts_with("already in ")
            && again.stdout.contains(", queued; nothing queued"),
        "{}",
        again.stdout
    );
    let reused = queue(&outbox, &override_file, "ander@example.com", "INV-1");
    assert_eq!(reused.code, 2);
    assert!(
        reused
            .stderr
            .contains("was used before for a different request"),
        "{}",
        reused.stderr
    );
    let gone = queue(&outbox, &override_file, "gone@example.com", "INV-2");
    assert_eq!(gone.code, 0, "{}", gone.stderr);
    assert!(server.received().is_empty(), "queued, not sent");

    let listed = cli(&outbox, &["outbox", "list"]);
    assert!(
        listed
            .stdout
            .contains("2 queued, 0 sending, 0 sent, 0 dead"),
        "{}",
        listed.stdout
    );

    let override_arg = override_file.to_str().unwrap();
    let delivered = cli(
        &outbox,
        &["outbox", "deliver", "--transport-override", override_arg],
    );
    assert_eq!(delivered.code, 1, "one is dead: {}", delivered.stderr);
    assert!(
        delivered.stdout.contains("delivered 1, dead 1"),
        "{}",
        delivered.stdout
    );
    assert!(
        delivered.stderr.contains("550 5.1.1"),
        "{}",
        delivered.stderr
    );
    assert_eq!(
        server.received().len(),
        2,
        "the invoice and the admin's summary"
    );
    assert_eq!(admin_mails(&server).len(), 1);

    let shown = cli(&outbox, &["outbox", "show", &id, "--format", "json"]);
    let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["state"], "sent");
    let after_sending = queue(&outbox, &override_file, "klant@example.com", "INV-1");
    assert!(
        after_sending.stdout.contains(", sent; nothing queued"),
        "the first message's state, not 'queued': {}",
        after_sending.stdout
    );
    assert_eq!(shown["idempotency_key"], "INV-1");
    assert_eq!(shown["generation"], 0, "queued by the command line");
    let dead = cli(
        &outbox,
        &["outbox", "list", "--state", "dead", "--format", "json"],
    );
    let dead: Value = serde_json::from_str(&dead.stdout).unwrap();
    let dead_id = dead["messages"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(dead["messages"].as_array().unwrap().len(), 1);

    let retried = cli(&outbox, &["outbox", "retry", &dead_id]);
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    let not_dead = cli(&outbox, &["outbox", "retry", &id]);
    assert_eq!(not_dead.code, 1);
    assert!(
        not_dead.stderr.contains("is not a dead message"),
        "{}",
        not_dead.stderr
    );
    let listed = cli(&outbox, &["outbox", "list"]);
    assert!(
        listed
            .stdout
            .contains("1 queued, 0 sending, 1 sent, 0 dead"),
        "{}",
        listed.stdout
    );
    cli(
        &outbox,
        &["outbox", "deliver", "--transport-override", override_arg],
    );
    let shown = cli(&outbox, &["outbox", "show", &dead_id, "--format", "json"]);
    let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["state"], "dead");
    assert_eq!(shown["attempts"], 2, "tried once more after retry: {shown}");

    let kept = cli(&outbox, &["outbox", "purge"]);
    assert_eq!(
        kept.stdout.trim(),
        "purged 0 message(s)",
        "younger than 7 days"
    );
    let purged = cli(
        &outbox,
        &["outbox", "purge", "--state", "sent", "--older-than", "0s"],
    );
    assert_eq!(purged.stdout.trim(), "purged 1 message(s)");
    let listed = cli(&outbox, &["outbox", "list"]);
    assert!(
        listed
            .stdout
            .contains("0 queued, 0 sending, 0 sent, 1 dead"),
        "{}",
        listed.stdout
    );
    let missing = cli(&outbox, &["outbox", "show", &id]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("no message"), "{}", missing.stderr);
}

#[test]
fn a_message_undelivered_past_its_maximum_age_expires_into_the_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(dir.path());
    let cert_dir = certificate_dir();
    // Nothing listens on this port: every try is a temporary failure.
    let override_file = override_to(dir.path(), cert_dir.path(), free_port());
    let queued = queue(&outbox, &override_file, "klant@example.com", "INV-9");
    assert_eq!(queued.code, 0, "{}", queued.stderr);
    let started = Instant::now();
    let delivered = cli(
        &outbox,
        &[
            "outbox",
            "deliver",
            "--transport-override",
            override_file.to_str().unwrap(),
            "--retry-delay",
            "100ms",
            "--retry-max-delay",
            "200ms",
            "--max-age",
            "1s",
        ],
    );
    assert_eq!(delivered.code, 1, "{}", delivered.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        delivered
            .stderr
            .contains("expired: not delivered within 1s"),
        "{}",
        delivered.stderr
    );
    let dead = cli(
        &outbox,
        &["outbox", "list", "--state", "dead", "--format", "json"],
    );
    let dead: Value = serde_json::from_str(&dead.stdout).unwrap();
    let message = &dead["messages"][0];
    assert!(
        message["attempts"].as_u64().unwrap() >= 2,
        "retried first: {message}"
    );
    let at = |field: &str| humantime::parse_rfc3339(message[field].as_str().unwrap()).unwrap();
    let lived = at("finished_at").duration_since(at("accepted_at")).unwrap();
    assert!(
        lived >= Duration::from_secs(1),
        "tried until its whole maximum age had passed: {message}"
    );
    assert!(
        message["transport"]
            .as_str()
            .unwrap()
            .starts_with("smtp localhost:"),
        "the transport tried is recorded for a dead message too: {message}"
    );
}

#[test]
fn outbox_commands_without_an_outbox_or_with_a_bad_one_say_what_to_do() {
    let none = run(mailrules().args(["outbox", "list"]));
    assert_eq!(none.code, 2);
    assert!(
        none.stderr
            .contains("pass --outbox FILE or set MAILRULES_OUTBOX"),
        "{}",
        none.stderr
    );
    let nowhere =
        run(mailrules().args(["--outbox", "/nonexistent/dir/outbox.db", "outbox", "list"]));
    assert_eq!(nowhere.code, 2);
    assert!(
        nowhere
            .stderr
            .contains("no outbox at `/nonexistent/dir/outbox.db`"),
        "a mistyped path is not made into a new empty outbox: {}",
        nowhere.stderr
    );
    assert!(nowhere.stderr.contains("hint:"), "{}", nowhere.stderr);
    let dir = tempfile::tempdir().unwrap();
    let not_sqlite = dir.path().join("notes.txt");
    let notes = "these are not the messages you are looking for\n".repeat(100);
    std::fs::write(&not_sqlite, &notes).unwrap();
    let wrong = run(mailrules()
        .arg("--outbox")
        .arg(&not_sqlite)
        .args(["outbox", "list"]));
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("cannot open the outbox"),
        "{}",
        wrong.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&not_sqlite).unwrap(),
        notes,
        "a file that is not an outbox is left alone"
    );
    // `mailrules --config EXAMPLE --outbox FILE ARGS...` must exit 2 saying `says`.
    let refused = |outbox: &Path, args: &[&str], says: &str| {
        let result = run(mailrules()
            .args(["--config", EXAMPLE, "--outbox"])
            .arg(outbox)
            .args(args));
        assert_eq!(result.code, 2, "{args:?}: {}", result.stderr);
        assert!(result.stderr.contains(says), "{args:?}: {}", result.stderr);
    };
    refused(
        dir.path(),
        &["outbox", "list"],
        "is a directory, not an outbox file",
    );
    // Another program's SQLite database is neither read nor taken over,
    // also not by a command that makes a new outbox.
    let foreign = dir.path().join("app.db");
    {
        let db = rusqlite::Connection::open(&foreign).unwrap();
        db.execute_batch("CREATE TABLE invoices (nr TEXT); INSERT INTO invoices VALUES ('F-1');")
            .unwrap();
    }
    let before = std::fs::read(&foreign).unwrap();
    for command in [&["outbox", "list"][..], &["outbox", "deliver"][..]] {
        refused(
            &foreign,
            command,
            "is an SQLite database, but not a mailrules outbox",
        );
    }
    assert_eq!(std::fs::read(&foreign).unwrap(), before, "left as it was");
    // A symlink planted as the lock file: refused, its target untouched.
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "IMPORTANT\n").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("locked.db.lock")).unwrap();
    refused(
        &dir.path().join("locked.db"),
        &["outbox", "deliver"],
        "not a symlink",
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "IMPORTANT\n");
    let new = dir.path().join("new.db");
    refused(
        &new,
        &["outbox", "deliver", "--retry-delay", "10ms"],
        "at least 100ms",
    );
    refused(
        &new,
        &[
            "outbox",
            "deliver",
            "--retry-delay",
            "2h",
            "--max-age",
            "1h",
        ],
        "would expire before its first retry",
    );
    assert!(!new.exists(), "a refused command makes no outbox");
    let key_alone = run(mailrules().args([
        "--config",
        EXAMPLE,
        "send",
        "-a",
        "acme-nl",
        "-u",
        "anna",
        "-p",
        "sales_invoice",
        "--to",
        "k@example.com",
        "--idempotency-key",
        "K",
    ]));
    assert_eq!(key_alone.code, 2);
    assert!(
        key_alone
            .stderr
            .contains("--idempotency-key goes with --queue"),
        "{}",
        key_alone.stderr
    );
    refused(
        &new,
        &[
            "send",
            "-a",
            "acme-nl",
            "-u",
            "anna",
            "-p",
            "sales_invoice",
            "--to",
            "k@example.com",
            "--queue",
            "--idempotency-key",
            "F 1",
        ],
        "printable ASCII characters without spaces",
    );
}

/// The example with `throttle` added to the `billing` profile (acme-nl's
/// invoices), in a copy.
fn throttled_example(throttle: &str) -> (tempfile::TempDir, PathBuf) {
    let copy = common::example_copy();
    let config = copy.path().join("acme/config");
    common::edit(
        &config.join("profiles.yaml"),
        "    bcc: [\"archief@acme.nl\"]\n",
        &format!("    bcc: [\"archief@acme.nl\"]\n    throttle: {throttle}\n"),
    );
    (copy, config)
}

#[test]
fn a_profiles_throttle_bounds_its_deliveries_in_flight() {
    let (copy, config) = throttled_example("{concurrency: 2}");
    // A slow server: each message takes 300 ms, so that deliveries overlap.
    let server = SmtpServer::start_with("starttls", &["--data-delay", "0.3"]);
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");
    let daemon = daemon_on(&config, &outbox_in(copy.path()), &override_file, &[]);
    for n in 1..=8 {
        assert_eq!(daemon.post("/v1/send", &invoice(n)).status, 202);
    }
    wait_for_counts(&daemon, "all sent", Duration::from_secs(30), |c| {
        c["sent"] == 8
    });
    let connections: HashSet<u64> = server.received().iter().map(|m| m.connection).collect();
    assert_eq!(
        connections.len(),
        2,
        "two at a time, each over its own kept connection: {connections:?}"
    );
}

#[test]
fn a_profiles_rate_spaces_its_deliveries() {
    let (copy, config) = throttled_example("{per_minute: 120}");
    let server = SmtpServer::start("starttls");
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");
    let daemon = daemon_on(&config, &outbox_in(copy.path()), &override_file, &[]);
    for n in 1..=4 {
        assert_eq!(daemon.post("/v1/send", &invoice(n)).status, 202);
    }
    wait_for_counts(&daemon, "all sent", Duration::from_secs(30), |c| {
        c["sent"] == 4
    });
    let listed = daemon.get("/v1/messages?state=sent").json;
    let mut started: Vec<std::time::SystemTime> = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| humantime::parse_rfc3339(m["last_attempt_at"].as_str().unwrap()).unwrap())
        .collect();
    started.sort();
    for pair in started.windows(2) {
        let gap = pair[1].duration_since(pair[0]).unwrap();
        // 120 a minute: one every 500 ms (the clock is read in whole ms).
        assert!(
            gap >= Duration::from_millis(490),
            "started {gap:?} apart: {started:?}"
        );
    }
}

#[test]
fn sigterm_lets_the_deliveries_in_flight_finish_and_records_them() {
    let dir = tempfile::tempdir().unwrap();
    // Each message takes a second at the server.
    let server = SmtpServer::start_with("starttls", &["--data-delay", "1"]);
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");
    let outbox = outbox_in(dir.path());
    let mut daemon = daemon(&outbox, &override_file, &[]);
    let accepted = daemon.post("/v1/send", &invoice(1));
    let id = accepted.json["id"].as_str().unwrap().to_string();
    wait_for_counts(&daemon, "in delivery", Duration::from_secs(10), |c| {
        c["sending"] == 1
    });
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.logs());
    let shown = cli(&outbox, &["outbox", "show", &id, "--format", "json"]);
    let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(
        shown["state"], "sent",
        "finished and recorded before the exit: {shown}"
    );
    assert_eq!(shown["uncertain"], 0);
    assert_eq!(server.received().len(), 1);
}

#[test]
fn only_one_deliverer_at_a_time_uses_an_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start("starttls");
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");
    let outbox = outbox_in(dir.path());
    let first = daemon(&outbox, &override_file, &[]);
    let override_arg = override_file.to_str().unwrap();

    let deliver = cli(
        &outbox,
        &["outbox", "deliver", "--transport-override", override_arg],
    );
    assert_eq!(deliver.code, 2, "{}", deliver.stderr);
    assert!(
        deliver
            .stderr
            .contains("is being delivered by another mailrules (process"),
        "{}",
        deliver.stderr
    );
    assert!(
        deliver.stderr.contains("hint: one daemon"),
        "{}",
        deliver.stderr
    );
    let second = cli(
        &outbox,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--transport-override",
            override_arg,
        ],
    );
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("is being delivered by another mailrules"),
        "{}",
        second.stderr
    );

    // Queuing and looking in still work beside the daemon, which delivers.
    let queued = queue(&outbox, &override_file, "klant@example.com", "INV-1");
    assert_eq!(queued.code, 0, "{}", queued.stderr);
    wait_for_counts(&first, "sent", Duration::from_secs(10), |c| c["sent"] == 1);
    assert_eq!(server.received().len(), 1);
    drop(first);
    // Its lock went with it, even killed.
    let deliver = cli(
        &outbox,
        &["outbox", "deliver", "--transport-override", override_arg],
    );
    assert_eq!(deliver.code, 0, "{}", deliver.stderr);
}

/// SQLite goes on writing to a deleted file: a daemon whose outbox was
/// removed (a cleanup script, a wrong `rm`) refuses new messages (503)
/// instead of accepting them into a file that is gone at the next start.
#[test]
fn a_deleted_outbox_accepts_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start("starttls");
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");
    let outbox = outbox_in(dir.path());
    let daemon = daemon(&outbox, &override_file, &[]);
    assert_eq!(daemon.post("/v1/send", &invoice(1)).status, 202);
    for file in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{file}", outbox.display()));
    }
    let refused = daemon.post("/v1/send", &invoice(2));
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(
        refused.json["error"]
            .as_str()
            .unwrap()
            .contains("was deleted or replaced while in use"),
        "{}",
        refused.text
    );
    assert!(
        refused.json["hint"]
            .as_str()
            .unwrap()
            .starts_with("nothing was stored; restart mailrules"),
        "{}",
        refused.text
    );
}
