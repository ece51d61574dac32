//! `copy_to_sent` against real servers on 127.0.0.1: the message goes out
//! through the SMTP test server, and its copy lands in a folder of a
//! Dovecot IMAP server, flagged as read, with the private Bcc header.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const FOLDER: &str = "Verzonden items";

/// A copy of the example, and a `--transport-override` file that sends
/// through `smtp` and keeps copies on `imap` (`create_folder` as given).
/// The copy must be in the override: an override without one stores no
/// copies (see the last test).
fn example_with_copy(
    imap: &ImapServer,
    smtp: &SmtpServer,
    password_env: &str,
    create_folder: bool,
) -> (tempfile::TempDir, PathBuf) {
    example_with_copy_over(imap, imap.port, "tls", smtp, password_env, create_folder)
}

/// The same, over `port` with `security` (`tls` or `starttls`).
fn example_with_copy_over(
    imap: &ImapServer,
    port: u16,
    security: &str,
    smtp: &SmtpServer,
    password_env: &str,
    create_folder: bool,
) -> (tempfile::TempDir, PathBuf) {
    let dir = example_copy();
    let smtp_part =
        std::fs::read_to_string(smtp.override_file("starttls", "TEST_SMTP_PASSWORD")).unwrap();
    let override_file = dir.path().join("override-with-copy.yaml");
    std::fs::write(
        &override_file,
        format!(
            "{smtp_part}{}",
            copy_block(imap, port, security, password_env, create_folder)
        ),
    )
    .unwrap();
    (dir, override_file)
}

/// A `copy_to_sent` block (at the top level) for `imap`.
fn copy_block(
    imap: &ImapServer,
    port: u16,
    security: &str,
    password_env: &str,
    create_folder: bool,
) -> String {
    format!(
        "copy_to_sent:\n  host: localhost\n  port: {port}\n  security: {security}\n  ca_file: {}\n  account:\n    username: {IMAP_USER}\n    password: {{env: {password_env}}}\n  folder: {FOLDER}\n  create_folder: {create_folder}\n",
        imap.ca_file().display()
    )
}

fn config(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("acme/config")
}

/// `send` of one invoice with the copy's password in `IMAP_PASSWORD_ENV`.
fn send(config: &Path, override_file: &Path, imap_password: &str) -> Run {
    run(mailrules()
        .args(["send", "--config"])
        .arg(config)
        .args(["-a", "acme-nl", "-u", "anna", "-p", "sales_invoice"])
        .args(["--to", "Klant <klant@example.com>"])
        .args(["--data", &format!("{DATA}/sales_invoice.json")])
        .arg("--transport-override")
        .arg(override_file)
        .env("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
        .env("IMAP_PASSWORD_ENV", imap_password))
}

#[test]
fn the_sent_message_is_stored_in_the_folder_as_read_with_its_bcc() {
    let imap = ImapServer::start();
    let smtp = SmtpServer::start("starttls");
    let (dir, override_file) = example_with_copy(&imap, &smtp, "IMAP_PASSWORD_ENV", true);
    let result = send(&config(&dir), &override_file, IMAP_PASSWORD);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result.stdout.contains(&format!(
            "copy stored in imap localhost:{} folder `{FOLDER}`",
            imap.port
        )),
        "{}",
        result.stdout
    );

    let received = smtp.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].rcpt_to,
        ["klant@example.com", "archief@acme.nl"]
    );
    let copies = imap.messages(FOLDER);
    assert_eq!(copies.len(), 1, "the folder was created and holds the copy");
    let (flags, copy) = &copies[0];
    assert_eq!(flags, "S", "stored as read (\\Seen)");
    let mut expected = b"Bcc: archief@acme.nl\r\n".to_vec();
    expected.extend_from_slice(&received[0].data);
    // Dovecot's Maildir keeps LF line ends (IMAP gives CRLF back).
    let lf = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace("\r\n", "\n");
    assert_eq!(
        lf(copy),
        lf(&expected),
        "the copy is the sent message, plus the Bcc only this copy shows"
    );
    assert!(
        !String::from_utf8_lossy(&received[0].data).contains("Bcc:"),
        "the recipients never see the BCC"
    );

    // A batch records the copy with each sent request.
    let batch_dir = tempfile::tempdir().unwrap();
    let batch = invoices(batch_dir.path(), 2);
    let results = batch_dir.path().join("results.jsonl");
    let result = run(mailrules()
        .args(["send", "--config"])
        .arg(config(&dir))
        .arg("--batch")
        .arg(&batch)
        .arg("--results")
        .arg(&results)
        .arg("--transport-override")
        .arg(&override_file)
        .env("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
        .env("IMAP_PASSWORD_ENV", IMAP_PASSWORD));
    assert_eq!(result.code, 0, "{}", result.stderr);
    for line in std::fs::read_to_string(&results).unwrap().lines() {
        let outcome: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(outcome["copy"]["status"], "stored", "{outcome}");
        assert_eq!(outcome["copy"]["attempts"], 1);
    }
    assert_eq!(imap.messages(FOLDER).len(), 3);

    // So does the daemon's answer.
    let daemon = Daemon::start_with(
        &config(&dir),
        &["--transport-override", override_file.to_str().unwrap()],
        &[("IMAP_PASSWORD_ENV", IMAP_PASSWORD)],
    );
    let reply = daemon.post(
        "/v1/send",
        &invoice_request("klant@example.com", serde_json::json!({})),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["copy"]["status"], "stored", "{}", reply.text);
    assert_eq!(imap.messages(FOLDER).len(), 4);
}

/// Dovecot's plain port refuses a login before STARTTLS (`ssl = required`).
#[test]
fn the_copy_can_go_over_starttls() {
    let imap = ImapServer::start();
    let smtp = SmtpServer::start("starttls");
    let (dir, override_file) = example_with_copy_over(
        &imap,
        imap.starttls_port,
        "starttls",
        &smtp,
        "IMAP_PASSWORD_ENV",
        true,
    );
    let result = send(&config(&dir), &override_file, IMAP_PASSWORD);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result.stdout.contains(&format!(
            "copy stored in imap localhost:{} folder",
            imap.starttls_port
        )),
        "{}{}",
        result.stdout,
        result.stderr
    );
    assert_eq!(imap.messages(FOLDER).len(), 1);
}

#[test]
fn with_imap_down_the_send_succeeds_once_and_the_copy_is_tried_again() {
    let smtp = SmtpServer::start("starttls");
    let mut imap = ImapServer::prepare();
    let (dir, override_file) = example_with_copy(&imap, &smtp, "IMAP_PASSWORD_ENV", true);

    // Never up: the message is sent, the copy fails after its retries.
    let started = Instant::now();
    let result = send(&config(&dir), &override_file, IMAP_PASSWORD);
    assert_eq!(result.code, 0, "the message went out: {}", result.stderr);
    assert!(
        result.stderr.contains(
            "warning: the message was sent, but its copy was not stored after 4 attempt(s)"
        ),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("hint: check `copy_to_sent.host`"),
        "{}",
        result.stderr
    );
    assert!(
        started.elapsed() >= Duration::from_secs(7),
        "tried again after 1, 2 and 4 s"
    );
    assert_eq!(smtp.received().len(), 1);

    // Up a moment after the send: a later attempt stores the copy.
    let config = config(&dir);
    let sending = std::thread::spawn({
        let (config, override_file) = (config.clone(), override_file.clone());
        move || {
            run(mailrules()
                .args(["send", "--config"])
                .arg(&config)
                .args(["-a", "acme-nl", "-u", "anna", "-p", "sales_invoice"])
                .args(["--to", "klant@example.com"])
                .args(["--data", &format!("{DATA}/sales_invoice.json")])
                .arg("--transport-override")
                .arg(override_file)
                .env("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
                .env("IMAP_PASSWORD_ENV", IMAP_PASSWORD))
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    imap.run();
    let result = sending.join().unwrap();
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result.stdout.contains("copy stored in"),
        "{}",
        result.stdout
    );
    assert!(result.stdout.contains("(attempt 3)"), "{}", result.stdout);
    assert_eq!(smtp.received().len(), 2, "each message sent once");
    assert_eq!(imap.messages(FOLDER).len(), 1);
}

#[test]
fn a_refused_copy_says_why_and_does_not_fail_the_send() {
    let imap = ImapServer::start();
    let smtp = SmtpServer::start("starttls");

    // The folder does not exist and may not be created.
    let (dir, override_file) = example_with_copy(&imap, &smtp, "IMAP_PASSWORD_ENV", false);
    let result = send(&config(&dir), &override_file, IMAP_PASSWORD);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("copy was not stored after 1 attempt(s)")
            && result.stderr.contains("refused APPEND")
            && result.stderr.contains("TRYCREATE"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("set `create_folder: true`"),
        "{}",
        result.stderr
    );

    // A wrong password: permanent, not tried again, never shown.
    let (dir, override_file) = example_with_copy(&imap, &smtp, "IMAP_PASSWORD_ENV", true);
    let result = send(&config(&dir), &override_file, "wrong-imap-password");
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("copy was not stored after 1 attempt(s)")
            && result.stderr.contains("refused the login"),
        "{}",
        result.stderr
    );
    assert!(result.stderr.contains("hint: check `copy_to_sent.account`"));
    assert!(!result.stderr.contains("wrong-imap-password"));
    assert_eq!(smtp.received().len(), 2, "both messages went out");
    assert!(imap.messages(FOLDER).is_empty());
}

#[test]
fn a_message_delivered_from_the_outbox_keeps_its_copy_and_the_outbox_records_it() {
    let smtp = SmtpServer::start("starttls");
    let imap = ImapServer::start();
    let (dir, override_file) = example_with_copy(&imap, &smtp, "IMAP_PASSWORD_ENV", true);
    let outbox = dir.path().join("outbox.db");
    let outbox_run = |args: &[&str], imap_password: &str| {
        run(mailrules()
            .arg("--config")
            .arg(config(&dir))
            .arg("--outbox")
            .arg(&outbox)
            .args(args)
            .arg("--transport-override")
            .arg(&override_file)
            .env("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
            .env("IMAP_PASSWORD_ENV", imap_password))
    };
    let queue = [
        "send",
        "--queue",
        "-a",
        "acme-nl",
        "-u",
        "anna",
        "-p",
        "sales_invoice",
        "--to",
        "klant@example.com",
        "--data",
        &format!("{DATA}/sales_invoice.json"),
    ];
    let queued = outbox_run(&queue, IMAP_PASSWORD);
    assert_eq!(queued.code, 0, "{}", queued.stderr);
    let id = queued.stdout.split_whitespace().nth(1).unwrap().to_string();
    let delivered = outbox_run(&["outbox", "deliver"], IMAP_PASSWORD);
    assert_eq!(delivered.code, 0, "{}", delivered.stderr);

    let shown = run(mailrules()
        .arg("--outbox")
        .arg(&outbox)
        .args(["outbox", "show", &id, "--format", "json"]));
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["state"], "sent");
    assert_eq!(shown["copy_status"], "stored", "{shown}");
    let copies = imap.messages(FOLDER);
    assert_eq!(copies.len(), 1);
    let (flags, copy) = &copies[0];
    assert!(flags.contains('S'), "maildir flag S: \\Seen: {flags}");
    // Dovecot keeps maildir files with LF line ends.
    let lf = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace("\r\n", "\n");
    let (sent, copy) = (lf(&smtp.received()[0].data), lf(copy));
    assert_eq!(
        copy,
        format!("Bcc: archief@acme.nl\n{sent}"),
        "the sent message with its Bcc header"
    );

    // A refused IMAP login: sent all the same, the copy's failure recorded.
    let queued = outbox_run(&queue, "wrong-password");
    let id = queued.stdout.split_whitespace().nth(1).unwrap().to_string();
    let delivered = outbox_run(&["outbox", "deliver"], "wrong-password");
    assert_eq!(delivered.code, 0, "{}", delivered.stderr);
    let shown = run(mailrules()
        .arg("--outbox")
        .arg(&outbox)
        .args(["outbox", "show", &id, "--format", "json"]));
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["state"], "sent");
    assert_eq!(shown["copy_status"], "failed", "{shown}");
    assert!(!shown["copy_error"].as_str().unwrap().is_empty(), "{shown}");
    assert!(
        !shown.to_string().contains("wrong-password"),
        "no secret in the record"
    );
    assert_eq!(smtp.received().len(), 2, "each message sent once");
}

/// An override sends elsewhere (a test server, a staging relay): the
/// profile's copy (acme-be's Microsoft 365 folder) is not stored, and
/// explain says why.
#[test]
fn an_override_without_a_copy_stores_no_copy() {
    let smtp = SmtpServer::start("starttls");
    let override_file = smtp.override_file("starttls", "TEST_SMTP_PASSWORD");
    let context = ["-a", "acme-be", "-u", "kees", "-p", "order_confirmation"];
    let explained = run(mailrules()
        .args(["explain", "--config", EXAMPLE])
        .args(context)
        .arg("--transport-override")
        .arg(&override_file));
    assert_eq!(explained.code, 0, "{}", explained.stderr);
    let line = explained
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("  copy_to_sent"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        line.contains("(none)") && line.contains("from transport override"),
        "{}",
        explained.stdout
    );

    let result = run(mailrules()
        .args(["send", "--config", EXAMPLE])
        .args(context)
        .args(["--to", "klant@example.com"])
        .args(["--data", &format!("{DATA}/order_confirmation.json")])
        .arg("--transport-override")
        .arg(&override_file)
        .env("TEST_SMTP_PASSWORD", SMTP_PASSWORD));
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(!result.stdout.contains("copy"), "{}", result.stdout);
    assert!(
        !result.stderr.contains("copy"),
        "no attempt to store a copy: {}",
        result.stderr
    );
    assert_eq!(smtp.received().len(), 1);
}

/// The outbox commits `sent` before it stores the copy: an IMAP server
/// that accepts the connection and never answers holds the copy, not the
/// message. Killed meanwhile, the daemon does not send it again.
#[test]
fn a_hanging_copy_never_makes_the_outbox_send_twice() {
    let smtp = SmtpServer::start("starttls");
    // Accepts connections and says nothing (held until the test ends).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let dir = example_copy();
    let smtp_part =
        std::fs::read_to_string(smtp.override_file("starttls", "TEST_SMTP_PASSWORD")).unwrap();
    let override_file = dir.path().join("override-silent-copy.yaml");
    std::fs::write(
        &override_file,
        format!(
            "{smtp_part}copy_to_sent:\n  host: localhost\n  port: {silent_port}\n  security: tls\n  ca_file: {}\n  account:\n    username: {IMAP_USER}\n    password: {{env: IMAP_PASSWORD_ENV}}\n  folder: {FOLDER}\n",
            smtp.ca_file().display()
        ),
    )
    .unwrap();
    let outbox = dir.path().join("outbox.db");
    let start = || {
        Daemon::start_with(
            &config(&dir),
            &[
                "--transport-override",
                override_file.to_str().unwrap(),
                "--outbox",
                outbox.to_str().unwrap(),
            ],
            &[("IMAP_PASSWORD_ENV", IMAP_PASSWORD)],
        )
    };
    let first = start();
    let accepted = first.post(
        "/v1/send",
        &invoice_request("klant@example.com", serde_json::json!({})),
    );
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let id = accepted.json["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let shown = loop {
        let shown = first.get(&format!("/v1/messages/{id}")).json;
        if shown["state"] == "sent" {
            break shown;
        }
        assert!(Instant::now() < deadline, "{shown}\n{}", first.logs());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(shown["copy_status"], "pending", "the copy hangs: {shown}");
    first.signal("KILL");
    drop(first);

    let second = start();
    std::thread::sleep(Duration::from_secs(2));
    let shown = second.get(&format!("/v1/messages/{id}")).json;
    assert_eq!(shown["state"], "sent", "{shown}");
    assert_eq!(shown["uncertain"], 0, "{shown}");
    assert_eq!(
        smtp.received().len(),
        1,
        "sent once, not again after the kill"
    );
    drop(silent);
}
