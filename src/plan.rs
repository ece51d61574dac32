//! What a configuration change does: the contexts whose resolution differs
//! between two configurations, field by field, with where the old and the
//! new value were set (`mailrules plan`, like `terraform plan`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Location;
use crate::resolve::matrix::{Context, Outcome, Row};

/// How one context changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// Resolves in both, with different values.
    Changed { fields: Vec<FieldChange> },
    /// Resolved before, does not now.
    StopsResolving { error: String },
    /// Did not resolve before, does now.
    StartsResolving,
    /// A context only the new configuration has (a new administration,
    /// process, language or user with personal settings).
    Added,
    /// A context only the old configuration had.
    Removed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: &'static str,
    pub old: String,
    pub new: String,
    /// Where the old value was set (in the base configuration).
    pub old_source: Option<Location>,
    /// Where the new value is set: the edit to look at.
    pub new_source: Option<Location>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContextChange {
    pub context: Context,
    pub change: Change,
}

/// Compares two matrices (each sorted by context, as `matrix` returns them).
pub fn plan(old: &[Row], new: &[Row]) -> Vec<ContextChange> {
    let old: BTreeMap<&Context, &Result<Outcome, String>> =
        old.iter().map(|r| (&r.context, &r.outcome)).collect();
    let new: BTreeMap<&Context, &Result<Outcome, String>> =
        new.iter().map(|r| (&r.context, &r.outcome)).collect();
    let mut contexts: Vec<&Context> = old.keys().chain(new.keys()).copied().collect();
    contexts.sort();
    contexts.dedup();
    contexts
        .into_iter()
        .filter_map(|context| {
            let change = match (old.get(context), new.get(context)) {
                (Some(Ok(before)), Some(Ok(after))) => {
                    let fields = field_changes(before, after);
                    if fields.is_empty() {
                        return None;
                    }
                    Change::Changed { fields }
                }
                (Some(Ok(_)), Some(Err(error))) => Change::StopsResolving {
                    error: error.clone(),
                },
                (Some(Err(_)), Some(Ok(_))) => Change::StartsResolving,
                (Some(Err(_)), Some(Err(_))) => return None,
                (None, Some(_)) => Change::Added,
                (Some(_), None) => Change::Removed,
                (None, None) => unreachable!("the context came from one of them"),
            };
            Some(ContextChange {
                context: context.clone(),
                change,
            })
        })
        .collect()
}

fn field_changes(before: &Outcome, after: &Outcome) -> Vec<FieldChange> {
    before
        .columns()
        .into_iter()
        .zip(after.columns())
        .filter(|((_, old), (_, new))| old != new)
        .map(|((field, old), (_, new))| FieldChange {
            field,
            old,
            new,
            old_source: before.source(field).cloned(),
            new_source: after.source(field).cloned(),
        })
        .collect()
}
