//! `mailrules plan --base OLD`: which contexts a configuration change
//! affects. OLD is a config path or a git revision of the repository that
//! holds `--config`. Exit 0 no change, 1 changes (0 with --exit-zero),
//! 2 error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::{Diagnostic, LoadError, Location};
use crate::load;
use crate::plan::{self, Change, ContextChange};
use crate::resolve::matrix;

use super::{CliError, ConfigSource, PlanFormat};

pub fn run(
    source: &ConfigSource,
    base: &str,
    format: PlanFormat,
    exit_zero: bool,
) -> Result<u8, CliError> {
    // Exit 1 means "changes" here, so a broken input must not exit 1.
    plan(source, base, format, exit_zero).map_err(|error| CliError::Failed(Box::new(error)))
}

fn plan(
    source: &ConfigSource,
    base: &str,
    format: PlanFormat,
    exit_zero: bool,
) -> Result<u8, CliError> {
    let new = load::load(&source.path, source.options)?;
    let base_config = BaseConfig::fetch(base, &source.path)?;
    let old = load::load(&base_config.path, source.options).map_err(|error| match error {
        LoadError::Invalid { diagnostics } => CliError::InvalidFile {
            what: "base configuration",
            path: PathBuf::from(base),
            diagnostics: diagnostics
                .into_iter()
                .filter(|d| d.is_error())
                .map(|d| base_config.relabel(d))
                .collect(),
        },
        io => CliError::Load(io),
    })?;
    let too_many = |e: matrix::TooManyContexts| CliError::Usage(e.to_string());
    let changes = plan::plan(
        &matrix::matrix(&old.config).map_err(too_many)?,
        &matrix::matrix(&new.config).map_err(too_many)?,
    );
    let show = |at: &Option<Location>| base_config.show(at);
    match format {
        PlanFormat::Human => print!("{}", human(&changes, base, &source.path, &show)),
        PlanFormat::Markdown => print!("{}", markdown(&changes, base, &show)),
        PlanFormat::Json => {
            let mut json = serde_json::to_value(&changes).expect("changes are JSON");
            // Locations as the reader knows them (`REV:path:line:column`),
            // not the temporary export they were read from.
            for change in json.as_array_mut().into_iter().flatten() {
                for field in change["change"]["fields"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    for key in ["old_source", "new_source"] {
                        field[key] = shown_location(&field[key], &base_config).into();
                    }
                }
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&json).expect("JSON prints")
            );
        }
    }
    Ok(if changes.is_empty() || exit_zero {
        0
    } else {
        1
    })
}

/// The base configuration on disk: the path given, or the repository at a
/// git revision exported into a temporary directory (removed on drop).
struct BaseConfig {
    path: PathBuf,
    /// For a revision: the export directory and the revision's name.
    export: Option<(PathBuf, String)>,
}

impl BaseConfig {
    fn fetch(base: &str, new_config: &Path) -> Result<Self, CliError> {
        if Path::new(base).exists() {
            return Ok(BaseConfig {
                path: PathBuf::from(base),
                export: None,
            });
        }
        if base.starts_with('-') {
            return Err(CliError::Usage(format!(
                "--base `{base}` is neither a path nor a git revision"
            )));
        }
        let usage = |why: String| {
            CliError::Usage(format!(
                "--base `{base}` is neither a path nor a git revision: {why}"
            ))
        };
        let config = std::fs::canonicalize(new_config).map_err(|e| usage(e.to_string()))?;
        let dir = if config.is_dir() {
            config.clone()
        } else {
            config.parent().unwrap_or(&config).to_path_buf()
        };
        let root = git(&dir, &["rev-parse", "--show-toplevel"]).map_err(usage)?;
        let root = PathBuf::from(String::from_utf8_lossy(&root).trim());
        let relative = config
            .strip_prefix(&root)
            .map_err(|e| usage(e.to_string()))?
            .to_path_buf();
        // The whole tree at that revision: config files may name files
        // beside the configuration directory (sample data).
        let archive = git(
            &root,
            &["archive", "--format=tar", "--end-of-options", base],
        )
        .map_err(usage)?;
        let export = std::env::temp_dir().join(format!("mailrules-plan-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&export).map_err(|e| usage(e.to_string()))?;
        let base_config = BaseConfig {
            path: export.join(&relative),
            export: Some((export.clone(), base.to_string())),
        };
        untar(&archive, &export).map_err(usage)?;
        if !base_config.path.exists() {
            return Err(usage(format!(
                "`{}` does not exist at that revision",
                relative.display()
            )));
        }
        Ok(base_config)
    }

    /// A diagnostic of the base configuration with its file named as the
    /// reader knows it (`REV:path`), not by the temporary export.
    fn relabel(&self, mut d: Diagnostic) -> Diagnostic {
        if let (Some(at), Some((dir, revision))) = (&d.location, &self.export)
            && let Ok(inside) = at.file().strip_prefix(dir)
        {
            let file = PathBuf::from(format!("{revision}:{}", inside.display()));
            d.location = Some(Location::new(std::sync::Arc::new(file), at.line, at.column));
        }
        d
    }

    /// A location as the reader knows it: `REV:path` for exported files.
    fn show(&self, at: &Option<Location>) -> String {
        let Some(at) = at else {
            return "(default)".into();
        };
        match &self.export {
            Some((dir, revision)) if at.file().starts_with(dir) => {
                let inside = at.file().strip_prefix(dir).unwrap_or(at.file());
                format!("{revision}:{}:{}:{}", inside.display(), at.line, at.column)
            }
            _ => at.to_string(),
        }
    }
}

/// A serialized location (`{file, line, column}`) as `file:line:column`,
/// with exported files named by their revision.
fn shown_location(value: &serde_json::Value, base: &BaseConfig) -> String {
    let (Some(file), Some(line), Some(column)) = (
        value["file"].as_str(),
        value["line"].as_u64(),
        value["column"].as_u64(),
    ) else {
        return "(default)".into();
    };
    let at = Location::new(
        std::sync::Arc::new(PathBuf::from(file)),
        line as usize,
        column as usize,
    );
    base.show(&Some(at))
}

impl Drop for BaseConfig {
    fn drop(&mut self) {
        if let Some((dir, _)) = &self.export {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

fn untar(archive: &[u8], into: &Path) -> Result<(), String> {
    use std::io::Write;
    let mut tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(into)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    tar.stdin
        .take()
        .expect("piped")
        .write_all(archive)
        .map_err(|e| e.to_string())?;
    let status = tar.wait().map_err(|e| e.to_string())?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| "tar failed".into())
}

fn title(change: &ContextChange) -> String {
    let c = &change.context;
    format!(
        "{} / {} / {} / {}",
        c.administration, c.process, c.language, c.user
    )
}

fn human(
    changes: &[ContextChange],
    base: &str,
    new: &Path,
    show: &dyn Fn(&Option<Location>) -> String,
) -> String {
    let mut out = String::new();
    if changes.is_empty() {
        let _ = writeln!(
            out,
            "plan: no context changes (base `{base}`, new `{}`)",
            new.display()
        );
        return out;
    }
    let _ = writeln!(
        out,
        "plan: {} context(s) change (base `{base}`, new `{}`)",
        changes.len(),
        new.display()
    );
    for change in changes {
        let title = title(change);
        match &change.change {
            Change::Changed { fields } => {
                let _ = writeln!(out, "\n~ {title}");
                for f in fields {
                    let _ = writeln!(out, "    {}: {} -> {}", f.field, f.old, f.new);
                    let _ = writeln!(out, "      was set at {}", show(&f.old_source));
                    let _ = writeln!(out, "      now set at {}", show(&f.new_source));
                }
            }
            Change::StopsResolving { error } => {
                let _ = writeln!(out, "\n- {title}: stops resolving: {error}");
            }
            Change::StartsResolving => {
                let _ = writeln!(out, "\n+ {title}: resolves now (did not before)");
            }
            Change::Added => {
                let _ = writeln!(out, "\n+ {title}: new context");
            }
            Change::Removed => {
                let _ = writeln!(out, "\n- {title}: context removed");
            }
        }
    }
    out
}

/// A table for a pull-request comment.
fn markdown(
    changes: &[ContextChange],
    base: &str,
    show: &dyn Fn(&Option<Location>) -> String,
) -> String {
    let cell = |text: &str| format!("`{}`", text.replace('|', "\\|").replace('`', "'"));
    let mut out = format!(
        "### mailrules plan against `{base}`: {} context(s) change\n\n",
        changes.len()
    );
    if changes.is_empty() {
        return out;
    }
    out.push_str("| context | field | before | after | now set at |\n|---|---|---|---|---|\n");
    for change in changes {
        let title = title(change).replace('|', "\\|");
        match &change.change {
            Change::Changed { fields } => {
                for f in fields {
                    let _ = writeln!(
                        out,
                        "| {title} | {} | {} | {} | {} |",
                        f.field,
                        cell(&f.old),
                        cell(&f.new),
                        cell(&show(&f.new_source))
                    );
                }
            }
            Change::StopsResolving { error } => {
                let _ = writeln!(out, "| {title} | *stops resolving* | | {} | |", cell(error));
            }
            Change::StartsResolving => {
                let _ = writeln!(out, "| {title} | *resolves now* | | | |");
            }
            Change::Added => {
                let _ = writeln!(out, "| {title} | *new context* | | | |");
            }
            Change::Removed => {
                let _ = writeln!(out, "| {title} | *context removed* | | | |");
            }
        }
    }
    out
}
