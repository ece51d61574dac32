//! `mailrules validate`: the same loader every other command uses.

use std::path::Path;

use serde_json::json;

use crate::config::{self, LoadError};

use super::{CliError, Format, report};

pub fn run(path: &Path, format: Format) -> Result<u8, CliError> {
    let (diagnostics, files, valid) = match config::load(path) {
        Ok(loaded) => (loaded.warnings, loaded.files, true),
        Err(LoadError::Invalid { diagnostics }) => (diagnostics, Vec::new(), false),
        Err(io) => return Err(io.into()),
    };
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
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
                eprintln!(
                    "{}: invalid ({errors} error(s), {warnings} warning(s))",
                    path.display()
                );
            }
        }
    }
    Ok(if valid { 0 } else { 1 })
}
