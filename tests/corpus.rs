//! One test over every case in `tests/corpus/`: each is an invalid
//! configuration (a file, or a directory of files). `validate
//! --deny-warnings` must fail, every diagnostic must point at
//! file:line:column, and the whole report is a reviewed snapshot. A new case
//! is a new file, not new code.

mod common;

use common::*;

/// Problems of the whole configuration, which have no single place.
const WITHOUT_PLACE: &[&str] = &["no file has a `system` section"];

#[test]
fn every_corpus_case_fails_with_its_reviewed_diagnostics() {
    let mut cases: Vec<_> = std::fs::read_dir("tests/corpus")
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 60, "the corpus has {} cases", cases.len());
    for case in cases {
        let name = case.file_stem().unwrap().to_string_lossy().into_owned();
        let result = run(mailrules()
            .args(["validate", "--deny-warnings", "--config"])
            .arg(&case)
            .env("SMTP_PASSWORD", "set")
            .env_remove("MAILRULES_CORPUS_UNSET"));
        assert_eq!(result.code, 1, "{name}: {}", result.stderr);
        assert!(
            !result.stderr.contains("panicked"),
            "{name}: {}",
            result.stderr
        );
        let lines: Vec<&str> = result.stderr.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let is_diagnostic = line.starts_with("error: ") || line.starts_with("warning: ");
            if !is_diagnostic || WITHOUT_PLACE.iter().any(|m| line.ends_with(m)) {
                continue;
            }
            let next = lines.get(i + 1).copied().unwrap_or_default();
            assert!(
                next.starts_with("  --> tests/corpus/") && has_line_and_column(next),
                "{name}: `{line}` has no file:line:column\n{}",
                result.stderr
            );
        }
        insta::assert_snapshot!(
            name,
            format!("exit code {}\n{}", result.code, result.stderr)
        );
    }
}

/// `  --> file:12:5 (path)` has a line and a column.
fn has_line_and_column(location: &str) -> bool {
    let place = location
        .trim_start_matches("  --> ")
        .split(' ')
        .next()
        .unwrap_or_default();
    let mut parts = place.rsplitn(3, ':');
    let column = parts.next().and_then(|c| c.parse::<usize>().ok());
    let line = parts.next().and_then(|l| l.parse::<usize>().ok());
    matches!((line, column), (Some(l), Some(c)) if l > 0 && c > 0)
}
