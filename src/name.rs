//! Validation of metric and label names against the Prometheus 0.0.4 / remote-write 1.0 grammar.
//!
//! Names are refused, never rewritten: a q user who typed `kdb.rows` learns at declaration time,
//! not from a receiver that silently drops the series.

use thiserror::Error;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name does not match the grammar.
    #[error("invalid {what} name '{name}' (must match {grammar})")]
    Invalid {
        /// What the name is for (`metric`, `label`).
        what: &'static str,
        /// The name as given.
        name: String,
        /// The grammar it must match.
        grammar: &'static str,
    },
    /// Names beginning `__` belong to Prometheus.
    #[error("{what} name '{name}' is reserved: names starting with __ belong to Prometheus")]
    Reserved {
        /// What the name is for (`metric`, `label`).
        what: &'static str,
        /// The name as given.
        name: String,
    },
}

const METRIC_GRAMMAR: &str = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL_GRAMMAR: &str = "[a-zA-Z_][a-zA-Z0-9_]*";

/// Checks a metric family name.
///
/// ```
/// use kdbprom::name::check_metric;
/// assert!(check_metric("kdb_requests_total").is_ok());
/// assert_eq!(
///     check_metric("kdb.rows").unwrap_err().to_string(),
///     "invalid metric name 'kdb.rows' (must match [a-zA-Z_:][a-zA-Z0-9_:]*)"
/// );
/// ```
pub fn check_metric(name: &str) -> Result<(), NameError> {
    check(name, "metric", METRIC_GRAMMAR, |c| c == b':')
}

/// Checks a label name (the `__` prefix is reserved).
///
/// ```
/// use kdbprom::name::check_label;
/// assert!(check_label("table").is_ok());
/// assert!(check_label("__name__").is_err());
/// ```
pub fn check_label(name: &str) -> Result<(), NameError> {
    check(name, "label", LABEL_GRAMMAR, |_| false)
}

fn check(name: &str, what: &'static str, grammar: &'static str, extra: fn(u8) -> bool) -> Result<(), NameError> {
    let b = name.as_bytes();
    let first_ok = b.first().is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_' || extra(c));
    let rest_ok = b.iter().skip(1).all(|&c| c.is_ascii_alphanumeric() || c == b'_' || extra(c));
    if !(first_ok && rest_ok) {
        return Err(NameError::Invalid { what, name: name.to_owned(), grammar });
    }
    if name.starts_with("__") {
        return Err(NameError::Reserved { what, name: name.to_owned() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_table() {
        for ok in ["a", "_a", "a:b", "kdb_x_total", "A9"] {
            assert!(check_metric(ok).is_ok(), "{ok}");
        }
        for bad in ["", "9a", "a-b", "a.b", "a b", "é", "__x"] {
            assert!(check_metric(bad).is_err(), "{bad}");
        }
        assert!(check_label("a:b").is_err(), "colons are for metric names only");
        assert!(check_label("le").is_ok(), "le is refused per kind by the registry, not here");
    }
}
