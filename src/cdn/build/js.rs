//! JavaScript with oxc: parsed (a file oxc cannot parse fails the build), minified (oxc's
//! compressor with its safest options, names mangled), printed without whitespace; its module
//! references (`import ... from`, `export ... from`, `import()` of a literal) found by the
//! parser's module record and rewritten in place at their spans.
//!
//! A module's top-level names are its own, so they are mangled; a classic script's are globals
//! other scripts may read, so they are kept.

use oxc_allocator::Allocator;
use oxc_codegen::{Codegen, CodegenOptions};
use oxc_minifier::{CompressOptions, MangleOptions, Minifier, MinifierOptions};
use oxc_parser::{Parser, ParserReturn};
use oxc_span::SourceType;

use super::references::{RawRef, RefKind};

/// What a rewrite does with one specifier: the one to write instead, or `None` to keep it.
pub(crate) type Rewrite<'a> = &'a dyn Fn(&str) -> Option<String>;

fn source_type(module: bool) -> SourceType {
    if module { SourceType::mjs() } else { SourceType::cjs() }
}

fn parse<'a>(allocator: &'a Allocator, text: &'a str, module: bool) -> Result<ParserReturn<'a>, String> {
    let parsed = Parser::new(allocator, text, source_type(module)).parse();
    if let Some(error) = parsed.errors.first() {
        return Err(error.to_string());
    }
    if parsed.panicked {
        return Err("the parser gave up".to_owned());
    }
    Ok(parsed)
}

/// How a file reads before it is built: whether it has module syntax (`import`, `export`,
/// `import.meta`) and the specifiers it requests. Parsed as a module first, as a classic
/// script when that fails (sloppy-mode code that is no module).
pub(crate) fn scan(text: &str) -> Result<(bool, Vec<RawRef>), String> {
    let allocator = Allocator::default();
    let (module, parsed) = match parse(&allocator, text, true) {
        Ok(parsed) => (true, parsed),
        Err(module_error) => match parse(&allocator, text, false) {
            Ok(parsed) => (false, parsed),
            Err(_) => return Err(module_error),
        },
    };
    let module = module && parsed.module_record.has_module_syntax;
    let found = specifiers(text, &parsed).into_iter().map(|(_, specifier)| RawRef::new(specifier, RefKind::Module));
    Ok((module, found.collect()))
}

/// The script `text` minified, as a module or a classic script.
pub(crate) fn minify(text: &str, module: bool) -> Result<String, String> {
    let allocator = Allocator::default();
    let mut program = parse(&allocator, text, module)?.program;
    let options = MinifierOptions {
        mangle: Some(MangleOptions { top_level: module, ..MangleOptions::default() }),
        compress: Some(CompressOptions::safest()),
    };
    let minified = Minifier::new(options).minify(&allocator, &mut program);
    let code =
        Codegen::new().with_options(CodegenOptions::minify()).with_scoping(minified.scoping).build(&program).code;
    Ok(code)
}

/// The module references the script `text` makes; an error if it does not parse (for
/// minified output, that would be a minifier's bug, caught before it ships).
pub(crate) fn references(text: &str, module: bool) -> Result<Vec<RawRef>, String> {
    let allocator = Allocator::default();
    let parsed = parse(&allocator, text, module)?;
    Ok(specifiers(text, &parsed).into_iter().map(|(_, specifier)| RawRef::new(specifier, RefKind::Module)).collect())
}

/// The script `text` with its module specifiers passed through `rewrite`; `None` when none
/// changed. Only the string literals change: the rest stays byte for byte.
pub(crate) fn rewrite(text: &str, module: bool, rewrite: Rewrite<'_>) -> Result<Option<String>, String> {
    let allocator = Allocator::default();
    let parsed = parse(&allocator, text, module)?;
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for ((start, end), specifier) in specifiers(text, &parsed) {
        let Some(replacement) = rewrite(&specifier) else { continue };
        out.push_str(&text[copied..start]);
        // A JSON string is a JavaScript string literal.
        out.push_str(&serde_json::Value::String(replacement).to_string());
        copied = end;
    }
    if copied == 0 {
        return Ok(None);
    }
    out.push_str(&text[copied..]);
    Ok(Some(out))
}

/// Each module specifier with the byte range of its string literal (quotes included), in
/// source order: static imports and re-exports, and dynamic imports of a plain literal (one
/// built at run time cannot be known; the files it loads keep their names unless something
/// else references them). Only paths count: `./`, `../` or `/` at the start.
fn specifiers(text: &str, parsed: &ParserReturn<'_>) -> Vec<((usize, usize), String)> {
    let record = &parsed.module_record;
    let mut found: Vec<((usize, usize), String)> = record
        .requested_modules
        .iter()
        .flat_map(|(name, requests)| {
            requests
                .iter()
                .filter(|request| !request.is_type)
                .map(|request| ((request.span.start as usize, request.span.end as usize), name.to_string()))
        })
        .collect();
    for dynamic in record.dynamic_imports.iter() {
        let (start, end) = (dynamic.module_request.start as usize, dynamic.module_request.end as usize);
        if let Some(value) = text.get(start..end).and_then(plain_literal) {
            found.push(((start, end), value));
        }
    }
    // Bare specifiers (`lodash`) are an import map's business, URLs another origin's.
    found.retain(|(_, specifier)| ["./", "../", "/"].iter().any(|start| specifier.starts_with(start)));
    // The module record keeps requests in a hash map: sorted, so output is the same each run.
    found.sort();
    found.dedup();
    found
}

/// The value of a string literal without escapes (`'./x.js'`, `"./x.js"`, `` `./x.js` ``).
fn plain_literal(literal: &str) -> Option<String> {
    let quote = literal.chars().next()?;
    let inner = literal.strip_prefix(quote)?.strip_suffix(quote)?;
    let plain = ['\'', '"', '`'].contains(&quote) && !inner.contains(['\\', quote]) && !inner.contains("${");
    plain.then(|| inner.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = r#"import { formatMoney } from "./format.js";
import { debounce } from "lodash-es";
export { drawChart } from './chart.js';
import type_only from "./types.js";
const load = () => import('./reports.js');
const later = (name) => import(`./pages/${name}.js`);
export function total(rows) { return formatMoney(rows.reduce((sum, row) => sum + row.amount, 0)); }
"#;

    #[test]
    fn static_and_literal_dynamic_imports_are_found_in_source_order() {
        let (module, found) = scan(APP).unwrap();
        assert!(module);
        let specifiers: Vec<&str> = found.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(specifiers, ["./format.js", "./chart.js", "./types.js", "./reports.js"]);
    }

    #[test]
    fn a_script_without_module_syntax_is_classic_and_keeps_its_globals() {
        let text = "var dashboardTheme = 'dark'; function applyTheme(el) { el.className = dashboardTheme; }";
        assert!(!scan(text).unwrap().0);
        let code = minify(text, false).unwrap();
        assert!(code.contains("dashboardTheme") && code.contains("applyTheme"), "{code}");
    }

    #[test]
    fn minified_modules_keep_their_imports_and_rewriting_touches_only_specifiers() {
        let code = minify(APP, true).unwrap();
        assert!(code.len() < APP.len(), "{code}");
        let found: Vec<String> = references(&code, true).unwrap().into_iter().map(|r| r.url).collect();
        assert_eq!(found.len(), 4, "{code}");
        let rewritten =
            rewrite(&code, true, &|s| (s == "./reports.js").then(|| "./reports.0badf00d.js".into())).unwrap().unwrap();
        assert!(rewritten.contains("\"./reports.0badf00d.js\""), "{rewritten}");
        assert_eq!(rewritten.len(), code.len() + 9);
        assert_eq!(rewrite(&code, true, &|_| None).unwrap(), None);
    }

    #[test]
    fn a_script_oxc_cannot_parse_is_an_error() {
        assert!(scan("export function (").is_err());
        assert!(minify("let x = ;", true).is_err());
    }
}
