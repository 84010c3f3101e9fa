//! `cargo xtask check-imports`: finds files of a crate that import each other in a circle.
//!
//! Each `.rs` file under a crate's `src/` is a module (`a/b.rs` and `a/b/mod.rs` are `a::b`;
//! `lib.rs` and `main.rs` the root). A file depends on another when it names a path into it:
//! `crate::a::b::Item`, `super::...`, `self::...`, or, in a `use`, a child module by its name
//! (`pub use child::Item` in a `mod.rs`). A path resolves to the deepest module it names, so
//! `crate::a::Item` re-exported by `a/mod.rs` depends on `a/mod.rs` itself: importing through a
//! parent's re-export while the parent imports you is a circle too. `mod` declarations and
//! comments (doc links included) are not dependencies. Any strongly connected group of two or
//! more files is reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Arguments of `cargo xtask check-imports`.
#[derive(clap::Args)]
pub struct ImportsArgs {
    /// Crate folders to check (default: every crate under crates/, and xtask).
    crates: Vec<PathBuf>,
}

pub fn run(args: ImportsArgs) -> Result<()> {
    let root = crate::workspace_root();
    let crates = if args.crates.is_empty() {
        workspace_crates(&root)?
    } else {
        args.crates
    };
    let mut failed = false;
    for dir in &crates {
        let circles = circles(&dir.join("src"))?;
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let files = rust_files(&dir.join("src"))?.len();
        if circles.is_empty() {
            println!("{name}: {files} files, no import circles");
        } else {
            failed = true;
            for circle in circles {
                let names: Vec<String> = circle.iter().map(|p| p.display().to_string()).collect();
                println!(
                    "{name}: files that import each other: {}",
                    names.join(" <-> ")
                );
            }
        }
    }
    if failed {
        bail!("import circles found (see above)");
    }
    Ok(())
}

/// `crates/*` and `xtask` of the workspace at `root`.
pub fn workspace_crates(root: &Path) -> Result<Vec<PathBuf>> {
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .with_context(|| format!("cannot list {}", root.join("crates").display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("src").is_dir())
        .collect();
    crates.sort();
    crates.push(root.join("xtask"));
    Ok(crates)
}

/// Every `.rs` file under `src`, relative to it, sorted.
fn rust_files(src: &Path) -> Result<Vec<PathBuf>> {
    crate::files_under(src, "rs", |_| true)
}

/// The module path of a file relative to `src` (`a/b.rs`, `a/b/mod.rs` -> `[a, b]`).
fn module_path(file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    let is_root = parts.is_empty() && matches!(stem, "lib" | "main");
    if stem != "mod" && !is_root {
        parts.push(stem.to_string());
    }
    parts
}

/// The groups of files (two or more) under `src` that import each other in a circle.
pub fn circles(src: &Path) -> Result<Vec<Vec<PathBuf>>> {
    let files = rust_files(src)?;
    let modules: BTreeMap<Vec<String>, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (module_path(f), i))
        .collect();
    // What each facade (crate root, mod.rs) re-exports: (module, name) -> absolute path.
    let mut reexports: Reexports = BTreeMap::new();
    for file in files.iter().filter(|f| is_facade(f)) {
        let text = std::fs::read_to_string(src.join(file))
            .with_context(|| format!("cannot read {}", src.join(file).display()))?;
        let here = module_path(file);
        for (path, public) in referenced_paths(&without_tests(&strip_comments(&text))) {
            if let (true, Some(absolute)) = (public, absolute(&here, &path, &modules))
                && let Some(name) = path.last()
            {
                reexports.insert((here.clone(), name.clone()), absolute);
            }
        }
    }
    let mut edges: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); files.len()];
    for (i, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(src.join(file))
            .with_context(|| format!("cannot read {}", src.join(file).display()))?;
        let here = module_path(file);
        let facade = is_facade(file);
        for (path, public) in referenced_paths(&without_tests(&strip_comments(&text))) {
            if facade && public {
                continue; // a crate root or mod.rs re-exporting: a facade, not a dependency
            }
            if let Some(target) = resolve(&here, &path, &modules, &reexports)
                && target != i
            {
                edges[i].insert(target);
            }
        }
    }
    Ok(strongly_connected(&edges)
        .into_iter()
        .filter(|group| group.len() > 1)
        .map(|group| group.into_iter().map(|i| files[i].clone()).collect())
        .collect())
}

/// Items re-exported by a facade: (its module path, the item's name) -> the item's absolute
/// path.
type Reexports = BTreeMap<(Vec<String>, String), Vec<String>>;

/// Whether a file is a facade whose `pub use` items re-export rather than depend: the crate
/// root or a `mod.rs`.
fn is_facade(file: &Path) -> bool {
    let name = file.file_name().unwrap_or_default();
    name == "mod.rs"
        || (file.parent() == Some(Path::new("")) && (name == "lib.rs" || name == "main.rs"))
}

/// The text before its first `#[cfg(test)]` line (test modules come last; their `super::`
/// is the file's own module and their imports are not the file's).
fn without_tests(text: &str) -> String {
    match text.find("\n#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text.to_string(),
    }
}

/// The text without `//` comments (doc comments and their links included) and string
/// literals' contents, so that neither counts as a path.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut previous = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_string {
                if c == '"' && previous != '\\' {
                    in_string = false;
                    out.push(c);
                }
                previous = if previous == '\\' && c == '\\' {
                    ' '
                } else {
                    c
                };
                continue;
            }
            if c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' {
                in_string = true;
            }
            out.push(c);
            previous = c;
        }
        out.push('\n');
    }
    out
}

/// Paths that may name a module of this crate: `crate::..`, `super::..`, `self::..` anywhere,
/// and the paths of `use` items (expanded through braces), as segment lists.
fn referenced_paths(text: &str) -> Vec<(Vec<String>, bool)> {
    let mut paths = Vec::new();
    let mut used = BTreeSet::new();
    // The byte ranges of `use` statements, whose paths are taken here and not again below
    // (where a facade's `pub use crate::..` would count as a dependency).
    let mut use_statements = Vec::new();
    // Every `use ...;` statement, braces expanded; `pub use` (any visibility) marked public.
    let mut rest = text;
    while let Some(at) = find_keyword(rest, "use ") {
        let line_start = rest[..at].rfind('\n').map_or(0, |n| n + 1);
        let public = rest[line_start..at].trim_start().starts_with("pub");
        let after = &rest[at + 4..];
        let end = after.find(';').unwrap_or(after.len());
        let offset = text.len() - rest.len();
        use_statements.push(offset + at..offset + at + 4 + end);
        used.insert(after[..end].trim().to_string());
        for path in expand_use(after[..end].trim()) {
            paths.push((path, public));
        }
        rest = &after[end.min(after.len())..];
    }
    // Qualified paths in code.
    for prefix in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(prefix) {
            let start = from + at;
            from = start + prefix.len();
            if use_statements.iter().any(|range| range.contains(&start)) {
                continue;
            }
            let before = text[..start].chars().next_back().unwrap_or(' ');
            if before.is_alphanumeric() || before == '_' || before == ':' {
                continue; // part of a longer path, handled where it starts
            }
            let path: String = text[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push((segments(&path), false));
        }
    }
    paths
}

/// The position of `keyword` where it starts a word (not inside an identifier).
fn find_keyword(text: &str, keyword: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find(keyword) {
        let start = from + at;
        let before = text[..start].chars().next_back().unwrap_or('\n');
        if !(before.is_alphanumeric() || before == '_') {
            return Some(start);
        }
        from = start + keyword.len();
    }
    None
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e` (aliases and globs keep their path).
fn expand_use(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        return vec![segments(path.trim_end_matches('*'))];
    };
    let prefix = segments(&tree[..open]);
    let inner = tree[open + 1..].trim_end().trim_end_matches('}');
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    let mut paths = Vec::new();
    for item in items.into_iter().filter(|s| !s.trim().is_empty()) {
        for tail in expand_use(item) {
            let mut path = prefix.clone();
            path.extend(tail.into_iter().filter(|s| s != "self"));
            paths.push(path);
        }
    }
    paths
}

/// The absolute path (from the crate root) of `path` written in module `here`, or `None` for
/// a path outside the crate.
fn absolute(
    here: &[String],
    path: &[String],
    modules: &BTreeMap<Vec<String>, usize>,
) -> Option<Vec<String>> {
    let mut base: Vec<String> = match path.first()?.as_str() {
        "crate" => Vec::new(),
        "self" => here.to_vec(),
        "super" => here[..here.len().saturating_sub(1)].to_vec(),
        child => {
            // A `use` of a child module by its name (uniform paths).
            let mut candidate = here.to_vec();
            candidate.push(child.to_string());
            if !modules.contains_key(&candidate) {
                return None;
            }
            here.to_vec()
        }
    };
    let mut rest = match path[0].as_str() {
        "crate" | "self" | "super" => &path[1..],
        _ => path,
    };
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The file a path from module `here` points into: the deepest module it names, or, for an
/// item a facade re-exports, the module the item comes from.
fn resolve(
    here: &[String],
    path: &[String],
    modules: &BTreeMap<Vec<String>, usize>,
    reexports: &Reexports,
) -> Option<usize> {
    let mut path = absolute(here, path, modules)?;
    for _ in 0..16 {
        let mut module = Vec::new();
        let mut best = modules.get(&module).copied();
        let mut next = None;
        for segment in &path {
            let mut deeper = module.clone();
            deeper.push(segment.clone());
            if let Some(&file) = modules.get(&deeper) {
                module = deeper;
                best = Some(file);
            } else {
                next = reexports.get(&(module.clone(), segment.clone())).cloned();
                break;
            }
        }
        match next {
            Some(target) if target != path => path = target,
            _ => return best,
        }
    }
    None
}

/// Tarjan's strongly connected components of the graph `edges`.
fn strongly_connected(edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        groups: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in s.edges[v].iter() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                _ => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                group.push(w);
                if w == v {
                    break;
                }
            }
            group.sort();
            s.groups.push(group);
        }
    }
    let n = edges.len();
    let mut state = State {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        groups: Vec::new(),
    };
    for v in 0..n {
        if state.index[v].is_none() {
            visit(&mut state, v);
        }
    }
    state.groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_tree::tree;

    /// Circles through `crate::`, `super::`, a root's re-export and a child's `use` are
    /// found; doc links, strings, test modules, a facade's `pub use` and one-way chains are
    /// not circles.
    #[test]
    fn finds_circles_and_only_circles() {
        let dir = tree(&[
            (
                "lib.rs",
                "mod a;\nmod b;\nmod c;\nmod d;\nmod nets;\npub use a::A;\n\
                 pub use crate::d::make;\npub trait T {}\n",
            ),
            // Uses the root's own trait while the root re-exports it through `crate::`:
            // a facade's `pub use crate::..` is not a dependency, so no circle.
            (
                "d.rs",
                "use crate::T;\npub fn make() -> Box<dyn T> { todo!() }\n",
            ),
            ("a.rs", "use crate::b::B;\npub struct A;\n"),
            // Through the root's re-export: still a file that a.rs imports.
            ("b.rs", "pub struct B(crate::A);\n"),
            // One way only, through the re-export and a facade's `pub use`: no circle.
            ("c.rs", "use crate::A;\npub struct C(A);\n"),
            (
                "nets/mod.rs",
                "mod vgg;\nmod tta;\nuse vgg::Vgg;\npub use tta::Tta;\n\
                 pub struct Wrapper(Vgg);\n/// see [`crate::a`]\n",
            ),
            ("nets/vgg.rs", "use super::Wrapper;\npub struct Vgg;\n"),
            (
                "nets/tta.rs",
                "const S: &str = \"crate::nets::vgg\";\npub struct Tta(crate::nets::Wrapper);\n\
                 #[cfg(test)]\nmod tests { use super::super::vgg::Vgg; }\n",
            ),
        ]);
        let mut found = circles(dir.path()).unwrap();
        found.sort();
        let names = |group: &[PathBuf]| -> Vec<String> {
            group.iter().map(|p| p.display().to_string()).collect()
        };
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(names(&found[0]), ["a.rs", "b.rs"]);
        assert_eq!(names(&found[1]), ["nets/mod.rs", "nets/vgg.rs"]);
    }

    #[test]
    fn expands_nested_use_trees() {
        let paths = expand_use("crate::cpu::{self, conv as c, pool::{PoolShape, max}}");
        let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
        assert_eq!(
            joined,
            [
                "crate::cpu",
                "crate::cpu::conv",
                "crate::cpu::pool::PoolShape",
                "crate::cpu::pool::max"
            ]
        );
    }

    /// The invariant ARCHITECTURE.md states: no two files of any crate of this workspace
    /// import each other in a circle.
    #[test]
    fn the_workspace_has_no_import_circles() {
        let root = crate::workspace_root();
        for dir in workspace_crates(&root).unwrap() {
            let found = circles(&dir.join("src")).unwrap();
            assert!(found.is_empty(), "{}: {found:?}", dir.display());
        }
    }
}
