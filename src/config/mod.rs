//! Files -> YAML -> schema -> semantic checks -> [`Config`] (immutable).
//!
//! `validate`, `explain`, `preview`, `send` (and later `serve`) all call
//! [`load`], so what `validate` accepts is exactly what runs.

mod address;
mod checks;
mod compile;
pub mod diagnostic;
mod file_ctx;
mod model;
mod raw;
mod redact;
pub mod schema;
mod source;
pub mod texts;
pub mod yaml;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use address::{parse_mailbox, same_address};
pub use checks::closest;
pub use diagnostic::{Diagnostic, Location, Severity};
pub use model::*;

use compile::{Broken, ParsedFile};
use raw::RawFile;
use source::SourceFile;

/// A configuration that passed every check, with its warnings.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
    pub files: Vec<PathBuf>,
    /// The files' texts, to show the lines of later diagnostics.
    sources: Vec<SourceFile>,
}

impl Loaded {
    /// Fills in the source lines of diagnostics found after loading (for
    /// example by the template checks).
    pub fn annotate(&self, diagnostics: &mut [Diagnostic]) {
        attach_source_lines(diagnostics, &self.sources);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration could not be read at all (exit 2).
    #[error("cannot read `{}`: {error}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// The configuration was read and has problems (exit 1).
    #[error("the configuration is invalid ({} error(s))", diagnostics.iter().filter(|d| d.is_error()).count())]
    Invalid { diagnostics: Vec<Diagnostic> },
}

/// How strict loading is.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Accept literal passwords (with a warning), for local experiments.
    pub allow_plaintext_secrets: bool,
}

/// Loads and checks a configuration: one file, or a directory read
/// recursively (`*.yaml`, `*.yml`, sorted by path, hidden entries skipped).
pub fn load(path: &Path, options: LoadOptions) -> Result<Loaded, LoadError> {
    let (texts, root) = read_files(path)?;
    load_texts(texts, &root, options)
}

/// The texts of the configuration files at `path` and the directory their
/// paths resolve against: what [`load`] checks. The daemon hashes them to
/// tell a real change from a touched file.
pub fn read_files(path: &Path) -> Result<(Vec<(PathBuf, String)>, PathBuf), LoadError> {
    let files = config_files(path)?;
    let texts = files
        .iter()
        .map(|file| Ok((file.clone(), read(file)?)))
        .collect::<Result<Vec<_>, LoadError>>()?;
    if files.is_empty() {
        let d = Diagnostic::error(
            None,
            "",
            format!("no *.yaml or *.yml files in `{}`", path.display()),
        )
        .with_hint("point --config at a config file or a directory holding them");
        return Err(LoadError::Invalid {
            diagnostics: vec![d],
        });
    }
    let root = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(Path::new("."))
    };
    Ok((texts, root.to_path_buf()))
}

/// Checks configuration texts already read (`(path, text)` pairs); paths in
/// them resolve against `root`. This is [`load`] without the directory walk.
pub fn load_texts(
    texts: Vec<(PathBuf, String)>,
    root: &Path,
    options: LoadOptions,
) -> Result<Loaded, LoadError> {
    let files: Vec<PathBuf> = texts.iter().map(|(path, _)| path.clone()).collect();
    let mut diagnostics = Vec::new();
    let mut parsed = Vec::new();
    let mut sources = Vec::new();
    let mut broken = Broken::default();
    for (file, text) in texts {
        let source = SourceFile::new(file, text);
        let (source, value, found) = parse_checked(source, schema::Kind::ConfigFile, options);
        // Entities with schema errors are left out, so that everything else
        // is still compiled and checked: all problems in one run.
        let raw = value
            .map(|mut value| (prune(&mut value, &found, &mut broken), value))
            .and_then(|(usable, value)| usable.then_some(value))
            .map(|value| deserialize::<RawFile>(&value, &source));
        diagnostics.extend(found);
        match raw {
            Some(Ok(raw)) => parsed.push(ParsedFile { source, raw }),
            Some(Err(d)) => {
                diagnostics.push(*d);
                broken.incomplete = true;
                sources.push(source);
            }
            None => {
                broken.incomplete = true;
                sources.push(source);
            }
        }
    }
    let (config, found) = compile::compile(&parsed, root, broken);
    diagnostics.extend(found);
    let config = config.filter(|_| !diagnostics.iter().any(Diagnostic::is_error));
    sources.extend(parsed.into_iter().map(|p| p.source));
    attach_source_lines(&mut diagnostics, &sources);
    match config {
        Some(config) => Ok(Loaded {
            config,
            warnings: diagnostics,
            files,
            sources,
        }),
        None => Err(LoadError::Invalid { diagnostics }),
    }
}

/// Sections holding entities by id.
const ENTITY_SECTIONS: [&str; 4] = ["profiles", "administrations", "users", "templates"];

/// Removes from `value` every entity (or section) that has a schema error
/// and records what was removed. `false`: nothing of the file is usable.
fn prune(value: &mut Value, found: &[Diagnostic], broken: &mut Broken) -> bool {
    for error in found.iter().filter(|d| d.is_error()) {
        let Some(pointer) = &error.pointer else {
            return false;
        };
        let segments: Vec<String> = pointer
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let Some(object) = value.as_object_mut() else {
            return false;
        };
        match segments.as_slice() {
            [] => return false,
            [section, id, ..] if ENTITY_SECTIONS.contains(&section.as_str()) => {
                if let Some(entities) = object.get_mut(section).and_then(Value::as_object_mut) {
                    entities.remove(id);
                }
                broken
                    .ids
                    .entry(section.clone())
                    .or_default()
                    .push(id.clone());
            }
            [section, ..] => {
                object.remove(section);
                match section.as_str() {
                    "system" => broken.system = true,
                    "alerts" => {}
                    _ => broken.incomplete = true,
                }
            }
        }
    }
    true
}

/// Loads a `--transport-override` file: one `smtp`, `sendmail` or `file`
/// block, checked like a profile's transport, and an optional
/// `copy_to_sent`.
pub fn load_transport_override(
    path: &Path,
    options: LoadOptions,
) -> Result<TransportOverride, LoadError> {
    let source = SourceFile::new(path.to_path_buf(), read(path)?);
    let (source, value, mut diagnostics) =
        parse_checked(source, schema::Kind::TransportOverride, options);
    let transport = match value {
        Some(value) if !diagnostics.iter().any(Diagnostic::is_error) => {
            match deserialize(&value, &source) {
                Ok(raw) => compile::compile_override(&source, &raw),
                Err(d) => Err(vec![*d]),
            }
        }
        _ => Err(Vec::new()),
    };
    transport.map_err(|found| {
        diagnostics.extend(found);
        attach_source_lines(&mut diagnostics, &[source]);
        LoadError::Invalid { diagnostics }
    })
}

/// Reads a data file (YAML or JSON) of template variables.
pub fn load_data(path: &Path) -> Result<Value, LoadError> {
    let text = read(path)?;
    let source = SourceFile::new(path.to_path_buf(), text);
    let problem = match yaml::parse(&source.text) {
        Ok(document) if document.value.is_object() => return Ok(document.value),
        Ok(_) => Diagnostic::error(
            Some(source.value_at("")),
            "",
            "template data must be a mapping of names to values",
        )
        .with_hint("write `name: value` pairs at the top level"),
        Err(error) => yaml_diagnostic(&source, error),
    };
    let mut diagnostics = vec![problem];
    attach_source_lines(&mut diagnostics, &[source]);
    Err(LoadError::Invalid { diagnostics })
}

/// Removes mapping entries whose value is null, at every depth.
pub fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// A file, its value (when the YAML could be read) and what the schema found.
type Checked = (SourceFile, Option<Value>, Vec<Diagnostic>);

/// YAML parse plus schema check of one file.
fn parse_checked(mut source: SourceFile, kind: schema::Kind, options: LoadOptions) -> Checked {
    let document = match yaml::parse(&source.text) {
        Ok(document) => document,
        Err(error) => {
            let d = yaml_diagnostic(&source, error);
            return (source, None, vec![d]);
        }
    };
    source.positions = document.positions;
    source.secrets = redact::literal_secrets(&document.value);
    let mut value = document.value;
    // `key: null` and a missing key mean the same: "not set here".
    strip_nulls(&mut value);
    if value.is_null() {
        let d = Diagnostic::error(Some(source.value_at("")), "", "the file is empty")
            .with_hint("add configuration to it or delete it; an empty file is rejected so that a truncated deploy cannot pass");
        return (source, None, vec![d]);
    }
    let found = schema::check(&value, kind, &source, options.allow_plaintext_secrets);
    (source, Some(value), found)
}

fn yaml_diagnostic(source: &SourceFile, error: yaml::YamlError) -> Diagnostic {
    let at = Location::new(
        source.path.clone(),
        error.position.line,
        error.position.column,
    );
    let d = Diagnostic::error(
        Some(at),
        diagnostic::dotted_path(&error.pointer),
        error.message,
    );
    match error.hint {
        Some(hint) => d.with_hint(hint),
        None => d,
    }
}

/// Schema-checked JSON -> raw types. The schema and these types describe the
/// same document; a mismatch is a bug, reported rather than panicking.
fn deserialize<T: serde::de::DeserializeOwned>(
    value: &Value,
    source: &SourceFile,
) -> Result<T, Box<Diagnostic>> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let pointer: String = path
            .split('.')
            .filter(|s| !s.is_empty() && *s != "?")
            .map(|s| format!("/{}", s.trim_start_matches('[').trim_end_matches(']')))
            .collect();
        Box::new(
            Diagnostic::error(
                Some(source.value_at(&pointer)),
                path,
                format!("cannot read this value: {}", error.inner()),
            )
            .with_hint("this is a mailrules bug (schema and model disagree); please report it"),
        )
    })
}

/// Adds the offending line to each diagnostic, and keeps every literal
/// password of every file out of all of them.
fn attach_source_lines(diagnostics: &mut [Diagnostic], sources: &[SourceFile]) {
    let secrets: Vec<String> = sources
        .iter()
        .flat_map(|s| s.secrets.iter().cloned())
        .collect();
    for d in diagnostics {
        if let Some(at) = &d.location {
            let source = sources.iter().find(|s| s.path == at.file);
            d.source_line = source.and_then(|s| {
                let line = s.line(at.line)?;
                if redact::inside_secret_value(&s.text, at.line) {
                    let indent = line.len() - line.trim_start().len();
                    return Some(format!("{}***", &line[..indent]));
                }
                Some(line.to_string())
            });
        }
        redact::redact(d, &secrets);
    }
}

/// Largest file read as configuration, data or secret.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// Reads a regular file of at most `max` bytes. Devices and FIFOs are
/// refused before opening: reading them may never end.
pub fn read_regular_file(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            max / 1024 / 1024
        )));
    }
    Ok(bytes)
}

/// Reads a config, data or secret file as UTF-8 text (at most
/// [`MAX_FILE_BYTES`]); not UTF-8 is a diagnostic at the first bad byte.
fn read(path: &Path) -> Result<String, LoadError> {
    let bytes = read_regular_file(path, MAX_FILE_BYTES).map_err(|error| LoadError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        let at = Location::new(std::sync::Arc::new(path.to_path_buf()), line, column);
        LoadError::Invalid {
            diagnostics: vec![
                Diagnostic::error(Some(at), "", "the file is not UTF-8 text")
                    .with_hint("save the file as UTF-8"),
            ],
        }
    })
}

fn config_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |error| LoadError::Io {
        path: path.to_path_buf(),
        error,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    collect_yaml(path, &mut files, &mut Vec::new())?;
    files.sort();
    Ok(files)
}

/// Hidden entries (`.git`, an orchestrator's `..data`, editor files) are not
/// config. `visited` holds the real paths of the directories read, so that
/// a symlink back to a parent is not followed round and round.
fn collect_yaml(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    visited: &mut Vec<PathBuf>,
) -> Result<(), LoadError> {
    let io = |error| LoadError::Io {
        path: dir.to_path_buf(),
        error,
    };
    let real = std::fs::canonicalize(dir).map_err(io)?;
    if visited.contains(&real) {
        return Ok(());
    }
    visited.push(real);
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let hidden = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_yaml(&path, files, visited)?;
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            files.push(path);
        }
    }
    Ok(())
}
