//! `mailrules explain --all`: one row per context (administration ×
//! process × language × user), as an aligned table, JSON or CSV.

use crate::load;
use crate::resolve::matrix::{self, Row};

use super::{CliError, ConfigSource, ExplainFormat};

const HEADER: [&str; 4 + matrix::COLUMNS + 1] = [
    "administration",
    "process",
    "language",
    "user",
    "template",
    "profile",
    "level",
    "from",
    "reply_to",
    "bcc",
    "transport",
    "account",
    "html",
    "signature",
    "copy_to_sent",
    "error",
];

pub fn run_all(source: &ConfigSource, format: ExplainFormat) -> Result<u8, CliError> {
    let loaded = load::load(&source.path, source.options)?;
    let rows = matrix::matrix(&loaded.config).map_err(|e| CliError::Usage(e.to_string()))?;
    match format {
        ExplainFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json(&rows)).expect("rows are JSON")
        ),
        ExplainFormat::Csv => print!("{}", csv(&rows)),
        ExplainFormat::Human => print!("{}", table(&rows)),
    }
    Ok(0)
}

/// The cells of a row, in [`HEADER`] order.
fn cells(row: &Row) -> Vec<String> {
    let c = &row.context;
    let mut cells: Vec<String> = [&c.administration, &c.process, &c.language, &c.user]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match &row.outcome {
        Ok(outcome) => {
            cells.extend(
                outcome
                    .columns()
                    .into_iter()
                    .map(|(_, value)| value.to_string()),
            );
            cells.push(String::new());
        }
        Err(error) => {
            cells.extend(std::iter::repeat_n(String::new(), matrix::COLUMNS));
            cells.push(error.to_string());
        }
    }
    cells
}

fn json(rows: &[Row]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let object: serde_json::Map<String, serde_json::Value> = HEADER
                .iter()
                .zip(cells(row))
                .filter(|(_, value)| !value.is_empty())
                .map(|(key, value)| (key.to_string(), value.into()))
                .collect();
            object.into()
        })
        .collect();
    rows.into()
}

fn csv(rows: &[Row]) -> String {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    writer.write_record(HEADER).expect("writing to memory");
    for row in rows {
        writer.write_record(cells(row)).expect("writing to memory");
    }
    String::from_utf8(writer.into_inner().expect("writing to memory")).expect("CSV of UTF-8 cells")
}

/// Columns padded to their widest cell; the error column only when needed.
fn table(rows: &[Row]) -> String {
    let show_errors = rows.iter().any(|r| r.outcome.is_err());
    let columns = if show_errors {
        HEADER.len()
    } else {
        HEADER.len() - 1
    };
    let all: Vec<Vec<String>> = std::iter::once(HEADER.iter().map(|h| h.to_string()).collect())
        .chain(rows.iter().map(cells))
        .map(|mut cells| {
            cells.truncate(columns);
            cells
        })
        .collect();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            all.iter()
                .map(|cells| cells[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    all.iter()
        .map(|cells| {
            let line: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            format!("{}\n", line.join("  ").trim_end())
        })
        .collect()
}
