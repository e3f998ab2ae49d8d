//! Fingerprints of SQL statements: the same id for every run of the same query shape, whatever
//! its literals, spacing or keyword case, so a slow-query analyzer can group events by it.

use sha2::{Digest, Sha256};

/// The statement with literals replaced by `?`, runs of whitespace and comments collapsed to
/// one space, and everything outside quoted identifiers lower-cased.
///
/// Placeholders (`$1`) are kept: they are already the shape. A list of literals such as
/// `IN (1, 2, 3)` becomes `in (?, ?, ?)`, so lists of different lengths stay different shapes,
/// as `pg_stat_statements` treats them.
pub fn normalize_sql(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut index = 0;
    let mut pending_space = false;
    while index < chars.len() {
        let current = chars[index];
        let next = chars.get(index + 1).copied();
        // Whitespace and comments only matter as separators.
        if current.is_whitespace() {
            pending_space = true;
            index += 1;
            continue;
        }
        if current == '-' && next == Some('-') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
            pending_space = true;
            continue;
        }
        if current == '/' && next == Some('*') {
            index += 2;
            while index < chars.len() && !(chars[index] == '*' && chars.get(index + 1) == Some(&'/')) {
                index += 1;
            }
            index += 2;
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        match current {
            '\'' => {
                index = skip_quoted(&chars, index, '\'');
                out.push('?');
            }
            '"' => {
                // A quoted identifier is case-sensitive: copy it as written.
                let end = skip_quoted(&chars, index, '"');
                out.extend(&chars[index..end]);
                index = end;
            }
            '$' if next.is_some_and(|c| c.is_ascii_digit()) => {
                out.push('$');
                index += 1;
                while index < chars.len() && chars[index].is_ascii_digit() {
                    out.push(chars[index]);
                    index += 1;
                }
            }
            c if c.is_ascii_digit() && !previous_is_word(&out) => {
                while index < chars.len() && (chars[index].is_ascii_alphanumeric() || chars[index] == '.') {
                    index += 1;
                }
                out.push('?');
            }
            c => {
                out.extend(c.to_lowercase());
                index += 1;
            }
        }
    }
    out
}

/// The fingerprint of a statement: the first 16 hex digits (64 bits) of the SHA-256 of
/// [`normalize_sql`]. Stable across processes and releases, unlike `std::hash`.
pub fn sql_fingerprint(sql: &str) -> String {
    let digest = Sha256::digest(normalize_sql(sql).as_bytes());
    hex::encode(&digest[..8])
}

/// The index just past the quoted run that opens at `start`; a doubled quote is an escaped one.
fn skip_quoted(chars: &[char], start: usize, quote: char) -> usize {
    let mut index = start + 1;
    while index < chars.len() {
        if chars[index] == quote {
            if chars.get(index + 1) == Some(&quote) {
                index += 2;
                continue;
            }
            return index + 1;
        }
        index += 1;
    }
    chars.len()
}

/// Whether the output ends inside a word, so a digit continues an identifier (`t1`, `float8`).
fn previous_is_word(out: &str) -> bool {
    out.chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_become_placeholders_and_spacing_and_case_vanish() {
        assert_eq!(
            normalize_sql("SELECT  close\n FROM prices WHERE symbol = 'AAPL' AND day > 10 LIMIT 5"),
            "select close from prices where symbol = ? and day > ? limit ?"
        );
    }

    #[test]
    fn identifiers_with_digits_placeholders_and_quoted_names_are_kept() {
        assert_eq!(
            normalize_sql(r#"SELECT t1.x::float8 FROM "Prices" t1 WHERE a = $12 -- note"#),
            r#"select t1.x::float8 from "Prices" t1 where a = $12"#
        );
    }

    #[test]
    fn escaped_quotes_and_block_comments_are_handled() {
        assert_eq!(normalize_sql("SELECT /* hint */ 'it''s', 1.5e3"), "select ?, ?");
    }

    #[test]
    fn the_same_shape_has_the_same_fingerprint() {
        let a = sql_fingerprint("SELECT * FROM prices WHERE symbol = 'A' LIMIT 10");
        let b = sql_fingerprint("select *\n  from prices\n where symbol = 'BB' limit 300");
        let c = sql_fingerprint("SELECT * FROM symbols WHERE symbol = 'A'");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 16);
    }
}
