//! The binary as a user runs it: exit codes, errors, JSON shapes, the file
//! and sendmail transports, and secrets that never show.

mod common;

use std::path::Path;

use common::*;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `command` for SMALL's one context (shop, clerk, notice) to c@x.example.
fn run_small(command: &str, config: &Path, data: &Path) -> Run {
    run(mailrules()
        .args([command, "--config"])
        .arg(config)
        .args([
            "-a",
            "shop",
            "-u",
            "clerk",
            "-p",
            "notice",
            "--to",
            "c@x.example",
            "--data",
        ])
        .arg(data))
}

/// Writes a shell script and makes it executable (a fake MTA).
fn executable(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = write(dir, name, text);
    let status = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

const SMALL: &str = r#"
system: {profile: out, default_language: en, languages: [en], processes: [notice]}
profiles:
  out:
    file: {dir: outbox}
    from: "Shop <shop@x.example>"
    bcc: [audit@x.example]
administrations:
  shop: {name: Shop, languages: {en: {notice: notice}}}
users:
  clerk: {}
templates:
  notice: {process: notice, subject: "Notice {{ number }}", text: "Number {{ number }}."}
"#;

#[test]
fn the_example_is_valid() {
    let result = run(mailrules().args(["validate", "--config", EXAMPLE]));
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result.stdout.contains("valid (9 file(s)"),
        "{}",
        result.stdout
    );
}

#[test]
fn mailrules_config_variable_names_the_config() {
    let result = run(mailrules().arg("validate").env("MAILRULES_CONFIG", EXAMPLE));
    assert_eq!(result.code, 0, "{}", result.stderr);
}

#[test]
fn no_config_is_a_usage_error() {
    let result = run(mailrules().arg("validate"));
    assert_eq!(result.code, 2);
    assert!(result.stderr.contains("--config"), "{}", result.stderr);
}

#[test]
fn an_unreadable_config_path_exits_2() {
    let result = run(mailrules().args(["validate", "--config", "does/not/exist"]));
    assert_eq!(result.code, 2);
    assert!(
        result.stderr.contains("cannot read `does/not/exist`"),
        "{}",
        result.stderr
    );
}

#[test]
fn every_problem_is_reported_in_one_run_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        "system: {profile: missing, default_language: en, languages: [en], processes: [notice]}\n",
    );
    write(
        dir.path(),
        "b.yaml",
        "profiles:\n  out:\n    file: {dir: x}\n    from: shop@x.example\n    reply_too: a@x.example\n",
    );
    write(
        dir.path(),
        "c.yaml",
        "administrations:\n  shop:\n    name: Shop\n    languages: {fr: {notice: nope}}\n",
    );
    let result = run(mailrules().arg("validate").arg("--config").arg(dir.path()));
    assert_eq!(result.code, 1, "{}", result.stderr);
    let stderr = &result.stderr;
    // The schema error in b.yaml ...
    assert!(
        stderr.contains("error: unknown key `reply_too`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("b.yaml:5:5 (profiles.out.reply_too)"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `reply_to`?"), "{stderr}");
    // ... does not hide the reference errors of the other files.
    assert!(stderr.contains("unknown profile `missing`"), "{stderr}");
    assert!(stderr.contains("a.yaml:1:19 (system.profile)"), "{stderr}");
    assert!(stderr.contains("unknown language `fr`"), "{stderr}");
    assert!(stderr.contains("unknown template `nope`"), "{stderr}");
    assert!(
        !stderr.contains("unknown process `notice`"),
        "notice is declared: {stderr}"
    );
    assert!(
        !stderr.contains("unknown profile `out`"),
        "`out` exists, broken: {stderr}"
    );
    assert!(stderr.contains("invalid (4 error(s)"), "{stderr}");
}

#[test]
fn validate_json_lists_diagnostics_for_ci() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.yaml",
        &SMALL.replace("shop@x.example", "not an address"),
    );
    let result = run(mailrules()
        .args(["validate", "--format", "json", "--config"])
        .arg(&file));
    assert_eq!(result.code, 1);
    let json: serde_json::Value = serde_json::from_str(&result.stdout).expect("JSON on stdout");
    assert_eq!(json["valid"], false);
    assert_eq!(json["errors"], 1);
    let d = &json["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["path"], "profiles.out.from");
    assert_eq!(d["location"]["line"], 6);
    assert_eq!(d["location"]["column"], 11);
    assert!(d["location"]["file"].as_str().unwrap().ends_with("c.yaml"));
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("not a valid e-mail address")
    );
}

#[test]
fn a_literal_password_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.yaml",
        &SMALL.replace(
            "file: {dir: outbox}",
            "smtp: {host: h, auth: {username: u, password: hunter2}}",
        ),
    );
    let result = run(mailrules().args(["validate", "--config"]).arg(&file));
    assert_eq!(result.code, 1);
    assert!(
        result.stderr.contains("password: {env: NAME}"),
        "{}",
        result.stderr
    );
    assert!(
        !result.stderr.contains("hunter2"),
        "the literal secret is not echoed: {}",
        result.stderr
    );
}

#[test]
fn explain_json_has_the_documented_fields() {
    let result = run(mailrules().args([
        "explain",
        "--config",
        EXAMPLE,
        "-a",
        "acme-nl",
        "-u",
        "anna",
        "-p",
        "order_confirmation",
        "--format",
        "json",
    ]));
    assert_eq!(result.code, 0, "{}", result.stderr);
    let json: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(json["profile"], "sales");
    assert_eq!(json["level"], "personal");
    assert_eq!(json["template"]["id"], "order_confirmation-nl");
    let levels = json["levels"].as_array().unwrap();
    let names: Vec<_> = levels
        .iter()
        .map(|l| l["level"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["template", "administration", "personal", "system"]);
    let statuses: Vec<_> = levels
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["empty", "empty", "won", "shadowed"]);
    assert_eq!(levels[2]["profile"], "sales");
    assert!(
        levels[2]["source"]["file"]
            .as_str()
            .unwrap()
            .ends_with("users.yaml")
    );
    for field in [
        "from",
        "reply_to",
        "bcc",
        "signature",
        "html",
        "transport",
        "account",
    ] {
        assert!(
            json["fields"][field]["value"].is_string(),
            "field {field}: {}",
            json["fields"]
        );
    }
    assert_eq!(
        json["fields"]["from"]["value"],
        "Anna de Vries <anna.devries@acme.nl>"
    );
    assert_eq!(json["fields"]["from"]["origin"]["source"]["line"], 12);
}

#[test]
fn unknown_names_on_the_command_line_exit_1_with_a_hint() {
    for (flag, value, message) in [
        ("-a", "acme-nk", "unknown administration `acme-nk`"),
        ("-u", "ana", "unknown user `ana`"),
        ("-p", "sales_invoices", "unknown process `sales_invoices`"),
    ] {
        let mut args = vec![
            "explain",
            "--config",
            EXAMPLE,
            "-a",
            "acme-nl",
            "-u",
            "anna",
            "-p",
            "sales_invoice",
        ];
        let at = args.iter().position(|a| *a == flag).unwrap();
        args[at + 1] = value;
        let result = run(mailrules().args(&args));
        assert_eq!(result.code, 1, "{flag}");
        assert!(result.stderr.contains(message), "{}", result.stderr);
        assert!(result.stderr.contains("did you mean"), "{}", result.stderr);
    }
}

#[test]
fn a_missing_template_variable_names_it_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "c.yaml", SMALL);
    let result = run(mailrules().args(["send", "--config"]).arg(&file).args([
        "-a",
        "shop",
        "-u",
        "clerk",
        "-p",
        "notice",
        "--to",
        "c@x.example",
    ]));
    assert_eq!(result.code, 1);
    assert!(
        result
            .stderr
            .contains("template `notice` (subject) uses `number`, which the data does not have"),
        "{}",
        result.stderr
    );
    assert!(!dir.path().join("outbox").exists(), "nothing was written");
}

#[test]
fn file_transport_writes_the_message_and_its_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "c.yaml", SMALL);
    let data = write(dir.path(), "data.json", r#"{"number": 7}"#);
    let attachment = write(dir.path(), "note.txt", "attached text");
    let result = run(mailrules()
        .args(["send", "--config"])
        .arg(&file)
        .args([
            "-a",
            "shop",
            "-u",
            "clerk",
            "-p",
            "notice",
            "--to",
            "c@x.example",
            "--message-id",
            "<n7@x.example>",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--attach")
        .arg(&attachment));
    assert_eq!(result.code, 0, "{}", result.stderr);
    let eml = std::fs::read_to_string(dir.path().join("outbox/n7@x.example.eml")).unwrap();
    assert!(eml.contains("Subject: Notice 7\r\n"), "{eml}");
    assert!(
        !eml.to_lowercase().contains("audit@x.example"),
        "no Bcc in the file: {eml}"
    );
    assert!(eml.contains("filename=\"note.txt\""), "{eml}");
    let envelope: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("outbox/n7@x.example.envelope.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(envelope["from"], "shop@x.example");
    assert_eq!(
        envelope["to"],
        serde_json::json!(["c@x.example", "audit@x.example"])
    );
}

#[test]
fn sendmail_gets_recipients_as_arguments_never_dash_t() {
    let dir = tempfile::tempdir().unwrap();
    let script = executable(
        dir.path(),
        "fake-sendmail",
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {0}/args\ncat > {0}/stdin\n",
            dir.path().display()
        ),
    );
    let config = SMALL.replace(
        "file: {dir: outbox}",
        &format!("sendmail: {{command: {}}}", script.display()),
    );
    let file = write(dir.path(), "c.yaml", &config);
    let data = write(dir.path(), "data.json", r#"{"number": 8}"#);
    let result = run_small("send", &file, &data);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert!(!args.contains(&"-t"), "{args:?}");
    assert!(
        args.contains(&"c@x.example") && args.contains(&"audit@x.example"),
        "{args:?}"
    );
    let stdin = std::fs::read_to_string(dir.path().join("stdin")).unwrap();
    assert!(stdin.contains("Subject: Notice 8"), "{stdin}");
    assert!(!stdin.contains("audit@x.example"), "{stdin}");
}

#[test]
fn schema_prints_the_shipped_schema() {
    let result = run(mailrules().arg("schema"));
    assert_eq!(result.code, 0);
    let printed: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    let shipped: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("schemas/mailrules.schema.json").unwrap())
            .unwrap();
    assert_eq!(printed, shipped);
    assert_eq!(
        printed["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[test]
fn secrets_never_appear_in_any_output() {
    const SECRET: &str = "Sup3r-Secret-Value-9137";
    let base = [
        "--config",
        EXAMPLE,
        "-a",
        "acme-nl",
        "-u",
        "anna",
        "-p",
        "sales_invoice",
    ];
    let data = format!("{DATA}/sales_invoice.json");
    let runs = [
        vec!["validate", "--config", EXAMPLE],
        [&["explain"][..], &base[..]].concat(),
        [&["explain", "--format", "json"][..], &base[..]].concat(),
        [
            &["preview"][..],
            &base[..],
            &["--to", "c@x.example", "--data", &data][..],
        ]
        .concat(),
        // No server listens on smtp.acme.example here: the send fails, and
        // its error must not carry the password either.
        [
            &["send"][..],
            &base[..],
            &["--to", "c@x.example", "--data", &data][..],
        ]
        .concat(),
    ];
    for args in runs {
        let result = run(mailrules()
            .args(&args)
            .env("ACME_BILLING_SMTP_PASSWORD", SECRET));
        assert!(
            !result.stdout.contains(SECRET),
            "{args:?} printed the secret"
        );
        assert!(
            !result.stderr.contains(SECRET),
            "{args:?} printed the secret"
        );
    }
}

#[test]
fn literal_passwords_are_never_echoed_even_by_other_errors() {
    const SECRET: &str = "Hunter2Secret";
    let cases = [
        // another error on the same line
        "smtp: {host: h, port: 99999, auth: {username: u, password: Hunter2Secret}}",
        // a misspelled key
        "smtp: {host: h, auth: {username: u, passwd: Hunter2Secret}}",
        // braces make it a mapping key
        "smtp: {host: h, auth: {username: u, password: {Hunter2Secret}}}",
        // separators inside a quoted value
        "smtp: {host: h, auth: {username: u, password: \"Hunter2Secret,x}y#z\"}}",
        // a YAML syntax error on the line
        "smtp: {host: h, auth: {username: u, password: Hunter2Secret: x}}",
        // a missing username next to it
        "smtp: {host: h, auth: {password: Hunter2Secret}}",
        // a block scalar: the value is on the next line
        "smtp:\n      host: h\n      auth:\n        username: u\n        password: |\n          Hunter2Secret",
        // a folded scalar over two lines
        "smtp:\n      host: h\n      auth:\n        username: u\n        password: >\n          Hunter2Secret\n          more",
        // a file that does not parse, the value below its key
        "smtp: {host: h, auth: {username: u, password:\n       Hunter2Secret ]]}",
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "c.yaml",
            &format!("profiles:\n  p:\n    from: a@x.example\n    {case}\n"),
        );
        for format in ["human", "json"] {
            let result = run(mailrules()
                .args(["validate", "--format", format, "--config"])
                .arg(&file));
            assert_ne!(result.code, 0, "{case}");
            assert!(!result.stdout.contains(SECRET), "{case}: {}", result.stdout);
            assert!(!result.stderr.contains(SECRET), "{case}: {}", result.stderr);
        }
        // the same line in a transport override file
        let override_file = write(dir.path(), "o.yaml", &format!("{case}\n"));
        let result = run(mailrules()
            .args([
                "explain",
                "--config",
                EXAMPLE,
                "-a",
                "acme-nl",
                "-u",
                "anna",
                "-p",
                "sales_invoice",
            ])
            .arg("--transport-override")
            .arg(&override_file));
        assert!(
            !result.stderr.contains(SECRET),
            "override {case}: {}",
            result.stderr
        );
    }
}

#[test]
fn an_allowed_plaintext_password_is_used_but_never_shown() {
    const SECRET: &str = "Plain-Text-Pw-4711";
    let dir = tempfile::tempdir().unwrap();
    let config = SMALL.replace(
        "file: {dir: outbox}",
        &format!(
            "smtp: {{host: 127.0.0.1, port: {}, auth: {{username: u, password: {SECRET}}}}}",
            free_port()
        ),
    );
    let file = write(dir.path(), "c.yaml", &config);
    let data = write(dir.path(), "data.json", r#"{"number": 1}"#);
    let without_flag = run(mailrules().args(["validate", "--config"]).arg(&file));
    assert_eq!(without_flag.code, 1, "refused without the flag");
    for command in ["validate", "explain", "preview", "send"] {
        let mut cmd = mailrules();
        cmd.args(["--allow-plaintext-secrets", command, "--config"])
            .arg(&file);
        if command != "validate" {
            cmd.args(["-a", "shop", "-u", "clerk", "-p", "notice"]);
        }
        if command == "preview" || command == "send" {
            cmd.args(["--to", "c@x.example"]).arg("--data").arg(&data);
        }
        let result = run(&mut cmd);
        assert!(
            result.stderr.contains("a literal password"),
            "{command} warns: {}",
            result.stderr
        );
        assert!(
            !result.stdout.contains(SECRET),
            "{command}: {}",
            result.stdout
        );
        assert!(
            !result.stderr.contains(SECRET),
            "{command}: {}",
            result.stderr
        );
        if command == "send" {
            assert_eq!(result.code, 1, "nothing listens on the port");
        } else {
            assert_eq!(result.code, 0, "{command}: {}", result.stderr);
        }
    }
}

#[test]
fn explain_expectations_pass_silently_and_fail_with_a_diff() {
    let base = [
        "explain",
        "--config",
        EXAMPLE,
        "-a",
        "acme-nl",
        "-u",
        "anna",
        "-p",
        "order_confirmation",
    ];
    let ok = run(mailrules().args(base).args([
        "--expect-profile",
        "sales",
        "--expect-from",
        "anna.devries@acme.nl",
    ]));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let wrong = run(mailrules().args(base).args([
        "--expect-profile",
        "billing",
        "--expect-from",
        "Verkoop <verkoop@acme.nl>",
    ]));
    assert_eq!(wrong.code, 1);
    assert!(
        wrong
            .stderr
            .contains("profile: expected `billing`, got `sales` (level 3"),
        "{}",
        wrong.stderr
    );
    assert!(
        wrong.stderr.contains(
            "from: expected `Verkoop <verkoop@acme.nl>`, got `Anna de Vries <anna.devries@acme.nl>`"
        ),
        "{}",
        wrong.stderr
    );
    assert!(
        wrong.stderr.contains("users.yaml:12:13"),
        "the diff says where the value came from: {}",
        wrong.stderr
    );
}

#[test]
fn explain_all_lists_every_context_in_three_formats() {
    let csv = run(mailrules().args(["explain", "--all", "--config", EXAMPLE, "--format", "csv"]));
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "administration,process,language,user,template,profile,level,from,reply_to,bcc,transport,account,html,signature,copy_to_sent,error"
    );
    // 2 administrations × 4 processes × 2 languages × (anna, kees, no personal settings)
    assert_eq!(lines.len() - 1, 2 * 4 * 2 * 3);
    let anna = lines
        .iter()
        .find(|l| l.starts_with("acme-nl,order_confirmation,nl,anna,"))
        .expect("a row for anna");
    assert!(
        anna.starts_with("acme-nl,order_confirmation,nl,anna,order_confirmation-nl,sales,personal,Anna de Vries <anna.devries@acme.nl>,Acme Verkoop <verkoop@acme.nl>,(none),smtp smtp.gmail.com:465 (implicit TLS),\"verkoop@acme.nl (XOAUTH2, refresh token from env:ACME_SALES_REFRESH_TOKEN at https://oauth2.googleapis.com/token)\",true,text and html (#"),
        "{anna}"
    );
    assert!(
        !csv.stdout.contains("piet"),
        "piet's personal settings are disabled"
    );

    let json = run(mailrules().args(["explain", "--all", "--config", EXAMPLE, "--format", "json"]));
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 48);
    let unresolved: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("error").is_some())
        .collect();
    assert!(
        unresolved
            .iter()
            .all(|r| r["administration"] == "acme-be" && r["process"] == "purchase_order"),
        "only acme-be has no Dutch purchase order: {unresolved:?}"
    );

    let human = run(mailrules().args(["explain", "--all", "--config", EXAMPLE]));
    assert!(
        human.stdout.starts_with("administration  process"),
        "{}",
        human.stdout
    );
    assert_eq!(human.stdout.lines().count(), 49);
}

#[test]
fn preview_writes_the_html_part_for_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("invoice.html");
    let base = [
        "preview",
        "--config",
        EXAMPLE,
        "-a",
        "acme-nl",
        "-u",
        "anna",
        "--to",
        "c@x.example",
    ];
    let data = format!("{DATA}/sales_invoice.json");
    let result = run(mailrules()
        .args(base)
        .args(["-p", "sales_invoice", "--data", &data])
        .arg("--html-out")
        .arg(&html));
    assert_eq!(result.code, 0, "{}", result.stderr);
    let written = std::fs::read_to_string(&html).unwrap();
    assert!(written.contains("<strong>2026-10482</strong>"), "{written}");
    assert!(result.stderr.contains("language: nl"), "{}", result.stderr);

    // Purchase orders go out as plain text: there is no HTML to write.
    let data = format!("{DATA}/purchase_order.json");
    let text_only = run(mailrules()
        .args(base)
        .args(["-p", "purchase_order", "--data", &data])
        .arg("--html-out")
        .arg(&html));
    assert_eq!(text_only.code, 2);
    assert!(
        text_only.stderr.contains("no HTML part"),
        "{}",
        text_only.stderr
    );
}

#[test]
fn a_null_in_the_data_is_a_missing_variable_not_none() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(
        dir.path(),
        "data.json",
        r#"{"customer": {"name": null}, "invoice": {"number": "1", "date": "d", "amount": "1", "due_date": "x"}}"#,
    );
    let result = run(mailrules()
        .args([
            "preview",
            "--config",
            EXAMPLE,
            "-a",
            "acme-nl",
            "-u",
            "anna",
            "-p",
            "sales_invoice",
            "--to",
            "c@x.example",
        ])
        .arg("--data")
        .arg(&data));
    assert_eq!(result.code, 1);
    assert!(
        result
            .stderr
            .contains("uses `customer.name`, which the data does not have"),
        "{}",
        result.stderr
    );
    assert!(!result.stdout.contains("None"));
}

#[test]
fn data_can_never_add_a_header_in_any_transport() {
    let dir = tempfile::tempdir().unwrap();
    let sendmail = executable(
        dir.path(),
        "fake-sendmail",
        &format!("#!/bin/sh\ncat > {}/sendmail-got\n", dir.path().display()),
    );
    let transports = [
        "file: {dir: outbox}".to_string(),
        format!("sendmail: {{command: {}}}", sendmail.display()),
        // Nothing listens here: a connection attempt would fail differently.
        format!(
            "smtp: {{host: 127.0.0.1, port: {}, security: none, allow_insecure: true}}",
            free_port()
        ),
    ];
    for transport in &transports {
        let config = SMALL.replace("file: {dir: outbox}", transport).replace(
            "text: \"Number {{ number }}.\"}",
            "text: \"Number {{ number }}.\", headers: {X-Reference: \"{{ reference }}\"}}",
        );
        let file = write(dir.path(), "c.yaml", &config);
        for (field, value) in [
            ("number", "7\r\nBcc: victim@x.example"),
            ("reference", "R1\nX-Injected: yes"),
        ] {
            let mut data = serde_json::json!({"number": "7", "reference": "R1"});
            data[field] = value.into();
            let data_file = write(dir.path(), "data.json", &data.to_string());
            for command in ["preview", "send"] {
                let result = run_small(command, &file, &data_file);
                assert_eq!(
                    result.code, 1,
                    "{transport} {command} {field}: {}",
                    result.stderr
                );
                assert!(
                    result.stderr.contains("header with a line break"),
                    "{transport}: {}",
                    result.stderr
                );
                assert!(
                    result.stdout.is_empty(),
                    "nothing printed or sent: {}",
                    result.stdout
                );
            }
        }
    }
    assert!(
        !dir.path().join("outbox").exists(),
        "the file transport wrote nothing"
    );
    assert!(
        !dir.path().join("sendmail-got").exists(),
        "sendmail was never run"
    );
}

#[test]
fn inline_images_travel_in_a_related_part_and_size_is_limited() {
    let dir = tempfile::tempdir().unwrap();
    // A 1×1 PNG.
    let png = [
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0,
        0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0a, 0x49, 0x44,
        0x41, 0x54, 0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d, 0x0a, 0x2d, 0xb4, 0, 0, 0, 0,
        0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    std::fs::write(dir.path().join("logo.png"), png).unwrap();
    let config = SMALL
        .replace(
            "    bcc: [audit@x.example]\n",
            "    bcc: [audit@x.example]\n    signature: {html: \"<img src=\\\"cid:logo\\\"> Shop\"}\n    inline_images: [{path: logo.png, cid: logo}]\n    max_message_bytes: 4096\n",
        )
        .replace("text: \"Number {{ number }}.\"}", "text: \"Number {{ number }}.\", html: \"<p>Number {{ number }}</p>\"}");
    let file = write(dir.path(), "c.yaml", &config);
    let data = write(dir.path(), "data.json", r#"{"number": 9}"#);
    let args = [
        "-a",
        "shop",
        "-u",
        "clerk",
        "-p",
        "notice",
        "--to",
        "c@x.example",
    ];
    let result = run(mailrules()
        .args(["preview", "--config"])
        .arg(&file)
        .args(args)
        .arg("--data")
        .arg(&data));
    assert_eq!(result.code, 0, "{}", result.stderr);
    let message = result.stdout.replace("\r\n", "\n");
    assert!(
        message.contains("Content-Type: multipart/related;"),
        "{message}"
    );
    assert!(message.contains("Content-ID: <logo>"), "{message}");
    assert!(message.contains("Content-Disposition: inline"), "{message}");
    assert!(message.contains("Content-Type: image/png"), "{message}");

    let big = write(dir.path(), "big.bin", &"x".repeat(8192));
    let too_large = run(mailrules()
        .args(["send", "--config"])
        .arg(&file)
        .args(args)
        .arg("--data")
        .arg(&data)
        .arg("--attach")
        .arg(&big));
    assert_eq!(too_large.code, 1);
    assert!(
        too_large
            .stderr
            .contains("more than the profile's limit of 4096"),
        "{}",
        too_large.stderr
    );
    assert!(!dir.path().join("outbox").exists(), "nothing was written");
}

#[test]
fn an_html_only_template_gets_a_readable_text_part() {
    let dir = tempfile::tempdir().unwrap();
    let config = SMALL.replace(
        "text: \"Number {{ number }}.\"}",
        "html: \"<p>Pay invoice <b>{{ number }}</b> on <a href=\\\"https://pay.example/{{ number }}\\\">the payment page</a>.</p>\"}",
    );
    let file = write(dir.path(), "c.yaml", &config);
    let data = write(dir.path(), "data.json", r#"{"number": 12}"#);
    let result = run_small("preview", &file, &data);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let parsed = mail_parser::MessageParser::default()
        .parse(result.stdout.as_bytes())
        .unwrap();
    let text = parsed.body_text(0).unwrap();
    assert!(
        text.contains("Pay invoice") && text.contains("12"),
        "{text}"
    );
    assert!(
        text.contains("the payment page") && text.contains("https://pay.example/12"),
        "links stay readable: {text}"
    );
    assert!(parsed.body_html(0).unwrap().contains("<b>12</b>"));
}

#[test]
fn check_tries_file_and_sendmail_transports_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = SMALL.replace(
        "profiles:\n",
        "profiles:\n  mta:\n    sendmail: {command: /nonexistent/sendmail}\n    from: mta@x.example\n",
    );
    let file = write(dir.path(), "c.yaml", &config);
    let result = run(mailrules().args(["check", "--config"]).arg(&file));
    assert_eq!(result.code, 1, "{}", result.stdout);
    assert!(
        result
            .stdout
            .contains("FAIL  mta  sendmail /nonexistent/sendmail"),
        "{}",
        result.stdout
    );
    assert!(
        result.stdout.contains("ok    out  file "),
        "{}",
        result.stdout
    );
    assert!(
        dir.path().join("outbox").is_dir(),
        "the pickup directory exists now"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .count(),
        0,
        "and holds nothing"
    );
}

#[test]
fn sendmail_exit_codes_say_temporary_or_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "data.json", r#"{"number": 3}"#);
    for (code, kind) in [(75, "temporary"), (67, "permanent")] {
        let script = executable(
            dir.path(),
            &format!("mta-{code}"),
            &format!("#!/bin/sh\ncat > /dev/null\necho 'queue says no' >&2\nexit {code}\n"),
        );
        let config = SMALL.replace(
            "file: {dir: outbox}",
            &format!("sendmail: {{command: {}}}", script.display()),
        );
        let file = write(dir.path(), "c.yaml", &config);
        let result = run_small("send", &file, &data);
        assert_eq!(result.code, 1);
        assert!(result.stderr.contains(kind), "{code}: {}", result.stderr);
        assert!(
            result
                .stderr
                .contains(&format!("exited with {code}: queue says no")),
            "{}",
            result.stderr
        );
    }
}

/// Every duration flag is bounded: `--poll-interval 0s` spun a CPU, and
/// `--debounce 99999999999999d` or a huge `--retry-delay` overflowed and
/// panicked a thread. clap refuses them: exit 2, naming the flag and the
/// allowed range. (A flag taken by mistake would start the daemon, so
/// each run is stopped after a while rather than waited for.)
#[test]
fn duration_flags_out_of_range_are_refused_with_the_range() {
    let cases: [(&[&str], &str, &str); 9] = [
        (
            &["serve", "--debounce", "99999999999999d"],
            "--debounce",
            "from 10ms to 1min",
        ),
        (
            &["serve", "--poll-interval", "0s"],
            "--poll-interval",
            "from 100ms to 1h",
        ),
        (
            &["serve", "--recheck-interval", "1ns"],
            "--recheck-interval",
            "0 (off), or a duration from 100ms to 1day",
        ),
        (
            &["outbox", "deliver", "--retry-delay", "4000000000000d"],
            "--retry-delay",
            "from 100ms to 1day",
        ),
        (
            &["outbox", "deliver", "--retry-max-delay", "4000000000000d"],
            "--retry-max-delay",
            "from 100ms to 1day",
        ),
        (
            &["outbox", "deliver", "--max-age", "5000000000000d"],
            "--max-age",
            "from 1s to 365days",
        ),
        (
            &["serve", "--admin-notice-interval", "0s"],
            "--admin-notice-interval",
            "from 1s to 7days",
        ),
        (
            &["serve", "--retry-delay", "2days"],
            "--retry-delay",
            "from 100ms to 1day",
        ),
        (
            &["send", "--batch", "b.jsonl", "--retry-delay", "0s"],
            "--retry-delay",
            "from 10ms to 1day",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (args, flag, range) in cases {
        let mut child = mailrules()
            .args(["--config", EXAMPLE, "--outbox"])
            .arg(dir.path().join("outbox.db"))
            .args(args)
            .args(if args[0] == "serve" {
                &["--listen", "127.0.0.1:0"][..]
            } else {
                &[]
            })
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > std::time::Duration::from_secs(20) {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("{args:?} was taken: the command ran");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(range),
            "{args:?}: {stderr}"
        );
    }
}

/// Rendering time grows with the square of the To and Cc lists, so a
/// message takes at most 1,000 recipients: refused before rendering, by
/// the flags (exit 2), by a batch line (naming `to`), and by `render` with
/// the profile's bcc counted (SMALL's bcc makes 1,000 `--to` one too many).
#[test]
fn more_than_a_thousand_recipients_are_refused_before_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.yaml", SMALL);
    let data = write(dir.path(), "d.yaml", "number: 7\n");
    let thousand: Vec<String> = (1..=1000).map(|n| format!("c{n}@x.example")).collect();
    let flags: Vec<&str> = thousand.iter().flat_map(|to| ["--to", to]).collect();
    let context = ["-a", "shop", "-u", "clerk", "-p", "notice", "--data"];

    let send = run(mailrules()
        .args(["send", "--config"])
        .arg(&config)
        .args(context)
        .arg(&data)
        .args(&flags)
        .args(["--cc", "d@x.example"]));
    assert_eq!(send.code, 2, "{}", send.stderr);
    assert!(
        send.stderr
            .contains("1001 recipients (--to and --cc together), more than the limit of 1000"),
        "{}",
        send.stderr
    );

    let preview = run(mailrules()
        .args(["preview", "--config"])
        .arg(&config)
        .args(context)
        .arg(&data)
        .args(&flags));
    assert_eq!(preview.code, 1, "{}", preview.stderr);
    assert!(
        preview.stderr.contains(
            "1001 recipients (`to`, `cc` and the profile's `bcc` together), more than the limit of 1000"
        ),
        "{}",
        preview.stderr
    );

    let mut to = thousand.clone();
    to.push("c1001@x.example".into());
    let line = serde_json::json!({
        "id": "crowd", "administration": "shop", "user": "clerk", "process": "notice",
        "to": to, "data": {"number": 7},
    });
    let batch = write(dir.path(), "b.jsonl", &format!("{line}\n"));
    let result = run(mailrules()
        .args(["send", "--config"])
        .arg(&config)
        .arg("--batch")
        .arg(&batch));
    assert_eq!(result.code, 1, "{}", result.stderr);
    let results = std::fs::read_to_string(dir.path().join("b.results.jsonl")).unwrap();
    let results: serde_json::Value = serde_json::from_str(results.trim()).unwrap();
    assert_eq!(results["field"], "to", "{results}");
    assert_eq!(results["attempts"], 0, "{results}");
    assert!(
        results["error"].as_str().unwrap().contains(
            "`to`: 1001 recipients (`to` and `cc` together), more than the limit of 1000"
        ),
        "{results}"
    );
    assert!(!dir.path().join("outbox").exists(), "nothing was written");
}
