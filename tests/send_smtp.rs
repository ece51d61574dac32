//! Real sends to the aiosmtpd test server on 127.0.0.1 (STARTTLS + AUTH),
//! read back with an independent MIME parser (mail-parser).

mod common;

use common::*;
use mail_parser::{MessageParser, MimeHeaders};

fn send_invoice(server: &SmtpServer, password_env_value: Option<&str>) -> Run {
    let override_file = server.override_file("starttls", "TEST_RELAY_PASSWORD");
    let mut command = mailrules();
    command
        .args(["send", "--config", EXAMPLE])
        .args([
            "--administration",
            "acme-nl",
            "--user",
            "anna",
            "--process",
            "sales_invoice",
        ])
        .args([
            "--language",
            "nl",
            "--to",
            "Bakkerij De Korenschoof <administratie@korenschoof.example>",
        ])
        .args(["--data", &format!("{DATA}/sales_invoice.json")])
        .arg("--transport-override")
        .arg(&override_file)
        .env_remove("TEST_RELAY_PASSWORD");
    if let Some(value) = password_env_value {
        command.env("TEST_RELAY_PASSWORD", value);
    }
    run(&mut command)
}

#[test]
fn invoice_arrives_over_starttls_with_auth_and_bcc_only_in_the_envelope() {
    let server = SmtpServer::start("starttls");
    let result = send_invoice(&server, Some(SMTP_PASSWORD));
    assert_eq!(result.code, 0, "stderr: {}", result.stderr);
    assert!(
        result.stdout.contains("with profile `billing`"),
        "{}",
        result.stdout
    );
    assert!(result.stdout.contains("250 2.0.0 Ok"), "{}", result.stdout);

    let received = server.received();
    assert_eq!(received.len(), 1, "exactly one message arrives");
    let message = &received[0];
    assert!(message.tls, "the session was encrypted with STARTTLS");
    assert_eq!(message.auth_user.as_deref(), Some(SMTP_USER));
    assert_eq!(message.mail_from, "facturen@acme.nl");
    assert_eq!(
        message.rcpt_to,
        ["administratie@korenschoof.example", "archief@acme.nl"],
        "the billing profile's BCC is a recipient of the envelope"
    );

    let parsed = MessageParser::default()
        .parse(&message.data)
        .expect("a MIME message");
    assert_eq!(
        parsed.subject(),
        Some("Factuur 2026-10482 van Acme Nederland B.V.")
    );
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .expect("a From header");
    assert_eq!(from.address(), Some("facturen@acme.nl"));
    assert_eq!(from.name(), Some("Acme Facturatie"));
    let reply_to = parsed
        .reply_to()
        .and_then(|a| a.first())
        .expect("a Reply-To header");
    assert_eq!(reply_to.address(), Some("debiteuren@acme.nl"));
    assert!(parsed.bcc().is_none(), "no Bcc header");
    let message_id = parsed.message_id().expect("a Message-ID");
    assert!(
        message_id.ends_with("@acme.nl"),
        "on the sender's domain: {message_id}"
    );
    let date = String::from_utf8_lossy(&message.data);
    assert!(
        date.lines()
            .any(|l| l.starts_with("Date: ") && l.trim_end().ends_with("+0000")),
        "Date in UTC with its offset"
    );
    let raw = String::from_utf8_lossy(&message.data).to_lowercase();
    assert!(
        !raw.contains("archief@acme.nl"),
        "the BCC address appears nowhere in the message"
    );

    let text = parsed
        .body_text(0)
        .expect("a text part")
        .replace("\r\n", "\n");
    assert!(text.contains("Geachte Bakkerij De Korenschoof"), "{text}");
    assert!(
        text.contains("vóór 31 december 2026"),
        "accents survive: {text}"
    );
    assert!(
        text.contains("-- \nAcme Debiteurenbeheer"),
        "signature appended: {text}"
    );
    assert!(
        text.contains("algemene voorwaarden van toepassing"),
        "disclaimer: {text}"
    );
    let html = parsed.body_html(0).expect("an HTML part");
    assert!(html.contains("<strong>2026-10482</strong>"), "{html}");

    let attachment = parsed
        .attachment(0)
        .expect("the general terms are attached");
    assert_eq!(
        attachment.attachment_name(),
        Some("Algemene voorwaarden Acme.pdf")
    );
    assert_eq!(
        attachment.contents(),
        std::fs::read("examples/acme/config/files/algemene-voorwaarden.pdf")
            .unwrap()
            .as_slice()
    );
}

#[test]
fn preview_shows_the_bytes_that_send_transmits() {
    let server = SmtpServer::start("starttls");
    let override_file = server.override_file("starttls", "TEST_RELAY_PASSWORD");
    let common_args = |command: &mut std::process::Command| {
        command
            .args([
                "--config",
                EXAMPLE,
                "-a",
                "acme-nl",
                "-u",
                "kees",
                "-p",
                "order_confirmation",
                "-l",
                "en",
            ])
            .args(["--to", "Fietsenmakerij Van Dijk <inkoop@vandijk.example>"])
            .args(["--data", &format!("{DATA}/order_confirmation.json")])
            .args([
                "--date",
                "2026-12-03T10:00:00Z",
                "--message-id",
                "<order-3307@acme.nl>",
            ])
            .arg("--transport-override")
            .arg(&override_file)
            .env("TEST_RELAY_PASSWORD", SMTP_PASSWORD);
    };
    let mut preview = mailrules();
    preview.arg("preview");
    common_args(&mut preview);
    let preview = run(&mut preview);
    assert_eq!(preview.code, 0, "{}", preview.stderr);

    let mut send = mailrules();
    send.arg("send");
    common_args(&mut send);
    let send = run(&mut send);
    assert_eq!(send.code, 0, "{}", send.stderr);

    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(String::from_utf8_lossy(&received[0].data), preview.stdout);
}

#[test]
fn implicit_tls_works_too() {
    let server = SmtpServer::start("tls");
    let override_file = server.override_file("tls", "TEST_RELAY_PASSWORD");
    let result = run(mailrules()
        .args([
            "send",
            "--config",
            EXAMPLE,
            "-a",
            "acme-be",
            "-u",
            "batch",
            "-p",
            "payment_reminder",
        ])
        .args([
            "--to",
            "klant@example.com",
            "--data",
            &format!("{DATA}/payment_reminder.json"),
        ])
        .arg("--transport-override")
        .arg(&override_file)
        .env("TEST_RELAY_PASSWORD", SMTP_PASSWORD));
    assert_eq!(result.code, 0, "{}", result.stderr);
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].tls);
}

#[test]
fn a_wrong_password_is_reported_with_the_server_reply_and_nothing_is_sent() {
    let server = SmtpServer::start("starttls");
    let result = send_invoice(&server, Some("wrong-password"));
    assert_eq!(result.code, 1);
    assert!(
        result.stderr.contains("535"),
        "the server's reply is shown: {}",
        result.stderr
    );
    assert!(result.stderr.contains("hint:"), "{}", result.stderr);
    assert!(
        !result.stderr.contains("wrong-password"),
        "the secret is never printed"
    );
    assert!(
        result.stdout.is_empty(),
        "nothing reported as sent: {}",
        result.stdout
    );
    assert!(server.received().is_empty());
}

#[test]
fn a_missing_secret_variable_stops_before_connecting() {
    let server = SmtpServer::start("starttls");
    let result = send_invoice(&server, None);
    assert_eq!(result.code, 1);
    assert!(
        result
            .stderr
            .contains("environment variable `TEST_RELAY_PASSWORD` is not set"),
        "{}",
        result.stderr
    );
    assert!(server.received().is_empty());
}

#[test]
fn an_untrusted_certificate_is_refused() {
    let server = SmtpServer::start("starttls");
    let override_file = server.dir.path().join("no-ca.yaml");
    std::fs::write(
        &override_file,
        format!(
            "smtp: {{host: localhost, port: {}, security: starttls}}\n",
            server.port
        ),
    )
    .unwrap();
    let result = run(mailrules()
        .args([
            "send",
            "--config",
            EXAMPLE,
            "-a",
            "acme-nl",
            "-u",
            "batch",
            "-p",
            "order_confirmation",
        ])
        .args([
            "--to",
            "klant@example.com",
            "--data",
            &format!("{DATA}/order_confirmation.json"),
        ])
        .arg("--transport-override")
        .arg(&override_file));
    assert_eq!(result.code, 1);
    assert!(
        result.stderr.to_lowercase().contains("certificate"),
        "{}",
        result.stderr
    );
    assert!(server.received().is_empty());
}

/// A transport override for `server` with `security` and no login;
/// `more` adds settings (`, timeout_seconds: 1`).
fn login_free_override(server: &SmtpServer, security: &str, more: &str) -> String {
    format!(
        "smtp: {{host: localhost, port: {}, security: {security}, ca_file: {}{more}}}\n",
        server.port,
        server.ca_file().display()
    )
}

/// Sends the invoice through a server started with scripted refusals.
fn send_to(server: &SmtpServer, override_text: Option<&str>) -> Run {
    let override_file = match override_text {
        Some(text) => {
            let path = server.dir.path().join("custom.yaml");
            std::fs::write(&path, text).unwrap();
            path
        }
        None => server.override_file("starttls", "TEST_RELAY_PASSWORD"),
    };
    run(mailrules()
        .args([
            "send",
            "--config",
            EXAMPLE,
            "-a",
            "acme-nl",
            "-u",
            "anna",
            "-p",
            "sales_invoice",
        ])
        .args([
            "--to",
            "klant@example.com",
            "--data",
            &format!("{DATA}/sales_invoice.json"),
        ])
        .arg("--transport-override")
        .arg(&override_file)
        .env("TEST_RELAY_PASSWORD", SMTP_PASSWORD))
}

#[test]
fn failures_are_classified_with_the_reply_and_a_hint() {
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &[
                "--auth-reply",
                "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant",
            ],
            "permanent",
            "enable Authenticated SMTP",
        ),
        (
            &[
                "--mail-reply",
                "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
            ],
            "permanent",
            "grant it Send As",
        ),
        (
            &[
                "--data-reply",
                "550 5.2.252 SendAsDenied; sender not allowed to send as this address",
            ],
            "permanent",
            "grant it Send As",
        ),
        (
            &[
                "--rcpt-reply",
                "451 4.3.0 Mail server temporarily rejected message",
            ],
            "temporary",
            "sent again later",
        ),
    ];
    for (args, kind, hint) in cases {
        let server = SmtpServer::start_with("starttls", args);
        let result = send_to(&server, None);
        assert_eq!(result.code, 1, "{args:?}");
        assert!(result.stderr.contains(kind), "{args:?}: {}", result.stderr);
        assert!(
            result.stderr.contains(&args[1][..9]),
            "the server's reply is shown: {}",
            result.stderr
        );
        assert!(result.stderr.contains(hint), "{args:?}: {}", result.stderr);
        assert!(server.received().is_empty(), "nothing was delivered");
    }
}

#[test]
fn a_login_the_server_requires_is_explained() {
    let server = SmtpServer::start("starttls");
    let no_auth = login_free_override(&server, "starttls", "");
    let result = send_to(&server, Some(&no_auth));
    assert_eq!(result.code, 1);
    assert!(result.stderr.contains("530"), "{}", result.stderr);
    assert!(
        result.stderr.contains("add `auth:` to the profile"),
        "{}",
        result.stderr
    );
}

#[test]
fn implicit_tls_against_a_starttls_port_is_explained() {
    let server = SmtpServer::start("starttls");
    let wrong_mode = login_free_override(&server, "tls", ", timeout_seconds: 5");
    let result = send_to(&server, Some(&wrong_mode));
    assert_eq!(result.code, 1);
    assert!(
        result
            .stderr
            .contains("the TLS mode may not match the port"),
        "{}",
        result.stderr
    );
}

#[test]
fn starttls_against_an_implicit_tls_port_is_explained() {
    let server = SmtpServer::start("tls");
    let wrong_mode = login_free_override(&server, "starttls", ", timeout_seconds: 1");
    let result = send_to(&server, Some(&wrong_mode));
    assert_eq!(result.code, 1);
    assert!(result.stderr.contains("timed out"), "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("on port 465 the server waits for TLS first"),
        "{}",
        result.stderr
    );
}

#[test]
fn check_logs_in_without_sending_and_reports_per_profile() {
    let server = SmtpServer::start("starttls");
    let override_file = server.override_file("starttls", "TEST_RELAY_PASSWORD");
    let check = |password: &str, profile: Option<&str>| {
        let mut command = mailrules();
        command
            .args(["check", "--config", EXAMPLE])
            .arg("--transport-override")
            .arg(&override_file);
        if let Some(profile) = profile {
            command.args(["--profile", profile]);
        }
        run(command.env("TEST_RELAY_PASSWORD", password))
    };
    let ok = check(SMTP_PASSWORD, None);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert_eq!(
        ok.stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        6,
        "{}",
        ok.stdout
    );
    assert!(
        ok.stdout.contains(&format!("login `{SMTP_USER}` accepted")),
        "{}",
        ok.stdout
    );
    assert!(server.received().is_empty(), "check sends nothing");

    let wrong = check("wrong", Some("billing"));
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stdout.starts_with("FAIL  billing"),
        "{}",
        wrong.stdout
    );
    assert!(
        wrong.stdout.contains("535") && wrong.stdout.contains("hint:"),
        "{}",
        wrong.stdout
    );

    let unknown = check(SMTP_PASSWORD, Some("biling"));
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("did you mean `billing`?"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn check_with_rcpt_tries_the_envelope_and_sends_nothing() {
    let check = |server: &SmtpServer| {
        run(mailrules()
            .args(["check", "--config", EXAMPLE, "--profile", "billing"])
            .args(["--rcpt", "klant@example.com", "--transport-override"])
            .arg(server.override_file("starttls", "TEST_RELAY_PASSWORD"))
            .env("TEST_RELAY_PASSWORD", SMTP_PASSWORD))
    };
    let server = SmtpServer::start("starttls");
    let ok = check(&server);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout.contains(
            "MAIL FROM <facturen@acme.nl> and RCPT TO <klant@example.com> accepted (reset: nothing sent)"
        ),
        "{}",
        ok.stdout
    );
    assert!(server.received().is_empty(), "check sends nothing");

    let denied = SmtpServer::start_with(
        "starttls",
        &[
            "--mail-reply",
            "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
        ],
    );
    let refused = check(&denied);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stdout.contains("FAIL  billing"),
        "{}",
        refused.stdout
    );
    assert!(refused.stdout.contains("550 5.7.60"), "{}", refused.stdout);
    assert!(
        refused.stdout.contains("grant it Send As"),
        "{}",
        refused.stdout
    );
}
