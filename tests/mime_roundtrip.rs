//! Rendered messages read back by an independent MIME parser (Python's
//! `email` package, default policy): subjects, display names, bodies and
//! attachment names in nl, en, de and fr plus hard cases must come back
//! exactly as intended, without parser defects.

use std::path::Path;
use std::process::Command;

use mailrules::config::parse_mailbox;
use mailrules::render::{FileAttachment, MessageInput, render};
use mailrules::resolve::{Request, TemplateSelector, resolve};

const CONFIG: &str = r#"
system: {profile: out, default_language: en, languages: [en, nl, de, fr], processes: [notice]}
profiles:
  out:
    file: {dir: outbox}
    from: '"Ünïcödé Sender, Ltd." <sender@example.com>'
    reply_to: '"The \"Quoted\" Desk" <desk@example.com>'
    signature: {text: "Grüße – l’équipe"}
administrations:
  shop:
    name: Shop
    languages:
      en: {notice: t-en}
      nl: {notice: t-nl}
      de: {notice: t-de}
      fr: {notice: t-fr}
users:
  clerk: {}
templates:
  t-en: {process: notice, language: en, subject: "{{ subject }}", text: "{{ body }}", html: "<p>{{ body }}</p>", headers: {X-Case: "{{ subject }}", List-Unsubscribe: "<mailto:unsubscribe@example.com>"}}
  t-nl: {process: notice, language: nl, subject: "{{ subject }}", text: "{{ body }}", html: "<p>{{ body }}</p>"}
  t-de: {process: notice, language: de, subject: "{{ subject }}", text: "{{ body }}"}
  t-fr: {process: notice, language: fr, subject: "{{ subject }}", text: "{{ body }}", html: "<p>{{ body }}</p>"}
"#;

struct Case {
    language: &'static str,
    subject: String,
    body: String,
    to: String,
    attachments: Vec<&'static str>,
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let phrases = [
        (
            "en",
            "Invoice 2026-001 from Shop",
            "Dear customer,\nplease find your invoice attached.",
        ),
        (
            "nl",
            "Factuur 2026-001 van Bakkerij ’t Hoekje",
            "Geachte klant,\nhierbij uw factuur; betaling vóór 31 december.",
        ),
        (
            "de",
            "Rechnung 2026-001 für Müller & Söhne",
            "Sehr geehrte Damen und Herren,\nanbei Ihre Rechnung über 1.234,56 €.",
        ),
        (
            "fr",
            "Facture n° 2026-001 – échéance à 30 jours",
            "Madame, Monsieur,\nveuillez trouver ci-joint votre facture.",
        ),
    ];
    let recipients = [
        "Jan Jansen <jan@example.com>",
        "\"Müller, Hans\" <hans@example.com>",
        "\"O'Brien \\\"Junior\\\"\" <ob@example.com>",
        "Zoë Ångström <zoe@example.com>",
        "plain@example.com",
        "\"Dupont\u{a0}Pierre\" <pierre@example.com>",
    ];
    for (language, subject, body) in phrases {
        for (i, to) in recipients.iter().enumerate() {
            cases.push(Case {
                language,
                subject: format!("{subject} ({i})"),
                body: body.to_string(),
                to: to.to_string(),
                attachments: if i % 2 == 0 {
                    vec!["Überweisung März €.pdf"]
                } else {
                    vec![]
                },
            });
        }
    }
    let hard: Vec<(&str, String, String, &str, Vec<&'static str>)> = vec![
        (
            "en",
            "Emoji 🎉 and ✓ in a subject".into(),
            "Party 🎉".into(),
            "a@example.com",
            vec![],
        ),
        (
            "en",
            "日本語の件名、請求書".into(),
            "本文です。".into(),
            "\"山田 太郎\" <taro@example.com>",
            vec!["請求書.txt"],
        ),
        (
            "nl",
            "Non\u{a0}breaking\u{a0}spaces".into(),
            "a\u{a0}b".into(),
            "a@example.com",
            vec![],
        ),
        (
            "en",
            format!("A long subject that must be folded {}", "word ".repeat(40))
                .trim_end()
                .to_string(),
            "x".into(),
            "a@example.com",
            vec![],
        ),
        (
            "en",
            "Quotes \"like this\", commas, and semi;colons".into(),
            "x".into(),
            "a@example.com",
            vec!["a;b,c \"d\".csv"],
        ),
        (
            "de",
            "Leading and trailing body spaces".into(),
            "  indented\ntrailing  \n".into(),
            "a@example.com",
            vec![],
        ),
        (
            "en",
            "Dots and From lines".into(),
            ".\n..\nFrom here on\n.end".into(),
            "a@example.com",
            vec![],
        ),
        (
            "en",
            "A very long line".into(),
            "y".repeat(1200),
            "a@example.com",
            vec![],
        ),
        (
            "en",
            "CRLF in the data".into(),
            "one\r\ntwo\r\nthree".into(),
            "a@example.com",
            vec![],
        ),
        (
            "fr",
            "Tabs\tin\tbody".into(),
            "col1\tcol2\tcol3".into(),
            "\"Élodie Côté\" <elodie@example.com>",
            vec!["Récapitulatif été.pdf"],
        ),
        (
            "en",
            "Encoded-word lookalike =?utf-8?q?x?=".into(),
            "=?utf-8?q?not_decoded?=".into(),
            "a@example.com",
            vec![],
        ),
        (
            "en",
            "Long attachment name".into(),
            "x".into(),
            "a@example.com",
            vec![
                "a-very-long-attachment-file-name-that-goes-on-and-on-and-on-for-more-than-seventy-eight-characters.pdf",
            ],
        ),
        (
            "nl",
            "Ééntje".into(),
            "Ç'est ça".into(),
            "a@example.com",
            vec!["één.txt", "twee.txt"],
        ),
        (
            "de",
            "Straße".into(),
            "Maß".into(),
            "\"Straße, Groß\" <s@example.com>",
            vec![],
        ),
        ("fr", "Œuvre".into(), "œ æ".into(), "a@example.com", vec![]),
        (
            "en",
            "HTML & <tags> in data".into(),
            "<b>not bold</b> & co".into(),
            "a@example.com",
            vec![],
        ),
    ];
    for (language, subject, body, to, attachments) in hard {
        cases.push(Case {
            language,
            subject,
            body,
            to: to.to_string(),
            attachments,
        });
    }
    cases
}

#[test]
fn forty_messages_read_back_exactly_by_an_independent_parser() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
    let loaded =
        mailrules::load::load(&dir.path().join("config.yaml"), Default::default()).unwrap();
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());

    let mut files = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let request = Request {
            administration: "shop",
            user: "clerk",
            selector: TemplateSelector::Process {
                process: "notice",
                language: Some(case.language),
            },
            transport_override: None,
        };
        let resolution = resolve(&loaded.config, &request).unwrap();
        let input = MessageInput {
            to: vec![
                parse_mailbox(&case.to).unwrap_or_else(|e| panic!("{}: {}", case.to, e.message)),
            ],
            data: serde_json::json!({"subject": case.subject, "body": case.body}),
            attachments: case
                .attachments
                .iter()
                .map(|name| FileAttachment {
                    name: name.to_string(),
                    content: format!("content of {name}").into_bytes(),
                })
                .collect(),
            message_id: Some(format!("<case-{i}@example.com>")),
            ..Default::default()
        };
        let rendered = render(&resolution, &input).unwrap_or_else(|e| panic!("case {i}: {e}"));
        let bytes = rendered.bytes();
        assert!(
            !bytes.windows(3).any(|w| w == b"\r\r\n"),
            "case {i}: CRLF normalised once"
        );
        assert!(
            bytes
                .windows(2)
                .enumerate()
                .all(|(at, w)| w[1] != b'\n' || w[0] == b'\r' || at == 0),
            "case {i}: no bare LF"
        );
        assert!(
            bytes.split(|b| *b == b'\n').all(|line| line.len() <= 998),
            "case {i}: lines within 998 bytes"
        );
        let file = dir.path().join(format!("case-{i:02}.eml"));
        std::fs::write(&file, &bytes).unwrap();
        files.push(file);
    }

    let parsed = parse(&files);
    for (i, (case, got)) in cases.iter().zip(parsed).enumerate() {
        let context = format!("case {i} ({})", case.subject);
        assert_eq!(got["defects"], serde_json::json!([]), "{context}");
        assert_eq!(got["subject"], case.subject.as_str(), "{context}");
        assert_eq!(
            got["from"],
            serde_json::json!([["Ünïcödé Sender, Ltd.", "sender@example.com"]]),
            "{context}"
        );
        assert_eq!(
            got["reply_to"],
            serde_json::json!([["The \"Quoted\" Desk", "desk@example.com"]]),
            "{context}"
        );
        assert!(got["bcc"].is_null(), "{context}");
        let to = parse_mailbox(&case.to).unwrap();
        let name = to.name.clone().unwrap_or_default();
        assert_eq!(
            got["to"],
            serde_json::json!([[name, to.email.to_string()]]),
            "{context}"
        );
        // Base64 parts decode to their canonical CRLF form; clients show lines.
        let text = got["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{context}: a text part"))
            .replace("\r\n", "\n");
        let body = case.body.replace("\r\n", "\n");
        assert!(
            text.starts_with(body.trim_end()),
            "{context}: text {text:?}"
        );
        assert!(
            text.contains("-- \nGrüße – l’équipe"),
            "{context}: signature in {text:?}"
        );
        if case.language == "en" {
            assert_eq!(
                got["x_case"],
                case.subject.as_str(),
                "{context}: a template header"
            );
            assert_eq!(
                got["list_unsubscribe"], "<mailto:unsubscribe@example.com>",
                "{context}"
            );
        }
        if case.language == "de" {
            assert!(
                got["html"].is_null(),
                "{context}: a template without html gives text only"
            );
        } else {
            let html = got["html"].as_str().unwrap();
            assert!(html.starts_with("<p>"), "{context}");
            assert!(
                html.contains("<div class=\"signature\">Grüße – l’équipe</div>"),
                "{context}: the text signature, escaped into the HTML part: {html}"
            );
        }
        if case.body.contains("<b>") {
            let html = got["html"].as_str().unwrap();
            assert!(
                html.contains("&lt;b&gt;not bold&lt;&#x2f;b&gt; &amp; co"),
                "{context}: data is escaped in HTML: {html}"
            );
        }
        let names: Vec<&str> = got["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["filename"].as_str().unwrap())
            .collect();
        assert_eq!(names, case.attachments, "{context}");
    }
}

fn parse(files: &[std::path::PathBuf]) -> Vec<serde_json::Value> {
    let output = Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/parse_mail.py"))
        .args(files)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&output.stdout).unwrap()
}
