//! What a configuration change does: the contexts whose resolution differs
//! between two configurations, field by field, with where the old and the
//! new value were set (`mailrules plan`, like `terraform plan`).

use std::sync::Arc;

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

/// Compares two matrices, each in context order as `matrix` returns them,
/// by walking both at once.
pub fn plan(old: &[Row], new: &[Row]) -> Vec<ContextChange> {
    use std::cmp::Ordering;
    let (mut o, mut n) = (0, 0);
    let mut changes = Vec::new();
    while o < old.len() || n < new.len() {
        let order = match (old.get(o), new.get(n)) {
            (Some(a), Some(b)) => a.context.cmp(&b.context),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        let (context, change) = match order {
            Ordering::Less => {
                o += 1;
                (&old[o - 1].context, Some(Change::Removed))
            }
            Ordering::Greater => {
                n += 1;
                (&new[n - 1].context, Some(Change::Added))
            }
            Ordering::Equal => {
                o += 1;
                n += 1;
                (
                    &new[n - 1].context,
                    compare(&old[o - 1].outcome, &new[n - 1].outcome),
                )
            }
        };
        if let Some(change) = change {
            changes.push(ContextChange {
                context: context.clone(),
                change,
            });
        }
    }
    changes
}

fn compare(
    old: &Result<Arc<Outcome>, Arc<str>>,
    new: &Result<Arc<Outcome>, Arc<str>>,
) -> Option<Change> {
    match (old, new) {
        (Ok(before), Ok(after)) => {
            let fields = field_changes(before, after);
            (!fields.is_empty()).then_some(Change::Changed { fields })
        }
        (Ok(_), Err(error)) => Some(Change::StopsResolving {
            error: error.to_string(),
        }),
        (Err(_), Ok(_)) => Some(Change::StartsResolving),
        (Err(_), Err(_)) => None,
    }
}

fn field_changes(before: &Outcome, after: &Outcome) -> Vec<FieldChange> {
    before
        .columns()
        .into_iter()
        .zip(after.columns())
        .filter(|((_, old), (_, new))| old != new)
        .map(|((field, old), (_, new))| FieldChange {
            field,
            old: old.to_string(),
            new: new.to_string(),
            old_source: before.source(field).cloned(),
            new_source: after.source(field).cloned(),
        })
        .collect()
}
