//! Who names what, checked on the source: no string of the library (outside `src/cli/` and
//! `src/main.rs`) names a command-line flag (`--batch`) or an environment variable
//! (`WGPU_BACKEND`, `ALEXNET_...`): those are the binary's, which adds them as hints; and no
//! string or help text of the binary names a library path (`gpu::list_adapters`), which its
//! users never see. Test modules (after `#[cfg(test)]`) are not read.

use std::path::{Path, PathBuf};

/// The library's top-level modules, as a CLI message would name them (`gpu::`).
const MODULES: &[&str] = &[
    "api",
    "clobber",
    "data",
    "error",
    "fetch",
    "fine_tune",
    "fsutil",
    "gpu",
    "kernels",
    "labels",
    "lpips",
    "model",
    "options",
    "selftest",
    "shard",
    "train",
    "weights",
];

/// Environment variables the binary (or a scheduler) reads.
const ENV_PREFIXES: &[&str] = &[
    "ALEXNET_",
    "WGPU_",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "SLURM_",
];

/// A line number and the text found there.
type Found = (usize, String);

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The string literals of `src` before its first `#[cfg(test)]` (plain, byte and raw; escapes
/// kept as written), with their line numbers, and separately the `///` lines of items with a
/// clap attribute (`#[arg(..)]`, `#[command(..)]`), which clap prints as help.
fn literals(src: &str) -> (Vec<Found>, Vec<Found>) {
    let src = &src[..src.find("#[cfg(test)]").unwrap_or(src.len())];
    let b = src.as_bytes();
    let line = |i: usize| src[..i].matches('\n').count() + 1;
    let (mut strings, mut docs) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < b.len() {
        let ident_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if b[i..].starts_with(b"//") {
            let end = src[i..].find('\n').map_or(b.len(), |k| i + k);
            // A doc line of a clap attribute's item (`#[arg(..)]`, `#[command(..)]`): help text.
            let next = src[end..]
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("///"));
            let help = next.is_some_and(|l| l.starts_with("#[arg") || l.starts_with("#[command"));
            if b[i..].starts_with(b"///") && help {
                docs.push((line(i), src[i + 3..end].to_string()));
            }
            i = end;
        } else if b[i] == b'\'' {
            // A char literal ('"', '\'', 'x') or a lifetime ('a).
            let rest = &src[i + 1..];
            let mut chars = rest.char_indices();
            i += match (chars.next(), chars.next()) {
                (Some((_, '\\')), _) => rest[2..].find('\'').map_or(1, |k| k + 4),
                (Some((_, _)), Some((k, '\''))) => k + 2,
                _ => 1,
            };
        } else if !ident_before && (b[i] == b'r' || b[i..].starts_with(b"br")) {
            let start = if b[i] == b'r' { i + 1 } else { i + 2 };
            let hashes = b[start..].iter().take_while(|&&c| c == b'#').count();
            if b.get(start + hashes) != Some(&b'"') {
                i += 1;
                continue;
            }
            let close = format!("\"{}", "#".repeat(hashes));
            let body = start + hashes + 1;
            let end = src[body..].find(&close).map_or(b.len(), |k| body + k);
            strings.push((line(i), src[body..end].to_string()));
            i = end + close.len();
        } else if b[i] == b'"' {
            let mut k = i + 1;
            while k < b.len() && b[k] != b'"' {
                k += if b[k] == b'\\' { 2 } else { 1 };
            }
            strings.push((line(i), src[i + 1..k.min(b.len())].to_string()));
            i = k + 1;
        } else {
            i += 1;
        }
    }
    (strings, docs)
}

/// A `--flag` in `s`: two dashes after a space, quote, backtick or bracket (or at the start),
/// then a lowercase letter.
fn names_flag(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(2)).find_map(|i| {
        let starts = i == 0 || b" `'(\"[/".contains(&b[i - 1]);
        (starts && b[i] == b'-' && b[i + 1] == b'-' && b[i + 2].is_ascii_lowercase()).then(|| {
            let end = s[i + 2..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(s.len(), |k| i + 2 + k);
            &s[i..end]
        })
    })
}

fn names_env(s: &str) -> Option<&'static str> {
    ENV_PREFIXES.iter().copied().find(|p| {
        s.match_indices(p).any(|(i, _)| {
            i == 0 || !s.as_bytes()[i - 1].is_ascii_alphanumeric() && s.as_bytes()[i - 1] != b'_'
        })
    })
}

fn names_library_path(s: &str) -> Option<&'static str> {
    MODULES.iter().copied().find(|m| {
        s.match_indices(&format!("{m}::")).any(|(i, _)| {
            i == 0 || !(s.as_bytes()[i - 1].is_ascii_alphanumeric() || s.as_bytes()[i - 1] == b'_')
        })
    })
}

/// What the rules find in `src` (relative paths), one line per finding.
fn findings(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rs_files(&root.join("src"), &mut files);
    files.sort();
    let mut found = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let cli = rel.starts_with("src/cli/") || rel == "src/main.rs";
        let (strings, docs) = literals(&std::fs::read_to_string(&f).unwrap());
        if cli {
            // The binary's messages, and the doc comments clap turns into --help.
            for (line, s) in strings.iter().chain(&docs) {
                if let Some(m) = names_library_path(s) {
                    found.push(format!("{rel}:{line}: a CLI message names `{m}::`: {s}"));
                }
            }
        } else {
            for (line, s) in &strings {
                if let Some(flag) = names_flag(s) {
                    found.push(format!("{rel}:{line}: a library string names {flag}: {s}"));
                }
                if let Some(var) = names_env(s) {
                    found.push(format!("{rel}:{line}: a library string names {var}: {s}"));
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn library_strings_name_no_flag_or_variable_and_cli_messages_no_library_path() {
    let found = findings(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(found.is_empty(), "\n{}", found.join("\n"));
}

/// The scanner itself, on a small tree with one finding of each kind (and what it must pass
/// over: comments, test modules, char literals, paths outside the library's modules).
#[test]
fn the_scanner_finds_each_kind_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("cli")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "// --comment WGPU_BACKEND\nfn f() -> String { let q = '\"'; \
         format!(\"{q} try --batch 8\") }\nconst E: &str = r#\"set ALEXNET_CACHE_DIR\"#;\n\
         const OK: &str = \"x--y and a - b, std::fs, ALEXNET\";\n\
         #[cfg(test)]\nmod tests { const T: &str = \"--in-a-test\"; }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("cli/mod.rs"),
        "/// Lists adapters (see `gpu::list_adapters`).\n#[arg(long)]\nfn g() { println!(\"--batch \
         is fine here, std::env:: too\"); eprintln!(\"set by fetch::set_cache_dir\"); }\n\
         /// Internal: data::prepare_into, no help text.\nfn h() {}\n",
    )
    .unwrap();
    let found = findings(dir.path());
    let expect = [
        "src/cli/mod.rs:1: a CLI message names `gpu::`",
        "src/cli/mod.rs:3: a CLI message names `fetch::`",
        "src/lib.rs:2: a library string names --batch",
        "src/lib.rs:3: a library string names ALEXNET_",
    ];
    assert_eq!(found.len(), expect.len(), "{found:#?}");
    for (f, e) in found.iter().zip(expect) {
        assert!(f.starts_with(e), "{f} / {e}");
    }
}
