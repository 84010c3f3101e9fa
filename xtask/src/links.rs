//! `cargo xtask check-links`: every relative link in the repository's Markdown files points at
//! a file or folder that exists, and every `#fragment` into a Markdown file at one of its
//! headings (GitHub's anchors), so that the README's figures keep their evidence one click away.
//!
//! Links with a scheme (`https:`, `mailto:`) are not followed. A fragment into a file that is
//! not Markdown (`src/lib.rs#L10`) is not checked. Folders that hold no documentation of ours
//! are skipped: `target`, `runs` (the pipeline's output), `node_modules` and hidden ones.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use pulldown_cmark::{Event, Parser, Tag, TagEnd};

/// Arguments of `cargo xtask check-links`.
#[derive(clap::Args)]
pub struct LinksArgs {
    /// The folder whose Markdown files are checked (default: the workspace).
    root: Option<PathBuf>,
}

pub fn run(args: LinksArgs) -> Result<()> {
    let root = args.root.unwrap_or_else(crate::workspace_root);
    let files = markdown_files(&root)?;
    let broken = broken_links(&root, &files)?;
    for link in &broken {
        println!("{link}");
    }
    println!(
        "{} Markdown files, {} broken links",
        files.len(),
        broken.len()
    );
    if !broken.is_empty() {
        bail!("broken links found (see above)");
    }
    Ok(())
}

/// Folders under the root that hold no documentation of ours.
const SKIPPED: [&str; 3] = ["target", "runs", "node_modules"];

/// The `.md` files under `root`, relative to it, in order.
pub fn markdown_files(root: &Path) -> Result<Vec<PathBuf>> {
    crate::files_under(root, "md", |folder| {
        !folder.starts_with('.') && !SKIPPED.contains(&folder)
    })
}

/// One link that does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The Markdown file (relative to the root) and the line of the link.
    pub file: PathBuf,
    pub line: usize,
    pub target: String,
    pub reason: &'static str,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: ({}) {}",
            self.file.display(),
            self.line,
            self.target,
            self.reason
        )
    }
}

/// A Markdown file's links (line, destination) and its headings' anchors.
struct Document {
    links: Vec<(usize, String)>,
    anchors: BTreeSet<String>,
}

fn parse(text: &str) -> Document {
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    let mut links = Vec::new();
    let mut anchors = BTreeSet::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut heading: Option<String> = None;
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                links.push((line_of(range.start), dest_url.to_string()));
            }
            Event::Start(Tag::Heading { id, .. }) => {
                if let Some(id) = id {
                    anchors.insert(id.to_string());
                }
                heading = Some(String::new());
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    let slug = slug(&h);
                    let count = seen.entry(slug.clone()).or_insert(0);
                    anchors.insert(if *count == 0 {
                        slug.clone()
                    } else {
                        format!("{slug}-{count}")
                    });
                    *count += 1;
                }
            }
            _ => {}
        }
    }
    Document { links, anchors }
}

/// GitHub's anchor of a heading: lower case, anything but letters, digits, spaces, `-` and
/// `_` dropped, spaces made `-` (a repeated heading's anchor gets `-1`, `-2`, ...).
pub fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Whether a destination leaves the repository (`https:`, `mailto:`, `//host`).
fn external(destination: &str) -> bool {
    let scheme = destination.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    scheme || destination.starts_with("//")
}

/// `path` with `.` and `..` resolved lexically; `None` where it climbs above the root.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// The links of `files` (Markdown files relative to `root`) that do not resolve.
pub fn broken_links(root: &Path, files: &[PathBuf]) -> Result<Vec<BrokenLink>> {
    let mut documents = BTreeMap::new();
    for file in files {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        documents.insert(file.clone(), parse(&text));
    }
    let mut broken = Vec::new();
    for (file, document) in &documents {
        for (line, destination) in &document.links {
            if destination.is_empty() || external(destination) {
                continue;
            }
            let report = |reason| BrokenLink {
                file: file.clone(),
                line: *line,
                target: destination.clone(),
                reason,
            };
            let (path, fragment) = match destination.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (destination.as_str(), None),
            };
            let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
            let target = if path.is_empty() {
                Some(file.clone())
            } else if let Some(from_root) = path.strip_prefix('/') {
                normalise(Path::new(from_root))
            } else {
                normalise(&file.parent().unwrap_or(Path::new("")).join(&*path))
            };
            let Some(target) = target else {
                broken.push(report("climbs above the repository"));
                continue;
            };
            if !root.join(&target).exists() {
                broken.push(report("no such file or folder"));
                continue;
            }
            let Some(fragment) = fragment else { continue };
            // Only the checked Markdown files have anchors to check.
            let Some(document) = documents.get(&target) else {
                continue;
            };
            let fragment = percent_encoding::percent_decode_str(fragment).decode_utf8_lossy();
            if !document.anchors.contains(&*fragment) {
                broken.push(report("no heading with that anchor"));
            }
        }
    }
    Ok(broken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_tree::tree;

    #[test]
    fn anchors_are_githubs() {
        assert_eq!(
            slug("Beyond the seed: the `cpu` and `best` profiles"),
            "beyond-the-seed-the-cpu-and-best-profiles"
        );
        assert_eq!(
            slug("fer — facial expression recognition"),
            "fer--facial-expression-recognition"
        );
        assert_eq!(slug("Set-up: the two commands"), "set-up-the-two-commands");
        assert_eq!(
            slug("8520f23 to b7c77f8 (3 December)"),
            "8520f23-to-b7c77f8-3-december"
        );
        let doc = parse("# A\n\n## A\n\nSome `code` [b](x.md)\n\n## The `fer` command\n");
        let anchors: Vec<&str> = doc.anchors.iter().map(String::as_str).collect();
        assert_eq!(anchors, ["a", "a-1", "the-fer-command"]);
        assert_eq!(doc.links, [(5, "x.md".to_string())]);
    }

    /// Missing files, missing anchors (in the same file and in another) and paths above the
    /// root are reported with their line; good links, folders, external links, fragments into
    /// source files and links inside code blocks are not.
    #[test]
    fn reports_the_links_that_do_not_resolve_and_only_those() {
        let dir = tree(&[
            (
                "README.md",
                "# Top\n\n## Results: `cpu`\n\n\
                 [ok](docs/a.md) [ok](docs/a.md#part-two) [ok](#results-cpu) [ok](results/)\n\
                 [ok](https://example.org/x.md) [ok](src/lib.rs#L3) ![ok](docs/plot%20one.png)\n\
                 [gone](docs/b.md)\n\
                 [bad anchor](docs/a.md#part-three)\n\n\
                 [bad here](#results)\n\n\
                 ```\n[in code](nowhere.md)\n```\n",
            ),
            (
                "docs/a.md",
                "# Part one\n## Part two\n[up](../README.md#top) [above](../../x.md)\n",
            ),
            ("docs/plot one.png", ""),
            ("results/x.json", "{}"),
            ("src/lib.rs", ""),
            ("target/junk.md", "[gone](nowhere.md)"),
        ]);
        let files = markdown_files(dir.path()).unwrap();
        assert_eq!(
            files,
            [PathBuf::from("README.md"), PathBuf::from("docs/a.md")]
        );
        let broken: Vec<String> = broken_links(dir.path(), &files)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            broken,
            [
                "README.md:7: (docs/b.md) no such file or folder",
                "README.md:8: (docs/a.md#part-three) no heading with that anchor",
                "README.md:10: (#results) no heading with that anchor",
                "docs/a.md:3: (../../x.md) climbs above the repository",
            ]
        );
    }

    /// The repository's own Markdown (README, ARCHITECTURE, docs, results) has no broken links.
    #[test]
    fn the_repository_has_no_broken_links() {
        let root = crate::workspace_root();
        let files = markdown_files(&root).unwrap();
        assert!(
            files.len() > 10,
            "only {} Markdown files found",
            files.len()
        );
        let broken = broken_links(&root, &files).unwrap();
        let lines: Vec<String> = broken.iter().map(ToString::to_string).collect();
        assert!(broken.is_empty(), "broken links:\n{}", lines.join("\n"));
    }
}
