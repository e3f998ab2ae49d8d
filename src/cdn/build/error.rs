//! Why a build failed: each error names the file, the reference or the folder at fault.

use std::path::{Path, PathBuf};

use crate::cdn::manifest::ManifestError;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file or folder could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`reading`, `writing`, ...).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The source is not a folder.
    #[error("the source {} is not a folder", .0.display())]
    SourceNotAFolder(PathBuf),
    /// The output exists and is not a folder.
    #[error("the output {} is not a folder", .0.display())]
    OutNotAFolder(PathBuf),
    /// One folder is inside the other (a build would read its own output, or write into its
    /// source).
    #[error("the output {} and the source {} overlap: neither may be inside the other", out.display(), src.display())]
    Overlap {
        /// The source folder.
        src: PathBuf,
        /// The output folder.
        out: PathBuf,
    },
    /// The output folder holds files and `clean` was not asked for.
    #[error("the output {} is not empty (pass --clean to replace its contents)", .0.display())]
    OutNotEmpty(PathBuf),
    /// A symlink points outside the source folder.
    #[error("`{link}` is a symlink to {}, outside the site", target.display())]
    SymlinkLeavesSite {
        /// The link's site path.
        link: String,
        /// Where it points.
        target: PathBuf,
    },
    /// A symlink to a folder (it could loop; link the files instead).
    #[error("`{0}` is a symlink to a folder, which a build does not follow (it could loop)")]
    SymlinkedFolder(String),
    /// A name a URL would need escaped or the manifest cannot list.
    #[error("`{0}`: names may hold only ASCII letters, digits and -._~+@,= (a URL carries those as written)")]
    UnlistableName(String),
    /// HTML, CSS or JS that is not UTF-8.
    #[error("`{0}` is not UTF-8")]
    NotUtf8(String),
    /// A minifier could not parse a file, or a rewrite could not re-read what it produced.
    #[error("`{file}` cannot be minified: {reason}")]
    Minify {
        /// The file's site path.
        file: String,
        /// The parser's message.
        reason: String,
    },
    /// A reference names a file the site does not have.
    #[error("`{file}` references `{reference}`, but the site has no file `{resolved}`")]
    MissingReference {
        /// The referencing file.
        file: String,
        /// The reference as written.
        reference: String,
        /// The site path it resolves to.
        resolved: String,
    },
    /// A reference climbs above the site's root.
    #[error("`{file}` references `{reference}`, which {reason}")]
    BadReference {
        /// The referencing file.
        file: String,
        /// The reference as written.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Files reference each other in a cycle no hash can settle (a stylesheet importing
    /// itself through others); cycles of JS modules are allowed.
    #[error("reference cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// Two outputs would land on one path (`a.txt.gz` in the source beside `a.txt`'s variant).
    #[error("`{0}` would be written twice: rename one of its sources")]
    OutputCollision(String),
    /// A rewritten name is missing from the file afterwards (a bug; nothing is written).
    #[error("`{file}`: the rewritten reference `{name}` is missing from the output")]
    LostReference {
        /// The referencing file.
        file: String,
        /// The hashed name that should be there.
        name: String,
    },
    /// The manifest the build made does not validate (a bug; nothing is written).
    #[error("the manifest does not validate: {0}")]
    Manifest(#[from] ManifestError),
}

impl BuildError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> BuildError {
        BuildError::Io { action, path: path.to_owned(), source }
    }

    pub(crate) fn minify(file: &str, reason: impl Into<String>) -> BuildError {
        BuildError::Minify { file: file.to_owned(), reason: reason.into() }
    }
}
