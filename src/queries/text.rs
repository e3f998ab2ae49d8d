//! The text of a statement the parser does not understand, normalized without parsing, so it
//! still gets a stable fingerprint and is reported rather than dropped.

/// The statement with literals replaced by `?`, runs of whitespace and comments collapsed to
/// one space, and everything outside quoted identifiers lower-cased.
///
/// Placeholders (`$1`) are kept: they are already the shape. A list of literals such as
/// `IN (1, 2, 3)` becomes `in (?, ?, ?)`, so lists of different lengths stay different shapes,
/// as `pg_stat_statements` treats them.
pub fn normalize_text(sql: &str) -> String {
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

/// `pg_stat_statements` replaces the literal of a typed constant (`date '2024-01-01'`) with a
/// parameter, leaving `date $2`, which does not parse; `$2::date` means the same and does.
pub fn repair_typed_literals(sql: &str) -> String {
    const TYPES: [&str; 6] = ["timestamptz", "timestamp", "interval", "date", "time", "uuid"];
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    'scan: while !rest.is_empty() {
        for type_name in TYPES {
            let Some(head) = rest.get(..type_name.len() + 2) else { continue };
            let word_start = out.chars().last().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            if word_start && head.eq_ignore_ascii_case(&format!("{type_name} $")) {
                let digits: String = rest[type_name.len() + 2..].chars().take_while(char::is_ascii_digit).collect();
                if !digits.is_empty() {
                    out.push_str(&format!("${digits}::{type_name}"));
                    rest = &rest[type_name.len() + 2 + digits.len()..];
                    continue 'scan;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_become_placeholders_and_spacing_and_case_vanish() {
        assert_eq!(
            normalize_text("SELECT  close\n FROM prices WHERE symbol = 'AAPL' AND day > 10 LIMIT 5"),
            "select close from prices where symbol = ? and day > ? limit ?"
        );
    }

    #[test]
    fn identifiers_with_digits_placeholders_and_quoted_names_are_kept() {
        assert_eq!(
            normalize_text(r#"SELECT t1.x::float8 FROM "Prices" t1 WHERE a = $12 -- note"#),
            r#"select t1.x::float8 from "Prices" t1 where a = $12"#
        );
    }

    #[test]
    fn escaped_quotes_and_block_comments_are_handled() {
        assert_eq!(normalize_text("SELECT /* hint */ 'it''s', 1.5e3"), "select ?, ?");
    }

    #[test]
    fn typed_constants_normalized_by_pg_stat_statements_are_made_casts() {
        assert_eq!(
            repair_typed_literals("SELECT 1 FROM t WHERE d BETWEEN date $2 + $1 AND DATE $3 AND ts > timestamp $4"),
            "SELECT 1 FROM t WHERE d BETWEEN $2::date + $1 AND $3::date AND ts > $4::timestamp"
        );
        assert_eq!(repair_typed_literals("SELECT update_date $1"), "SELECT update_date $1");
        assert_eq!(repair_typed_literals("SELECT 1"), "SELECT 1");
    }
}
