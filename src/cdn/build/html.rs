//! HTML: minified by minify-html with its standards-compliant settings, then read and rewritten
//! by lol_html (Cloudflare's streaming rewriter) — so references are found in exactly the
//! markup that ships, and a rewritten name cannot be lost to a later pass.
//!
//! References: `<link href>` (stylesheets, icons, web app manifests, and preloads, which follow
//! a hashed name but never cause one;
//! other `rel`s, such as `canonical` or `alternate`, name URLs that must stay put and are left
//! alone), `<script src>`, `src` of `img`, `source`, `video`, `audio`, `track`, `embed`
//! and `input`, `srcset` of `img` and `source`, `<video poster>`, `url()` in `style`
//! attributes and `<style>` elements, module specifiers in inline scripts, and navigations
//! (`<a href>`, `<area href>`, `<iframe src>`), whose local non-HTML targets are hashed too.

use std::borrow::Cow;
use std::cell::RefCell;

use lol_html::errors::SelectorError;
use lol_html::html_content::{Element, TextChunk};
use lol_html::{ElementContentHandlers, HandlerResult, RewriteStrSettings, Selector, rewrite_str};

use super::css;
use super::js;
use super::references::{RawRef, RefKind, rewrite_srcset};

/// The document `html` minified. minify-html never fails: what it cannot improve it keeps.
pub(crate) fn minify(html: &[u8]) -> Vec<u8> {
    let mut cfg = minify_html::Cfg::new();
    // Conservative: closing tags and the `<html>`/`<head>` start tags stay (some tools and
    // crawlers expect them); only standards-compliant output (quoted attributes where needed,
    // spaces between attributes, the doctype as written); inline CSS and JS are minified.
    cfg.keep_closing_tags = true;
    cfg.keep_html_and_head_opening_tags = true;
    cfg.minify_css = true;
    cfg.minify_js = true;
    cfg.allow_noncompliant_unquoted_attribute_values = false;
    cfg.allow_removing_spaces_between_attributes = false;
    cfg.allow_optimal_entities = false;
    cfg.minify_doctype = false;
    cfg.keep_comments = false;
    minify_html::minify(html, &cfg)
}

/// The references the document `html` (site file `file`) makes, in document order.
pub(crate) fn references(file: &str, html: &str) -> Result<Vec<RawRef>, String> {
    let mut found = Vec::new();
    walk(file, html, &mut |url, kind| {
        found.push(RawRef::new(url, kind));
        None
    })?;
    Ok(found)
}

/// The document with each reference passed through `rewrite` (given the URL as written and how
/// it was made; `None` keeps it).
pub(crate) fn rewrite(
    file: &str,
    html: &str,
    rewrite: &mut dyn FnMut(&str, RefKind) -> Option<String>,
) -> Result<String, String> {
    walk(file, html, rewrite)
}

type OnRef<'a> = RefCell<&'a mut dyn FnMut(&str, RefKind) -> Option<String>>;

/// Elements whose `src` is a file the page needs.
const SRC_SUBRESOURCES: [&str; 7] = ["img", "source", "video", "audio", "track", "embed", "input"];

/// Runs `on_ref` on every reference of `html` and applies the replacements it returns.
fn walk(file: &str, html: &str, on_ref: &mut dyn FnMut(&str, RefKind) -> Option<String>) -> Result<String, String> {
    let on_ref: OnRef<'_> = RefCell::new(on_ref);
    // The inline script being read: `Some(module?)` while its text is JavaScript.
    let script: RefCell<Option<bool>> = RefCell::new(None);
    let buffer = RefCell::new(String::new());
    let (on_ref, script, buffer) = (&on_ref, &script, &buffer);

    let mut handlers = vec![
        on_element("link[href]", move |el| {
            let rel = el.get_attribute("rel").unwrap_or_default().to_ascii_lowercase();
            let rels: Vec<&str> = rel.split_ascii_whitespace().collect();
            let kind = if rels.contains(&"modulepreload") {
                RefKind::ModulePreload
            } else if rels.iter().any(|rel| ["preload", "prefetch"].contains(rel)) {
                RefKind::Preload
            } else if rels
                .iter()
                .any(|rel| ["stylesheet", "icon", "apple-touch-icon", "mask-icon", "manifest"].contains(rel))
            {
                RefKind::Subresource
            } else {
                // `canonical`, `alternate` (a feed readers subscribe to), `preconnect`, ...:
                // URLs that must not move with their content.
                return Ok(());
            };
            url_attribute(el, "href", kind, on_ref)
        }),
        on_element("script", move |el| {
            let kind = script_type(el);
            if el.has_attribute("src") {
                *script.borrow_mut() = None;
                let kind = if kind == Some(true) { RefKind::Module } else { RefKind::ClassicScript };
                return url_attribute(el, "src", kind, on_ref);
            }
            *script.borrow_mut() = kind;
            Ok(())
        }),
        on_text("script", move |chunk| {
            let Some(module) = *script.borrow() else { return Ok(()) };
            inline_code(chunk, buffer, |code| {
                js::rewrite(code, module, &|specifier| (on_ref.borrow_mut())(specifier, RefKind::Module))
                    .map_err(|error| format!("inline script: {error}"))
            })
        }),
        on_text("style", move |chunk| {
            inline_code(chunk, buffer, |code| {
                css::rewrite(file, code, &|url| (on_ref.borrow_mut())(url, RefKind::Subresource))
                    .map_err(|error| format!("<style>: {error}"))
            })
        }),
        on_element("*[style]", move |el| {
            let Some(value) = el.get_attribute("style") else { return Ok(()) };
            // Only declarations with a URL are parsed: others have nothing to rewrite.
            if !value.to_ascii_lowercase().contains("url(") {
                return Ok(());
            }
            let decoded = decode_basic_entities(&value);
            let rewrite = |url: &str| (on_ref.borrow_mut())(url, RefKind::Subresource);
            let (_, rewritten) = css::style_attribute(file, &decoded, Some(&rewrite))
                .map_err(|error| format!("style attribute `{value}`: {error}"))?;
            if let Some(rewritten) = rewritten {
                el.set_attribute("style", &rewritten.replace('&', "&amp;"))?;
            }
            Ok(())
        }),
        on_element("base[href]", |_| {
            // It would change what every relative reference on the page resolves to.
            Err("<base href> is not supported: references are resolved against the page's own path".into())
        }),
        on_element("video[poster]", move |el| url_attribute(el, "poster", RefKind::Subresource, on_ref)),
    ];
    for selector in ["a[href]", "area[href]"] {
        handlers.push(on_element(selector, move |el| url_attribute(el, "href", RefKind::Navigation, on_ref)));
    }
    handlers.push(on_element("iframe[src]", move |el| url_attribute(el, "src", RefKind::Navigation, on_ref)));
    for tag in SRC_SUBRESOURCES {
        let selector = format!("{tag}[src]");
        handlers.push(on_element(&selector, move |el| url_attribute(el, "src", RefKind::Subresource, on_ref)));
    }
    for selector in ["img[srcset]", "source[srcset]"] {
        handlers.push(on_element(selector, move |el| {
            let Some(value) = el.get_attribute("srcset") else { return Ok(()) };
            let rewritten = rewrite_srcset(&value, |url| (on_ref.borrow_mut())(url, RefKind::Subresource));
            if let Some(rewritten) = rewritten {
                el.set_attribute("srcset", &rewritten)?;
            }
            Ok(())
        }));
    }
    let settings = handlers.into_iter().try_fold(RewriteStrSettings::new(), |settings, handler| {
        Ok::<_, String>(settings.append_element_content_handler(handler?))
    })?;
    rewrite_str(html, settings).map_err(|error| error.to_string())
}

type Handler<'h> = (Cow<'static, Selector>, ElementContentHandlers<'h>);

fn selector(selector: &str) -> Result<Cow<'static, Selector>, String> {
    let parsed: Selector =
        selector.parse().map_err(|error: SelectorError| format!("selector `{selector}`: {error}"))?;
    Ok(Cow::Owned(parsed))
}

fn on_element<'h>(
    selector_text: &str,
    handler: impl FnMut(&mut Element<'_, '_>) -> HandlerResult + 'h,
) -> Result<Handler<'h>, String> {
    Ok((selector(selector_text)?, ElementContentHandlers::default().element(handler)))
}

fn on_text<'h>(
    selector_text: &str,
    handler: impl FnMut(&mut TextChunk<'_>) -> HandlerResult + 'h,
) -> Result<Handler<'h>, String> {
    Ok((selector(selector_text)?, ElementContentHandlers::default().text(handler)))
}

/// Passes attribute `name`'s URL to `on_ref` and writes back the replacement, if any.
fn url_attribute(el: &mut Element<'_, '_>, name: &str, kind: RefKind, on_ref: &OnRef<'_>) -> HandlerResult {
    if let Some(value) = el.get_attribute(name)
        && let Some(replacement) = (on_ref.borrow_mut())(&value, kind)
    {
        el.set_attribute(name, &replacement)?;
    }
    Ok(())
}

/// Whether a `<script>` holds JavaScript: `Some(true)` for a module, `Some(false)` for a
/// classic script, `None` for data (`application/json`, `importmap`, templates).
fn script_type(el: &Element<'_, '_>) -> Option<bool> {
    let kind = el.get_attribute("type").unwrap_or_default().trim().to_ascii_lowercase();
    match kind.as_str() {
        "module" => Some(true),
        "" | "text/javascript" | "application/javascript" | "text/ecmascript" | "application/ecmascript" => Some(false),
        _ => None,
    }
}

/// Collects an element's text across chunks (lol_html streams it) and, at its last chunk,
/// writes `finish`'s replacement of the whole text, or the text as it was.
fn inline_code(
    chunk: &mut TextChunk<'_>,
    buffer: &RefCell<String>,
    finish: impl FnOnce(&str) -> Result<Option<String>, String>,
) -> HandlerResult {
    buffer.borrow_mut().push_str(chunk.as_str());
    if !chunk.last_in_text_node() {
        chunk.set_str(String::new());
        return Ok(());
    }
    let code = std::mem::take(&mut *buffer.borrow_mut());
    if code.trim().is_empty() {
        chunk.set_str(code);
        return Ok(());
    }
    let replacement = finish(&code)?;
    chunk.set_str(replacement.unwrap_or(code));
    Ok(())
}

/// The entities a `style` attribute's quotes and ampersands are written with.
fn decode_basic_entities(value: &str) -> String {
    if !value.contains('&') {
        return value.to_owned();
    }
    value
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Dashboard</title>
  <link rel="stylesheet" href="css/app.css">
  <link rel="icon" href="/img/logo.svg" type="image/svg+xml">
  <link rel="canonical" href="https://example.com/">
  <link rel="modulepreload" href="js/chart.js">
  <style>.hero { background: url(img/hero.png) }</style>
</head>
<body>
  <a href="reports.html">Reports</a>
  <a href="files/q3.pdf">Q3 (PDF)</a>
  <img src="img/logo.svg" srcset="img/logo.svg 1x, img/logo@2x.png 2x" alt="">
  <video poster="img/poster.png" src="media/intro.mp4"></video>
  <div style="background-image: url('img/bg.png')"></div>
  <script type="application/json">{"url": "not/a/reference.js"}</script>
  <script type="module">import { boot } from "./js/app.js"; boot();</script>
  <script src="js/legacy.js"></script>
</body>
</html>
"#;

    #[test]
    fn references_are_found_with_how_they_were_made() {
        let found = references("index.html", PAGE).unwrap();
        let pairs: Vec<(&str, RefKind)> = found.iter().map(|r| (r.url.as_str(), r.kind)).collect();
        use RefKind::*;
        assert_eq!(
            pairs,
            [
                ("css/app.css", Subresource),
                ("/img/logo.svg", Subresource),
                ("js/chart.js", ModulePreload),
                ("img/hero.png", Subresource),
                ("reports.html", Navigation),
                ("files/q3.pdf", Navigation),
                ("img/logo.svg", Subresource),
                ("img/logo.svg", Subresource),
                ("img/logo@2x.png", Subresource),
                ("img/poster.png", Subresource),
                ("media/intro.mp4", Subresource),
                ("img/bg.png", Subresource),
                ("./js/app.js", Module),
                ("js/legacy.js", ClassicScript),
            ]
        );
    }

    #[test]
    fn rewriting_replaces_every_kind_of_reference_and_nothing_else() {
        let html = rewrite("index.html", PAGE, &mut |url, _| {
            let (stem, ext) = url.rsplit_once('.')?;
            (!url.starts_with("http") && ext != "html").then(|| format!("{stem}.cafe0123.{ext}"))
        })
        .unwrap();
        for expected in [
            "href=\"css/app.cafe0123.css\"",
            "url(img/hero.cafe0123.png)",
            "srcset=\"img/logo.cafe0123.svg 1x,img/logo@2x.cafe0123.png 2x\"",
            "\"./js/app.cafe0123.js\"",
            "style=\"background-image:url(img/bg.cafe0123.png)\"",
            "poster=\"img/poster.cafe0123.png\"",
            "{\"url\": \"not/a/reference.js\"}",
            "href=\"reports.html\"",
            "href=\"https://example.com/\"",
        ] {
            assert!(html.contains(expected), "{expected} in {html}");
        }
    }

    #[test]
    fn minifying_keeps_closing_tags_and_the_head() {
        let minified = String::from_utf8(minify(PAGE.as_bytes())).unwrap();
        assert!(minified.len() < PAGE.len());
        assert!(
            minified.contains("<html") && minified.contains("<head>") && minified.contains("</body>"),
            "{minified}"
        );
        // What the minifier made is what references are read from: they are all still there.
        assert_eq!(references("index.html", &minified).unwrap().len(), 14, "{minified}");
    }

    #[test]
    fn a_base_element_is_refused_since_it_moves_every_relative_reference() {
        let error = references("index.html", "<head><base href=/app/></head>").unwrap_err();
        assert!(error.contains("<base href>"), "{error}");
    }

    #[test]
    fn an_inline_module_oxc_cannot_parse_is_an_error() {
        let error = references("index.html", "<script type=module>import {</script>").unwrap_err();
        assert!(error.contains("inline script"), "{error}");
    }
}
