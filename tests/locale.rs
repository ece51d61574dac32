//! One message, one language: amounts and dates follow the language the
//! template was chosen in (after fallback), never the request's wish.

use mailrules::config::parse_mailbox;
use mailrules::render::{MessageInput, render};
use mailrules::resolve::{Request, TemplateSelector, resolve};

const CONFIG: &str = r#"
system: {profile: out, default_language: en, languages: [en, nl, de, fr], processes: [notice]}
profiles:
  out: {file: {dir: outbox}, from: shop@example.com}
administrations:
  shop: {name: Shop, languages: {en: {notice: t-en}, nl: {notice: t-nl}, de: {notice: t-de}, fr: {notice: t-fr}}}
  english-only: {name: English, languages: {en: {notice: t-en}}}
users:
  clerk: {}
templates:
  t-en: {process: notice, language: en, subject: "{{ total | amount }} due {{ due | date }}", text: x}
  t-nl: {process: notice, language: nl, subject: "{{ total | amount }} vóór {{ due | date }}", text: x}
  t-de: {process: notice, language: de, subject: "{{ total | amount }} bis {{ due | date }}", text: x}
  t-fr: {process: notice, language: fr, subject: "{{ total | amount }} avant le {{ due | date }}", text: x}
"#;

fn subject(
    administration: &str,
    language: &str,
    data: serde_json::Value,
) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.yaml"), CONFIG).unwrap();
    let loaded = mailrules::load::load(&dir.path().join("c.yaml"), Default::default()).unwrap();
    let request = Request {
        administration,
        user: "clerk",
        selector: TemplateSelector::Process {
            process: "notice",
            language: Some(language),
        },
        transport_override: None,
    };
    let resolution = resolve(&loaded.config, &request).unwrap();
    let input = MessageInput {
        to: vec![parse_mailbox("c@example.com").unwrap()],
        data,
        ..Default::default()
    };
    render(&resolution, &input)
        .map(|r| r.bodies.subject)
        .map_err(|e| e.to_string())
}

#[test]
fn amounts_and_dates_follow_the_message_language() {
    let data = serde_json::json!({"total": 1234567.891, "due": "2026-03-01"});
    assert_eq!(
        subject("shop", "en", data.clone()).unwrap(),
        "1,234,567.89 due 1 March 2026"
    );
    assert_eq!(
        subject("shop", "nl-BE", data.clone()).unwrap(),
        "1.234.567,89 vóór 1 maart 2026"
    );
    assert_eq!(
        subject("shop", "de", data.clone()).unwrap(),
        "1.234.567,89 bis 1. März 2026"
    );
    assert_eq!(
        subject("shop", "fr", data.clone()).unwrap(),
        "1\u{202f}234\u{202f}567,89 avant le 1 mars 2026"
    );
    // Asked in Dutch where only English exists: the whole message is English.
    assert_eq!(
        subject("english-only", "nl", data).unwrap(),
        "1,234,567.89 due 1 March 2026"
    );
}

#[test]
fn amounts_accept_numeric_text_and_refuse_the_rest() {
    let ok = serde_json::json!({"total": "-0.5", "due": "2026-12-31"});
    assert_eq!(
        subject("shop", "nl", ok).unwrap(),
        "-0,50 vóór 31 december 2026"
    );
    let bad = serde_json::json!({"total": "lots", "due": "2026-12-31"});
    assert!(
        subject("shop", "nl", bad)
            .unwrap_err()
            .contains("`amount` needs a number")
    );
    let bad_date = serde_json::json!({"total": 1, "due": "31-12-2026"});
    assert!(
        subject("shop", "nl", bad_date)
            .unwrap_err()
            .contains("is not a date")
    );
}
