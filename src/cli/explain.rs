//! `mailrules explain`: formats the trace the resolver returned; it decides
//! nothing itself.

use std::fmt::Write as _;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::config::Location;
use crate::resolve::{
    self, FieldTrace, Level, LevelTrace, Origin, Resolution, Selection, Shadowed,
};

use super::{CliError, ConfigSource, ContextArgs, ExplainFormat, Prepared};

pub use super::explain_all::run_all;

/// What `--expect-profile` / `--expect-from` assert (like amtool's verify).
#[derive(Debug, Default)]
pub struct Expectations {
    pub profile: Option<String>,
    pub from: Option<String>,
}

pub fn run(
    source: &ConfigSource,
    context: &ContextArgs,
    format: ExplainFormat,
    expect: &Expectations,
) -> Result<u8, CliError> {
    let prepared = Prepared::load(source, context.transport_override.as_deref())?;
    let resolution = resolve::resolve(&prepared.loaded.config, &prepared.request(context))?;
    show(&resolution, format, expect)
}

/// `explain --alert NAME`: the alert's template, the `alerts` section in
/// the administration's place, and the system profile.
pub fn run_alert(
    source: &ConfigSource,
    name: &str,
    format: ExplainFormat,
    expect: &Expectations,
) -> Result<u8, CliError> {
    let prepared = Prepared::load(source, None)?;
    let config = &prepared.loaded.config;
    let Some(parties) = resolve::alert::AlertParties::of(config) else {
        return Err(CliError::Usage(
            "the configuration has no `alerts` section: declare the alert under `alerts.definitions`".into(),
        ));
    };
    let (resolution, definition) = resolve::alert::resolve_alert(config, &parties, name, None)?;
    let recipients: Vec<String> = definition
        .recipients
        .iter()
        .map(ToString::to_string)
        .collect();
    if format == ExplainFormat::Human {
        println!(
            "alert: {name} (to {})  {}",
            recipients.join(", "),
            definition.at
        );
    }
    show(&resolution, format, expect)
}

fn show(
    resolution: &Resolution<'_>,
    format: ExplainFormat,
    expect: &Expectations,
) -> Result<u8, CliError> {
    match format {
        ExplainFormat::Human => print!("{}", human(resolution)),
        ExplainFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&to_json(resolution)).expect("a resolution is JSON")
        ),
        ExplainFormat::Csv => {
            return Err(CliError::Usage(
                "--format csv needs --all (one row per context)".into(),
            ));
        }
    }
    let differences = differences(resolution, expect)?;
    if differences.is_empty() {
        return Ok(0);
    }
    eprintln!("error: the resolution differs from what was expected");
    for line in differences {
        eprintln!("  {line}");
    }
    Ok(1)
}

/// One line per expectation that does not hold: expected, got, and why.
fn differences(r: &Resolution<'_>, expect: &Expectations) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    if let Some(profile) = &expect.profile
        && *profile != r.profile.id
    {
        let level = &r.levels[r.level.number() - 1];
        out.push(format!(
            "profile: expected `{profile}`, got `{}` (level {}, {}: {})",
            r.profile.id,
            r.level.number(),
            level.note,
            at(&level.source)
        ));
    }
    if let Some(from) = &expect.from {
        let expected = crate::config::parse_mailbox(from)
            .map_err(|e| CliError::Usage(format!("--expect-from: {}", e.message)))?;
        let got = &r.effective.from;
        let same = crate::config::same_address(&expected.email, &got.email)
            && (expected.name.is_none() || expected.name == got.name);
        if !same {
            let trace = r
                .fields
                .iter()
                .find(|f| f.field == "from")
                .expect("from is traced");
            out.push(format!(
                "from: expected `{expected}`, got `{got}` (from {} {})",
                trace.origin.what,
                at(&trace.origin.source)
            ));
        }
    }
    Ok(out)
}

fn at(location: &Option<Location>) -> String {
    location
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

pub fn human(r: &Resolution<'_>) -> String {
    let mut out = String::new();
    let template = r.template.template;
    let language = r.template.language.as_deref().unwrap_or("(not set)");
    let _ = writeln!(
        out,
        "administration `{}`, user `{}`",
        r.administration.id, r.user.id
    );
    let _ = writeln!(out, "\ntemplate: {} (language {language})", template.id);
    match &r.template.selection {
        Selection::Explicit => {
            let _ = writeln!(out, "  named on the request  {}", template.at);
        }
        Selection::LanguageTable { process, tried } => {
            let _ = writeln!(
                out,
                "  process `{process}` in the language table of `{}`:",
                r.administration.id
            );
            for t in tried {
                let found = t
                    .template
                    .as_deref()
                    .map_or("-".to_string(), |id| format!("-> {id}"));
                let _ = writeln!(
                    out,
                    "    {:<8} {:<34} {:<26} {}",
                    t.language,
                    t.reason,
                    found,
                    at(&t.source)
                );
            }
        }
    }
    let number = r.level.number();
    let _ = writeln!(
        out,
        "\nprofile: {} (level {number}, {})",
        r.profile.id, r.level
    );
    for (i, level) in r.levels.iter().enumerate() {
        let status = serde_json::to_value(level.status).expect("status is JSON");
        let _ = writeln!(
            out,
            "  {} {:<15} {:<12} {:<9} {}  {}",
            i + 1,
            level.level.to_string(),
            level.profile.as_deref().unwrap_or("-"),
            status.as_str().unwrap_or_default(),
            level.note,
            at(&level.source)
        );
    }
    let _ = writeln!(out, "\nfields:");
    for field in &r.fields {
        write_field(&mut out, field);
    }
    // Empty columns leave trailing blanks; nobody wants them in a diff.
    out.lines()
        .map(|line| format!("{}\n", line.trim_end()))
        .collect()
}

fn write_field(out: &mut String, field: &FieldTrace) {
    let _ = writeln!(out, "  {:<13} {}", field.field, first_line(&field.value));
    let source = at(&field.origin.source);
    let _ = writeln!(
        out,
        "  {:<13}   from {}  {source}",
        "",
        origin_text(&field.origin)
    );
    // Equal values are not news to a reader; JSON output lists them all.
    for s in field
        .shadowed
        .iter()
        .filter(|s| s.value != field.value || s.ignored.is_some())
    {
        let verb = match &s.ignored {
            Some(reason) => format!("ignored ({reason}):"),
            None => "shadows".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<13}   {verb} {} from {}  {}",
            "",
            first_line(&s.value),
            origin_text(&s.origin),
            at(&s.origin.source)
        );
    }
}

/// ``profile `billing` (level 1, template)``
fn origin_text(origin: &resolve::Origin) -> String {
    match origin.level {
        Some(level) => format!("{} (level {}, {level})", origin.what, level.number()),
        None => origin.what.to_string(),
    }
}

fn first_line(value: &str) -> &str {
    value.lines().next().unwrap_or_default()
}

/// `explain`'s JSON: the decision and where every value came from.
/// Serialized straight from the resolution (the daemon answers thousands
/// of these a second); the CLI sorts its keys through a `Value`.
#[derive(Serialize)]
pub struct Explanation<'a> {
    /// The daemon's configuration generation that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    administration: &'a str,
    user: &'a str,
    template: TemplateJson<'a>,
    profile: &'a str,
    level: Level,
    levels: &'a [LevelTrace; 4],
    fields: BTreeMap<&'static str, FieldJson<'a>>,
}

#[derive(Serialize)]
struct TemplateJson<'a> {
    id: &'a str,
    language: &'a Option<String>,
    source: &'a Location,
    selection: &'a Selection,
}

#[derive(Serialize)]
struct FieldJson<'a> {
    value: &'a str,
    origin: &'a Origin,
    shadowed: &'a [Shadowed],
}

impl<'a> Explanation<'a> {
    pub fn of(r: &'a Resolution<'_>) -> Self {
        Explanation {
            generation: None,
            administration: &r.administration.id,
            user: &r.user.id,
            template: TemplateJson {
                id: &r.template.template.id,
                language: &r.template.language,
                source: &r.template.template.at,
                selection: &r.template.selection,
            },
            profile: &r.profile.id,
            level: r.level,
            levels: &r.levels,
            fields: r
                .fields
                .iter()
                .map(|f| {
                    let json = FieldJson {
                        value: &f.value,
                        origin: &f.origin,
                        shadowed: &f.shadowed,
                    };
                    (f.field, json)
                })
                .collect(),
        }
    }
}

pub fn to_json(r: &Resolution<'_>) -> Value {
    serde_json::to_value(Explanation::of(r)).expect("a resolution is JSON")
}
