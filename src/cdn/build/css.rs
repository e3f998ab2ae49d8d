//! CSS with lightningcss: minified without browser targets (nothing is prefixed or lowered; the
//! output may use any syntax current browsers read, such as 8-digit hex colours), its `url()`
//! and `@import` references read and rewritten on the parsed sheet by lightningcss's visitor,
//! never by string surgery.

use std::convert::Infallible;

use lightningcss::declaration::DeclarationBlock;
use lightningcss::rules::CssRule;
use lightningcss::stylesheet::{MinifyOptions, ParserOptions, PrinterOptions, StyleAttribute, StyleSheet};
use lightningcss::values::url::Url;
use lightningcss::visit_types;
use lightningcss::visitor::{Visit, VisitTypes, Visitor};

use super::references::{RawRef, RefKind};

/// What a rewrite does with one reference: the URL to write instead, or `None` to keep it.
pub(crate) type Rewrite<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Visits every `url()` and `@import`: records each, and rewrites it when given a rewrite.
struct Urls<'a> {
    found: Vec<RawRef>,
    rewrite: Option<Rewrite<'a>>,
    changed: bool,
}

impl<'a> Urls<'a> {
    fn new(rewrite: Option<Rewrite<'a>>) -> Self {
        Urls { found: Vec::new(), rewrite, changed: false }
    }

    fn seen(&mut self, url: &str) -> Option<String> {
        self.found.push(RawRef::new(url, RefKind::Subresource));
        let replacement = self.rewrite.and_then(|rewrite| rewrite(url));
        self.changed |= replacement.is_some();
        replacement
    }
}

impl<'i> Visitor<'i> for Urls<'_> {
    type Error = Infallible;

    fn visit_types(&self) -> VisitTypes {
        visit_types!(URLS | RULES)
    }

    fn visit_url(&mut self, url: &mut Url<'i>) -> Result<(), Infallible> {
        if let Some(replacement) = self.seen(&url.url) {
            url.url = replacement.into();
        }
        Ok(())
    }

    fn visit_rule(&mut self, rule: &mut CssRule<'i>) -> Result<(), Infallible> {
        // `@import` holds its URL as a plain string, not a `Url`: the visitor does not see it.
        if let CssRule::Import(import) = rule
            && let Some(replacement) = self.seen(&import.url)
        {
            import.url = replacement.into();
        }
        rule.visit_children(self)
    }
}

fn parser_options(file: &str) -> ParserOptions<'_> {
    // Error recovery stays off: a sheet lightningcss cannot read fails the build, rather than
    // shipping with the rules it skipped.
    ParserOptions { filename: file.to_owned(), ..ParserOptions::default() }
}

fn printer() -> PrinterOptions<'static> {
    PrinterOptions { minify: true, ..PrinterOptions::default() }
}

/// The stylesheet `text` (site file `file`) minified, with the references it still makes.
pub(crate) fn minify(file: &str, text: &str) -> Result<(String, Vec<RawRef>), String> {
    let mut sheet = StyleSheet::parse(text, parser_options(file)).map_err(|error| error.to_string())?;
    sheet.minify(MinifyOptions::default()).map_err(|error| error.to_string())?;
    // Read after minifying: a rule the minifier merged away references nothing any more.
    let mut urls = Urls::new(None);
    let _ = sheet.visit(&mut urls);
    let code = sheet.to_css(printer()).map_err(|error| error.to_string())?.code;
    Ok((code, urls.found))
}

/// The stylesheet `text` with its references rewritten and printed minified; `None` when no
/// reference changed.
pub(crate) fn rewrite(file: &str, text: &str, rewrite: Rewrite<'_>) -> Result<Option<String>, String> {
    let mut sheet = StyleSheet::parse(text, parser_options(file)).map_err(|error| error.to_string())?;
    let mut urls = Urls::new(Some(rewrite));
    let _ = sheet.visit(&mut urls);
    if !urls.changed {
        return Ok(None);
    }
    Ok(Some(sheet.to_css(printer()).map_err(|error| error.to_string())?.code))
}

/// A `style` attribute's declarations with their `url()`s passed through `rewrite`: the
/// references found, and the declarations printed minified when one changed.
pub(crate) fn style_attribute(
    file: &str,
    text: &str,
    rewrite: Option<Rewrite<'_>>,
) -> Result<(Vec<RawRef>, Option<String>), String> {
    let mut style = StyleAttribute::parse(text, parser_options(file)).map_err(|error| error.to_string())?;
    let mut urls = Urls::new(rewrite);
    let _ = visit_declarations(&mut style.declarations, &mut urls);
    if !urls.changed {
        return Ok((urls.found, None));
    }
    let code = style.to_css(printer()).map_err(|error| error.to_string())?.code;
    Ok((urls.found, Some(code)))
}

fn visit_declarations<'i>(declarations: &mut DeclarationBlock<'i>, urls: &mut Urls<'_>) -> Result<(), Infallible> {
    declarations.visit(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sheet_is_minified_and_its_imports_and_urls_are_found() {
        let text = "@import \"base.css\";\n.logo {\n  background: url(../img/logo.svg) no-repeat;\n}\n\
                    @font-face { font-family: Inter; src: url('../fonts/inter.woff2') format('woff2'); }\n";
        let (code, found) = minify("css/app.css", text).unwrap();
        assert!(code.len() < text.len() && !code.contains('\n'), "{code}");
        let urls: Vec<&str> = found.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(urls, ["base.css", "../img/logo.svg", "../fonts/inter.woff2"]);
    }

    #[test]
    fn rewriting_changes_only_the_urls_it_is_given() {
        let (code, _) =
            minify("app.css", "@import 'base.css'; a { background: url(a.png) } b { background: url(b.png) }").unwrap();
        let rewritten = rewrite("app.css", &code, &|url| (url != "b.png").then(|| url.replace('.', ".12345678.")))
            .unwrap()
            .unwrap();
        assert!(rewritten.contains("base.12345678.css") && rewritten.contains("a.12345678.png"), "{rewritten}");
        assert!(rewritten.contains("url(b.png)"), "{rewritten}");
        assert_eq!(rewrite("app.css", &code, &|_| None).unwrap(), None);
    }

    #[test]
    fn a_sheet_lightningcss_cannot_parse_is_an_error() {
        assert!(minify("broken.css", ".a..b { color: red }").is_err());
    }

    #[test]
    fn a_style_attribute_s_urls_are_found_and_rewritten() {
        let (found, rewritten) = style_attribute(
            "index.html",
            "background-image: url(img/hero.png)",
            Some(&|_| Some("img/hero.1.png".into())),
        )
        .unwrap();
        assert_eq!(found[0].url, "img/hero.png");
        assert_eq!(rewritten.as_deref(), Some("background-image:url(img/hero.1.png)"));
    }
}
