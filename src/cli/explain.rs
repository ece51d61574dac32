//! `mailrules explain`: formats the trace the resolver returned; it decides
//! nothing itself.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::config::Location;
use crate::resolve::{self, FieldTrace, Resolution, Selection};

use super::{CliError, ConfigSource, ContextArgs, Format, Prepared};

pub fn run(source: &ConfigSource, context: &ContextArgs, format: Format) -> Result<u8, CliError> {
    let prepared = Prepared::load(source, context)?;
    let resolution = resolve::resolve(&prepared.loaded.config, &prepared.request(context))?;
    match format {
        Format::Human => print!("{}", human(&resolution)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&resolution)).expect("a resolution is JSON")
        ),
    }
    Ok(0)
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
    let number = r
        .levels
        .iter()
        .position(|l| l.level == r.level)
        .map_or(0, |i| i + 1);
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
    let _ = writeln!(out, "  {:<13}   from {}  {source}", "", field.origin.what);
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
            s.origin.what,
            at(&s.origin.source)
        );
    }
}

fn first_line(value: &str) -> &str {
    value.lines().next().unwrap_or_default()
}

pub fn to_json(r: &Resolution<'_>) -> Value {
    let fields: Map<String, Value> = r
        .fields
        .iter()
        .map(|f| {
            (
                f.field.to_string(),
                json!({"value": f.value, "origin": f.origin, "shadowed": f.shadowed}),
            )
        })
        .collect();
    json!({
        "administration": r.administration.id,
        "user": r.user.id,
        "template": {
            "id": r.template.template.id,
            "language": r.template.language,
            "source": r.template.template.at,
            "selection": r.template.selection,
        },
        "profile": r.profile.id,
        "level": r.level,
        "levels": r.levels,
        "fields": fields,
    })
}
