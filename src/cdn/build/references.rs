//! References between a site's files: what a URL written in HTML, CSS or JS points at, and how
//! it is rewritten once the file it names has a hashed name.
//!
//! A hashed file stays in its source folder and only its name changes, so rewriting a
//! reference replaces its last path segment and keeps the rest as written: a relative
//! reference stays relative, a root-absolute one absolute, and the query and fragment stay.

/// How a reference was made: what a missing target means, and how a script is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefKind {
    /// A file the page or sheet needs (stylesheet, image, font, icon): a missing one is an error.
    Subresource,
    /// A classic `<script src>`, run as a script (its top-level names are globals).
    ClassicScript,
    /// Loaded as an ES module: `<script type=module src>`, `import`.
    Module,
    /// A preload (`<link rel=preload|prefetch>`): a hint that something else loads the file by
    /// the same URL (CSS, or a script's `fetch`). It follows the file's name where something
    /// else hashes it, and is never the reason a file is hashed: the script fetching it by its
    /// source name would get a 404.
    Preload,
    /// `<link rel=modulepreload>`: a [`RefKind::Preload`] of a module.
    ModulePreload,
    /// A navigation (`<a href>`, `<iframe src>`): the origin may serve it without a file (a
    /// route, a folder's index), so a missing target is left as written.
    Navigation,
}

impl RefKind {
    /// Whether this reference makes the file it names get a hashed name.
    pub(crate) fn hashes_target(self) -> bool {
        !matches!(self, RefKind::Preload | RefKind::ModulePreload)
    }
}

/// One reference as written in a file (for HTML, as it appears in the attribute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawRef {
    /// The URL as written.
    pub url: String,
    /// How it was made.
    pub kind: RefKind,
}

impl RawRef {
    pub(crate) fn new(url: impl Into<String>, kind: RefKind) -> RawRef {
        RawRef { url: url.into(), kind }
    }
}

/// What a reference points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// Another origin, a scheme (`data:`, `mailto:`), a fragment of the same document or
    /// nothing at all: left as written.
    External,
    /// A path inside the site, relative to its root with `/` separators (it may name no file).
    Local(String),
}

/// Resolves `url`, written in the site file `from` (relative to the site root), as a browser
/// would: relative to `from`'s folder, or to the root when it starts with `/`. A reference that
/// climbs above the root is refused (the reason is returned): it names nothing this build ships.
pub(crate) fn resolve(from: &str, url: &str) -> Result<Resolved, String> {
    let url = url.trim_matches(|c: char| c.is_ascii_whitespace());
    if url.is_empty() || url.starts_with('#') || url.starts_with('?') || url.starts_with("//") || has_scheme(url) {
        return Ok(Resolved::External);
    }
    let (path, _) = split_suffix(url);
    let path = percent_decode(path);
    let mut segments: Vec<&str> = Vec::new();
    if !path.starts_with('/') {
        segments.extend(from.split('/'));
        // The referencing file's own name.
        segments.pop();
    }
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err("climbs above the site's root".to_owned());
                }
            }
            segment => segments.push(segment),
        }
    }
    // `img/` names a folder: kept distinct from the file `img` by the trailing slash.
    let folder = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..") || path == "." || path == "..";
    let mut resolved = segments.join("/");
    if folder {
        resolved.push('/');
    }
    Ok(Resolved::Local(resolved))
}

/// `scheme:` at the start (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`).
fn has_scheme(url: &str) -> bool {
    let Some(colon) = url.find(':') else { return false };
    let scheme = &url[..colon];
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// Splits a URL into its path and its query-and-fragment (`?v=2#top`, possibly empty).
pub(crate) fn split_suffix(url: &str) -> (&str, &str) {
    let at = url.find(['?', '#']).unwrap_or(url.len());
    url.split_at(at)
}

/// `%XX` escapes decoded; text whose escapes do not decode to UTF-8 is kept as written.
fn percent_decode(path: &str) -> String {
    if !path.contains('%') {
        return path.to_owned();
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes.get(i + 1..i + 3).and_then(|hex| std::str::from_utf8(hex).ok());
        match escape.filter(|_| bytes[i] == b'%').and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).unwrap_or_else(|_| path.to_owned())
}

/// `url` with its last path segment replaced by `name` (the target's built file name); the
/// folder part, the query and the fragment stay as written.
pub(crate) fn rewrite_url(url: &str, name: &str) -> String {
    let url = url.trim_matches(|c: char| c.is_ascii_whitespace());
    let (path, suffix) = split_suffix(url);
    let folder = path.rfind('/').map_or("", |slash| &path[..=slash]);
    format!("{folder}{name}{suffix}")
}

/// The candidates of a `srcset` attribute: (URL, descriptor such as `2x` or `640w`), parsed
/// as the HTML standard does (a URL runs to whitespace; descriptors to a comma outside
/// parentheses).
pub(crate) fn srcset_candidates(value: &str) -> Vec<(&str, &str)> {
    let mut candidates = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
        if rest.is_empty() {
            return candidates;
        }
        let end = rest.find(|c: char| c.is_ascii_whitespace()).unwrap_or(rest.len());
        let (url, after) = rest.split_at(end);
        rest = after;
        if url.ends_with(',') {
            candidates.push((url.trim_end_matches(','), ""));
            continue;
        }
        let mut depth = 0usize;
        let mut stop = rest.len();
        for (at, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    stop = at;
                    break;
                }
                _ => {}
            }
        }
        let (descriptor, after) = rest.split_at(stop);
        rest = after;
        candidates.push((url, descriptor.trim()));
    }
}

/// A `srcset` value with each candidate's URL passed through `rewrite` (`None`: unchanged);
/// `None` when nothing changed, so the attribute is left exactly as written.
pub(crate) fn rewrite_srcset(value: &str, mut rewrite: impl FnMut(&str) -> Option<String>) -> Option<String> {
    let mut changed = false;
    let candidates: Vec<String> = srcset_candidates(value)
        .into_iter()
        .map(|(url, descriptor)| {
            let url = rewrite(url).inspect(|_| changed = true).unwrap_or_else(|| url.to_owned());
            if descriptor.is_empty() { url } else { format!("{url} {descriptor}") }
        })
        .collect();
    changed.then(|| candidates.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(path: &str) -> Result<Resolved, String> {
        Ok(Resolved::Local(path.to_owned()))
    }

    #[test]
    fn relative_references_resolve_against_the_referencing_file_s_folder() {
        assert_eq!(resolve("css/app.css", "base.css"), local("css/base.css"));
        assert_eq!(resolve("css/app.css", "./base.css"), local("css/base.css"));
        assert_eq!(resolve("css/app.css", "../fonts/inter.woff2?v=2#x"), local("fonts/inter.woff2"));
        assert_eq!(resolve("index.html", "css/app.css"), local("css/app.css"));
        assert_eq!(resolve("a/b/page.html", "/css/app.css"), local("css/app.css"));
        assert_eq!(resolve("index.html", "img/a%2Cb.png"), local("img/a,b.png"));
        assert_eq!(resolve("index.html", "reports/"), local("reports/"));
    }

    #[test]
    fn other_origins_schemes_and_fragments_are_external() {
        for url in
            ["https://cdn.example/x.js", "//cdn.example/x.js", "data:image/png;base64,AA", "#top", "mailto:a@b", ""]
        {
            assert_eq!(resolve("index.html", url), Ok(Resolved::External), "{url}");
        }
    }

    #[test]
    fn a_reference_above_the_root_is_refused() {
        assert!(resolve("index.html", "../secret.txt").is_err());
        assert!(resolve("css/app.css", "../../x.png").is_err());
    }

    #[test]
    fn rewriting_replaces_only_the_file_name_and_keeps_query_and_fragment() {
        assert_eq!(rewrite_url("../img/logo.svg#mark", "logo.1234abcd.svg"), "../img/logo.1234abcd.svg#mark");
        assert_eq!(rewrite_url("/css/app.css?v=1", "app.1234abcd.css"), "/css/app.1234abcd.css?v=1");
        assert_eq!(rewrite_url("app.js", "app.1234abcd.js"), "app.1234abcd.js");
    }

    #[test]
    fn srcset_candidates_keep_their_descriptors() {
        assert_eq!(srcset_candidates("a.png 1x, b.png 2x"), [("a.png", "1x"), ("b.png", "2x")]);
        assert_eq!(srcset_candidates("a.png, b.png 640w"), [("a.png", ""), ("b.png", "640w")]);
        // A URL runs to whitespace, commas included (the standard's rule).
        assert_eq!(srcset_candidates("a.png,b.png 640w"), [("a.png,b.png", "640w")]);
        let rewritten = rewrite_srcset("a.png 1x, b.png 2x", |url| (url == "b.png").then(|| "b.12345678.png".into()));
        assert_eq!(rewritten.as_deref(), Some("a.png 1x,b.12345678.png 2x"));
        assert_eq!(rewrite_srcset("a.png 1x", |_| None), None);
    }
}
