//! Downloading the pre-trained weights (the binary's `fetch-weights`; behind the `cli`
//! feature, with `ureq` and a progress bar): stream, verify the SHA-256, convert, cache.

use std::io::{Read, Write};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::*;
use crate::error::{Error, Result};

fn download_err(url: &str, message: impl Into<String>) -> Error {
    Error::Download {
        url: url.to_string(),
        message: message.into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The extensions a download's temporary file takes (the reader dispatches on them).
const DOWNLOAD_SUFFIXES: [&str; 2] = [".pth", ".onnx"];

/// The temporary-file key of a download into `dest`: its file name and `.download`, so it is
/// told apart from the converted file's own temporary (keyed by the file name alone).
fn download_key(dest: &std::path::Path) -> String {
    format!("{}.download", crate::fsutil::temp_key(dest))
}

/// Downloads, verifies and converts the weights (unless `dest` exists and `force` is off).
pub fn fetch_weights(opts: &FetchOptions) -> Result<Fetched> {
    // What killed downloads into this destination left, removed by every run (a cached one
    // too), of either format.
    for suffix in DOWNLOAD_SUFFIXES {
        crate::fsutil::remove_stale_temps_with_suffix(
            &crate::fsutil::parent_dir(&opts.dest),
            &download_key(&opts.dest),
            suffix,
        );
    }
    if opts.dest.is_file() && !opts.force {
        return Ok(Fetched::Cached(opts.dest.clone()));
    }
    let scheme = opts
        .url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("https" | "http")) {
        return Err(download_err(
            &opts.url,
            "only https:// (or http://) URLs are fetched; a weights file already on disk is \
             loaded directly, or converted",
        ));
    }
    let prefix = opts.sha256_prefix.to_ascii_lowercase();
    if !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(download_err(
            &opts.url,
            format!("the expected SHA-256 prefix '{prefix}' is not hexadecimal"),
        ));
    }
    let dir = crate::fsutil::parent_dir(&opts.dest);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;

    // The reader dispatches on the suffix: `.onnx` for an ONNX download, else `.pth`. Removed
    // on drop and on a signal.
    let path_part = opts.url.split(['?', '#']).next().unwrap_or_default();
    let suffix = if path_part.to_ascii_lowercase().ends_with(".onnx") {
        ".onnx"
    } else {
        ".pth"
    };
    // Named after the destination and this process (`.alexnet-{dest}.download-{pid}-XXXXXX.pth`):
    // a kill -9 runs no handler, so a rerun for the same destination removes what dead
    // processes left, of either format, and never the download of a run still going.
    let key = download_key(&opts.dest);
    let mut tmp = crate::fsutil::PendingFile::keyed_with_suffix(&dir, &key, suffix)?;
    let (bytes, sha256) = download(&opts.url, tmp.file_mut(), opts.progress, opts.max_bytes)?;
    if !sha256.starts_with(&prefix) {
        return Err(Error::HashMismatch {
            url: opts.url.clone(),
            expected: prefix,
            found: sha256,
        });
    }
    convert_file(tmp.path(), &opts.dest, None).map_err(|e| match e {
        Error::Input(e) => Error::Input(crate::error::InputError {
            path: PathBuf::from(&opts.url),
            ..e
        }),
        Error::WeightMismatch { arch, problems, .. } => Error::WeightMismatch {
            path: PathBuf::from(&opts.url),
            arch,
            problems,
        },
        other => other,
    })?;
    Ok(Fetched::Downloaded {
        path: opts.dest.clone(),
        bytes,
        sha256,
    })
}

/// Streams `url` into `out`, returning the byte count and the SHA-256 (hex).
fn download(
    url: &str,
    out: &mut std::fs::File,
    progress: bool,
    max_bytes: u64,
) -> Result<(u64, String)> {
    // A proxy from the environment can never reach this machine's loopback address.
    let loopback = url
        .parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| {
            u.host()
                .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
        })
        .is_some_and(|h| {
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
    let mut config = ureq::Agent::config_builder();
    if loopback {
        config = config.proxy(None);
    }
    let agent: ureq::Agent = config
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("alexnet-wgpu/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut resp = agent.get(url).call().map_err(|e| match e {
        ureq::Error::StatusCode(_) => download_err(url, e.to_string()),
        _ => Error::Unreachable {
            url: url.to_string(),
            message: e.to_string(),
        },
    })?;
    let expected_len = resp.body().content_length();
    let too_much = || {
        download_err(
            url,
            format!("the server sends more than the expected {max_bytes} bytes; stopped there"),
        )
    };
    if expected_len.is_some_and(|n| n > max_bytes) {
        return Err(too_much());
    }
    let bar = if progress {
        let bar = match expected_len {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message("downloading");
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut reader = resp.body_mut().as_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    let mut writer = std::io::BufWriter::new(out);
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| download_err(url, format!("after {total} bytes: {e}")))?;
        if n == 0 {
            break;
        }
        if total + n as u64 > max_bytes {
            return Err(too_much());
        }
        hasher.update(&buf[..n]);
        writer
            .write_all(&buf[..n])
            .map_err(|e| download_err(url, format!("writing the temporary file: {e}")))?;
        total += n as u64;
        bar.set_position(total);
    }
    bar.finish_and_clear();
    writer
        .flush()
        .map_err(|e| download_err(url, format!("writing the temporary file: {e}")))?;
    if let Some(n) = expected_len {
        if n != total {
            return Err(download_err(
                url,
                format!("the connection ended after {total} of {n} bytes"),
            ));
        }
    }
    Ok((total, hex(&hasher.finalize())))
}
