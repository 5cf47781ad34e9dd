//! The files of every subcommand, declared in one place ([`role`]: what each path argument
//! is to its command) and checked by one function ([`check`]) before any command runs.
//!
//! Before, each command listed its inputs and outputs by hand, and the newer ones forgot:
//! `lpips --out` could replace an input image, `train-head --log-steps` an image inside
//! `--data`. Now `cli::run` hands every command's parsed arguments to [`check`] first, and the
//! test in `files_tests.rs` walks clap's command tree: every path argument of every
//! subcommand must have a role here (a new one without a role fails that test), and each
//! output named like each input and each other output is refused with exit 2.
//!
//! What the check compares (see `alexnet_wgpu::clobber` for "the same file"):
//! - every explicit input file, the external data files of an `.onnx` weights file, the
//!   default (cached) weights when `--weights` is not given, and the entries of a list file
//!   that carry an output's file name (a list of millions costs no file-system calls);
//! - an output that already exists inside an input folder and that the folder's listing
//!   would read (images and `.npy` batches; any file of `merge`'s parts folder), and a new
//!   image an output would add to an input folder of images, at any depth (`--plot` or
//!   `--log-steps x.png` inside `--data`: the next run would train on the plots);
//! - the files an output folder would get (`--plot`'s `curves.png`, `--spatial`'s
//!   `pair-NNNNN.npy` and `.png`, `--out-dir`'s parts) against the inputs and the other outputs;
//! - and refuses an input file or output that exists but is not a regular file (a FIFO
//!   would block, `/dev/zero` never ends, and a rename would replace a device node).

use std::path::{Path, PathBuf};

use alexnet_wgpu::clobber::{check_outputs, same_file};
use anyhow::bail;
use clap::ArgMatches;

mod on_disk;
use on_disk::{external_data, kind, list_entries, regular_input, regular_output, resolved};

/// What one path argument is to its command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A file read whole (labels, a features file, an initial head).
    File,
    /// Weights: a file (an `.onnx` with its external data files) or a folder of `.npy`.
    Weights,
    /// A list of paths, one per line (`-`: standard input); its entries are inputs too.
    List,
    /// A list of pairs of paths, two per line.
    Pairs,
    /// An image, or a folder whose images are inputs.
    Images,
    /// An image, a `.npy` batch, or a folder whose images and batches are inputs (`classify`).
    Batches,
    /// A folder every file of which may be read (the parts `merge` joins).
    Folder,
    /// A file written.
    Output,
    /// A model written with its checkpoint (`NAME.ckpt.npz`) beside it.
    Model,
    /// A folder the command writes files into.
    OutputDir(Names),
    /// A prefix: the command writes PREFIX + each of these suffixes.
    OutputPrefix(&'static [&'static str]),
    /// A setting that names a folder, not a file of the run (the cache folder).
    Setting,
}

/// The names of the files a command writes into an output folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    /// Exactly these.
    Fixed(&'static [&'static str]),
    /// PREFIX, five or more digits, one of the SUFFIXES (`pair-00001.npy`, `pair-00001.png`).
    Numbered(&'static str, &'static [&'static str]),
    /// A sharded run's parts: `part-IIIII-of-NNNNN.*`.
    Parts,
}

impl Names {
    pub fn matches(self, name: &str) -> bool {
        match self {
            Names::Fixed(names) => names.contains(&name),
            Names::Numbered(prefix, suffixes) => suffixes.iter().any(|suffix| {
                name.strip_prefix(prefix)
                    .and_then(|r| r.strip_suffix(suffix))
                    .is_some_and(|d| d.len() >= 5 && d.bytes().all(|b| b.is_ascii_digit()))
            }),
            Names::Parts => name.strip_prefix("part-").is_some_and(|r| {
                r.len() > 14
                    && r.as_bytes()[5..9] == *b"-of-"
                    && r[..5]
                        .bytes()
                        .chain(r[9..14].bytes())
                        .all(|b| b.is_ascii_digit())
            }),
        }
    }

    /// One name of each kind of file (each suffix) these names cover.
    pub fn kinds(self) -> Vec<String> {
        match self {
            Names::Fixed(names) => names.iter().map(|n| n.to_string()).collect(),
            Names::Numbered(prefix, suffixes) => suffixes
                .iter()
                .map(|s| format!("{prefix}00001{s}"))
                .collect(),
            Names::Parts => [
                ".jsonl",
                ".logits.npy",
                ".features.npy",
                ".npz",
                ".manifest.json",
            ]
            .iter()
            .map(|s| format!("part-00000-of-00001{s}"))
            .collect(),
        }
    }

    /// One name of this kind (for the tests and messages).
    pub fn example(self) -> &'static str {
        match self {
            Names::Fixed(names) => names[0],
            Names::Numbered(..) => "pair-00001.npy",
            Names::Parts => "part-00000-of-00001.logits.npy",
        }
    }
}

/// The role of argument `arg` (clap's id: the field's name) of subcommand `command`; `None`
/// for an argument that is no path. THE declaration of every command's files: a new path
/// argument gets its line here, or `files_tests` fails.
pub fn role(command: &str, arg: &str) -> Option<Role> {
    use Role::*;
    const MERGED: &[&str] = &[".jsonl", ".logits.npy", ".features.npy", ".npz"];
    Some(match (command, arg) {
        (_, "cache_dir") => Setting,
        (_, "weights") | ("convert", "input") => Weights,
        (_, "labels") | ("train-head", "features" | "init_head") => File,
        (_, "list") => List,
        (_, "out_dir") => OutputDir(Names::Parts),
        ("lpips", "pairs") => Pairs,
        ("classify", "paths") => Batches,
        ("features" | "lpips", "paths") => Images,
        ("features" | "eval" | "train-head", "data") | ("train-head", "val") => Images,
        ("lpips", "all_pairs") | ("bench", "input") => Images,
        ("merge", "dir") => Folder,
        ("classify", "logits_out" | "features_out") => Output,
        ("features" | "fetch-weights" | "lpips", "out") | ("lpips", "matrix_out") => Output,
        ("train-head", "log_steps") | ("convert" | "export", "output") => Output,
        ("train-head", "out") => Model,
        ("train-head", "plot") => OutputDir(Names::Fixed(&["curves.png", "confusion.png"])),
        ("lpips", "spatial") => OutputDir(Names::Numbered("pair-", &[".npy", ".png"])),
        ("merge", "out") => OutputPrefix(MERGED),
        _ => return None,
    })
}

/// Outputs that may be an input when a flag says so: (command, output, input, flag).
const ALLOWED_WITH: &[(&str, &str, &str, &str)] =
    &[("train-head", "out", "weights", "replace_weights")];

/// One path the check compares, with the words that name it in a message.
struct Named {
    label: String,
    path: PathBuf,
    /// The argument's id (for [`ALLOWED_WITH`]).
    id: String,
}

#[derive(Default)]
struct Files {
    inputs: Vec<Named>,
    /// Input folders, with their role (what their listing reads: [`reads_from_folder`]).
    folders: Vec<(Named, Role)>,
    /// Entries of list files (compared by name).
    entries: Vec<(String, PathBuf)>,
    outputs: Vec<Named>,
    /// Output folders whose files are numbered.
    patterns: Vec<(Named, Names)>,
}

fn flag_label(arg: &clap::Arg) -> String {
    match arg.get_long() {
        Some(l) => format!("--{l}"),
        None => String::new(),
    }
}

/// Checks the files of the subcommand in `matches` (of the command tree `cli`) before it runs.
pub fn check(cli: &clap::Command, matches: &ArgMatches) -> anyhow::Result<()> {
    let Some((name, m)) = matches.subcommand() else {
        return Ok(());
    };
    let Some(command) = cli.find_subcommand(name) else {
        return Ok(());
    };
    let files = gather(name, command, m)?;
    compare(name, m, &files)
}

/// The declared files of one run, expanded (list entries, external data, folders' files),
/// refusing inputs and outputs that exist but are not what they must be.
fn gather(name: &str, command: &clap::Command, m: &ArgMatches) -> anyhow::Result<Files> {
    let mut f = Files::default();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(role) = role(name, id) else { continue };
        let label = flag_label(arg);
        let values: Vec<PathBuf> = match m.try_get_many::<PathBuf>(id) {
            Ok(Some(v)) => v.cloned().collect(),
            _ => Vec::new(),
        };
        if values.is_empty() && role == Role::Weights && !label.is_empty() {
            // The cached pre-trained weights the command reads when --weights is not given.
            for p in [
                alexnet_wgpu::fetch::cached_weights_path(),
                alexnet_wgpu::fetch::cached_caffe_weights_path(),
            ]
            .into_iter()
            .flatten()
            {
                if p.is_file() {
                    f.inputs.push(Named {
                        label: "the cached weights".into(),
                        path: p,
                        id: id.to_string(),
                    });
                }
            }
        }
        for path in values {
            let label = label.clone();
            if path.as_os_str() == "-" {
                continue; // standard input
            }
            let named = |label: String, path: PathBuf| Named {
                label,
                path,
                id: id.to_string(),
            };
            match role {
                Role::Setting => {}
                Role::File | Role::List | Role::Pairs => {
                    regular_input(&label, &path, false)?;
                    if role != Role::File && path.is_file() {
                        f.entries.extend(
                            list_entries(&path, role == Role::Pairs)
                                .into_iter()
                                .map(|e| (format!("an entry of {label} {}", path.display()), e)),
                        );
                    }
                    f.inputs.push(named(label, path));
                }
                Role::Weights => {
                    regular_input(&label, &path, true)?;
                    for ext in external_data(&path) {
                        let l = format!("{} (external data of {})", label, path.display());
                        f.inputs.push(named(l.trim_start().to_string(), ext));
                    }
                    f.inputs.push(named(label, path));
                }
                Role::Images | Role::Batches | Role::Folder => {
                    // A flag's folder (or image) must be one; a FIFO or device named on the
                    // command line as an image is a failed input, named, like one in a folder.
                    let meta = std::fs::metadata(&path).ok();
                    if let Some(meta) = meta.filter(|m| !m.is_dir()) {
                        if role == Role::Folder {
                            bail!("{label} {}: not a folder", path.display());
                        }
                        if !meta.is_file() && !label.is_empty() {
                            bail!(
                                "{label} {}: is {}, not a regular file or a folder",
                                path.display(),
                                kind(&meta)
                            );
                        }
                    }
                    if path.is_dir() {
                        f.folders.push((named(label.clone(), path.clone()), role));
                    }
                    f.inputs.push(named(label, path));
                }
                Role::Output => {
                    regular_output(&label, &path)?;
                    f.outputs.push(named(label, path));
                }
                Role::Model => {
                    regular_output(&label, &path)?;
                    let ckpt = path.with_extension("ckpt.npz");
                    f.outputs.push(named(label.clone(), path));
                    f.outputs.push(named(format!("{label}'s checkpoint"), ckpt));
                }
                Role::OutputPrefix(suffixes) => {
                    if let Ok(meta) = std::fs::metadata(&path) {
                        if !meta.is_file() && !meta.is_dir() {
                            bail!(
                                "{label} {}: is {}, not a regular file; give a file name prefix",
                                path.display(),
                                kind(&meta)
                            );
                        }
                    }
                    for s in suffixes {
                        let mut p = path.clone().into_os_string();
                        p.push(s);
                        let p = PathBuf::from(p);
                        regular_output(&label, &p)?;
                        f.outputs.push(named(label.clone(), p));
                    }
                }
                Role::OutputDir(names) => {
                    if path.exists() && !path.is_dir() {
                        bail!("{label} {}: not a folder", path.display());
                    }
                    match names {
                        Names::Fixed(list) => {
                            for n in list {
                                let p = path.join(n);
                                regular_output(&label, &p)?;
                                f.outputs.push(named(label.clone(), p));
                            }
                        }
                        _ => f.patterns.push((named(label, path), names)),
                    }
                }
            }
        }
    }
    Ok(f)
}

fn compare(name: &str, m: &ArgMatches, f: &Files) -> anyhow::Result<()> {
    let shown = |n: &Named| {
        if n.label.is_empty() {
            n.path.display().to_string()
        } else {
            format!("{} {}", n.label, n.path.display())
        }
    };
    // Entries of lists: only those with an output's name, or a numbered folder's name.
    let mut inputs: Vec<(&str, &Path)> = Vec::new();
    for (label, p) in &f.entries {
        let Some(n) = p.file_name() else { continue };
        let by_name = f.outputs.iter().any(|o| o.path.file_name() == Some(n));
        let by_pattern = f
            .patterns
            .iter()
            .any(|(_, names)| names.matches(&n.to_string_lossy()));
        if by_name || by_pattern {
            inputs.push((label, p));
        }
    }
    // Each output against the inputs (less those a flag allows) and the outputs before it.
    for (i, o) in f.outputs.iter().enumerate() {
        let mut ins = inputs.clone();
        for input in &f.inputs {
            let allowed = ALLOWED_WITH.iter().find(|(c, out, inp, _)| {
                *c == name && *out == o.id && *inp == input.id && o.label.starts_with("--")
            });
            match allowed {
                Some((_, _, _, flag)) if same_file(&o.path, &input.path) => {
                    if !m.get_flag(flag) {
                        bail!(
                            "{} is the {} file: the output would replace it; choose another {}, or pass --{} to replace it",
                            shown(o),
                            input.label,
                            o.label,
                            flag.replace('_', "-")
                        );
                    }
                }
                _ => ins.push((&input.label, &input.path)),
            }
        }
        let mut outs: Vec<(&str, &Path)> = f.outputs[..i]
            .iter()
            .map(|o| (o.label.as_str(), o.path.as_path()))
            .collect();
        outs.push((&o.label, &o.path));
        check_outputs(&ins, &[(&o.label, &o.path)])?;
        check_outputs(&[], &outs)?;
        // An output replacing a file that an input folder's listing reads, or adding one
        // (`train-head --plot data/cat` used to put curves.png and confusion.png among the cat
        // images: the next run trains on them).
        if let Some(real) = resolved(&o.path) {
            for (folder, role) in &f.folders {
                let Ok(dir) = std::fs::canonicalize(&folder.path) else {
                    continue;
                };
                if real.starts_with(&dir) && reads_from_folder(*role, &real) {
                    if !o.path.is_file() && !adds_an_image(*role, &real) {
                        continue;
                    }
                    if o.path.is_file() {
                        bail!(
                            "{} would overwrite {}, a file inside the input folder {}: choose another output file",
                            shown(o),
                            real.display(),
                            shown(folder)
                        );
                    }
                    bail!(
                        "{} would add {} to the input folder {}, whose files of that kind are inputs: choose an output outside it",
                        shown(o),
                        real.display(),
                        shown(folder)
                    );
                }
            }
        }
    }
    // The numbered files of output folders: none may be an input or another output, and none
    // already inside an input folder may be replaced.
    for (dir, names) in &f.patterns {
        let here = |p: &Path| {
            p.file_name()
                .is_some_and(|n| names.matches(&n.to_string_lossy()))
                && same_file(&alexnet_wgpu::fsutil::parent_dir(p), &dir.path)
        };
        let others = f
            .inputs
            .iter()
            .map(|n| (shown(n), n.path.as_path()))
            .chain(
                inputs
                    .iter()
                    .map(|(l, p)| (format!("{l} {}", p.display()), *p)),
            )
            .chain(f.outputs.iter().map(|n| (shown(n), n.path.as_path())));
        for (what, p) in others {
            if here(p) {
                bail!(
                    "{} would write {} files there, and {what} is one: choose another folder",
                    shown(dir),
                    names.example()
                );
            }
        }
        let Some(real) = resolved(&dir.path) else {
            continue;
        };
        for (folder, role) in &f.folders {
            let Ok(fdir) = std::fs::canonicalize(&folder.path) else {
                continue;
            };
            if !real.starts_with(&fdir) {
                continue;
            }
            // Images this folder would get, read by the input folder's (recursive) listing.
            let kind = names
                .kinds()
                .into_iter()
                .find(|n| adds_an_image(*role, &real.join(n)));
            if let Some(n) = kind {
                bail!(
                    "{} would add files like {n} to the input folder {}, whose files of that kind are inputs: choose a folder outside it",
                    shown(dir),
                    shown(folder)
                );
            }
            if !real.is_dir() {
                continue;
            }
            let taken = std::fs::read_dir(&real)?.flatten().find(|e| {
                let p = e.path();
                names.matches(&e.file_name().to_string_lossy()) && reads_from_folder(*role, &p)
            });
            if let Some(e) = taken {
                bail!(
                    "{} would overwrite {}, a file the input folder {} holds: choose another folder",
                    shown(dir),
                    e.path().display(),
                    shown(folder)
                );
            }
        }
    }
    Ok(())
}

/// Whether the listing of an input folder of this role reads `file`: images; for `classify`
/// also `.npy` batches; every file of `merge`'s parts folder.
pub fn reads_from_folder(role: Role, file: &Path) -> bool {
    let image = alexnet_wgpu::data::inputs::is_image_path(file);
    let npy = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    match role {
        Role::Folder => true,
        Role::Batches => image || npy,
        Role::Images => image,
        _ => false,
    }
}

/// Whether a new output `file` inside an input folder of this role would become one of its
/// inputs that looks like data: an image in a folder of images. A plot among the class
/// folders' images would be trained on; an `.npy` in `classify`'s folder would be read too,
/// but as a batch of another shape it fails by name, and `--logits-out logits.npy .` is common;
/// `merge` reads its folder's parts only.
fn adds_an_image(role: Role, file: &Path) -> bool {
    matches!(role, Role::Images | Role::Batches) && alexnet_wgpu::data::inputs::is_image_path(file)
}
