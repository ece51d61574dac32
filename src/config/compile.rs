//! Raw files -> one checked [`Config`]: merges the files (ids unique across
//! them), parses addresses, resolves paths and checks every reference.
//! Problems are collected, never thrown, so one run reports them all.

use std::collections::BTreeMap;
use std::path::Path;

use super::checks;
use super::diagnostic::{Diagnostic, Location, pointer_join};
use super::file_ctx::FileCtx;
use super::model::*;
use super::raw::*;
use super::source::SourceFile;
use super::texts::{LevelTexts, Texts};

/// Default largest message of a profile (providers accept 25 to 35 MB).
const DEFAULT_MAX_MESSAGE_BYTES: u64 = 25 * 1024 * 1024;

/// A file that parsed and matched the schema.
#[derive(Debug)]
pub struct ParsedFile {
    pub source: SourceFile,
    pub raw: RawFile,
}

/// What is known to exist but could not be compiled, so that the checks of
/// everything else do not report it a second time as "unknown".
#[derive(Debug, Default)]
pub struct Broken {
    /// Ids per section (`profiles`, `templates`, ...) that have errors.
    pub ids: BTreeMap<String, Vec<String>>,
    /// The `system` section has errors.
    pub system: bool,
    /// A file or a whole section could not be read: references cannot be
    /// checked reliably, so they are not checked in this run.
    pub incomplete: bool,
}

impl Broken {
    pub fn ids(&self, section: &str) -> &[String] {
        self.ids.get(section).map_or(&[], Vec::as_slice)
    }
}

/// Builds the configuration; `None` when any error was found.
/// `root` is the configuration's directory (the `--config` directory, or
/// the directory of a single config file).
pub fn compile(
    files: &[ParsedFile],
    root: &Path,
    mut broken: Broken,
) -> (Option<Config>, Vec<Diagnostic>) {
    let mut out = Diagnostics::default();
    let mut merged = Merged::default();
    for file in files {
        merge_file(file, root, &mut merged, &mut out);
    }
    let Some(system) = merged.system.take() else {
        if !broken.system && !broken.incomplete {
            out.push(
                Diagnostic::error(None, "system", "no file has a `system` section").with_hint(
                    "add `system:` with `default_language`, `languages` and `processes` to one file",
                ),
            );
        }
        return (None, out.0);
    };
    broken
        .ids
        .entry("profiles".into())
        .or_default()
        .append(&mut merged.broken_profiles);
    let config = Config {
        system,
        profiles: merged
            .profiles
            .into_iter()
            .map(|(k, (v, _))| (k, v))
            .collect(),
        administrations: merged
            .administrations
            .into_iter()
            .map(|(k, (v, _))| (k, v))
            .collect(),
        users: merged.users.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        templates: merged
            .templates
            .into_iter()
            .map(|(k, (v, _))| (k, v))
            .collect(),
        alerts: merged.alerts,
    };
    checks::run(&config, &broken, &mut out);
    let failed = out.0.iter().any(Diagnostic::is_error);
    (if failed { None } else { Some(config) }, out.0)
}

/// Compiles a `--transport-override` file.
pub fn compile_override(
    source: &SourceFile,
    raw: &RawTransportOverride,
) -> Result<TransportOverride, Vec<Diagnostic>> {
    let mut out = Diagnostics::default();
    let root = source.path.parent().unwrap_or(Path::new("."));
    let file = FileCtx::new(source, root);
    let transport = RawTransport {
        smtp: raw.smtp.clone(),
        sendmail: raw.sendmail.clone(),
        file: raw.file.clone(),
    };
    let transport = file.transport(&transport, "", &mut out);
    let copy_to_sent = raw
        .copy_to_sent
        .as_ref()
        .map(|c| file.copy_to_sent(c, "/copy_to_sent", &mut out));
    match transport {
        Some(t) if out.0.iter().all(|d| !d.is_error()) => Ok(TransportOverride {
            transport: Located::new(t, file.value_at("")),
            copy_to_sent,
        }),
        _ => Err(out.0),
    }
}

#[derive(Default)]
pub(super) struct Diagnostics(pub(super) Vec<Diagnostic>);

impl Diagnostics {
    pub(super) fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
}

#[derive(Default)]
struct Merged {
    system: Option<System>,
    alerts: Option<Alerts>,
    profiles: BTreeMap<String, (Profile, Location)>,
    administrations: BTreeMap<String, (Administration, Location)>,
    users: BTreeMap<String, (User, Location)>,
    templates: BTreeMap<String, (Template, Location)>,
    /// Profiles that exist but failed to compile: references to them are
    /// not reported as unknown on top of their own errors.
    broken_profiles: Vec<String>,
}

/// Inserts `id` unless another file defined it already.
fn insert_unique<T>(
    section: &str,
    map: &mut BTreeMap<String, (T, Location)>,
    id: &str,
    value: T,
    at: Location,
    out: &mut Diagnostics,
) {
    if let Some((_, first)) = map.get(id) {
        out.push(
            Diagnostic::error(
                Some(at),
                format!("{section}.{id}"),
                format!("`{id}` is defined twice in `{section}`; first at {first}"),
            )
            .with_hint("ids are unique across all config files: rename or remove one"),
        );
        return;
    }
    map.insert(id.to_string(), (value, at));
}

fn merge_file(file: &ParsedFile, root: &Path, merged: &mut Merged, out: &mut Diagnostics) {
    let ctx = FileCtx::new(&file.source, root);
    let raw = &file.raw;
    if let Some(system) = &raw.system {
        let at = ctx.key_at("/system");
        match &merged.system {
            Some(first) => out.push(
                Diagnostic::error(
                    Some(at),
                    "system",
                    format!("a second `system` section; the first is at {}", first.at),
                )
                .with_hint("keep exactly one `system` section across all files"),
            ),
            None => merged.system = Some(compile_system(&ctx, system)),
        }
    }
    if let Some(alerts) = &raw.alerts {
        let at = ctx.key_at("/alerts");
        match &merged.alerts {
            Some(first) => out.push(
                Diagnostic::error(
                    Some(at),
                    "alerts",
                    format!("a second `alerts` section; the first is at {}", first.at),
                )
                .with_hint("keep at most one `alerts` section across all files"),
            ),
            None => merged.alerts = Some(compile_alerts(&ctx, alerts, out)),
        }
    }
    for (id, profile) in &raw.profiles {
        let pointer = pointer_join("/profiles", id);
        let at = ctx.key_at(&pointer);
        match compile_profile(&ctx, id, profile, &pointer, out) {
            Some(profile) => insert_unique("profiles", &mut merged.profiles, id, profile, at, out),
            None => merged.broken_profiles.push(id.clone()),
        }
    }
    for (id, admin) in &raw.administrations {
        let pointer = pointer_join("/administrations", id);
        let admin = compile_administration(&ctx, id, admin, &pointer);
        insert_unique(
            "administrations",
            &mut merged.administrations,
            id,
            admin,
            ctx.key_at(&pointer),
            out,
        );
    }
    for (id, user) in &raw.users {
        let pointer = pointer_join("/users", id);
        let user = compile_user(&ctx, id, user, &pointer, out);
        insert_unique(
            "users",
            &mut merged.users,
            id,
            user,
            ctx.key_at(&pointer),
            out,
        );
    }
    for (id, template) in &raw.templates {
        let pointer = pointer_join("/templates", id);
        let template = compile_template(&ctx, id, template, &pointer, out);
        insert_unique(
            "templates",
            &mut merged.templates,
            id,
            template,
            ctx.key_at(&pointer),
            out,
        );
    }
}

fn compile_system(ctx: &FileCtx<'_>, raw: &RawSystem) -> System {
    System {
        at: ctx.key_at("/system"),
        profile: ctx.optional_id(&raw.profile, "/system/profile"),
        default_language: ctx.located(raw.default_language.clone(), "/system/default_language"),
        languages: raw.languages.clone(),
        processes: raw.processes.clone(),
        level_texts: LevelTexts::new("system".into(), raw.profile.as_deref()),
    }
}

fn compile_profile(
    ctx: &FileCtx<'_>,
    id: &str,
    raw: &RawProfile,
    pointer: &str,
    out: &mut Diagnostics,
) -> Option<Profile> {
    let transport = RawTransport {
        smtp: raw.smtp.clone(),
        sendmail: raw.sendmail.clone(),
        file: raw.file.clone(),
    };
    let transport_key = ["smtp", "sendmail", "file"]
        .into_iter()
        .find(|key| {
            ctx.source
                .positions
                .find(&pointer_join(pointer, key))
                .is_some()
        })
        .unwrap_or("smtp");
    let transport_at = ctx.key_at(&pointer_join(pointer, transport_key));
    let transport = ctx.transport(&transport, pointer, out);
    let from = ctx.mailbox(&raw.from, &pointer_join(pointer, "from"), out);
    let reply_to = raw
        .reply_to
        .as_ref()
        .and_then(|r| ctx.mailbox(r, &pointer_join(pointer, "reply_to"), out));
    let bcc = raw.bcc.as_ref().map(|list| {
        let bcc_pointer = pointer_join(pointer, "bcc");
        ctx.located(ctx.mailboxes(list, &bcc_pointer, out), &bcc_pointer)
    });
    let copy_to_sent = raw
        .copy_to_sent
        .as_ref()
        .map(|c| ctx.copy_to_sent(c, &pointer_join(pointer, "copy_to_sent"), out));
    let mut profile = Profile {
        id: id.to_string(),
        at: ctx.key_at(pointer),
        description: raw.description.clone(),
        transport: Located::new(transport?, transport_at),
        from: from?,
        reply_to,
        bcc,
        html: raw
            .html
            .map(|h| ctx.located(h, &pointer_join(pointer, "html"))),
        signature: raw
            .signature
            .as_ref()
            .map(|s| ctx.located(ctx.signature(s), &pointer_join(pointer, "signature"))),
        copy_to_sent,
        inline_images: ctx.inline_images(
            &raw.inline_images,
            &pointer_join(pointer, "inline_images"),
            out,
        ),
        max_message_bytes: raw.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
        throttle: raw
            .throttle
            .as_ref()
            .map_or_else(Throttle::default, |t| Throttle {
                concurrency: t.concurrency.unwrap_or(Throttle::default().concurrency),
                per_minute: t.per_minute,
            }),
        texts: Default::default(),
    };
    profile.texts = Texts::of_profile(&profile);
    Some(profile)
}

fn compile_administration(
    ctx: &FileCtx<'_>,
    id: &str,
    raw: &RawAdministration,
    pointer: &str,
) -> Administration {
    let table_pointer = pointer_join(pointer, "languages");
    let languages = raw
        .languages
        .iter()
        .map(|(language, processes)| {
            let language_pointer = pointer_join(&table_pointer, language);
            let processes = processes
                .iter()
                .map(|(process, template)| {
                    let at = pointer_join(&language_pointer, process);
                    (process.clone(), ctx.located(template.clone(), &at))
                })
                .collect();
            let table = Located::new(processes, ctx.key_at(&language_pointer));
            (language.clone(), table)
        })
        .collect();
    Administration {
        id: id.to_string(),
        at: ctx.key_at(pointer),
        name: raw.name.clone(),
        profile: ctx.optional_id(&raw.profile, &pointer_join(pointer, "profile")),
        default_language: raw
            .default_language
            .as_ref()
            .map(|l| ctx.located(l.clone(), &pointer_join(pointer, "default_language"))),
        languages,
        level_texts: LevelTexts::new(format!("administration `{id}`"), raw.profile.as_deref()),
    }
}

fn compile_user(
    ctx: &FileCtx<'_>,
    id: &str,
    raw: &RawUser,
    pointer: &str,
    out: &mut Diagnostics,
) -> User {
    let personal = raw.personal.as_ref().map(|p| {
        let pointer = pointer_join(pointer, "personal");
        let at = |key: &str| pointer_join(&pointer, key);
        let mut personal = Personal {
            at: ctx.key_at(&pointer),
            enabled: ctx.located(p.enabled, &at("enabled")),
            profile: ctx.optional_id(&p.profile, &at("profile")),
            from: p
                .from
                .as_ref()
                .and_then(|f| ctx.mailbox(f, &at("from"), out)),
            reply_to: p
                .reply_to
                .as_ref()
                .and_then(|r| ctx.mailbox(r, &at("reply_to"), out)),
            signature: p
                .signature
                .as_ref()
                .map(|s| ctx.located(ctx.signature(s), &at("signature"))),
            account: p
                .account
                .as_ref()
                .map(|a| ctx.account(a, &at("account"), out)),
            copy_to_sent: p
                .copy_to_sent
                .as_ref()
                .map(|c| ctx.copy_to_sent(c, &at("copy_to_sent"), out)),
            texts: Default::default(),
        };
        personal.texts = Texts::of_personal(&personal, id);
        personal
    });
    let mut user = User {
        id: id.to_string(),
        at: ctx.key_at(pointer),
        name: raw.name.clone(),
        personal,
        level_texts: LevelTexts::default(),
    };
    user.level_texts = LevelTexts::for_user(&user);
    user
}

fn compile_template(
    ctx: &FileCtx<'_>,
    id: &str,
    raw: &RawTemplate,
    pointer: &str,
    out: &mut Diagnostics,
) -> Template {
    let at = |key: &str| pointer_join(pointer, key);
    let attachments_pointer = at("attachments");
    let attachments = raw
        .attachments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let item = pointer_join(&attachments_pointer, &i.to_string());
            let path = ctx.path(&a.path);
            ctx.require_file_inside(&path, &pointer_join(&item, "path"), out);
            let name = a.name.clone().unwrap_or_else(|| {
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| a.path.clone())
            });
            Attachment {
                at: ctx.value_at(&item),
                path,
                name,
            }
        })
        .collect();
    Template {
        level_texts: LevelTexts::new(format!("template `{id}`"), raw.profile.as_deref()),
        id: id.to_string(),
        at: ctx.key_at(pointer),
        description: raw.description.clone(),
        process: raw
            .process
            .as_ref()
            .map(|p| ctx.located(p.clone(), &at("process"))),
        language: raw
            .language
            .as_ref()
            .map(|l| ctx.located(l.clone(), &at("language"))),
        profile: ctx.optional_id(&raw.profile, &at("profile")),
        subject: ctx.located(raw.subject.clone(), &at("subject")),
        text: raw
            .text
            .as_ref()
            .map(|t| ctx.located(t.clone(), &at("text"))),
        html: raw
            .html
            .as_ref()
            .map(|h| ctx.located(h.clone(), &at("html"))),
        disclaimer: raw.disclaimer.as_ref().map(|d| ctx.signature(d)),
        attachments,
        inline_images: ctx.inline_images(&raw.inline_images, &at("inline_images"), out),
        headers: raw
            .headers
            .iter()
            .map(|(name, value)| {
                let pointer = pointer_join(&at("headers"), name);
                (name.clone(), ctx.located(value.clone(), &pointer))
            })
            .collect(),
        sample_data: raw.sample_data.as_ref().map(|path| {
            let pointer = at("sample_data");
            let path = ctx.path(path);
            ctx.require_file(&path, &pointer, out);
            ctx.located(path, &pointer)
        }),
    }
}

fn compile_alerts(ctx: &FileCtx<'_>, raw: &RawAlerts, out: &mut Diagnostics) -> Alerts {
    let definitions = raw
        .definitions
        .iter()
        .map(|(name, alert)| {
            let pointer = pointer_join("/alerts/definitions", name);
            let definition = AlertDefinition {
                at: ctx.key_at(&pointer),
                recipients: ctx.mailboxes(
                    &alert.recipients,
                    &pointer_join(&pointer, "recipients"),
                    out,
                ),
                template: ctx.located(alert.template.clone(), &pointer_join(&pointer, "template")),
                language: alert
                    .language
                    .as_ref()
                    .map(|l| ctx.located(l.clone(), &pointer_join(&pointer, "language"))),
            };
            (name.clone(), definition)
        })
        .collect();
    Alerts {
        at: ctx.key_at("/alerts"),
        profile: ctx.optional_id(&raw.profile, "/alerts/profile"),
        admin_email: raw
            .admin_email
            .as_ref()
            .and_then(|a| ctx.mailbox(a, "/alerts/admin_email", out)),
        definitions,
    }
}
