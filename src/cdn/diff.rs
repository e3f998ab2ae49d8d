//! `purge_set`: what a deploy must purge at the edge, and nothing more.
//!
//! Only stable files (entry points, unversioned files) can hold stale content under a URL:
//! a hashed file's name changes with its content, so it is never purged (the old one stays at
//! the origin for pages still open in browsers). A stable file is purged when its content
//! changed, when it is new (an edge may hold a cached 404 for its URL) or when it is gone. Its
//! surrogate keys are purged too, except a key that an unchanged file also carries: purging
//! that would evict content that did not change.

use std::collections::{BTreeMap, BTreeSet};

use super::manifest::{Manifest, ManifestEntry};

/// What to purge for one deploy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeSet {
    /// URL paths (with the leading slash) of the stable files that changed, came or went.
    pub urls: Vec<String>,
    /// Surrogate keys only those files carry.
    pub keys: Vec<String>,
    /// Hashed files of the old build that the new one no longer lists: never purged, kept at
    /// the origin for a grace period, then collected.
    pub retired: Vec<String>,
}

impl PurgeSet {
    /// Nothing to purge.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty() && self.keys.is_empty()
    }
}

/// The purge set of a deploy from `old` (none for a site's first deploy) to `new`.
pub fn purge_set(old: Option<&Manifest>, new: &Manifest) -> PurgeSet {
    let empty = Manifest::default();
    let old = old.unwrap_or(&empty);
    fn stable(manifest: &Manifest) -> BTreeMap<&str, &ManifestEntry> {
        manifest.entries.values().filter(|entry| entry.stable).map(|entry| (entry.file.as_str(), entry)).collect()
    }
    let (old_stable, new_stable) = (stable(old), stable(new));

    let mut purged: Vec<&ManifestEntry> = Vec::new();
    for (file, entry) in &new_stable {
        if old_stable.get(file).is_none_or(|before| before.hash != entry.hash) {
            purged.push(entry);
        }
    }
    purged.extend(old_stable.iter().filter(|(file, _)| !new_stable.contains_key(*file)).map(|(_, entry)| *entry));

    let purged_files: BTreeSet<&str> = purged.iter().map(|entry| entry.file.as_str()).collect();
    // Keys of the files that stay as they are, in the new build (hashed ones included).
    let kept_keys: BTreeSet<&str> = new
        .entries
        .values()
        .filter(|entry| !purged_files.contains(entry.file.as_str()))
        .flat_map(|entry| entry.surrogate_keys.iter().map(String::as_str))
        .collect();
    let keys: BTreeSet<String> = purged
        .iter()
        .flat_map(|entry| entry.surrogate_keys.iter())
        .filter(|key| !kept_keys.contains(key.as_str()))
        .cloned()
        .collect();

    let new_files: BTreeSet<&str> = new.entries.values().map(|entry| entry.file.as_str()).collect();
    let retired: BTreeSet<String> = old
        .entries
        .values()
        .filter(|entry| !entry.stable && !new_files.contains(entry.file.as_str()))
        .map(|entry| entry.file.clone())
        .collect();

    PurgeSet {
        urls: purged_files.iter().map(|file| format!("/{file}")).collect(),
        keys: keys.into_iter().collect(),
        retired: retired.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdn::manifest::tests::{entry, manifest};

    fn page(src: &str, content: &str, css: &str) -> ManifestEntry {
        let mut page = entry(src, src, content);
        page.is_entry = true;
        page.stable = true;
        page.css = vec![css.to_owned()];
        page.surrogate_keys = vec![format!("f:{src}"), "site".into()];
        page
    }

    /// A site of two pages, the first with a stylesheet, the second without.
    fn site(css_version: &str, about: &str) -> Manifest {
        let css_file = format!("assets/app.{css_version}.css");
        let mut about = page("about.html", about, "");
        about.css.clear();
        manifest(vec![
            entry("app.css", &css_file, css_version),
            page("index.html", &format!("<link href={css_file}>"), &css_file),
            about,
        ])
    }

    #[test]
    fn a_changed_stylesheet_purges_the_page_that_now_names_it_and_never_the_stylesheet() {
        let (old, new) = (site("aaaa1111", "about"), site("bbbb2222", "about"));
        let set = purge_set(Some(&old), &new);
        assert_eq!(set.urls, ["/index.html"]);
        assert_eq!(set.keys, ["f:index.html"], "`site` is carried by the unchanged about.html: kept");
        assert_eq!(set.retired, ["assets/app.aaaa1111.css"]);
    }

    #[test]
    fn an_identical_build_purges_nothing() {
        let set = purge_set(Some(&site("aaaa1111", "about")), &site("aaaa1111", "about"));
        assert!(set.is_empty() && set.retired.is_empty(), "{set:?}");
    }

    #[test]
    fn a_key_only_changed_files_carry_is_purged() {
        let (old, new) = (site("aaaa1111", "about"), site("bbbb2222", "about v2"));
        let set = purge_set(Some(&old), &new);
        assert_eq!(set.urls, ["/about.html", "/index.html"]);
        assert_eq!(set.keys, ["f:about.html", "f:index.html", "site"]);
    }

    #[test]
    fn new_and_removed_stable_files_are_purged_by_url() {
        let old = site("aaaa1111", "about");
        let mut new = old.clone();
        new.entries.remove("about.html");
        let mut contact = page("contact.html", "contact", "assets/app.aaaa1111.css");
        contact.surrogate_keys = vec!["f:contact.html".into()];
        new.entries.insert("contact.html".into(), contact);
        let set = purge_set(Some(&old), &new);
        assert_eq!(set.urls, ["/about.html", "/contact.html"]);
        assert_eq!(set.keys, ["f:about.html", "f:contact.html"]);
    }

    #[test]
    fn a_first_deploy_purges_every_stable_url_for_cached_404s() {
        let set = purge_set(None, &site("aaaa1111", "about"));
        assert_eq!(set.urls, ["/about.html", "/index.html"]);
        assert!(set.retired.is_empty());
    }
}
