//! The rule every subcommand must pass, walked from clap's own command tree (so a new
//! subcommand or path flag is covered without editing these tests): every path argument has a
//! role in `files::role`; each output named like each input (the file itself, a file inside an
//! input folder, an entry of an input list) and like each other output is refused with exit 2
//! and the file unchanged; a FIFO or `/dev/zero` as any path argument is refused in bounded
//! time.
//!
//! Each case runs the real command line in a child process (this test binary again, running
//! only [`child`]): a refusal that failed would otherwise run the command in the tests'
//! process (GPU work, process-wide settings such as the cache folder).

use std::any::TypeId;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::CommandFactory;

use super::files::{reads_from_folder, role, Names, Role};
use super::Cli;

const CHILD_ARGV: &str = "ALEXNET_FILES_TEST_ARGV";

/// Runs the command line in `ALEXNET_FILES_TEST_ARGV` (arguments separated by `\x1f`) as
/// `main` does and exits with its status; without it, does nothing.
#[test]
#[ignore = "the child process of the tests below"]
fn child() {
    let Some(argv) = std::env::var_os(CHILD_ARGV) else {
        return;
    };
    let argv: Vec<OsString> = std::iter::once(OsString::from("alexnet"))
        .chain(argv.to_str().unwrap().split('\x1f').map(OsString::from))
        .collect();
    let code = match super::parse(argv) {
        Err(e) => {
            let _ = e.print();
            e.exit_code()
        }
        Ok((cli, m)) => match super::run(cli, &m) {
            Ok(c) if c == ExitCode::SUCCESS => 0,
            Ok(_) => 1,
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        },
    };
    std::process::exit(code);
}

/// Exit status and standard error of the command line `argv`, killed after 60 s.
fn run_child(argv: &[String]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cli::files_tests::child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ARGV, argv.join("\x1f"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{argv:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every subcommand (recursively) with its path arguments and their roles.
fn commands() -> Vec<(String, Vec<(clap::Arg, Role)>)> {
    // Built: positional indexes assigned, global arguments propagated.
    let mut cli = Cli::command();
    cli.build();
    let mut out = Vec::new();
    let mut stack: Vec<&clap::Command> = cli.get_subcommands().collect();
    while let Some(sub) = stack.pop() {
        stack.extend(sub.get_subcommands());
        let name = sub.get_name().to_string();
        let args = sub
            .get_arguments()
            .filter(|a| is_path(a))
            .map(|a| {
                let r = role(&name, a.get_id().as_str())
                    .unwrap_or_else(|| panic!("{name} {}: a path without a role", a.get_id()));
                (a.clone(), r)
            })
            .collect();
        out.push((name, args));
    }
    out
}

fn is_path(a: &clap::Arg) -> bool {
    a.get_value_parser().type_id() == TypeId::of::<PathBuf>()
}

fn is_input(r: Role) -> bool {
    matches!(
        r,
        Role::File
            | Role::Weights
            | Role::List
            | Role::Pairs
            | Role::Images
            | Role::Batches
            | Role::Folder
    )
}

fn is_output(r: Role) -> bool {
    matches!(
        r,
        Role::Output | Role::Model | Role::OutputDir(_) | Role::OutputPrefix(_)
    )
}

#[test]
fn every_path_argument_has_a_role() {
    let mut cli = Cli::command();
    cli.build();
    let mut missing = Vec::new();
    let mut stack: Vec<&clap::Command> = vec![&cli];
    while let Some(c) = stack.pop() {
        stack.extend(c.get_subcommands());
        for a in c.get_arguments().filter(|a| is_path(a)) {
            if role(c.get_name(), a.get_id().as_str()).is_none() {
                missing.push(format!("{} {}", c.get_name(), a.get_id()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "path arguments without a role in files::role: {missing:?}"
    );
    // The walk below sees every subcommand and finds outputs to try.
    let all = commands();
    assert!(all.len() >= 13, "{}", all.len());
    let outputs: usize = all
        .iter()
        .map(|(_, a)| a.iter().filter(|(_, r)| is_output(*r)).count())
        .sum();
    assert!(outputs >= 14, "{outputs}");
}

/// A command line under construction: flags and positional values by argument.
struct Line {
    command: String,
    values: Vec<(clap::Arg, PathBuf)>,
}

impl Line {
    fn argv(&self, cache: &Path) -> Vec<String> {
        let mut v = vec![self.command.clone()];
        let mut positional: Vec<(usize, String)> = Vec::new();
        for (a, p) in &self.values {
            let p = p.to_str().unwrap().to_string();
            match (a.get_long(), a.get_index()) {
                (Some(l), _) => {
                    v.push(format!("--{l}"));
                    v.push(p);
                }
                (None, Some(i)) => positional.push((i, p)),
                (None, None) => unreachable!("an argument with neither"),
            }
        }
        positional.sort();
        v.extend(positional.into_iter().map(|(_, p)| p));
        if self.command == "fetch-weights" {
            // Were the refusal missed, no download: nothing listens there.
            v.extend(["--url".into(), "http://127.0.0.1:9/none.pth".into()]);
        }
        v.push("--cache-dir".into());
        v.push(cache.to_str().unwrap().into());
        v
    }

    fn has(&self, a: &clap::Arg) -> bool {
        self.values.iter().any(|(b, _)| b.get_id() == a.get_id())
    }
}

/// An input of this role made fresh in `dir` (a file named `name`, or a folder holding one).
fn make_input(role: Role, dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    match role {
        Role::Images | Role::Batches | Role::File | Role::Weights => {
            let p = dir.join(name);
            std::fs::write(&p, format!("input {name}")).unwrap();
            p
        }
        Role::List | Role::Pairs => {
            let p = dir.join(name);
            let a = dir.join("entry-a.png");
            let b = dir.join("entry-b.png");
            std::fs::write(&a, b"a").unwrap();
            std::fs::write(&b, b"b").unwrap();
            let text = if role == Role::Pairs {
                format!("{}\t{}\n", a.display(), b.display())
            } else {
                format!("{}\n", a.display())
            };
            std::fs::write(&p, text).unwrap();
            p
        }
        Role::Folder => {
            let d = dir.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("inside.png"), b"inside").unwrap();
            d
        }
        _ => unreachable!("not an input"),
    }
}

/// The value that makes an output of this role write `file` (None: it cannot).
fn output_for(role: Role, file: &Path) -> Option<PathBuf> {
    let name = file.file_name()?.to_str()?;
    match role {
        Role::Output | Role::Model => Some(file.to_path_buf()),
        Role::OutputPrefix(suffixes) => suffixes
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .map(|stem| file.with_file_name(stem)),
        Role::OutputDir(names) => (names.example() == name).then(|| crate_parent(file)),
        _ => None,
    }
}

fn crate_parent(p: &Path) -> PathBuf {
    p.parent().unwrap().to_path_buf()
}

/// A file name every one of these output roles can write.
fn target_name(roles: &[Role]) -> Option<String> {
    let mut name = "target.png".to_string();
    for r in roles {
        match r {
            Role::OutputDir(n) => name = n.example().to_string(),
            Role::OutputPrefix(s) => {
                let suffix = s.iter().find(|s| s.ends_with(".npy")).unwrap_or(&s[0]);
                name = format!("target{suffix}");
            }
            _ => {}
        }
    }
    roles
        .iter()
        .all(|r| output_for(*r, &Path::new("/x").join(&name)).is_some())
        .then_some(name)
}

/// Fresh values for the arguments clap requires (and any that make `line` parse), so that
/// only the check decides. None when the two arguments of interest cannot go together.
fn complete(line: &mut Line, args: &[(clap::Arg, Role)], dir: &Path, cache: &Path) -> bool {
    for (a, r) in args {
        if a.is_required_set() && !line.has(a) {
            line.values.push((a.clone(), fresh(*r, dir, a)));
        }
    }
    for _ in 0..args.len() + 1 {
        let argv = line.argv(cache);
        let argv =
            std::iter::once(OsString::from("alexnet")).chain(argv.iter().map(OsString::from));
        match super::parse(argv) {
            Ok(_) => return true,
            Err(e) if e.kind() == clap::error::ErrorKind::ArgumentConflict => return false,
            Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => {
                // Add the first argument not yet given that parses (required_unless, requires).
                let text = e.to_string();
                let named = |a: &clap::Arg| match (a.get_long(), a.get_value_names()) {
                    (Some(l), _) => text.contains(&format!("--{l}")),
                    (None, Some(v)) => text.contains(&format!("<{}>", v[0])),
                    (None, None) => false,
                };
                let next = args.iter().find(|(a, _)| !line.has(a) && named(a));
                let Some((a, r)) = next.or_else(|| args.iter().find(|(a, _)| !line.has(a))) else {
                    return false;
                };
                line.values.push((a.clone(), fresh(*r, dir, a)));
            }
            Err(e) => panic!("{}: {e}", line.command),
        }
    }
    false
}

/// A value of this role that collides with nothing.
fn fresh(r: Role, dir: &Path, a: &clap::Arg) -> PathBuf {
    let d = dir.join(format!("fresh-{}", a.get_id()));
    if is_input(r) {
        return make_input(r, &d, "in.png");
    }
    std::fs::create_dir_all(&d).unwrap();
    d.join("out")
}

const REFUSED: &[&str] = &[
    "would overwrite",
    "would replace",
    "name the same file",
    "would write",
    "is a folder, expected a file name",
];

fn expect_refused(line: &Line, cache: &Path, keep: &Path, what: &str, failures: &mut Vec<String>) {
    let before = std::fs::read(keep).unwrap();
    let argv = line.argv(cache);
    let (code, err) = run_child(&argv);
    let refused = code == Some(2) && REFUSED.iter().any(|r| err.contains(r));
    let unchanged = std::fs::read(keep).unwrap() == before;
    if !(refused && unchanged) {
        failures.push(format!(
            "{what}: {argv:?}: exit {code:?}, {} unchanged: {unchanged}; {err}",
            keep.display()
        ));
    }
}

#[test]
fn every_output_named_like_an_input_or_another_output_is_refused() {
    let mut failures = Vec::new();
    let mut tried = 0;
    for (command, args) in commands() {
        let outputs: Vec<&(clap::Arg, Role)> = args.iter().filter(|(_, r)| is_output(*r)).collect();
        for (o, orole) in &outputs {
            // Each input: the file itself, a file inside it (a folder), an entry of it (a list).
            for (i, irole) in args.iter().filter(|(_, r)| is_input(*r)) {
                let Some(name) = target_name(&[*orole]) else {
                    continue;
                };
                let mut targets: Vec<(&str, PathBuf, PathBuf)> = Vec::new(); // (what, input value, file)
                let tmp = tempfile::tempdir().unwrap();
                let d = tmp.path();
                match irole {
                    Role::Folder | Role::Images | Role::Batches => {
                        let folder = d.join("folder");
                        let inner = make_input(Role::Images, &folder.join("class"), &name);
                        // Only what the folder's listing reads is an input (an lpips folder's
                        // pair-00001.npy is not).
                        if reads_from_folder(*irole, &inner) {
                            targets.push(("a file inside the input folder", folder, inner));
                        }
                        if *irole != Role::Folder {
                            let file = make_input(Role::Images, &d.join("single"), &name);
                            targets.push(("the input file", file.clone(), file));
                        }
                    }
                    Role::List | Role::Pairs => {
                        let list = make_input(*irole, &d.join("list"), &name);
                        targets.push(("the list", list.clone(), list.clone()));
                        let entry = d.join("list/entry-a.png");
                        if output_for(*orole, &entry).is_some() {
                            targets.push(("an entry of the list", list, entry));
                        }
                    }
                    _ => {
                        let file = make_input(*irole, &d.join("file"), &name);
                        targets.push(("the input file", file.clone(), file));
                    }
                }
                for (what, ivalue, file) in targets {
                    let Some(ovalue) = output_for(*orole, &file) else {
                        continue;
                    };
                    let cache = d.join("cache");
                    std::fs::create_dir_all(&cache).unwrap();
                    let mut line = Line {
                        command: command.clone(),
                        values: vec![(i.clone(), ivalue), (o.clone(), ovalue)],
                    };
                    if !complete(&mut line, &args, d, &cache) {
                        continue;
                    }
                    tried += 1;
                    let what = format!("{command} {} vs {} ({what})", o.get_id(), i.get_id());
                    expect_refused(&line, &cache, &file, &what, &mut failures);
                }
            }
            // Each other output.
            for (o2, o2role) in outputs.iter().map(|x| (&x.0, x.1)) {
                if o2.get_id() == o.get_id() {
                    continue;
                }
                let Some(name) = target_name(&[*orole, o2role]) else {
                    continue;
                };
                let tmp = tempfile::tempdir().unwrap();
                let d = tmp.path();
                let file = d.join("shared").join(name);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, b"old output").unwrap();
                let cache = d.join("cache");
                std::fs::create_dir_all(&cache).unwrap();
                let mut line = Line {
                    command: command.clone(),
                    values: vec![
                        (o.clone(), output_for(*orole, &file).unwrap()),
                        (o2.clone(), output_for(o2role, &file).unwrap()),
                    ],
                };
                if !complete(&mut line, &args, d, &cache) {
                    continue;
                }
                tried += 1;
                let what = format!("{command} {} vs {}", o.get_id(), o2.get_id());
                expect_refused(&line, &cache, &file, &what, &mut failures);
            }
        }
    }
    eprintln!("{tried} command lines tried");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(tried >= 40, "only {tried} cases");
}

#[cfg(unix)]
#[test]
fn a_fifo_or_a_device_as_any_path_argument_is_refused_in_bounded_time() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe.png");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut failures = Vec::new();
    let mut tried = 0;
    for (command, args) in commands() {
        for (a, r) in &args {
            let image_argument =
                matches!(r, Role::Images | Role::Batches) && a.get_long().is_none();
            if *r == Role::Setting || image_argument {
                // Image paths on the command line are failed inputs, named, the others run
                // (tests/it/cli.rs unbounded_and_blocking_inputs_are_refused).
                continue;
            }
            for special in [fifo.as_path(), Path::new("/dev/zero")] {
                let d = tempfile::tempdir().unwrap();
                let cache = d.path().join("cache");
                std::fs::create_dir_all(&cache).unwrap();
                let mut line = Line {
                    command: command.clone(),
                    values: vec![(a.clone(), special.to_path_buf())],
                };
                if !complete(&mut line, &args, d.path(), &cache) {
                    continue;
                }
                tried += 1;
                let started = Instant::now();
                let argv = line.argv(&cache);
                let (code, err) = run_child(&argv);
                let named = err.contains(special.to_str().unwrap());
                let said = ["FIFO", "a device", "not a folder", "not a regular file"]
                    .iter()
                    .any(|s| err.contains(s));
                if code != Some(2) || !named || !said || started.elapsed() > Duration::from_secs(20)
                {
                    failures.push(format!(
                        "{argv:?}: exit {code:?} after {:?}: {err}",
                        started.elapsed()
                    ));
                }
            }
        }
    }
    eprintln!("{tried} command lines tried");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(tried >= 30, "only {tried} cases");
}

#[test]
fn names_of_output_folders() {
    let maps = Names::Numbered("pair-", &[".npy", ".png"]);
    assert!(maps.matches("pair-00012.npy"));
    assert!(maps.matches("pair-00012.png"));
    assert!(!maps.matches("pair-12.npy"));
    assert!(!maps.matches("pair-00012.jpg"));
    assert!(Names::Parts.matches("part-00000-of-00003.logits.npy"));
    assert!(!Names::Parts.matches("part-0-of-3.jsonl"));
    assert!(Names::Fixed(&["curves.png"]).matches("curves.png"));
}
