//! The site's files, and the folders a build reads and writes.
//!
//! Reading is deterministic (names sorted byte-wise) and stays inside the site: dotfiles and
//! dot-folders are skipped (`.git`, `.vite`, editors' files), a symlink to a file inside the
//! site is read as that file, and a symlink leaving the site or to a folder (which could loop)
//! is refused. A name must be one a URL carries without escaping and the manifest can list.

use std::path::{Component, Path, PathBuf};

use super::BuildError;

/// One source file: its path relative to the site's root with `/` separators, and its bytes.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    pub rel: String,
    pub bytes: Vec<u8>,
}

/// Every file under `root` (a canonical path), sorted by site path.
pub(crate) fn walk(root: &Path) -> Result<Vec<SourceFile>, BuildError> {
    let mut files = Vec::new();
    walk_folder(root, root, "", &mut files)?;
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(files)
}

fn walk_folder(root: &Path, folder: &Path, prefix: &str, files: &mut Vec<SourceFile>) -> Result<(), BuildError> {
    let entries = std::fs::read_dir(folder).map_err(|source| BuildError::io("listing", folder, source))?;
    let mut entries: Vec<_> =
        entries.collect::<Result<_, _>>().map_err(|source| BuildError::io("listing", folder, source))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(BuildError::UnlistableName(path.display().to_string()));
        };
        if name.starts_with('.') {
            continue;
        }
        let rel = format!("{prefix}{name}");
        let kind = entry.file_type().map_err(|source| BuildError::io("reading", &path, source))?;
        if kind.is_dir() {
            check_name(&rel, name)?;
            walk_folder(root, &path, &format!("{rel}/"), files)?;
            continue;
        }
        if kind.is_symlink() {
            let target =
                path.canonicalize().map_err(|source| BuildError::io("following the symlink", &path, source))?;
            if !target.starts_with(root) {
                return Err(BuildError::SymlinkLeavesSite { link: rel, target });
            }
            if target.is_dir() {
                return Err(BuildError::SymlinkedFolder(rel));
            }
        }
        check_name(&rel, name)?;
        let bytes = std::fs::read(&path).map_err(|source| BuildError::io("reading", &path, source))?;
        files.push(SourceFile { rel, bytes });
    }
    Ok(())
}

/// A name a URL carries as written: ASCII letters, digits and `-._~+@,=` (no spaces, quotes,
/// `%`, `?` or `#`, which would need escaping in one context or another).
fn check_name(rel: &str, name: &str) -> Result<(), BuildError> {
    let plain = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+@,=".contains(&b));
    if plain { Ok(()) } else { Err(BuildError::UnlistableName(rel.to_owned())) }
}

/// `path` made absolute and normalized without requiring it to exist: its longest existing
/// ancestor canonicalized (symlinks resolved), the rest appended.
pub(crate) fn absolute(path: &Path) -> Result<PathBuf, BuildError> {
    let current =
        std::env::current_dir().map_err(|source| BuildError::io("reading the working folder", path, source))?;
    let joined = current.join(path);
    let mut normal = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    let mut existing = normal.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else { break };
        rest.push(name.to_owned());
        existing = parent;
    }
    let mut resolved = existing.canonicalize().map_err(|source| BuildError::io("resolving", existing, source))?;
    resolved.extend(rest.iter().rev());
    Ok(resolved)
}

/// Readies `out` for a build's files: created when missing; when it holds anything, refused
/// unless `clean`, then emptied. With `dry_run` only the refusal is checked, so a build fails
/// before its work when it could not write, and `out` is emptied only once a build succeeded.
pub(crate) fn prepare_out(out: &Path, clean: bool, dry_run: bool) -> Result<(), BuildError> {
    if !out.exists() {
        if !dry_run {
            std::fs::create_dir_all(out).map_err(|source| BuildError::io("creating", out, source))?;
        }
        return Ok(());
    }
    if !out.is_dir() {
        return Err(BuildError::OutNotAFolder(out.to_owned()));
    }
    let entries: Vec<_> = std::fs::read_dir(out)
        .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
        .map_err(|source| BuildError::io("listing", out, source))?;
    if entries.is_empty() {
        return Ok(());
    }
    if !clean {
        return Err(BuildError::OutNotEmpty(out.to_owned()));
    }
    if dry_run {
        return Ok(());
    }
    for entry in entries {
        let path = entry.path();
        let is_dir = entry.file_type().map_err(|source| BuildError::io("reading", &path, source))?.is_dir();
        let removed = if is_dir { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        removed.map_err(|source| BuildError::io("removing", &path, source))?;
    }
    Ok(())
}
