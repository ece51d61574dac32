//! Alerts against real SMTP servers on 127.0.0.1: one server behind the
//! alerts profile, another behind the system profile, so that each test
//! sees which profile carried what.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A configuration whose `alerts` profile sends through `alerts_port` and
/// whose system profile through `system`; `admin` is `alerts.admin_email`.
fn config(dir: &Path, alerts: (u16, &Path), system: &SmtpServer, admin: Option<&str>) -> PathBuf {
    let smtp = |port: u16, ca: &Path| {
        format!(
            "{{host: localhost, port: {port}, security: starttls, ca_file: {}, timeout_seconds: 5, auth: {{username: {SMTP_USER}, password: {{env: TEST_SMTP_PASSWORD}}}}}}",
            ca.display()
        )
    };
    let admin = admin.map_or(String::new(), |a| format!("  admin_email: \"{a}\"\n"));
    let text = format!(
        "system: {{profile: general, default_language: en, languages: [en], processes: [invoice]}}\n\
         profiles:\n  general:\n    smtp: {}\n    from: \"Shop <shop@example.com>\"\n  \
         alerts:\n    smtp: {}\n    from: \"Shop Alerts <alerts@example.com>\"\n\
         alerts:\n  profile: alerts\n{admin}  definitions:\n    disk-full:\n      \
         recipients: [\"Ops <ops@example.com>\"]\n      template: alert-disk-full\n\
         templates:\n  alert-disk-full: {{language: en, subject: \"Disk {{{{ disk }}}} is full\", text: \"Disk {{{{ disk }}}} is {{{{ percent }}}}% full.\"}}\n  \
         invoice-en: {{process: invoice, subject: \"Invoice\", text: \"Invoice.\"}}\n\
         administrations:\n  shop: {{name: Shop, languages: {{en: {{invoice: invoice-en}}}}}}\n\
         users:\n  clerk: {{}}\n",
        smtp(system.port, &system.ca_file()),
        smtp(alerts.0, alerts.1),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    std::fs::write(dir.join("disk.json"), r#"{"disk": "/var", "percent": 97}"#).unwrap();
    path
}

fn alert(config: &Path, data: bool) -> Run {
    let mut command = mailrules();
    command.args(["alert", "disk-full", "--config"]).arg(config);
    if data {
        command
            .arg("--data")
            .arg(config.with_file_name("disk.json"));
    }
    run(command.env("TEST_SMTP_PASSWORD", SMTP_PASSWORD))
}

/// `mailrules alert NAME` without data.
fn alert_named(config: &Path, name: &str) -> Run {
    run(mailrules()
        .args(["alert", name, "--config"])
        .arg(config)
        .env("TEST_SMTP_PASSWORD", SMTP_PASSWORD))
}

fn subject(message: &Received) -> String {
    String::from_utf8_lossy(&message.data)
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn an_alert_goes_out_through_the_alerts_profile() {
    let (alerts, system) = (SmtpServer::start("starttls"), SmtpServer::start("starttls"));
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        (alerts.port, &alerts.ca_file()),
        &system,
        Some("IT <it@example.com>"),
    );
    let result = alert(&config, true);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result.stdout.contains("alert `disk-full` sent"),
        "{}",
        result.stdout
    );
    assert!(
        result.stdout.contains("with profile `alerts`"),
        "{}",
        result.stdout
    );
    let received = alerts.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_to, ["ops@example.com"]);
    assert_eq!(received[0].mail_from, "alerts@example.com");
    assert_eq!(subject(&received[0]), "Disk /var is full");
    assert!(system.received().is_empty());

    // The daemon sends the same alert.
    let daemon = Daemon::start(&config, &[]);
    let reply = daemon.post(
        "/v1/alerts/disk-full",
        r#"{"data": {"disk": "/srv", "percent": 99}}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["status"], "sent");
    assert_eq!(reply.json["alert"], "disk-full");
    assert_eq!(subject(&alerts.received()[1]), "Disk /srv is full");
    let unknown = daemon.post("/v1/alerts/disk-ful", "");
    assert_eq!(unknown.status, 422, "{}", unknown.text);
    assert_eq!(unknown.json["hint"], "did you mean `disk-full`?");
    assert!(unknown.json["admin"].is_null(), "{}", unknown.text);
    let unknown = alert_named(&config, "disk-ful");
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("did you mean `disk-full`?"),
        "{}",
        unknown.stderr
    );
    assert!(
        !unknown.stderr.contains("administrator"),
        "{}",
        unknown.stderr
    );
    assert_eq!(
        alerts.received().len() + system.received().len(),
        2,
        "an unknown alert name mails nobody, not even the administrator"
    );
}

/// The alerts profile is the broken part: the administrator hears of it
/// through the system profile.
#[test]
fn a_broken_alerts_profile_is_reported_to_the_administrator_through_the_system_profile() {
    let system = SmtpServer::start("starttls");
    let dir = tempfile::tempdir().unwrap();
    let nobody = free_port();
    let config = config(
        dir.path(),
        (nobody, &system.ca_file()),
        &system,
        Some("IT <it@example.com>"),
    );
    let result = alert(&config, true);
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("error: alert `disk-full` was not sent"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains(
            "the administrator (IT <it@example.com>) was notified through profile `general`"
        ),
        "{}",
        result.stderr
    );
    let received = system.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_to, ["it@example.com"]);
    assert_eq!(received[0].mail_from, "shop@example.com");
    assert_eq!(
        subject(&received[0]),
        "[mailrules] alert `disk-full` failed"
    );
    let body = String::from_utf8_lossy(&received[0].data);
    assert!(body.contains("Alert: disk-full"), "{body}");
    assert!(
        body.contains("MIME-Version: 1.0\r\n")
            && body.contains("Content-Type: text/plain; charset=utf-8\r\n"),
        "a MIME message clients decode: {body}"
    );
    assert!(
        body.contains(&format!("Error: localhost:{nobody}")),
        "{body}"
    );
    assert!(body.contains("Time: 20"), "{body}");
}

/// A template error is no transport problem: the notice goes through the
/// alerts profile itself.
#[test]
fn a_failed_render_is_reported_through_the_alerts_profile() {
    let (alerts, system) = (SmtpServer::start("starttls"), SmtpServer::start("starttls"));
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        (alerts.port, &alerts.ca_file()),
        &system,
        Some("IT <it@example.com>"),
    );
    let result = alert(&config, false);
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result.stderr.contains("`disk`"),
        "names the missing variable: {}",
        result.stderr
    );
    assert!(
        result.stderr.contains("notified through profile `alerts`"),
        "{}",
        result.stderr
    );
    let received = alerts.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_to, ["it@example.com"]);
    assert!(system.received().is_empty());
}

/// The server refuses the alert's recipient: a permanent rejection of
/// this alert, not a broken profile. The administrator hears of it through
/// the alerts profile, by the CLI and by the daemon alike.
#[test]
fn a_refused_alert_is_reported_through_the_alerts_profile() {
    let alerts = SmtpServer::start_with("starttls", &["--reject-rcpt", "ops@example.com"]);
    let system = SmtpServer::start("starttls");
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        (alerts.port, &alerts.ca_file()),
        &system,
        Some("IT <it@example.com>"),
    );
    let result = alert(&config, true);
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(result.stderr.contains("550 5.1.1"), "{}", result.stderr);
    assert!(
        result.stderr.contains("notified through profile `alerts`"),
        "{}",
        result.stderr
    );
    let received = alerts.received();
    assert_eq!(received.len(), 1, "only the notice");
    assert_eq!(received[0].rcpt_to, ["it@example.com"]);
    assert_eq!(received[0].mail_from, "alerts@example.com");
    let body = String::from_utf8_lossy(&received[0].data);
    assert!(body.contains("Alert: disk-full"), "{body}");
    assert!(body.contains("550 5.1.1"), "{body}");

    let daemon = Daemon::start(&config, &[]);
    let reply = daemon.post(
        "/v1/alerts/disk-full",
        r#"{"data": {"disk": "/srv", "percent": 99}}"#,
    );
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.json["status"], "failed");
    assert_eq!(reply.json["temporary"], false);
    assert_eq!(reply.json["admin"]["status"], "notified", "{}", reply.text);
    assert_eq!(reply.json["admin"]["profile"], "alerts");
    assert_eq!(alerts.received().len(), 2, "the daemon's notice too");
    assert!(system.received().is_empty());
}

/// Without `alerts.profile`, alerts use the system profile (level 4).
#[test]
fn an_alerts_section_without_a_profile_uses_the_system_profile() {
    let (alerts, system) = (SmtpServer::start("starttls"), SmtpServer::start("starttls"));
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), (alerts.port, &alerts.ca_file()), &system, None);
    common::edit(&config, "alerts:\n  profile: alerts\n", "alerts:\n");
    let result = alert(&config, true);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result.stdout.contains("with profile `general`"),
        "{}",
        result.stdout
    );
    assert_eq!(system.received().len(), 1);
    assert_eq!(system.received()[0].rcpt_to, ["ops@example.com"]);
    assert!(alerts.received().is_empty());
    let explained = run(mailrules()
        .args(["explain", "--alert", "disk-full", "--config"])
        .arg(&config));
    assert_eq!(explained.code, 0, "{}", explained.stderr);
    assert!(
        explained
            .stdout
            .contains("profile: general (level 4, system)"),
        "{}",
        explained.stdout
    );
}

#[test]
fn without_an_admin_address_the_error_is_only_reported() {
    let system = SmtpServer::start("starttls");
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), (free_port(), &system.ca_file()), &system, None);
    let result = alert(&config, true);
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("no `alerts.admin_email` is set: the error is only reported here"),
        "{}",
        result.stderr
    );
    assert!(system.received().is_empty(), "no mail to anyone");
}

#[test]
fn explain_shows_which_profile_an_alert_uses_and_why() {
    let system = SmtpServer::start("starttls");
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), (system.port, &system.ca_file()), &system, None);
    let result = run(mailrules()
        .args(["explain", "--alert", "disk-full", "--config"])
        .arg(&config));
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result
            .stdout
            .contains("alert: disk-full (to Ops <ops@example.com>)"),
        "{}",
        result.stdout
    );
    assert!(
        result
            .stdout
            .contains("profile: alerts (level 2, administration)"),
        "{}",
        result.stdout
    );
    assert!(
        result
            .stdout
            .contains("the `alerts` section: profile `alerts`  ")
            && result.stdout.contains("config.yaml:"),
        "{}",
        result.stdout
    );
    let unknown = run(mailrules()
        .args(["explain", "--alert", "disk", "--config"])
        .arg(&config));
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("unknown alert `disk`"),
        "{}",
        unknown.stderr
    );
}
