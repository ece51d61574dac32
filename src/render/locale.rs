//! Template filters that format amounts and dates in the message's own
//! language (after fallback), so that one message never mixes conventions:
//! `{{ invoice.total | amount }}`, `{{ invoice.due | date }}`.

use minijinja::value::Value;
use minijinja::{Error, ErrorKind, State};

/// The base language of the message being rendered (`nl-BE` -> `nl`).
fn language(state: &State<'_, '_>) -> String {
    let tag = state
        .lookup("language")
        .and_then(|l| l.as_str().map(str::to_string))
        .unwrap_or_default();
    tag.split('-')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

/// A number with two decimals, grouped as the language writes it:
/// `1.234,56` (nl, de), `1 234,56` (fr), `1,234.56` (en and others).
pub fn amount(state: &State<'_, '_>, value: Value) -> Result<String, Error> {
    let number: f64 = match value.as_str() {
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| invalid(format!("`amount` needs a number, got `{text}`")))?,
        None => f64::try_from(value.clone())
            .map_err(|_| invalid(format!("`amount` needs a number, got `{value}`")))?,
    };
    if !number.is_finite() {
        return Err(invalid("`amount` needs a finite number".into()));
    }
    let cents = (number.abs() * 100.0).round() as u128;
    let (whole, fraction) = (cents / 100, cents % 100);
    let (group, decimal) = match language(state).as_str() {
        "nl" | "de" => (".", ","),
        "fr" => ("\u{202f}", ","),
        _ => (",", "."),
    };
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push_str(group);
        }
        grouped.push(digit);
    }
    let sign = if number < 0.0 && cents > 0 { "-" } else { "" };
    Ok(format!("{sign}{grouped}{decimal}{fraction:02}"))
}

const MONTHS: [(&str, [&str; 12]); 4] = [
    (
        "nl",
        [
            "januari",
            "februari",
            "maart",
            "april",
            "mei",
            "juni",
            "juli",
            "augustus",
            "september",
            "oktober",
            "november",
            "december",
        ],
    ),
    (
        "en",
        [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ],
    ),
    (
        "de",
        [
            "Januar",
            "Februar",
            "März",
            "April",
            "Mai",
            "Juni",
            "Juli",
            "August",
            "September",
            "Oktober",
            "November",
            "Dezember",
        ],
    ),
    (
        "fr",
        [
            "janvier",
            "février",
            "mars",
            "avril",
            "mai",
            "juin",
            "juillet",
            "août",
            "septembre",
            "octobre",
            "novembre",
            "décembre",
        ],
    ),
];

/// An ISO date (`2026-12-01`) as the language writes it: `1 december 2026`
/// (nl), `1 December 2026` (en), `1. Dezember 2026` (de), `1 décembre
/// 2026` (fr); other languages keep the ISO form.
pub fn date(state: &State<'_, '_>, value: Value) -> Result<String, Error> {
    let text = value.as_str().ok_or_else(|| {
        invalid(format!(
            "`date` needs a date such as 2026-12-01, got `{value}`"
        ))
    })?;
    let parts: Vec<u32> = text.split('-').filter_map(|p| p.parse().ok()).collect();
    let [year, month, day] = parts[..] else {
        return Err(invalid(format!(
            "`date` needs a date such as 2026-12-01, got `{text}`"
        )));
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(invalid(format!("`{text}` is not a date")));
    }
    let language = language(state);
    let Some((_, names)) = MONTHS.iter().find(|(l, _)| *l == language) else {
        return Ok(text.to_string());
    };
    let month = names[month as usize - 1];
    Ok(match language.as_str() {
        "de" => format!("{day}. {month} {year}"),
        _ => format!("{day} {month} {year}"),
    })
}
