//! The house rule "no file-level import cycles in `src/`", checked on the source.
//!
//! Module-level layering (`layering.rs`) says which top-level module may import which; inside a
//! module, files may still import each other in a circle (`cli/features` <-> `cli/meter` slipped
//! in once), and then neither file can be read, tested or moved alone. This is a std-only port
//! of the hand-run script `shared/tools/file_cycles.py`, with its rules:
//!
//! - each `.rs` file is a module: `a/b.rs` and `a/b/mod.rs` are `a::b`; `lib.rs` is the library
//!   root. `main.rs` and everything under `cli/` are the binary crate, whose `crate::` is
//!   `main.rs` (which declares `mod cli`);
//! - `#[cfg(test)] mod tests` (and all after it) and `//` comments are not imports;
//! - every `use` tree is expanded (`a::{b, c::{d as e}}` -> `a::b`, `a::c::d`), and paths written
//!   inline (`crate::x::f()`, `super::y::Z`) count too;
//! - a path starting `crate::`, `alexnet_wgpu::`, `super::` or `self::` resolves to the longest
//!   prefix that is a file; other paths (std, external crates) are not followed;
//! - a name the target file re-exports (`pub use sub::Name;`) in a `mod.rs` or `lib.rs` leads on
//!   to the file that defines it, so importing through a facade is not a dependency on the facade;
//! - imports of a file's own ancestors (`super::`, `crate::` root items) are dropped: a parent
//!   declares its children, so child -> parent would close a "cycle" in every module.
//!
//! A cycle is then a strongly connected group of two or more files.
//!
//! Where this port departs from the script, it fixes the script (on today's `src/` these change
//! 25 of ~720 edges and no group):
//! - `x as y` renames and names containing "as": the script deleted the spaces and cut names at
//!   any "as" (`ClassFolders` -> `Cl`, `dataset` -> `dat`), so their re-exports were not followed;
//! - an inline path through a type (`crate::data::Preprocess::for_arch`) takes the name right
//!   after the module (`Preprocess`), as re-exports are looked up by; the script took the last
//!   segment (`for_arch`) and stopped at the facade;
//! - the crate root's re-exports: `alexnet_wgpu::Error` leads to `error.rs` (the script never
//!   resolved a path to the root).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

mod parser_tests;

/// The library's name, as the binary (and doc examples) write its paths.
const LIB_NAME: &str = "alexnet_wgpu";

/// One source file: where it is, which crate and module it is, and its code without tests and
/// comments.
struct SourceFile {
    /// Path relative to `src/`, with `/` separators (`cli/meter.rs`).
    rel: String,
    module: Vec<String>,
    binary: bool,
    code: String,
}

/// File -> file it imports from -> the names it takes from there.
type Edges = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The files of `src/` as `(relative path, text)`, sorted.
fn read_tree(src: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy();
                out.push((rel.replace('\\', "/"), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(src, src, &mut out);
    out.sort();
    out
}

/// `a/b.rs` and `a/b/mod.rs` -> `[a, b]`; the crate roots -> `[]`.
fn module_path(rel: &str) -> Vec<String> {
    let mut segs: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if segs.last().is_some_and(|s| s == "mod") || segs == ["lib"] || segs == ["main"] {
        segs.pop();
    }
    segs
}

fn is_binary(rel: &str) -> bool {
    rel.starts_with("cli/") || rel == "main.rs"
}

/// The code without the test module (everything from `#[cfg(test)] mod tests` on) and without
/// `//` comments. As in the script, a `"` toggles "inside a string" unless escaped, so `//` in
/// a string literal stays; block comments are kept.
fn strip_tests_and_comments(src: &str) -> String {
    let mut code = src;
    let mut from = 0;
    while let Some(i) = code[from..].find("#[cfg(test)]") {
        let at = from + i;
        if code[at + 12..].trim_start().starts_with("mod tests") {
            code = &code[..at];
            break;
        }
        from = at + 12;
    }
    let lines: Vec<String> = code
        .split('\n')
        .map(|line| {
            let chars: Vec<char> = line.chars().collect();
            let mut in_string = false;
            let mut kept = String::new();
            for (i, &c) in chars.iter().enumerate() {
                if c == '"' && (i == 0 || chars[i - 1] != '\\') {
                    in_string = !in_string;
                }
                if !in_string && c == '/' && chars.get(i + 1) == Some(&'/') {
                    break;
                }
                kept.push(c);
            }
            kept
        })
        .collect();
    lines.join("\n")
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `word` starts at byte `at` of `s` with no word character before it.
fn word_at(s: &str, at: usize, word: &str) -> bool {
    s[at..].starts_with(word) && !s[..at].chars().next_back().is_some_and(is_word)
}

/// Each `use TREE;` in the code, as (byte span of the whole statement, TREE, re-exported?).
/// A statement is re-exported when `pub` or `pub(crate)` precedes it (the script's rule; the
/// re-exports that matter are the facades' `pub use`).
fn use_statements(code: &str) -> Vec<(std::ops::Range<usize>, &str, bool)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = code[at..].find("use") {
        let start = at + i;
        at = start + 3;
        let after = &code[start + 3..];
        let tree_from = after.len() - after.trim_start().len();
        if !word_at(code, start, "use") || tree_from == 0 {
            continue;
        }
        let Some(semi) = after.find(';') else { break };
        if semi == tree_from {
            continue;
        }
        let before = code[..start].trim_end();
        let public = ["pub", "pub(crate)"]
            .iter()
            .any(|p| before.ends_with(p) && word_at(before, before.len() - p.len(), p));
        out.push((start..start + 3 + semi + 1, &after[tree_from..semi], public));
        at = start + 3 + semi + 1;
    }
    out
}

/// `a::{b, c::{d as e, self}}` -> `a::b`, `a::c::d`, `a::c::self`: one path per imported name,
/// renames dropped (the import is of `d`, whatever the file calls it).
fn expand_use_tree(tree: &str) -> Vec<String> {
    // Whitespace only separates `as`; mark it and drop the rest.
    let compact: String = tree
        .split_whitespace()
        .map(|t| if t == "as" { "@" } else { t })
        .collect();
    fn expand(s: &str) -> Vec<String> {
        let Some(open) = s.find('{') else {
            return vec![s.split('@').next().unwrap().to_string()];
        };
        let (prefix, mut depth, mut close) = (&s[..open], 0, s.len());
        for (j, c) in s.char_indices().skip(open) {
            depth += match c {
                '{' => 1,
                '}' => -1,
                _ => 0,
            };
            if depth == 0 {
                close = j;
                break;
            }
        }
        let (mut parts, mut part, mut depth) = (Vec::new(), String::new(), 0);
        for c in s[open + 1..close].chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(std::mem::take(&mut part));
                    continue;
                }
                _ => {}
            }
            part.push(c);
        }
        parts.push(part);
        let parts = parts.into_iter().filter(|p| !p.is_empty());
        parts
            .flat_map(|p| {
                expand(&p)
                    .into_iter()
                    .map(|q| format!("{prefix}{q}"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
    expand(&compact)
}

/// The `crate::`/`alexnet_wgpu::`/`super::` paths written outside `use` statements
/// (`crate::model::Net::new`, `super::super::x::Y`); `self::` alone names nothing new.
fn inline_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < code.len() {
        let head = ["crate::", "alexnet_wgpu::", "super::"]
            .into_iter()
            .find(|h| word_at(code, at, h));
        let rest_len = head.map_or(0, |h| {
            code[at + h.len()..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(code.len() - at - h.len())
        });
        match head {
            Some(h) if rest_len > 0 => {
                let end = at + h.len() + rest_len;
                out.push(code[at..end].to_string());
                at = end;
            }
            _ => at += code[at..].chars().next().unwrap().len_utf8(),
        }
    }
    out
}

/// The crate's files by (binary crate?, module path).
struct Modules(HashMap<(bool, Vec<String>), String>);

impl Modules {
    fn of(files: &[SourceFile]) -> Modules {
        Modules(
            files
                .iter()
                .map(|f| ((f.binary, f.module.clone()), f.rel.clone()))
                .collect(),
        )
    }

    /// The file a path names, and the name it takes from that file: the longest prefix of the
    /// path that is a module of the crate the path starts in, and the segment after it (or the
    /// module's own name when the path ends there). `None` for paths outside the crates.
    fn resolve(&self, from: &SourceFile, path: &str) -> Option<(String, String)> {
        let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let (binary, mut full): (bool, Vec<&str>) = match *segs.first()? {
            "crate" => (from.binary, vec![]),
            LIB_NAME => (false, vec![]),
            "super" | "self" => (
                from.binary,
                from.module.iter().map(String::as_str).collect(),
            ),
            _ => return None,
        };
        let mut rest = &segs[1..];
        if segs[0] == "super" {
            full.pop();
            while rest.first() == Some(&"super") {
                full.pop();
                rest = &rest[1..];
            }
        }
        full.extend(rest);
        (0..=full.len()).rev().find_map(|k| {
            let module: Vec<String> = full[..k].iter().map(|s| s.to_string()).collect();
            let file = self.0.get(&(binary, module))?;
            let name = full.get(k).or(full.last()).unwrap_or(&"crate");
            Some((file.clone(), name.to_string()))
        })
    }
}

/// (file, name) -> the file that `file` re-exports `name` from (`pub use sub::Name;` in a
/// `mod.rs`/`lib.rs`). Re-export paths are relative to the re-exporting module unless they say
/// otherwise (`pub use sub::X` means `self::sub::X`).
fn reexports(files: &[SourceFile], modules: &Modules) -> HashMap<(String, String), String> {
    let mut out = HashMap::new();
    for f in files {
        if !(f.rel.ends_with("mod.rs") || f.rel.ends_with("lib.rs")) {
            continue;
        }
        for (_, tree, public) in use_statements(&f.code) {
            for path in expand_use_tree(tree).iter().filter(|_| public) {
                let relative = ["crate", "super", "self"]
                    .iter()
                    .all(|h| !path.starts_with(&format!("{h}::")));
                let path = if relative {
                    format!("self::{path}")
                } else {
                    path.clone()
                };
                if let Some((target, _)) = modules.resolve(f, &path) {
                    let name = path.rsplit("::").next().unwrap().to_string();
                    out.insert((f.rel.clone(), name), target);
                }
            }
        }
    }
    out
}

/// The file-to-file imports, re-exports followed, imports of ancestors (and of itself) dropped.
fn import_edges(files: &[SourceFile]) -> Edges {
    let modules = Modules::of(files);
    let reexported = reexports(files, &modules);
    let mut edges = Edges::new();
    for f in files {
        let uses = use_statements(&f.code);
        let mut paths: Vec<String> = uses
            .iter()
            .filter(|(_, tree, _)| !tree.trim().starts_with("std"))
            .flat_map(|(_, tree, _)| expand_use_tree(tree))
            .collect();
        let mut rest = f.code.clone();
        for (span, _, _) in uses.iter().rev() {
            rest.replace_range(span.clone(), "");
        }
        paths.extend(inline_paths(&rest));
        for path in paths {
            let Some((mut target, name)) = modules.resolve(f, &path) else {
                continue;
            };
            let mut seen = BTreeSet::new();
            while let Some(next) = reexported.get(&(target.clone(), name.clone())) {
                if !seen.insert(next.clone()) {
                    break;
                }
                target = next.clone();
            }
            let to = files.iter().find(|g| g.rel == target).unwrap();
            // A crate root is everyone's ancestor (and the library's root cannot import the binary).
            let ancestor =
                to.module.is_empty() || (to.binary == f.binary && f.module.starts_with(&to.module));
            if !ancestor {
                edges
                    .entry(f.rel.clone())
                    .or_default()
                    .entry(target)
                    .or_default()
                    .insert(name);
            }
        }
    }
    edges
}

/// Strongly connected groups of two or more files (Tarjan), each sorted, in file order.
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a Edges,
        index: HashMap<&'a str, (usize, usize)>,
        stack: Vec<&'a str>,
        groups: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, (i, i));
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flat_map(|t| t.keys()) {
                let low = match self.index.get(w.as_str()) {
                    None => {
                        self.visit(w);
                        self.index[w.as_str()].1
                    }
                    Some(&(wi, _)) if self.stack.contains(&w.as_str()) => wi,
                    Some(_) => continue,
                };
                let entry = self.index.get_mut(v).unwrap();
                entry.1 = entry.1.min(low);
            }
            if self.index[v].0 == self.index[v].1 {
                let at = self.stack.iter().rposition(|x| *x == v).unwrap();
                let mut group: Vec<String> = self.stack.drain(at..).map(String::from).collect();
                group.sort();
                if group.len() > 1 {
                    self.groups.push(group);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: HashMap::new(),
        stack: vec![],
        groups: vec![],
    };
    let nodes: BTreeSet<&str> = edges
        .iter()
        .flat_map(|(a, to)| std::iter::once(a.as_str()).chain(to.keys().map(String::as_str)))
        .collect();
    for v in nodes {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.groups.sort();
    t.groups
}

/// Each group's files, and the names each file takes from the others in its group.
fn report(groups: &[Vec<String>], edges: &Edges) -> String {
    let mut out = String::new();
    for g in groups {
        out += &format!(
            "{} files: {}\n",
            g.len(),
            g.iter()
                .map(|f| format!("src/{f}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for f in g {
            for (to, names) in edges
                .get(f)
                .into_iter()
                .flatten()
                .filter(|(to, _)| g.contains(to))
            {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                out += &format!("  src/{f} takes from src/{to}: {}\n", names.join(", "));
            }
        }
    }
    out
}

/// The import cycles of a crate given as `(path relative to src/, text)`, as a report.
fn file_cycles(tree: &[(String, String)]) -> String {
    let files: Vec<SourceFile> = tree
        .iter()
        .map(|(rel, text)| SourceFile {
            rel: rel.clone(),
            module: module_path(rel),
            binary: is_binary(rel),
            code: strip_tests_and_comments(text),
        })
        .collect();
    let edges = import_edges(&files);
    report(&cycles(&edges), &edges)
}

#[test]
fn no_file_level_import_cycles_in_src() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = file_cycles(&read_tree(&src));
    assert!(
        found.is_empty(),
        "file-level import cycles (move what the files share into one of them, or below both):\n{found}"
    );
}

/// Parity with the script on any tree: `FILE_CYCLES_SRC=/some/src cargo test --release --test it
/// file_cycles::of_another_tree -- --ignored --nocapture` prints what
/// `python3 file_cycles.py /some/src` prints, in this module's words.
#[test]
#[ignore]
fn of_another_tree() {
    let src = std::env::var("FILE_CYCLES_SRC").expect("FILE_CYCLES_SRC=<a src/ directory>");
    println!("{}", file_cycles(&read_tree(Path::new(&src))));
}
