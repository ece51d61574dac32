//! The embedded JSON Schema and the check of one parsed file against it,
//! with errors turned into diagnostics that point at the offending node.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::{Value, json};

use super::diagnostic::{Diagnostic, Severity, dotted_path, pointer_join};
use super::source::SourceFile;

/// The schema text, as shipped in `schemas/mailrules.schema.json`.
pub const SCHEMA: &str = include_str!("../../schemas/mailrules.schema.json");

/// What a checked document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One file of a configuration.
    ConfigFile,
    /// A `--transport-override` file: one transport (`smtp`, `sendmail`,
    /// `file`) and an optional `copy_to_sent`.
    TransportOverride,
}

fn validator(kind: Kind) -> &'static Validator {
    static CONFIG: OnceLock<Validator> = OnceLock::new();
    static TRANSPORT: OnceLock<Validator> = OnceLock::new();
    let build = |schema: Value| {
        jsonschema::draft202012::new(&schema).expect("the embedded schema is valid")
    };
    let root: Value = serde_json::from_str(SCHEMA).expect("the embedded schema is JSON");
    match kind {
        Kind::ConfigFile => CONFIG.get_or_init(|| build(root)),
        Kind::TransportOverride => TRANSPORT.get_or_init(|| {
            build(json!({
                "$schema": root["$schema"],
                "$defs": root["$defs"],
                "$ref": "#/$defs/transport_override",
            }))
        }),
    }
}

/// Checks `value` (parsed from `source`) against the schema. With
/// `allow_plaintext_secrets`, a literal password is a warning, not an error.
pub fn check(
    value: &Value,
    kind: Kind,
    source: &SourceFile,
    allow_plaintext_secrets: bool,
) -> Vec<Diagnostic> {
    validator(kind)
        .iter_errors(value)
        .flat_map(|error| checked(&error, source, allow_plaintext_secrets))
        .collect()
}

/// The diagnostics of one error; a literal password becomes a warning when
/// `--allow-plaintext-secrets` allows it (also inside `X or null` unions).
fn checked(
    error: &ValidationError<'_>,
    source: &SourceFile,
    allow_plaintext_secrets: bool,
) -> Vec<Diagnostic> {
    if let ValidationErrorKind::AnyOf { context } = error.kind()
        && let Some(first) = context.first()
        && !first.is_empty()
        && !error.schema_path().as_str().ends_with("/template/anyOf")
    {
        return first
            .iter()
            .flat_map(|e| checked(e, source, allow_plaintext_secrets))
            .collect();
    }
    let literal_password =
        is_secret_path(error.instance_path().as_str()) && error.instance().is_string();
    let found = diagnostics(error, source);
    if literal_password && allow_plaintext_secrets {
        found.into_iter().map(allowed_plaintext).collect()
    } else {
        found
    }
}

fn allowed_plaintext(d: Diagnostic) -> Diagnostic {
    Diagnostic {
        severity: Severity::Warning,
        message: "a literal password, allowed by --allow-plaintext-secrets".into(),
        hint: Some(
            "for local experiments only: never commit it; use `{env: NAME}` or `{file: PATH}`"
                .into(),
        ),
        ..d
    }
}

fn diagnostics(error: &ValidationError<'_>, source: &SourceFile) -> Vec<Diagnostic> {
    let pointer = error.instance_path().as_str().to_string();
    let schema_path = error.schema_path().as_str();
    let at_value = |message: String| Diagnostic {
        pointer: Some(pointer.clone()),
        ..Diagnostic::error(
            Some(source.value_at(&pointer)),
            dotted_path(&pointer),
            message,
        )
    };
    let at_key = |pointer: &str, message: String| Diagnostic {
        pointer: Some(pointer.to_string()),
        ..Diagnostic::error(Some(source.key_at(pointer)), dotted_path(pointer), message)
    };
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|key| {
                at_key(&pointer_join(&pointer, key), format!("unknown key `{key}`"))
                    .with_hint(known_keys_hint(schema_path, key))
            })
            .collect(),
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let written = pointer_join(&pointer, name);
            if source.positions.has(&written) {
                // Written as `name: null`, which means "not set".
                vec![
                    at_key(
                        &written,
                        format!("`{name}` is required here; `null` leaves it unset"),
                    )
                    .with_hint(format!("give `{name}` a value")),
                ]
            } else {
                vec![
                    at_value(format!("missing required key `{name}`"))
                        .with_hint(format!("add `{name}:` here")),
                ]
            }
        }
        ValidationErrorKind::PropertyNames { error: inner } => {
            let key = inner.instance().as_str().unwrap_or_default().to_string();
            let at = pointer_join(&pointer, &key);
            if pointer.ends_with("/headers") {
                return vec![at_key(&at, format!("`{key}` is not a header a template may set")).with_hint(
                    "use an `X-...` header, or List-Unsubscribe, List-Unsubscribe-Post, List-Id, Auto-Submitted, Precedence, Organization; addresses come from profiles and the request",
                )];
            }
            vec![at_key(&at, format!("`{key}` is not a valid id")).with_hint(
                "ids use letters, digits, `_`, `.` and `-`, and start with a letter or digit",
            )]
        }
        // Not a mapping at all: the type error says so; the transport
        // choice has nothing to add.
        ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::OneOfMultipleValid { .. }
            if !error.instance().is_object() =>
        {
            Vec::new()
        }
        ValidationErrorKind::OneOfNotValid { .. } if is_transport_choice(schema_path) => {
            vec![
                at_value(
                    "no transport: a profile needs exactly one of `smtp`, `sendmail` or `file`"
                        .into(),
                )
                .with_hint("add for example `smtp: {host: smtp.example.com}`"),
            ]
        }
        ValidationErrorKind::OneOfMultipleValid { .. } if is_transport_choice(schema_path) => {
            vec![
                at_value("more than one transport: a profile needs exactly one of `smtp`, `sendmail` or `file`".into())
                    .with_hint("keep one transport and move the others into profiles of their own"),
            ]
        }
        ValidationErrorKind::AnyOf { .. } if schema_path.ends_with("/template/anyOf") => {
            vec![
                at_value("a template needs a body: `text`, `html` or both".into())
                    .with_hint("add `text: |` followed by the message text"),
            ]
        }
        // `checked` reports the first branch of `X or null` unions.
        ValidationErrorKind::AnyOf { .. } => vec![at_value(error.to_string())],
        // Never echo what was written where a secret belongs.
        _ if is_secret_path(&pointer) && !error.instance().is_object() => {
            let key = pointer.rsplit('/').next().unwrap_or("password");
            let noun = if key == "password" {
                "password"
            } else {
                "secret"
            };
            vec![
                at_value(format!("a {noun} must be a reference, not a value"))
                    .with_hint(format!(
                        "{noun}s never live in the YAML: write `{key}: {{env: NAME}}` or `{key}: {{file: PATH}}`",
                    ))
                    .with_secret_value(),
            ]
        }
        ValidationErrorKind::Type { kind } => {
            let written = source.positions.written(&pointer);
            let found = match (error.instance().as_ref(), written) {
                (Value::Number(_), Some(text)) => format!("the number `{text}`"),
                (Value::Bool(_), Some(text)) => format!("the boolean `{text}`"),
                (other, _) => describe(other),
            };
            let diagnostic = at_value(format!("expected {}, found {found}", expected_type(kind)));
            let expects_text = matches!(kind, TypeKind::Single(t) if t.as_str() == "string");
            let hint = if pointer.is_empty() {
                Some(
                    "a config file is a mapping of sections such as `system:` and `profiles:`"
                        .to_string(),
                )
            } else {
                type_hint(error.instance(), written, expects_text)
            };
            vec![match hint {
                Some(hint) => diagnostic.with_hint(hint),
                None => diagnostic,
            }]
        }
        ValidationErrorKind::Enum { options } => vec![at_value(format!(
            "{} is not one of {}",
            describe(error.instance()),
            list(options)
        ))],
        ValidationErrorKind::Pattern { .. } => vec![pattern_error(&pointer, error, source)],
        ValidationErrorKind::MinLength { .. } => vec![
            at_value("must not be empty".into())
                .with_hint("write a value; an optional key can be left out (or `null`) instead"),
        ],
        ValidationErrorKind::Minimum { limit } => {
            vec![at_value(format!("must be at least {limit}"))]
        }
        ValidationErrorKind::Maximum { limit } => {
            vec![at_value(format!("must be at most {limit}"))]
        }
        ValidationErrorKind::MinItems { limit } => {
            vec![at_value(format!("needs at least {limit} item(s)"))]
        }
        ValidationErrorKind::UniqueItems => vec![at_value("items must be unique".into())],
        ValidationErrorKind::MinProperties { .. } | ValidationErrorKind::MaxProperties { .. }
            if schema_path.contains("/secret/") =>
        {
            vec![
                at_value("a secret reference has exactly one of `env` or `file`".into())
                    .with_hint("write `{env: NAME}` or `{file: path/to/secret}`"),
            ]
        }
        ValidationErrorKind::MinProperties { .. } => {
            vec![at_value("must not be empty".into())]
        }
        _ => vec![at_value(error.to_string())],
    }
}

fn is_transport_choice(schema_path: &str) -> bool {
    schema_path.ends_with("/profile/oneOf") || schema_path.ends_with("/transport/oneOf")
}

/// "known keys: a, b, c" from the `properties` of the schema that rejected a key.
fn known_keys_hint(schema_path: &str, key: &str) -> String {
    let root: Value = serde_json::from_str(SCHEMA).expect("the embedded schema is JSON");
    let object_schema = schema_path
        .strip_suffix("/additionalProperties")
        .and_then(|path| root.pointer(path));
    // Paths through `$ref` are reported relative to the referenced definition.
    let object_schema = object_schema.or_else(|| {
        let def = schema_path.split("/$defs/").nth(1)?.split('/').next()?;
        root.pointer(&format!("/$defs/{def}"))
    });
    match object_schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    {
        Some(properties) => {
            let known: Vec<&String> = properties.keys().collect();
            match super::checks::closest(key, &known) {
                Some(close) => format!("did you mean `{close}`?"),
                None => {
                    let names: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                    format!("known keys here: {}", names.join(", "))
                }
            }
        }
        None => "remove it".into(),
    }
}

fn pattern_error(pointer: &str, error: &ValidationError<'_>, source: &SourceFile) -> Diagnostic {
    let value = describe(error.instance());
    if error.instance().as_str() == Some("") {
        return Diagnostic {
            pointer: Some(pointer.to_string()),
            ..Diagnostic::error(
                Some(source.value_at(pointer)),
                dotted_path(pointer),
                "must not be empty",
            )
        };
    }
    let schema_path = error.schema_path().as_str();
    let diagnostic = |message: String, hint: &str| {
        Diagnostic {
            pointer: Some(pointer.to_string()),
            ..Diagnostic::error(
                Some(source.value_at(pointer)),
                dotted_path(pointer),
                message,
            )
        }
        .with_hint(hint)
    };
    if schema_path.contains("/hostname") {
        diagnostic(
            format!("{value} is not a host name"),
            "write a host name such as `smtp.example.com`, an IPv4 address or `[IPv6]`",
        )
    } else if schema_path.contains("/language") {
        diagnostic(
            format!("{value} is not a language tag"),
            "use a tag such as `nl`, `en` or `nl-BE`",
        )
    } else if schema_path.contains("/secret/") {
        diagnostic(
            format!("{value} is not an environment variable name"),
            "use letters, digits and `_`, not starting with a digit",
        )
    } else {
        diagnostic(
            format!("{value} is not a valid id"),
            "ids use letters, digits, `_`, `.` and `-`, and start with a letter or digit",
        )
    }
}

/// Whether `pointer` is a password value (not the `env`/`file` reference
/// inside one, which names where the secret is and is fine to show).
pub fn is_secret_path(pointer: &str) -> bool {
    pointer.ends_with("/password")
        || pointer.ends_with("/client_secret")
        || pointer.ends_with("/refresh_token/refresh_token")
}

/// `written` is the scalar as it stands in the file (`0123`, not `123`).
fn type_hint(found: &Value, written: Option<&str>, expects_text: bool) -> Option<String> {
    match found {
        Value::Number(_) | Value::Bool(_) if expects_text => {
            let written = written.map_or_else(|| found.to_string(), str::to_string);
            Some(format!(
                "quote it to keep it as text exactly as written: \"{written}\""
            ))
        }
        Value::String(s)
            if !expects_text
                && matches!(s.as_str(), "yes" | "no" | "on" | "off" | "Yes" | "No") =>
        {
            Some("write `true` or `false`".into())
        }
        _ => None,
    }
}

fn expected_type(kind: &TypeKind) -> String {
    let article = |name: &str| match name {
        "integer" | "object" | "array" => format!("an {name}"),
        "null" => "null".to_string(),
        other => format!("a {other}"),
    };
    match kind {
        TypeKind::Single(t) => article(t.as_str()),
        TypeKind::Multiple(set) => set
            .iter()
            .map(|t| article(t.as_str()))
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

/// A short description of a value for messages: `the text "x"`, `the number 5`.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean `{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("`{s}`"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn list(options: &Value) -> String {
    options
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|v| {
                    format!(
                        "`{}`",
                        v.as_str().map_or_else(|| v.to_string(), str::to_string)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
