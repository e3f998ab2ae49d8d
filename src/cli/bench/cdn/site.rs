//! The benchmark's site: a few hundred files of a finance dashboard (pages with tables, shared
//! and per-section stylesheets, ES modules, icons), generated from a seed so every run builds
//! the same bytes, and a deploy that edits a share of them.

use std::fmt::Write as _;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How big a site to generate.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// HTML pages (entry points).
    pub pages: usize,
    /// Per-section stylesheets.
    pub sections: usize,
    /// Shared library modules every page module imports some of.
    pub libraries: usize,
    /// Icons.
    pub icons: usize,
}

impl Shape {
    /// Files the site has.
    pub fn files(&self) -> usize {
        // Pages, their modules, sections, libraries, icons, and the shared stylesheet.
        self.pages * 2 + self.sections + self.libraries + self.icons + 1
    }
}

/// The relative path of every source file of `shape`, in a fixed order.
pub fn sources(shape: Shape) -> Vec<String> {
    let mut files = vec!["css/site.css".to_owned()];
    files.extend((0..shape.sections).map(|s| format!("css/section-{s}.css")));
    files.extend((0..shape.libraries).map(|l| format!("js/lib/util-{l}.js")));
    files.extend((0..shape.icons).map(|i| format!("img/icon-{i}.svg")));
    files.extend((0..shape.pages).map(|p| format!("js/page-{p}.js")));
    files.extend((0..shape.pages).map(|p| format!("page-{p}.html")));
    files
}

/// Writes the site into `dir`; `edits` lists files whose content carries a deploy mark.
pub fn write(dir: &Path, shape: Shape, edits: &[(String, u32)]) -> std::io::Result<()> {
    let mark = |file: &str| edits.iter().filter(|(edited, _)| edited == file).map(|(_, deploy)| *deploy).max();
    for file in sources(shape) {
        let path = dir.join(&file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, content(&file, shape, mark(&file)))?;
    }
    Ok(())
}

fn content(file: &str, shape: Shape, mark: Option<u32>) -> String {
    let seed = file.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let number = |name: &str| {
        name.trim_end_matches(|c: char| !c.is_ascii_digit())
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let deploy = mark.map_or(String::new(), |d| format!("deploy {d}"));
    match file {
        "css/site.css" => stylesheet(&mut rng, "site", 60, &deploy),
        _ if file.starts_with("css/section-") => {
            stylesheet(&mut rng, &format!("section-{}", number(file)), 25, &deploy)
        }
        _ if file.starts_with("js/lib/") => library(&mut rng, number(file), &deploy),
        _ if file.starts_with("img/") => icon(&mut rng, &deploy),
        _ if file.starts_with("js/page-") => page_module(number(file), shape, &deploy),
        _ => page(&mut rng, number(file), shape, &deploy),
    }
}

fn stylesheet(rng: &mut ChaCha8Rng, name: &str, rules: usize, deploy: &str) -> String {
    let mut css = format!("/* {name} styles {deploy} */\n");
    let properties = ["color", "background-color", "border-color", "outline-color"];
    for rule in 0..rules {
        let _ = writeln!(
            css,
            ".{name}-block-{rule} {{\n  display: flex;\n  padding: {}px {}px;\n  {}: #{:06x};\n  font-size: {}px;\n  margin: 0 auto;\n}}\n",
            rng.random_range(2..24),
            rng.random_range(2..24),
            properties[rule % properties.len()],
            rng.random_range(0..0x00ff_ffff),
            rng.random_range(11..18),
        );
    }
    if !deploy.is_empty() {
        let _ = writeln!(css, ".{name}-deploy::after {{ content: \"{deploy}\"; }}");
    }
    css
}

fn library(rng: &mut ChaCha8Rng, index: usize, deploy: &str) -> String {
    let mut js = format!("// Shared helpers {index} {deploy}\n");
    for function in 0..12 {
        let _ = writeln!(
            js,
            "export function movingAverage{function}(values, window) {{\n  const result = [];\n  let sum = 0;\n  for (let i = 0; i < values.length; i++) {{\n    sum += values[i] * {};\n    if (i >= window) sum -= values[i - window];\n    result.push(sum / Math.min(i + 1, window));\n  }}\n  return result;\n}}\n",
            rng.random_range(1..9)
        );
    }
    if !deploy.is_empty() {
        let _ = writeln!(js, "export const release = \"{deploy}\";");
    }
    js
}

fn icon(rng: &mut ChaCha8Rng, deploy: &str) -> String {
    let mut path = String::from("M0 0");
    for _ in 0..12 {
        let _ = write!(path, " L{} {}", rng.random_range(0..24), rng.random_range(0..24));
    }
    let fill =
        if deploy.is_empty() { "#1f6feb".to_owned() } else { format!("#{:06x}", rng.random_range(0..0x00ff_ffff)) };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 24 24\"><path fill=\"{fill}\" d=\"{path} Z\"/></svg>\n"
    )
}

fn page_module(index: usize, shape: Shape, deploy: &str) -> String {
    let libraries = [index % shape.libraries, (index * 7 + 3) % shape.libraries];
    let mut js = String::new();
    for (n, library) in libraries.iter().enumerate() {
        let _ = writeln!(js, "import {{ movingAverage{n} as average{n} }} from \"./lib/util-{library}.js\";");
    }
    let _ = writeln!(
        js,
        "// Page {index} {deploy}\nconst rows = [...document.querySelectorAll(\"td.close\")].map((cell) => Number(cell.textContent));\nfor (const [i, value] of average0(rows, 5).entries()) {{\n  document.querySelectorAll(\"td.avg\")[i].textContent = value.toFixed(2);\n}}\nconsole.debug(average1(rows, 20).length);"
    );
    js
}

fn page(rng: &mut ChaCha8Rng, index: usize, shape: Shape, deploy: &str) -> String {
    let section = index % shape.sections;
    let mut html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  <title>Report {index}</title>\n  <link rel=\"stylesheet\" href=\"css/site.css\">\n  <link rel=\"stylesheet\" href=\"css/section-{section}.css\">\n  <script type=\"module\" src=\"js/page-{index}.js\"></script>\n</head>\n<body>\n  <header>\n"
    );
    for icon in 0..4 {
        let _ = writeln!(
            html,
            "    <img src=\"img/icon-{}.svg\" alt=\"\" width=\"24\" height=\"24\">",
            (index * 4 + icon) % shape.icons
        );
    }
    let _ = writeln!(
        html,
        "    <h1>Quarterly report {index}</h1>\n  </header>\n  <main>\n    <p>{deploy}</p>\n    <table>"
    );
    for row in 0..60 {
        let _ = writeln!(
            html,
            "      <tr><td>2026-{:02}-{:02}</td><td class=\"close\">{:.2}</td><td class=\"avg\"></td></tr>",
            row % 12 + 1,
            row % 28 + 1,
            100.0 + f64::from(rng.random_range(0..10_000u32)) / 100.0
        );
    }
    html.push_str("    </table>\n  </main>\n</body>\n</html>\n");
    html
}

/// The files deploy `deploy` edits: `share` of the site, a different slice each time.
pub fn edited(shape: Shape, deploy: u32, share: f64) -> Vec<String> {
    let mut files = sources(shape);
    let count = ((files.len() as f64 * share).round() as usize).clamp(1, files.len());
    files.shuffle(&mut ChaCha8Rng::seed_from_u64(u64::from(deploy)));
    files.truncate(count);
    files
}
