use std::path::{Path, PathBuf};

use super::*;

/// A source folder holding `files` (path, content).
fn site(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

/// Builds `src` into a fresh folder; the folder (kept alive), the report and the manifest read
/// back from disk.
fn build(src: &Path) -> (tempfile::TempDir, BuildReport, Manifest) {
    let parent = tempfile::tempdir().unwrap();
    let report = build_site(src, &parent.path().join("out"), &BuildOptions::default()).unwrap();
    let manifest = Manifest::from_json(&std::fs::read(&report.manifest_path).unwrap()).unwrap();
    (parent, report, manifest)
}

fn out(parent: &tempfile::TempDir) -> PathBuf {
    parent.path().join("out")
}

fn read(parent: &tempfile::TempDir, file: &str) -> String {
    String::from_utf8(std::fs::read(out(parent).join(file)).unwrap()).unwrap()
}

const PAGE: &[u8] = br#"<!DOCTYPE html>
<html><head><title>Desk</title><link rel="stylesheet" href="css/app.css"></head>
<body><img src="/img/logo.svg" alt=""><a href="about.html">About</a>
<script type="module" src="js/app.js"></script></body></html>
"#;

fn small_site() -> tempfile::TempDir {
    site(&[
        ("index.html", PAGE),
        ("about.html", b"<!DOCTYPE html><html><head><title>About</title></head><body><p>About us</p></body></html>"),
        ("css/app.css", b"@import 'base.css';\n.logo { background: url(../img/logo.svg) no-repeat; }\n"),
        ("css/base.css", b"body { margin: 0; font-family: system-ui, sans-serif; }\n"),
        ("js/app.js", b"import { money } from './format.js';\ndocument.title = money(1234.5);\n"),
        ("js/format.js", b"export function money(amount) { return amount.toFixed(2) + ' USD'; }\n"),
        (
            "img/logo.svg",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 8 8\"><rect width=\"8\" height=\"8\"/></svg>\n",
        ),
        ("robots.txt", b"User-agent: *\nAllow: /\n"),
        (".env", b"SECRET=1\n"),
    ])
}

#[test]
fn references_in_html_css_and_js_are_rewritten_to_hashed_names() {
    let src = small_site();
    let (parent, _, manifest) = build(src.path());
    let file = |src: &str| manifest.entries[src].file.clone();
    let name = |src: &str| file(src).rsplit('/').next().unwrap().to_owned();
    for hashed in ["css/app.css", "css/base.css", "js/app.js", "js/format.js", "img/logo.svg"] {
        let built = file(hashed);
        assert_ne!(built, hashed);
        let (stem, ext) = hashed.rsplit_once('.').unwrap();
        let hash = built.strip_prefix(&format!("{stem}.")).unwrap().strip_suffix(&format!(".{ext}")).unwrap();
        assert!(hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "{built}");
        assert!(!manifest.entries[hashed].stable);
        assert!(out(&parent).join(&built).is_file(), "{built}");
        assert!(!out(&parent).join(hashed).exists(), "{hashed} is only written under its hashed name");
    }
    let page = read(&parent, "index.html");
    assert!(page.contains(&format!("css/{}", name("css/app.css"))), "{page}");
    assert!(page.contains(&format!("/img/{}", name("img/logo.svg"))), "{page}");
    assert!(page.contains(&format!("js/{}", name("js/app.js"))), "{page}");
    assert!(page.contains("about.html"), "pages keep their names: {page}");
    let css = read(&parent, &file("css/app.css"));
    assert!(css.contains(&name("css/base.css")) && css.contains(&format!("../img/{}", name("img/logo.svg"))), "{css}");
    let js = read(&parent, &file("js/app.js"));
    assert!(js.contains(&format!("./{}", name("js/format.js"))), "{js}");

    let index = &manifest.entries["index.html"];
    assert_eq!(index.css, [file("css/app.css")]);
    assert_eq!(index.assets, [file("img/logo.svg")]);
    assert_eq!(index.imports, ["js/app.js"]);
    assert_eq!(manifest.entries["js/app.js"].imports, ["js/format.js"]);
    assert_eq!(manifest.entries["css/app.css"].css, [file("css/base.css")]);
    assert_eq!(manifest.entries["css/app.css"].assets, [file("img/logo.svg")]);
}

#[test]
fn html_keeps_its_name_and_is_a_stable_entry() {
    let src = small_site();
    let (_parent, _, manifest) = build(src.path());
    for page in ["index.html", "about.html"] {
        let entry = &manifest.entries[page];
        assert_eq!(entry.file, page);
        assert!(entry.is_entry && entry.stable);
        assert_eq!(entry.surrogate_keys, [format!("f:{page}"), "html".to_owned()]);
    }
}

#[test]
fn unreferenced_files_keep_their_names_and_dotfiles_are_skipped() {
    let src = small_site();
    let (parent, _, manifest) = build(src.path());
    let robots = &manifest.entries["robots.txt"];
    assert_eq!(robots.file, "robots.txt");
    assert!(robots.stable && !robots.is_entry);
    assert_eq!(read(&parent, "robots.txt"), "User-agent: *\nAllow: /\n");
    assert!(!manifest.entries.contains_key(".env") && !out(&parent).join(".env").exists());
    assert_eq!(manifest.entries.len(), 8);
}

#[test]
fn the_same_source_builds_to_the_same_bytes_and_manifest() {
    let src = small_site();
    let (first, report_a, manifest_a) = build(src.path());
    let (second, report_b, manifest_b) = build(src.path());
    assert_eq!(manifest_a, manifest_b);
    assert_eq!(report_a.manifest_id, report_b.manifest_id);
    assert_eq!(manifest_a.id(), report_a.manifest_id);
    assert_eq!(
        std::fs::read(out(&first).join(MANIFEST_PATH)).unwrap(),
        std::fs::read(out(&second).join(MANIFEST_PATH)).unwrap()
    );
    for entry in manifest_a.entries.values() {
        assert_eq!(
            std::fs::read(out(&first).join(&entry.file)).unwrap(),
            std::fs::read(out(&second).join(&entry.file)).unwrap()
        );
    }
}

#[test]
fn a_variant_larger_than_the_file_is_not_kept() {
    let src = site(&[("tiny.txt", b"0123456789"), ("big.txt", "quarterly report\n".repeat(100).as_bytes())]);
    let (parent, report, manifest) = build(src.path());
    let tiny = &manifest.entries["tiny.txt"];
    assert!(tiny.encodings.is_empty(), "{:?}", tiny.encodings);
    for ext in ["br", "zst", "gz"] {
        assert!(!out(&parent).join(format!("tiny.txt.{ext}")).exists(), "{ext}");
        assert!(out(&parent).join(format!("big.txt.{ext}")).is_file(), "{ext}");
    }
    let big = &manifest.entries["big.txt"];
    assert_eq!(big.encodings.keys().collect::<Vec<_>>(), ["br", "gzip", "zstd"]);
    assert_eq!(big.encodings["br"], std::fs::metadata(out(&parent).join("big.txt.br")).unwrap().len());
    let tiny_report = report.files.iter().find(|file| file.src == "tiny.txt").unwrap();
    assert_eq!((tiny_report.br, tiny_report.best_bytes()), (None, 10));
}

#[test]
fn binary_files_are_copied_and_not_precompressed() {
    let font = vec![0u8; 4096];
    let src = site(&[("index.html", b"<p>x</p>"), ("fonts/a.woff2", &font)]);
    let (parent, _, manifest) = build(src.path());
    assert!(manifest.entries["fonts/a.woff2"].encodings.is_empty());
    assert_eq!(std::fs::read(out(&parent).join("fonts/a.woff2")).unwrap(), font);
}

#[test]
fn a_missing_reference_is_an_error_naming_the_file_and_the_reference() {
    let src = site(&[("index.html", b"<link rel=stylesheet href=\"css/gone.css\">")]);
    let parent = tempfile::tempdir().unwrap();
    let error = build_site(src.path(), &parent.path().join("out"), &BuildOptions::default()).unwrap_err();
    assert!(matches!(error, BuildError::MissingReference { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("index.html") && message.contains("css/gone.css"), "{message}");
    assert!(!parent.path().join("out").exists(), "a failed build writes nothing");
}

#[test]
fn a_link_to_no_file_is_left_as_written() {
    let src = site(&[
        ("index.html", b"<a href=\"/reports/\">Reports</a> <a href=\"report.pdf\">PDF</a>"),
        ("report.pdf", b"%PDF"),
    ]);
    let (parent, _, manifest) = build(src.path());
    let page = read(&parent, "index.html");
    assert!(page.contains("href=/reports/") || page.contains("href=\"/reports/\""), "{page}");
    let pdf = &manifest.entries["report.pdf"].file;
    assert!(pdf.starts_with("report.") && pdf != "report.pdf" && page.contains(pdf.as_str()), "{page}");
    assert_eq!(&manifest.entries["index.html"].assets, std::slice::from_ref(pdf));
}

#[test]
fn a_preload_follows_a_hashed_name_but_never_causes_one() {
    let src = site(&[
        (
            "index.html",
            b"<link rel=preload as=fetch href=data/prices.json><link rel=preload as=font href=inter.woff2>\
              <link rel=stylesheet href=app.css>",
        ),
        ("data/prices.json", b"[101.5, 102.25]"),
        ("inter.woff2", b"wOF2"),
        ("app.css", b"@font-face { font-family: Inter; src: url(inter.woff2) }"),
    ]);
    let (parent, _, manifest) = build(src.path());
    assert_eq!(manifest.entries["data/prices.json"].file, "data/prices.json", "fetched by its name elsewhere");
    let font = &manifest.entries["inter.woff2"].file;
    assert_ne!(font, "inter.woff2");
    let page = read(&parent, "index.html");
    assert!(page.contains("data/prices.json") && page.contains(font.as_str()), "{page}");
}

#[test]
fn a_css_import_cycle_is_an_error_naming_the_cycle() {
    let src = site(&[
        ("index.html", b"<link rel=stylesheet href=a.css>"),
        ("a.css", b"@import 'b.css'; a { color: red }"),
        ("b.css", b"@import 'a.css'; b { color: blue }"),
    ]);
    let parent = tempfile::tempdir().unwrap();
    let error = build_site(src.path(), &parent.path().join("out"), &BuildOptions::default()).unwrap_err();
    assert_eq!(error.to_string(), "reference cycle: a.css -> b.css -> a.css");
}

#[test]
fn modules_importing_each_other_keep_their_names_and_what_imports_them_is_hashed() {
    let src = site(&[
        ("index.html", b"<script type=module src=main.js></script>"),
        ("main.js", b"import { a } from './a.js'; a();"),
        ("a.js", b"import { b } from './b.js'; export function a() { return b(); }"),
        (
            "b.js",
            b"import { a } from './a.js'; import { c } from './c.js'; export function b() { return c() + typeof a; }",
        ),
        ("c.js", b"export function c() { return 1; }"),
    ]);
    let (parent, _, manifest) = build(src.path());
    for cyclic in ["a.js", "b.js"] {
        assert_eq!(manifest.entries[cyclic].file, cyclic);
        assert!(manifest.entries[cyclic].stable);
    }
    let (main, c) = (&manifest.entries["main.js"], &manifest.entries["c.js"]);
    assert!(!main.stable && !c.stable && c.file != "c.js");
    assert!(read(&parent, &manifest.entries["b.js"].file).contains(&c.file));
    assert_eq!(manifest.entries["b.js"].imports, ["a.js", "c.js"]);
}

#[test]
fn the_manifest_validates_and_its_integrity_and_sizes_match_the_files_on_disk() {
    let src = small_site();
    let (parent, report, manifest) = build(src.path());
    manifest.validate().unwrap();
    assert_eq!(report.files.len(), manifest.entries.len());
    for entry in manifest.entries.values() {
        let bytes = std::fs::read(out(&parent).join(&entry.file)).unwrap();
        assert_eq!(entry.size, bytes.len() as u64, "{}", entry.file);
        assert_eq!(entry.hash, format!("sha256:{}", hex::encode(Sha256::digest(&bytes))));
        assert_eq!(entry.integrity, format!("sha384-{}", STANDARD.encode(Sha384::digest(&bytes))));
        assert_eq!(entry.surrogate_keys[0], format!("f:{}", entry.src));
        for (encoding, size) in &entry.encodings {
            let ext = compress::ENCODINGS.iter().find(|(name, _)| name == encoding).unwrap().1;
            let variant = std::fs::metadata(out(&parent).join(format!("{}.{ext}", entry.file))).unwrap();
            assert_eq!(variant.len(), *size);
        }
    }
}

#[test]
fn a_file_a_minifier_cannot_parse_is_an_error_naming_it() {
    for (path, content) in [("js/broken.js", "export function (" as &str), ("css/broken.css", ".a..b { color: red }")] {
        let src = site(&[(path, content.as_bytes())]);
        let parent = tempfile::tempdir().unwrap();
        let error = build_site(src.path(), &parent.path().join("out"), &BuildOptions::default()).unwrap_err();
        assert!(matches!(error, BuildError::Minify { ref file, .. } if file == path), "{error}");
    }
}

#[test]
fn a_non_empty_output_is_refused_unless_clean_and_clean_replaces_it() {
    let src = small_site();
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    std::fs::create_dir_all(out.join("old")).unwrap();
    std::fs::write(out.join("old/stale.css"), "x").unwrap();
    let error = build_site(src.path(), &out, &BuildOptions::default()).unwrap_err();
    assert!(matches!(error, BuildError::OutNotEmpty(_)), "{error}");
    build_site(src.path(), &out, &BuildOptions { clean: true }).unwrap();
    assert!(!out.join("old").exists() && out.join("index.html").is_file());
}

#[test]
fn an_output_inside_the_source_or_around_it_is_refused() {
    let src = small_site();
    for out in [src.path().join("dist"), src.path().to_owned(), src.path().parent().unwrap().to_owned()] {
        let error = build_site(src.path(), &out, &BuildOptions { clean: true }).unwrap_err();
        assert!(matches!(error, BuildError::Overlap { .. }), "{}: {error}", out.display());
    }
}

#[cfg(unix)]
#[test]
fn a_symlink_leaving_the_site_is_refused_and_one_inside_is_read() {
    let outside = site(&[("secret.txt", b"secret")]);
    let src = site(&[("index.html", b"<p>x</p>"), ("a.txt", b"a")]);
    std::os::unix::fs::symlink(src.path().join("a.txt"), src.path().join("b.txt")).unwrap();
    let (_parent, _, manifest) = build(src.path());
    assert_eq!(manifest.entries["b.txt"].size, 1);
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), src.path().join("leak.txt")).unwrap();
    let parent = tempfile::tempdir().unwrap();
    let error = build_site(src.path(), &parent.path().join("out"), &BuildOptions::default()).unwrap_err();
    assert!(matches!(error, BuildError::SymlinkLeavesSite { ref link, .. } if link == "leak.txt"), "{error}");
}

#[test]
fn a_name_a_url_would_escape_is_refused() {
    let src = site(&[("my report.pdf", b"%PDF")]);
    let parent = tempfile::tempdir().unwrap();
    let error = build_site(src.path(), &parent.path().join("out"), &BuildOptions::default()).unwrap_err();
    assert!(matches!(error, BuildError::UnlistableName(ref name) if name == "my report.pdf"), "{error}");
}

#[test]
fn hashed_names_go_before_the_extension_and_keys_escape_commas() {
    assert_eq!(hashed_name("css/app.css", "1234abcd"), "css/app.1234abcd.css");
    assert_eq!(hashed_name("app.min.js", "1234abcd"), "app.min.1234abcd.js");
    assert_eq!(hashed_name("LICENSE", "1234abcd"), "LICENSE.1234abcd");
    assert_eq!(file_key("img/a,b@2x.png"), "f:img/a%2Cb%402x.png");
}

#[test]
fn the_example_site_builds_smaller_with_every_reference_resolved() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/site");
    let (parent, report, manifest) = build(&src);
    let totals = &report.totals;
    assert_eq!(totals.files, 12);
    assert!(totals.built_bytes < totals.source_bytes * 3 / 4, "{totals:?}");
    assert!(totals.br_bytes < totals.source_bytes * 2 / 5, "{totals:?}");
    assert!(totals.br_bytes <= totals.gzip_bytes && totals.best_bytes <= totals.br_bytes, "{totals:?}");
    for stable in ["index.html", "reports.html", "robots.txt", "favicon.ico"] {
        assert!(manifest.entries[stable].stable, "{stable}");
    }
    for hashed in [
        "css/app.css",
        "css/base.css",
        "js/app.js",
        "js/chart.js",
        "js/format.js",
        "js/export.js",
        "img/logo.svg",
        "fonts/inter-var.woff2",
    ] {
        assert!(!manifest.entries[hashed].stable, "{hashed}");
    }
    let app = &manifest.entries["js/app.js"];
    assert_eq!(app.imports, ["js/chart.js", "js/format.js", "js/export.js"]);
    let code = read(&parent, &app.file);
    assert!(code.contains(&manifest.entries["js/export.js"].file.replace("js/", "./")), "the dynamic import: {code}");
    let css = &manifest.entries["css/app.css"];
    assert_eq!(
        css.assets,
        [manifest.entries["fonts/inter-var.woff2"].file.clone(), manifest.entries["img/logo.svg"].file.clone()]
    );
}
