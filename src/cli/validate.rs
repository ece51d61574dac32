//! `mailrules validate`: the same loader every other command uses.

use serde_json::json;

use crate::config::LoadError;
use crate::load;

use super::{CliError, ConfigSource, Format, report};

pub fn run(source: &ConfigSource, format: Format, deny_warnings: bool) -> Result<u8, CliError> {
    let path = &source.path;
    let (diagnostics, files, loaded) = match load::load(path, source.options) {
        Ok(loaded) => (loaded.warnings, loaded.files, true),
        Err(LoadError::Invalid { diagnostics }) => (diagnostics, Vec::new(), false),
        Err(io) => return Err(io.into()),
    };
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    // Loaded, and no warning that --deny-warnings turns into a failure.
    let valid = loaded && !(deny_warnings && warnings > 0);
    match format {
        Format::Json => {
            let out = json!({
                "valid": valid,
                "errors": errors,
                "warnings": warnings,
                "diagnostics": diagnostics,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&out).expect("diagnostics are JSON")
            );
        }
        Format::Human => {
            for d in &diagnostics {
                eprint!("{}", report::diagnostic(d));
            }
            if valid {
                println!(
                    "{}: valid ({} file(s), {warnings} warning(s))",
                    path.display(),
                    files.len()
                );
            } else {
                let denied = if loaded {
                    " denied by --deny-warnings"
                } else {
                    ""
                };
                eprintln!(
                    "{}: invalid ({errors} error(s), {warnings} warning(s){denied})",
                    path.display()
                );
            }
        }
    }
    Ok(if valid { 0 } else { 1 })
}
