//! Checks on what goes into the store: symbols, rows, schema names.

use super::{DailyClose, StoreError};

/// Longest symbol accepted, in bytes.
pub const MAXIMUM_SYMBOL_LEN: usize = 32;

/// A symbol is 1 to [`MAXIMUM_SYMBOL_LEN`] bytes of letters, digits and `.`, `-`, `_`, `^`, `=`
/// (as in `BRK.B`, `^GSPC`, `EURUSD=X`).
pub fn check_symbol(symbol: &str) -> Result<(), &'static str> {
    if symbol.is_empty() || symbol.len() > MAXIMUM_SYMBOL_LEN {
        return Err("a symbol has 1 to 32 characters");
    }
    if !symbol.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '^' | '=')) {
        return Err("a symbol has only letters, digits and . - _ ^ =");
    }
    Ok(())
}

pub(super) fn check_row(row: &DailyClose) -> Result<(), StoreError> {
    let invalid = |reason| StoreError::InvalidRow { symbol: row.symbol.clone(), day: row.day, reason };
    check_symbol(&row.symbol).map_err(invalid)?;
    if !(row.close.is_finite() && row.close > 0.0) {
        return Err(invalid("the close must be a positive finite number"));
    }
    Ok(())
}

/// Schema names are spliced into `CREATE SCHEMA` and the search path, so only plain
/// lower-case identifiers are accepted.
pub(super) fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    if crate::db::is_plain_schema_name(schema) { Ok(()) } else { Err(StoreError::InvalidSchemaName(schema.to_owned())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_must_be_plain_identifiers() {
        assert!(check_schema_name("test_market_1a2b").is_ok());
        for bad in ["", "1abc", "Public", "a-b", "a;drop", &"a".repeat(64)] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symbols_are_short_and_plain() {
        for good in ["AAPL", "BRK.B", "^GSPC", "EURUSD=X", "SYN0001"] {
            assert!(check_symbol(good).is_ok(), "{good}");
        }
        for bad in ["", "A B", "AAPL;", &"A".repeat(33)] {
            assert!(check_symbol(bad).is_err(), "{bad}");
        }
    }
}
