//! The parser and resolver of `file_cycles` on small strings and trees, each rule alone.

use super::*;

#[test]
fn use_trees_expand_to_one_path_per_name_without_renames() {
    assert_eq!(
        expand_use_tree("crate::a::{b, c::{d as e, self},\n    f::G}"),
        [
            "crate::a::b",
            "crate::a::c::d",
            "crate::a::c::self",
            "crate::a::f::G"
        ]
    );
    assert_eq!(
        expand_use_tree("super::dataset::Dataset as Set"),
        ["super::dataset::Dataset"]
    );
}

#[test]
fn use_statements_are_found_and_public_ones_marked() {
    let code = "pub use a::B;\nfn reuse() {}\npub(crate) use c::{D,\n E};\n    use super::F;";
    let found: Vec<(&str, bool)> = use_statements(code)
        .into_iter()
        .map(|(_, t, p)| (t, p))
        .collect();
    assert_eq!(
        found,
        [("a::B", true), ("c::{D,\n E}", true), ("super::F", false)]
    );
}

#[test]
fn tests_and_comments_are_not_imports() {
    let code = strip_tests_and_comments(
        "use crate::a::A; // use crate::b::B;\nlet s = \"http://x\";\n#[cfg(test)]\nmod tests {\n use crate::c::C;\n}",
    );
    assert_eq!(code, "use crate::a::A; \nlet s = \"http://x\";\n");
}

#[test]
fn paths_resolve_to_the_longest_file_prefix() {
    let file = |rel: &str| SourceFile {
        rel: rel.to_string(),
        module: module_path(rel),
        binary: is_binary(rel),
        code: String::new(),
    };
    let files: Vec<SourceFile> = [
        "lib.rs",
        "a/mod.rs",
        "a/b.rs",
        "a/b/c.rs",
        "d.rs",
        "main.rs",
        "cli/mod.rs",
        "cli/e.rs",
    ]
    .map(file)
    .into();
    let m = Modules::of(&files);
    let at = |from: usize, path: &str| m.resolve(&files[from], path);
    let hit = |f: &str, n: &str| Some((f.to_string(), n.to_string()));
    assert_eq!(at(3, "super::super::super::d::X"), hit("d.rs", "X"));
    assert_eq!(at(2, "super::Y"), hit("a/mod.rs", "Y"));
    assert_eq!(at(2, "self::c::Z::new"), hit("a/b/c.rs", "Z"));
    assert_eq!(at(4, "crate::a::b::W"), hit("a/b.rs", "W"));
    assert_eq!(at(4, "crate::a::b"), hit("a/b.rs", "b"));
    assert_eq!(at(4, "crate::Error"), hit("lib.rs", "Error"));
    assert_eq!(at(4, "std::fmt"), None);
    // The binary's `crate::` is main.rs; the library is reached by its name.
    assert_eq!(at(7, "crate::cli::e::V"), hit("cli/e.rs", "V"));
    assert_eq!(at(7, "crate::a::b::W"), hit("main.rs", "a"));
    assert_eq!(at(7, "alexnet_wgpu::a::b::W"), hit("a/b.rs", "W"));
}

fn tree(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

#[test]
fn reexports_lead_to_the_defining_file() {
    // `a` re-exports `Thing` from `a/inner.rs`, and `a/inner.rs` imports `d`: `d` importing
    // `crate::a::Thing` closes a cycle with `a/inner.rs`, not with the facade `a/mod.rs`.
    let found = file_cycles(&tree(&[
        ("lib.rs", "pub mod a;\npub mod d;\npub use d::Root;"),
        ("a/mod.rs", "mod inner;\npub use inner::Thing;"),
        ("a/inner.rs", "pub struct Thing(crate::Root);"),
        ("d.rs", "use crate::a::Thing;\npub struct Root;"),
    ]));
    assert!(
        found.starts_with("2 files: src/a/inner.rs, src/d.rs\n"),
        "{found}"
    );
    assert!(
        found.contains("src/d.rs takes from src/a/inner.rs: Thing\n"),
        "{found}"
    );
    assert!(
        found.contains("src/a/inner.rs takes from src/d.rs: Root\n"),
        "{found}"
    );
}

#[test]
fn parents_and_children_are_no_cycle() {
    let found = file_cycles(&tree(&[
        ("lib.rs", "pub mod a;"),
        ("a/mod.rs", "mod b;\npub struct P;\nfn f() { self::b::g() }"),
        ("a/b.rs", "use super::P;\npub fn g() {}"),
    ]));
    assert_eq!(found, "");
}

#[test]
fn a_two_file_cycle_on_disk_is_reported_with_both_files_and_names() {
    let dir = std::env::temp_dir().join(format!("file-cycles-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("cli")).unwrap();
    for (path, text) in [
        ("lib.rs", "pub mod x;"),
        ("x.rs", "pub fn x() {}"),
        ("main.rs", "mod cli;\nfn main() {}"),
        ("cli/mod.rs", "mod features;\nmod meter;"),
        (
            "cli/features.rs",
            "use super::meter::Meter;\npub fn bar() {}",
        ),
        (
            "cli/meter.rs",
            "pub struct Meter;\nfn f() { super::features::bar() }",
        ),
    ] {
        std::fs::write(dir.join(path), text).unwrap();
    }
    let found = file_cycles(&read_tree(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        found,
        "2 files: src/cli/features.rs, src/cli/meter.rs\n  \
         src/cli/features.rs takes from src/cli/meter.rs: Meter\n  \
         src/cli/meter.rs takes from src/cli/features.rs: bar\n"
    );
}
