//! `mailrules test [PATH...]`: runs config unit tests (see `docs/testing.md`)
//! and reports every mismatch with the line of the case that states it.

use std::path::{Path, PathBuf};

use crate::load;
use crate::testing::{self, Finding};

use super::{CliError, ConfigSource};

pub fn run(
    source: &ConfigSource,
    paths: &[PathBuf],
    update_snapshots: bool,
) -> Result<u8, CliError> {
    let loaded = load::load(&source.path, source.options)?;
    let mut files = Vec::new();
    for path in paths {
        test_files(path, &mut files)?;
    }
    if files.is_empty() {
        return Err(CliError::Usage(
            "no test files: name *.yaml test files or directories holding them".into(),
        ));
    }
    let (mut passed, mut failed, mut fatal) = (0, 0, false);
    for file in &files {
        let tests =
            testing::read(file).map_err(|e| CliError::Usage(format!("invalid test file: {e}")))?;
        for case in &tests.cases {
            let findings = testing::run_case(&loaded.config, case, update_snapshots);
            let failure = findings.iter().any(Finding::is_failure);
            // Names come from the file: no control character may fake a line.
            let name = super::report::one_line(&case.name);
            println!(
                "{} {name}  ({})",
                if failure { "FAIL" } else { "ok  " },
                case.at
            );
            fatal |= findings.iter().any(|f| matches!(f, Finding::Fatal { .. }));
            for finding in &findings {
                print!("{}", describe(finding));
            }
            if failure {
                failed += 1;
            } else {
                passed += 1;
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    Ok(match (fatal, failed) {
        (true, _) => 2,
        (false, 0) => 0,
        (false, _) => 1,
    })
}

fn describe(finding: &Finding) -> String {
    match finding {
        Finding::Mismatch {
            field,
            expected,
            got,
            at,
        } => format!("     {at}: {field}: expected `{expected}`, got `{got}`\n"),
        Finding::Error { message, at } => format!("     {at}: {message}\n"),
        Finding::SnapshotMissing { path, at } => format!(
            "     {at}: no stored preview `{}`; run this same command with --update-snapshots to write it\n",
            path.display()
        ),
        Finding::SnapshotWritten { path } => format!("     wrote {}\n", path.display()),
        Finding::Fatal { message } => format!("     error: {message}\n"),
        Finding::SnapshotDiffers { diff, at } => {
            let indented: String = diff
                .lines()
                .map(|line| format!("       {line}\n"))
                .collect();
            format!(
                "     {at}: the preview differs from the stored one (review it, then run again with --update-snapshots):\n{indented}"
            )
        }
    }
}

/// A file, or the `*.yaml`/`*.yml` files in a directory (sorted).
fn test_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), CliError> {
    if !path.is_dir() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|error| CliError::Input {
            path: path.to_path_buf(),
            error,
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    found.sort();
    files.extend(found);
    Ok(())
}
