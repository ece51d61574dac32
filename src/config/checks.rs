//! Semantic checks of a merged configuration: references, and settings
//! that are valid YAML but almost certainly wrong.

use super::compile::{Broken, Diagnostics};
use super::diagnostic::{Diagnostic, Location};
use super::model::*;

/// Every id, language and process named anywhere must exist.
/// Runs every semantic check over the merged configuration.
pub(super) fn run(config: &Config, broken: &Broken, out: &mut Diagnostics) {
    if !broken.incomplete {
        check_references(config, broken, out);
    }
    // "unused" could just mean "used by something broken": wait for a clean run.
    if !broken.incomplete && broken.ids.values().all(Vec::is_empty) {
        check_unused(config, out);
    }
    for profile in config.profiles.values() {
        check_insecure(profile, out);
        check_security_and_port(profile, out);
        check_send_as(profile, out);
    }
    for user in config.users.values() {
        check_personal_send_as(config, user, out);
    }
}

/// No encryption only when asked for by name: mail and, with `auth`, the
/// password would cross the network in the clear.
fn check_insecure(profile: &Profile, out: &mut Diagnostics) {
    let Transport::Smtp(smtp) = &profile.transport.value else {
        return;
    };
    if smtp.security == Security::None && !smtp.allow_insecure {
        let what = if smtp.auth.is_some() {
            "mail and password"
        } else {
            "mail"
        };
        out.push(
            Diagnostic::error(
                Some(profile.transport.at.clone()),
                format!("profiles.{}.smtp.security", profile.id),
                format!("`security: none` sends {what} unencrypted"),
            )
            .with_hint("use `starttls` or `tls`; for a relay on a trusted local network add `allow_insecure: true`"),
        );
    }
}

/// Implicit TLS on the submission port or STARTTLS on the SMTPS port only
/// ever ends in a timeout or a TLS error.
fn check_security_and_port(profile: &Profile, out: &mut Diagnostics) {
    let Transport::Smtp(smtp) = &profile.transport.value else {
        return;
    };
    let fix = match (smtp.security, smtp.port) {
        (Security::Tls, 587) => {
            "port 587 expects `security: starttls`; for implicit TLS use port 465"
        }
        (Security::Starttls, 465) => {
            "port 465 expects `security: tls` (implicit TLS); for STARTTLS use port 587"
        }
        _ => return,
    };
    out.push(
        Diagnostic::error(
            Some(profile.transport.at.clone()),
            format!("profiles.{}.smtp", profile.id),
            format!(
                "`security: {}` on port {} does not work with standard servers",
                smtp.security, smtp.port
            ),
        )
        .with_hint(fix),
    );
}

fn send_as_warning(at: &Location, path: String, sender: &str, login: &str) -> Diagnostic {
    Diagnostic::warning(
        Some(at.clone()),
        path,
        format!("sender `{sender}` differs from the login `{login}`"),
    )
    .with_hint(format!(
        "the server must grant `{login}` the right to send as `{sender}` (send-as)"
    ))
}

/// A sender that is not the login account needs send-as rights.
fn check_send_as(profile: &Profile, out: &mut Diagnostics) {
    let Transport::Smtp(Smtp {
        auth: Some(auth), ..
    }) = &profile.transport.value
    else {
        return;
    };
    let sender = profile.from.value.email.to_string();
    if !auth.value.username.eq_ignore_ascii_case(&sender) {
        let path = format!("profiles.{}.from", profile.id);
        out.push(send_as_warning(
            &profile.from.at,
            path,
            &sender,
            &auth.value.username,
        ));
    }
}

/// A personal `from` applies where the personal profile (level 3) or the
/// system profile (level 4) wins, and logs in with the personal account or
/// else that profile's: a sender that is not that login needs send-as
/// rights too (an XOAUTH2 token is for one mailbox).
fn check_personal_send_as(config: &Config, user: &User, out: &mut Diagnostics) {
    let Some(personal) = user.personal.as_ref().filter(|p| p.enabled.value) else {
        return;
    };
    let Some(from) = &personal.from else {
        return;
    };
    let login = match &personal.account {
        Some(account) => account.value.username.clone(),
        None => {
            let profile = personal
                .profile
                .as_ref()
                .or(config.system.profile.as_ref())
                .and_then(|id| config.profiles.get(&id.value));
            let Some(Transport::Smtp(Smtp {
                auth: Some(auth), ..
            })) = profile.map(|p| &p.transport.value)
            else {
                return;
            };
            auth.value.username.clone()
        }
    };
    let sender = from.value.email.to_string();
    if !login.eq_ignore_ascii_case(&sender) {
        let path = format!("users.{}.personal.from", user.id);
        out.push(send_as_warning(&from.at, path, &sender, &login));
    }
}

/// Profiles nobody selects and templates no language table or alert uses
/// are usually leftovers of a rename.
fn check_unused(config: &Config, out: &mut Diagnostics) {
    let used_profiles: Vec<&str> = std::iter::once(&config.system.profile)
        .chain(config.administrations.values().map(|a| &a.profile))
        .chain(config.templates.values().map(|t| &t.profile))
        .chain(
            config
                .users
                .values()
                .filter_map(|u| u.personal.as_ref())
                .map(|p| &p.profile),
        )
        .chain(config.alerts.iter().map(|a| &a.profile))
        .filter_map(|p| p.as_ref().map(|p| p.value.as_str()))
        .collect();
    for profile in config.profiles.values() {
        if !used_profiles.contains(&profile.id.as_str()) {
            out.push(
                Diagnostic::warning(
                    Some(profile.at.clone()),
                    format!("profiles.{}", profile.id),
                    format!("profile `{}` is not used by any template, administration, user, alerts or system", profile.id),
                )
                .with_hint("select it somewhere or remove it"),
            );
        }
    }
    let mut used_templates: Vec<&str> = config
        .administrations
        .values()
        .flat_map(|a| a.languages.values())
        .flat_map(|table| table.value.values())
        .map(|t| t.value.as_str())
        .collect();
    if let Some(alerts) = &config.alerts {
        used_templates.extend(
            alerts
                .definitions
                .values()
                .map(|d| d.template.value.as_str()),
        );
    }
    for template in config.templates.values() {
        if !used_templates.contains(&template.id.as_str()) {
            out.push(
                Diagnostic::warning(
                    Some(template.at.clone()),
                    format!("templates.{}", template.id),
                    format!("template `{}` is in no language table and no alert", template.id),
                )
                .with_hint("it is reachable only with --template; add it to an administration's `languages`"),
            );
        }
    }
}

fn check_references(config: &Config, broken: &Broken, out: &mut Diagnostics) {
    let profile_ref = |reference: &Option<Located<String>>, path: &str, out: &mut Diagnostics| {
        if let Some(id) = reference {
            let known = config.profiles.keys().chain(broken.ids("profiles"));
            check_known(&id.value, &id.at, path, "profile", known, out);
        }
    };
    let language_ref = |language: &str, at: &Location, path: &str, out: &mut Diagnostics| {
        check_known(
            language,
            at,
            path,
            "language",
            config.system.languages.iter(),
            out,
        );
    };
    let system = &config.system;
    profile_ref(&system.profile, "system.profile", out);
    language_ref(
        &system.default_language.value,
        &system.default_language.at,
        "system.default_language",
        out,
    );

    for (id, admin) in &config.administrations {
        profile_ref(
            &admin.profile,
            &format!("administrations.{id}.profile"),
            out,
        );
        if let Some(language) = &admin.default_language {
            language_ref(
                &language.value,
                &language.at,
                &format!("administrations.{id}.default_language"),
                out,
            );
        }
        for (language, processes) in &admin.languages {
            let path = format!("administrations.{id}.languages.{language}");
            language_ref(language, &processes.at, &path, out);
            for (process, template) in &processes.value {
                let path = format!("{path}.{process}");
                check_known(
                    process,
                    &template.at,
                    &path,
                    "process",
                    system.processes.iter(),
                    out,
                );
                check_known(
                    &template.value,
                    &template.at,
                    &path,
                    "template",
                    config.templates.keys().chain(broken.ids("templates")),
                    out,
                );
                let declared = config
                    .templates
                    .get(&template.value)
                    .and_then(|t| t.process.as_ref());
                // Only between declared processes: an unknown one is reported above.
                let both_declared = |declared: &Located<String>| {
                    [&declared.value, process]
                        .iter()
                        .all(|p| system.processes.contains(p))
                };
                if let Some(declared) = declared
                    .filter(|declared| declared.value != *process)
                    .filter(|declared| both_declared(declared))
                {
                    out.push(
                        Diagnostic::error(
                            Some(template.at.clone()),
                            path.clone(),
                            format!(
                                "template `{}` is for process `{}`, not `{process}`",
                                template.value, declared.value
                            ),
                        )
                        .with_hint("map this process to a template written for it"),
                    );
                }
            }
        }
    }
    for (id, user) in &config.users {
        if let Some(personal) = &user.personal {
            profile_ref(
                &personal.profile,
                &format!("users.{id}.personal.profile"),
                out,
            );
        }
    }
    for (id, template) in &config.templates {
        profile_ref(&template.profile, &format!("templates.{id}.profile"), out);
        if let Some(process) = &template.process {
            check_known(
                &process.value,
                &process.at,
                &format!("templates.{id}.process"),
                "process",
                system.processes.iter(),
                out,
            );
        }
        if let Some(language) = &template.language {
            language_ref(
                &language.value,
                &language.at,
                &format!("templates.{id}.language"),
                out,
            );
        }
    }
    if let Some(alerts) = &config.alerts {
        profile_ref(&alerts.profile, "alerts.profile", out);
        for (name, alert) in &alerts.definitions {
            if let Some(language) = &alert.language {
                let path = format!("alerts.definitions.{name}.language");
                language_ref(&language.value, &language.at, &path, out);
            }
            let path = format!("alerts.definitions.{name}.template");
            check_known(
                &alert.template.value,
                &alert.template.at,
                &path,
                "template",
                config.templates.keys().chain(broken.ids("templates")),
                out,
            );
        }
    }
}

fn check_known<'a>(
    name: &str,
    at: &Location,
    path: &str,
    what: &str,
    known: impl Iterator<Item = &'a String>,
    out: &mut Diagnostics,
) {
    let known: Vec<&String> = known.collect();
    if known.iter().any(|k| *k == name) {
        return;
    }
    let hint = match closest(name, &known) {
        Some(close) => format!("did you mean `{close}`?"),
        None if known.is_empty() => format!("no {what} is declared"),
        None => format!(
            "known {}: {}",
            plural(what),
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    out.push(
        Diagnostic::error(Some(at.clone()), path, format!("unknown {what} `{name}`"))
            .with_hint(hint),
    );
}

/// The known name within edit distance 2 of `name`, if any.
pub fn closest<'a>(name: &str, known: &[&'a String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn plural(word: &str) -> String {
    if word.ends_with('s') {
        format!("{word}es")
    } else {
        format!("{word}s")
    }
}
