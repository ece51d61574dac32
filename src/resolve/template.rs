//! Template selection: an explicit template, or the administration's
//! language table with the language fallback (docs/config.md, "Resolution").

use serde::Serialize;

use crate::config::{Administration, Config, Location, Template};

use super::{ResolveError, TemplateSelector, unknown};

/// How the template was chosen.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Selection {
    /// Named on the request.
    Explicit,
    /// Looked up in the administration's language table.
    LanguageTable {
        process: String,
        tried: Vec<LanguageTry>,
    },
}

/// One language looked up in the language table.
#[derive(Debug, Clone, Serialize)]
pub struct LanguageTry {
    pub language: String,
    /// Why this language was tried: `requested`, `base of nl-BE`,
    /// `administration default`, `system default`.
    pub reason: String,
    /// The template found, if any, and where the table names it.
    pub template: Option<String>,
    pub source: Option<Location>,
}

#[derive(Debug, Clone)]
pub struct TemplateChoice<'c> {
    pub template: &'c Template,
    pub selection: Selection,
    /// The language the message is in: the table language that matched, or
    /// the template's own language when chosen explicitly.
    pub language: Option<String>,
}

pub(super) fn select<'c>(
    config: &'c Config,
    administration: &'c Administration,
    selector: &TemplateSelector<'_>,
) -> Result<TemplateChoice<'c>, ResolveError> {
    match selector {
        TemplateSelector::Template(id) => {
            let template = config
                .templates
                .get(*id)
                .ok_or_else(|| unknown("template", id, config.templates.keys()))?;
            Ok(TemplateChoice {
                template,
                selection: Selection::Explicit,
                language: template.language.as_ref().map(|l| l.value.clone()),
            })
        }
        TemplateSelector::Process { process, language } => {
            if !config.system.processes.iter().any(|p| p == process) {
                return Err(unknown("process", process, config.system.processes.iter()));
            }
            let language = match language {
                Some(language) => Some(declared_spelling(config, language)?),
                None => None,
            };
            let mut tried = Vec::new();
            for (language, reason) in candidates(config, administration, language.as_deref()) {
                let entry = administration
                    .languages
                    .get(&language)
                    .and_then(|table| table.value.get(*process));
                tried.push(LanguageTry {
                    language: language.clone(),
                    reason,
                    template: entry.map(|e| e.value.clone()),
                    source: entry.map(|e| e.at.clone()),
                });
                if let Some(entry) = entry {
                    let template = &config.templates[&entry.value];
                    return Ok(TemplateChoice {
                        template,
                        selection: Selection::LanguageTable {
                            process: process.to_string(),
                            tried,
                        },
                        language: Some(language),
                    });
                }
            }
            Err(ResolveError::NoTemplate {
                administration: administration.id.clone(),
                process: process.to_string(),
                tried: tried.into_iter().map(|t| t.language).collect(),
            })
        }
    }
}

/// A requested language is usable when it, or its base, is declared.
/// Language tags are case-insensitive (`NL-be` is `nl-BE`): the declared
/// spelling is used from here on.
fn declared_spelling(config: &Config, language: &str) -> Result<String, ResolveError> {
    let declared = &config.system.languages;
    let spelled = |tag: &str| {
        declared
            .iter()
            .find(|l| l.eq_ignore_ascii_case(tag))
            .cloned()
    };
    if let Some(exact) = spelled(language) {
        return Ok(exact);
    }
    match base_language(language).and_then(spelled) {
        // `nl-be` with only `nl` declared: keep the region, spell the base.
        Some(base) => Ok(format!("{base}{}", &language[base.len()..])),
        None => Err(ResolveError::Unknown {
            what: "language",
            name: language.to_string(),
            hint: format!(
                "declared languages (system.languages): {}",
                declared
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// `nl-BE` -> `nl`; `None` for a tag without a region.
fn base_language(language: &str) -> Option<&str> {
    language.split_once('-').map(|(base, _)| base)
}

/// The languages to try, in order, without repeats.
fn candidates(
    config: &Config,
    administration: &Administration,
    requested: Option<&str>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |language: &str, reason: String| {
        if !out.iter().any(|(l, _)| l == language) {
            out.push((language.to_string(), reason));
        }
    };
    if let Some(requested) = requested {
        push(requested, "requested".into());
        if let Some(base) = base_language(requested) {
            push(base, format!("base of {requested}"));
        }
    }
    if let Some(default) = &administration.default_language {
        push(
            &default.value,
            format!("default of administration `{}`", administration.id),
        );
    }
    push(
        &config.system.default_language.value,
        "system default".into(),
    );
    out
}
