//! What `classify` and `features` share for batch runs: the input list (paths, `-` for
//! standard input, `--list FILE`), `--shard I/N`, `--out-dir` parts and the early checks of
//! output folders. The commands select their inputs here first and hand the slice to their
//! own decode loop.

use std::path::{Path, PathBuf};

use alexnet_wgpu::data::{collect_inputs, InputItem};
use alexnet_wgpu::fsutil::{parent_dir, PendingFile};
use alexnet_wgpu::shard::{
    expand_listed, read_path_list, Manifest, NpyWriter, PartPaths, RunIdentity, Shard, StreamFile,
};
use anyhow::Context;
use clap::Args;

#[derive(Args, Clone, Debug)]
pub struct ShardArgs {
    /// Run part I of N (0-based) only: the input list is cut into N contiguous parts, so the
    /// outputs of parts 0..N-1 in order are those of the whole run.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// More input paths, one per line, after the PATHs (images are not stat'ed up front: a
    /// cheap way to give millions of inputs).
    #[arg(long, value_name = "FILE")]
    pub list: Option<PathBuf>,
    /// Write this part as DIR/part-IIIII-of-NNNNN.{jsonl,logits.npy,...,manifest.json}
    /// (atomically; join the parts with `alexnet merge DIR OUT`); DIR is created if missing.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// With --out-dir: do nothing if this part is already complete and was made by the same
    /// model, options and input list (a part made otherwise is rewritten).
    #[arg(long, requires = "out_dir")]
    pub skip_existing: bool,
}

impl ShardArgs {
    pub fn shard(&self) -> Shard {
        self.shard.unwrap_or(Shard::WHOLE)
    }
}

/// The whole input list: each PATH expanded (`-`: paths from standard input, one per line),
/// then the lines of `list`.
pub fn read_inputs(paths: &[PathBuf], list: Option<&Path>) -> anyhow::Result<Vec<InputItem>> {
    let mut items = Vec::new();
    let mut stdin_used = false;
    for p in paths {
        if p.as_os_str() == "-" {
            if stdin_used {
                anyhow::bail!("'-' (paths from standard input) can be given only once");
            }
            stdin_used = true;
            let stdin = std::io::stdin();
            let listed = read_path_list(stdin.lock(), Path::new("<stdin>"))?;
            items.extend(expand_listed(&listed)?);
        } else {
            items.extend(collect_inputs(std::slice::from_ref(p))?);
        }
    }
    if let Some(l) = list {
        let f = std::fs::File::open(l).with_context(|| format!("--list {}", l.display()))?;
        let listed = read_path_list(std::io::BufReader::new(f), l)?;
        // A list that names nothing is a mistake (a wrong file, a failed `find > list`), not
        // an empty run: it used to print nothing (a CSV header alone) with exit 0, as
        // `lpips --pairs` of an empty file did.
        if listed.is_empty() {
            anyhow::bail!(
                "--list {}: no paths in it (one path per line; blank lines are skipped)",
                l.display()
            );
        }
        items.extend(expand_listed(&listed)?);
    }
    Ok(items)
}

/// Fails unless `dir` is a folder we can create files in.
fn check_writable_dir(flag: &str, shown: &Path, dir: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        anyhow::anyhow!(
            "{flag} {}: the folder {} {}",
            shown.display(),
            dir.display(),
            if e.kind() == std::io::ErrorKind::NotFound {
                "does not exist".to_string()
            } else {
                format!("cannot be read: {e}")
            }
        )
    })?;
    if !meta.is_dir() {
        anyhow::bail!(
            "{flag} {}: {} is not a folder",
            shown.display(),
            dir.display()
        );
    }
    PendingFile::keyed(dir, "check").map_err(|e| {
        anyhow::anyhow!(
            "{flag} {}: cannot write in {}: {e}",
            shown.display(),
            dir.display()
        )
    })?;
    Ok(())
}

/// Checks, before any work, that the folder of an output file exists and is writable.
pub fn check_output_file(flag: &str, path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        anyhow::bail!(
            "{flag} {}: is a folder, expected a file name",
            path.display()
        );
    }
    check_writable_dir(flag, path, &parent_dir(path))
}

/// Creates `--out-dir` if missing and checks that it is writable.
pub fn prepare_out_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--out-dir {}: cannot create the folder", dir.display()))?;
    }
    check_writable_dir("--out-dir", dir, dir)
}

/// The complete part this run would write, if `--skip-existing` can skip it.
pub fn existing_part(
    paths: &PartPaths,
    run: &RunIdentity,
    start: usize,
    inputs: usize,
) -> Option<Manifest> {
    paths
        .complete()
        .filter(|m| m.run == *run && m.start == start && m.inputs == inputs)
}

/// A part being written: its `.jsonl` and arrays stream into temporary files; `finish` renames
/// them into place and writes the manifest last.
pub struct PartOut {
    pub paths: PartPaths,
    pub jsonl: StreamFile,
    pub arrays: Vec<(&'static str, NpyWriter)>,
}

impl PartOut {
    /// Starts part `paths`, removing an old manifest first (old manifest and new data never
    /// meet). `arrays`: (kind, columns).
    pub fn create(paths: PartPaths, arrays: &[(&'static str, usize)]) -> anyhow::Result<PartOut> {
        paths.invalidate()?;
        let jsonl = StreamFile::create(&paths.file("jsonl"))?;
        let arrays = arrays
            .iter()
            .map(|&(kind, cols)| Ok((kind, NpyWriter::create(&paths.file(kind), cols)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(PartOut {
            paths,
            jsonl,
            arrays,
        })
    }

    pub fn array(&mut self, kind: &str) -> Option<&mut NpyWriter> {
        self.arrays
            .iter_mut()
            .find(|(k, _)| *k == kind)
            .map(|(_, w)| w)
    }

    pub fn finish(
        self,
        run: &RunIdentity,
        start: usize,
        inputs: usize,
        failed: usize,
    ) -> anyhow::Result<Manifest> {
        self.jsonl.finish()?;
        let mut kinds = vec!["jsonl"];
        let mut rows = 0;
        for (kind, w) in self.arrays {
            rows = w.finish()?;
            kinds.push(kind);
        }
        Ok(self
            .paths
            .write_manifest(run, start, inputs, rows, failed, &kinds)?)
    }
}

/// Reports a skipped part on stderr; the exit status the run that made it had.
pub fn report_skipped(paths: &PartPaths, m: &Manifest) -> std::process::ExitCode {
    // A killed earlier run of this part may have left temporary files; this run writes nothing
    // that would remove them.
    paths.remove_stale_temps();
    eprintln!(
        "{} is complete ({} inputs, same model, options and inputs): skipped",
        paths.manifest().display(),
        m.inputs
    );
    std::process::ExitCode::SUCCESS
}

/// Reports a finished part on stderr.
pub fn report_part(m: &Manifest, paths: &PartPaths) {
    eprintln!(
        "wrote {} ({} inputs from #{}, {} ran, {} failed)",
        paths.manifest().display(),
        m.inputs,
        m.start,
        m.rows,
        m.failed
    );
    if m.failed > 0 {
        eprintln!(
            "  the failed inputs are recorded as error lines in {} (a retry would fail the same way, so the part counts as done)",
            paths.file("jsonl").display()
        );
    }
}

/// The model's identity in a part manifest: a hash of the loaded tensors, so a `.pth` and its
/// converted `.npz` count as the same model.
pub fn model_sha256(weights: &alexnet_wgpu::model::Weights) -> String {
    alexnet_wgpu::shard::hash_tensors(
        weights
            .tensors
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice())),
    )
}
