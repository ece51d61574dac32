//! The precedence chain and language fallback (docs/config.md), through the
//! library API on a small config written for each rule.

use std::path::Path;

use mailrules::config::Config;
use mailrules::resolve::{
    Level, LevelStatus, Request, Resolution, ResolveError, TemplateSelector, resolve,
};

const BASE: &str = r#"
system:
  profile: sys
  default_language: en
  languages: [en, nl, de]
  processes: [invoice, reminder]
profiles:
  sys: {file: {dir: out}, from: sys@x.example, reply_to: sys-reply@x.example, signature: {text: sys sig}}
  tpl: {file: {dir: out}, from: tpl@x.example}
  adm: {file: {dir: out}, from: adm@x.example}
  own: {file: {dir: out}, from: own@x.example}
administrations:
  pinned:
    name: Pinned
    profile: adm
    default_language: nl
    languages: {en: {invoice: invoice-en, reminder: reminder}}
  open:
    name: Open
    profile: null
    default_language: nl
    languages:
      nl: {invoice: invoice-nl, reminder: reminder}
      en: {invoice: invoice-en}
  bare:
    name: Bare
users:
  with-profile:
    personal: {enabled: true, profile: own, from: me@x.example, reply_to: me-reply@x.example, signature: {text: my sig}}
  overrides-only:
    personal: {enabled: true, from: me2@x.example}
  disabled:
    personal: {enabled: false, profile: own, from: off@x.example}
  plain: {}
templates:
  invoice-nl: {process: invoice, language: nl, subject: s, text: t}
  invoice-en: {process: invoice, language: en, subject: s, text: t}
  reminder: {process: reminder, subject: s, text: t, profile: tpl}
"#;

fn load(yaml: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, yaml).unwrap();
    mailrules::load::load(Path::new(&file), Default::default())
        .unwrap_or_else(|e| panic!("fixture is valid: {e:?}"))
        .config
}

fn process<'c>(
    config: &'c Config,
    admin: &str,
    user: &str,
    process: &str,
    language: Option<&str>,
) -> Result<Resolution<'c>, ResolveError> {
    resolve(
        config,
        &Request {
            administration: admin,
            user,
            selector: TemplateSelector::Process { process, language },
            transport_override: None,
        },
    )
}

fn field<'a>(r: &'a Resolution<'_>, name: &str) -> &'a mailrules::resolve::FieldTrace {
    r.fields.iter().find(|f| f.field == name).unwrap()
}

fn statuses(r: &Resolution<'_>) -> Vec<LevelStatus> {
    r.levels.iter().map(|l| l.status).collect()
}

#[test]
fn template_level_wins_and_personal_overrides_are_ignored() {
    let config = load(BASE);
    let r = process(&config, "open", "with-profile", "reminder", None).unwrap();
    assert_eq!((r.level, r.profile.id.as_str()), (Level::Template, "tpl"));
    assert_eq!(r.effective.from.email.to_string(), "tpl@x.example");
    assert_eq!(
        statuses(&r),
        [
            LevelStatus::Won,
            LevelStatus::Empty,
            LevelStatus::Shadowed,
            LevelStatus::Shadowed
        ]
    );
    let from = field(&r, "from");
    let ignored = from
        .shadowed
        .iter()
        .find(|s| s.ignored.is_some())
        .expect("the personal from is listed");
    assert_eq!(&*ignored.value, "me@x.example");
    assert_eq!(
        ignored.ignored.as_deref(),
        Some("profile pinned by template `reminder`")
    );
}

#[test]
fn administration_level_wins_and_personal_overrides_are_ignored() {
    let config = load(BASE);
    let r = process(&config, "pinned", "with-profile", "invoice", Some("en")).unwrap();
    assert_eq!(
        (r.level, r.profile.id.as_str()),
        (Level::Administration, "adm")
    );
    assert_eq!(r.effective.from.email.to_string(), "adm@x.example");
    assert_eq!(
        r.effective.reply_to, None,
        "the personal reply-to does not apply"
    );
    let reply_to = field(&r, "reply_to");
    assert_eq!(
        reply_to.shadowed[0].ignored.as_deref(),
        Some("profile pinned by administration `pinned`")
    );
}

#[test]
fn personal_level_wins_with_its_overrides() {
    let config = load(BASE);
    let r = process(&config, "open", "with-profile", "invoice", None).unwrap();
    assert_eq!((r.level, r.profile.id.as_str()), (Level::Personal, "own"));
    assert_eq!(
        statuses(&r),
        [
            LevelStatus::Empty,
            LevelStatus::Empty,
            LevelStatus::Won,
            LevelStatus::Shadowed
        ]
    );
    assert_eq!(r.effective.from.email.to_string(), "me@x.example");
    assert_eq!(
        r.effective.reply_to.as_ref().unwrap().email.to_string(),
        "me-reply@x.example"
    );
    assert_eq!(
        r.effective.signature.as_ref().unwrap().text.as_deref(),
        Some("my sig")
    );
    let from = field(&r, "from");
    assert_eq!(&*from.origin.what, "personal settings of `with-profile`");
    assert_eq!(
        &*from.shadowed[0].value, "own@x.example",
        "the profile's value is shown as shadowed"
    );
}

#[test]
fn system_level_wins_and_personal_overrides_apply() {
    let config = load(BASE);
    let r = process(&config, "open", "overrides-only", "invoice", None).unwrap();
    assert_eq!((r.level, r.profile.id.as_str()), (Level::System, "sys"));
    assert_eq!(
        r.effective.from.email.to_string(),
        "me2@x.example",
        "personal from applies at level 4"
    );
    assert_eq!(
        r.effective.reply_to.as_ref().unwrap().email.to_string(),
        "sys-reply@x.example",
        "fields without an override come from the profile"
    );
}

#[test]
fn empty_levels_are_skipped() {
    let config = load(BASE);
    let r = process(&config, "open", "plain", "invoice", None).unwrap();
    assert_eq!(r.level, Level::System);
    assert_eq!(
        statuses(&r),
        [
            LevelStatus::Empty,
            LevelStatus::Empty,
            LevelStatus::Empty,
            LevelStatus::Won
        ]
    );
    assert_eq!(&*r.levels[2].note, "user `plain` has no personal settings");
}

#[test]
fn disabled_personal_settings_count_for_nothing() {
    let config = load(BASE);
    let r = process(&config, "open", "disabled", "invoice", None).unwrap();
    assert_eq!((r.level, r.profile.id.as_str()), (Level::System, "sys"));
    assert_eq!(r.levels[2].status, LevelStatus::Disabled);
    assert_eq!(
        r.levels[2].profile.as_deref(),
        Some("own"),
        "the disabled choice is still shown"
    );
    assert_eq!(r.effective.from.email.to_string(), "sys@x.example");
    let ignored = &field(&r, "from").shadowed[0];
    assert_eq!(
        ignored.ignored.as_deref(),
        Some("personal settings of `disabled` are disabled")
    );
}

#[test]
fn no_profile_at_any_level_names_the_four_places() {
    let config = load(&BASE.replace("  profile: sys\n", "  profile: null\n"));
    let error = process(&config, "open", "plain", "invoice", None).unwrap_err();
    let ResolveError::NoProfile { places } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(places.len(), 4);
    assert_eq!(places[0], "template `invoice-nl`: no profile set");
    assert_eq!(places[3], "system: no profile set");
}

#[test]
fn language_falls_back_to_base_then_administration_then_system_default() {
    let config = load(BASE);
    let tried = |r: &Resolution<'_>| match &r.template.selection {
        mailrules::resolve::Selection::LanguageTable { tried, .. } => {
            tried.iter().map(|t| t.language.clone()).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    // en-GB -> en
    let r = process(&config, "open", "plain", "invoice", Some("en-GB")).unwrap();
    assert_eq!(r.template.template.id, "invoice-en");
    assert_eq!(tried(&r), ["en-GB", "en"]);
    assert_eq!(r.template.language.as_deref(), Some("en"));
    // de has no table in `open` -> the administration's default nl
    let r = process(&config, "open", "plain", "invoice", Some("de")).unwrap();
    assert_eq!(r.template.template.id, "invoice-nl");
    assert_eq!(tried(&r), ["de", "nl"]);
    // `pinned` has only en: de -> nl (administration default, missing) -> en (system default)
    let r = process(&config, "pinned", "plain", "invoice", Some("de")).unwrap();
    assert_eq!(r.template.template.id, "invoice-en");
    assert_eq!(tried(&r), ["de", "nl", "en"]);
    // no language requested: the administration's default first
    let r = process(&config, "open", "plain", "invoice", None).unwrap();
    assert_eq!(tried(&r), ["nl"]);
}

#[test]
fn no_template_lists_the_languages_tried() {
    let config = load(BASE);
    let error = process(&config, "bare", "plain", "invoice", Some("nl-BE")).unwrap_err();
    assert_eq!(
        error,
        ResolveError::NoTemplate {
            administration: "bare".into(),
            process: "invoice".into(),
            tried: vec!["nl-BE".into(), "nl".into(), "en".into()],
        }
    );
}

#[test]
fn explicit_template_wins_over_the_language_table() {
    let config = load(BASE);
    let r = resolve(
        &config,
        &Request {
            administration: "open",
            user: "plain",
            selector: TemplateSelector::Template("reminder"),
            transport_override: None,
        },
    )
    .unwrap();
    assert_eq!(r.template.template.id, "reminder");
    assert_eq!(r.level, Level::Template);
}

#[test]
fn unknown_names_are_errors_with_a_suggestion() {
    let config = load(BASE);
    let error = process(&config, "opne", "plain", "invoice", None).unwrap_err();
    assert_eq!(error.to_string(), "unknown administration `opne`");
    assert_eq!(error.hint(), "did you mean `open`?");
    let error = process(&config, "open", "nobody", "invoice", None).unwrap_err();
    assert_eq!(error.to_string(), "unknown user `nobody`");
    let error = process(&config, "open", "plain", "invoices", None).unwrap_err();
    assert_eq!(error.hint(), "did you mean `invoice`?");
    let error = process(&config, "open", "plain", "invoice", Some("fr")).unwrap_err();
    assert_eq!(error.to_string(), "unknown language `fr`");
}

/// `explain` formats the same call that `send` uses; every traced value must
/// be the effective one, in every context of the example.
#[test]
fn the_trace_always_shows_the_effective_values() {
    let loaded =
        mailrules::load::load(Path::new("examples/acme/config"), Default::default()).unwrap();
    let config = &loaded.config;
    let mut checked = 0;
    for admin in config.administrations.keys() {
        for user in config.users.keys() {
            for process_name in &config.system.processes {
                for language in [None, Some("nl"), Some("en"), Some("nl-BE")] {
                    let Ok(r) = process(config, admin, user, process_name, language) else {
                        continue;
                    };
                    let e = &r.effective;
                    let text = |m: &Option<&lettre::message::Mailbox>| {
                        m.as_ref().map_or("(none)".to_string(), |m| m.to_string())
                    };
                    let bcc = if e.bcc.is_empty() {
                        "(none)".to_string()
                    } else {
                        e.bcc
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    let context = format!("{admin}/{user}/{process_name}/{language:?}");
                    assert_eq!(&*field(&r, "from").value, e.from.to_string(), "{context}");
                    assert_eq!(
                        &*field(&r, "reply_to").value,
                        text(&e.reply_to),
                        "{context}"
                    );
                    assert_eq!(&*field(&r, "bcc").value, bcc, "{context}");
                    assert_eq!(&*field(&r, "html").value, e.html.to_string(), "{context}");
                    assert_eq!(
                        &*field(&r, "transport").value,
                        mailrules::config::texts::transport(&e.transport).as_str(),
                        "{context}"
                    );
                    assert_eq!(
                        &*field(&r, "signature").value == "(none)",
                        e.signature.is_none(),
                        "{context}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} contexts resolved");
}

/// `explain --all` resolves "no personal settings" once and reuses it where
/// a template or administration pins the profile; every row must still be
/// what resolving that user directly gives.
#[test]
fn every_matrix_row_equals_a_direct_resolution() {
    use mailrules::resolve::matrix::{NO_PERSONAL_SETTINGS, matrix};
    let loaded =
        mailrules::load::load(Path::new("examples/acme/config"), Default::default()).unwrap();
    let config = &loaded.config;
    let rows = matrix(config).unwrap();
    assert_eq!(rows.len(), 48);
    for row in rows {
        let c = &row.context;
        let direct = if &*c.user == NO_PERSONAL_SETTINGS {
            // resolve() needs a configured user: use one without personal settings.
            process(
                config,
                &c.administration,
                "batch",
                &c.process,
                Some(&c.language),
            )
        } else {
            process(
                config,
                &c.administration,
                &c.user,
                &c.process,
                Some(&c.language),
            )
        };
        match (&row.outcome, direct) {
            (Ok(outcome), Ok(r)) => {
                assert_eq!(outcome.profile, r.profile.id, "{c:?}");
                assert_eq!(outcome.level, r.level, "{c:?}");
                assert_eq!(outcome.from, field(&r, "from").value, "{c:?}");
                assert_eq!(outcome.reply_to, field(&r, "reply_to").value, "{c:?}");
                assert_eq!(outcome.template, r.template.template.id, "{c:?}");
            }
            (Err(message), Err(error)) => {
                assert_eq!(message.to_string(), error.to_string(), "{c:?}")
            }
            (row, direct) => panic!(
                "{c:?}: matrix {row:?}, direct {:?}",
                direct.map(|r| r.profile.id.clone())
            ),
        }
    }
}

/// `copy_to_sent` is a personal field like `from`: the user's own folder
/// wins at levels 3 and 4, and is listed as ignored at levels 1 and 2.
#[test]
fn a_personal_copy_to_sent_applies_at_levels_3_and_4_only() {
    let shared = "{host: imap.x.example, port: 993, security: tls, account: {username: shared@x.example, password: {env: P}}, folder: Shared}";
    let own = "{host: imap.x.example, port: 993, security: tls, account: {username: me@x.example, password: {env: P}}, folder: Mine}";
    let yaml = BASE
        .replace(
            "  sys: {file: {dir: out}, from: sys@x.example,",
            &format!("  sys: {{file: {{dir: out}}, copy_to_sent: {shared}, from: sys@x.example,"),
        )
        .replace(
            "  adm: {file: {dir: out}, from: adm@x.example}",
            &format!("  adm: {{file: {{dir: out}}, copy_to_sent: {shared}, from: adm@x.example}}"),
        )
        .replace(
            "    personal: {enabled: true, from: me2@x.example}",
            &format!("    personal: {{enabled: true, from: me2@x.example, copy_to_sent: {own}}}"),
        )
        .replace(
            "profile: own, from: me@x.example,",
            &format!("profile: own, copy_to_sent: {own}, from: me@x.example,"),
        );
    let config = load(&yaml);
    let folder = |r: &Resolution<'_>| r.effective.copy_to_sent.as_ref().map(|c| c.folder.clone());

    let system = process(&config, "open", "overrides-only", "invoice", None).unwrap();
    assert_eq!(system.level, Level::System);
    assert_eq!(
        folder(&system).as_deref(),
        Some("Mine"),
        "personal wins at 4"
    );
    assert_eq!(
        &*field(&system, "copy_to_sent").origin.what,
        "personal settings of `overrides-only`"
    );

    let personal = process(&config, "open", "with-profile", "invoice", None).unwrap();
    assert_eq!(personal.level, Level::Personal);
    assert_eq!(folder(&personal).as_deref(), Some("Mine"), "and at 3");

    let pinned = process(&config, "pinned", "overrides-only", "invoice", Some("en")).unwrap();
    assert_eq!(pinned.level, Level::Administration);
    assert_eq!(
        folder(&pinned).as_deref(),
        Some("Shared"),
        "the administration's profile keeps its folder at level 2"
    );
    let trace = field(&pinned, "copy_to_sent");
    assert_eq!(
        trace.shadowed[0].ignored.as_deref(),
        Some("profile pinned by administration `pinned`"),
        "the personal folder is shown as ignored"
    );
}
