//! `fetch-weights` against a local HTTP server started inside the test (never the internet):
//! a good download is verified, converted and cached, the cache is reused, a wrong hash or a
//! cut connection keeps nothing; without network or cache, the model commands fail fast and
//! say what to do.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::fixture;
use alexnet_wgpu::error::Error;
use alexnet_wgpu::fetch::{fetch_weights, FetchOptions, Fetched, CACHED_FILE};

/// The binary's environment variable for its cache folder (the library reads none).
const CACHE_ENV: &str = "ALEXNET_CACHE_DIR";
use alexnet_wgpu::model::Weights;
use sha2::{Digest, Sha256};

/// A one-file HTTP/1.1 server on 127.0.0.1: `/w.pth` is `body` (or, with `cut`, a response that
/// announces the whole body but sends half and closes); anything else is 404. Serves at most
/// `max` requests, then its thread ends.
struct Server {
    url: String,
    hits: Arc<AtomicUsize>,
}

fn serve(body: Vec<u8>, cut: bool, max: usize) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut request = String::new();
            if r.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            h.fetch_add(1, Ordering::SeqCst);
            if request.starts_with("GET /w.pth ") {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: \
                     application/octet-stream\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let n = if cut { body.len() / 2 } else { body.len() };
                let _ = s.write_all(&body[..n]);
            } else {
                let _ = s.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
            let _ = s.flush();
        }
    });
    Server {
        url: format!("http://127.0.0.1:{port}/w.pth"),
        hits,
    }
}

fn pth_bytes() -> Vec<u8> {
    std::fs::read(fixture("torchvision_small.pth")).unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn opts(url: &str, prefix: &str, dest: PathBuf) -> FetchOptions {
    FetchOptions {
        url: url.to_string(),
        sha256_prefix: prefix.to_string(),
        dest,
        force: false,
        progress: false,
        max_bytes: alexnet_wgpu::fetch::MAX_DOWNLOAD_BYTES,
    }
}

/// Files in `dir` (to check that no temporary file is left behind).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn good_download_is_verified_converted_cached_and_reused() {
    let body = pth_bytes();
    let sha = sha256_hex(&body);
    let server = serve(body, false, 4);
    let cache = tempfile::tempdir().unwrap();
    let dest = cache.path().join("sub").join(CACHED_FILE);

    let got = fetch_weights(&opts(&server.url, &sha[..8], dest.clone())).unwrap();
    assert_eq!(
        got,
        Fetched::Downloaded {
            path: dest.clone(),
            bytes: std::fs::metadata(fixture("torchvision_small.pth"))
                .unwrap()
                .len(),
            sha256: sha.clone(),
        }
    );
    let w = Weights::load(&dest, None).unwrap();
    let reference = Weights::load(fixture("torchvision_small.npz"), None).unwrap();
    assert_eq!(w.tensors, reference.tensors);
    assert_eq!(listing(&cache.path().join("sub")), [CACHED_FILE]);

    // Cached: no second request.
    let again = fetch_weights(&opts(&server.url, &sha[..8], dest.clone())).unwrap();
    assert_eq!(again, Fetched::Cached(dest.clone()));
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    // --force downloads again (upper-case prefix accepted).
    let mut o = opts(&server.url, &sha[..16].to_uppercase(), dest.clone());
    o.force = true;
    assert!(matches!(
        fetch_weights(&o).unwrap(),
        Fetched::Downloaded { .. }
    ));
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[test]
fn wrong_hash_keeps_nothing() {
    let body = pth_bytes();
    let sha = sha256_hex(&body);
    let wrong = if sha.starts_with("00") { "ff" } else { "00" };
    let server = serve(body, false, 2);
    let cache = tempfile::tempdir().unwrap();
    let dest = cache.path().join(CACHED_FILE);
    let e = fetch_weights(&opts(&server.url, wrong, dest.clone())).unwrap_err();
    assert!(matches!(e, Error::HashMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&server.url) && msg.contains(&sha) && msg.contains(&format!("'{wrong}'")),
        "{msg}"
    );
    assert!(
        listing(cache.path()).is_empty(),
        "{:?}",
        listing(cache.path())
    );
}

#[test]
fn cut_connection_and_http_errors_keep_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let dest = cache.path().join(CACHED_FILE);

    let server = serve(pth_bytes(), true, 1);
    let e = fetch_weights(&opts(&server.url, "", dest.clone())).unwrap_err();
    assert!(matches!(e, Error::Download { .. }), "{e}");
    assert!(
        listing(cache.path()).is_empty(),
        "{:?}",
        listing(cache.path())
    );

    let server = serve(Vec::new(), false, 1);
    let url = server.url.replace("w.pth", "missing.pth");
    let msg = fetch_weights(&opts(&url, "", dest.clone()))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing.pth") && msg.contains("404"), "{msg}");

    // Nothing listens there: the error says what to do offline.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("http://127.0.0.1:{port}/w.pth");
    let err = fetch_weights(&opts(&unreachable, "", dest.clone())).unwrap_err();
    // The library says what happened; the command adds what to do (it names commands).
    assert!(
        matches!(err, alexnet_wgpu::Error::Unreachable { .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("alexnet "), "{err}");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(["fetch-weights", "--quiet", "--url", &unreachable, "--out"])
        .arg(&dest)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("alexnet convert"), "{stderr}");
    assert!(listing(cache.path()).is_empty());

    // A download that is no PyTorch file is refused after the hash check and not cached.
    let server = serve(b"<html>proxy login</html>".to_vec(), false, 1);
    let msg = fetch_weights(&opts(&server.url, "", dest.clone()))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&server.url) && msg.contains("not a PyTorch file"),
        "{msg}"
    );
    assert!(listing(cache.path()).is_empty());
}

fn alexnet(args: &[&str], cache: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(args)
        .env(CACHE_ENV, cache)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn cli_fetches_into_the_cache_then_classify_uses_it() {
    let body = pth_bytes();
    let sha = sha256_hex(&body);
    let server = serve(body, false, 2);
    let cache = tempfile::tempdir().unwrap();
    let o = alexnet(
        &[
            "fetch-weights",
            "--url",
            &server.url,
            "--sha256-prefix",
            &sha[..8],
            "--quiet",
        ],
        cache.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cached = cache.path().join(CACHED_FILE);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        cached.to_str().unwrap()
    );

    // Second run: reused, says so.
    let o = alexnet(
        &[
            "fetch-weights",
            "--url",
            &server.url,
            "--sha256-prefix",
            &sha[..8],
        ],
        cache.path(),
    );
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already cached"));
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    // classify without --weights runs on the cached file.
    let logits = cache.path().join("logits.npy");
    let o = alexnet(
        &[
            "classify",
            "--logits-out",
            logits.to_str().unwrap(),
            fixture("input_224.npy").to_str().unwrap(),
        ],
        cache.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |p: &Path| {
        alexnet_wgpu::weights::read_tensors(p)
            .unwrap()
            .remove(0)
            .data
            .unwrap()
    };
    let (got, want) = (read(&logits), read(&fixture("torchvision_logits.npy")));
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff <= 1e-4 * scale, "logits differ by {diff}");
}

#[test]
fn without_weights_or_cache_commands_fail_fast_with_the_fix() {
    let cache = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let o = alexnet(&["classify", "assets/images/chelsea.jpg"], cache.path());
    let took = t.elapsed();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let expected_path = cache.path().join(CACHED_FILE);
    assert!(
        err.contains("alexnet fetch-weights") && err.contains(expected_path.to_str().unwrap()),
        "{err}"
    );
    assert!(err.contains(CACHE_ENV), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // A file put there by hand is used (here: a converted fixture).
    let o = alexnet(
        &[
            "convert",
            fixture("torchvision_small.pth").to_str().unwrap(),
            expected_path.to_str().unwrap(),
        ],
        cache.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut f = std::fs::File::open(&expected_path).unwrap();
    let mut head = [0u8; 2];
    f.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"PK");
}

#[test]
fn only_http_urls_are_fetched() {
    let cache = tempfile::tempdir().unwrap();
    let dest = cache.path().join(CACHED_FILE);
    let local = fixture("torchvision_small.pth");
    for url in [
        format!("file://{}", local.display()),
        local.display().to_string(),
    ] {
        let msg = fetch_weights(&opts(&url, "", dest.clone()))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("only https://") && msg.contains("convert"),
            "{msg}"
        );
    }
    assert!(listing(cache.path()).is_empty());
}

#[test]
fn a_download_stops_at_the_expected_size() {
    let cache = tempfile::tempdir().unwrap();
    let dest = cache.path().join(CACHED_FILE);
    let body = pth_bytes();
    // Announced bigger than the cap: refused before reading.
    let server = serve(body.clone(), false, 2);
    let mut o = opts(&server.url, "", dest.clone());
    o.max_bytes = body.len() as u64 - 1;
    let msg = fetch_weights(&o).unwrap_err().to_string();
    assert!(
        msg.contains(&format!("more than the expected {} bytes", body.len() - 1)),
        "{msg}"
    );
    assert!(listing(cache.path()).is_empty());
    // Exactly the cap: fine.
    o.max_bytes = body.len() as u64;
    fetch_weights(&o).unwrap();
    // No Content-Length, a body that never ends: stopped at the cap.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut r = BufReader::new(s.try_clone().unwrap());
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        let chunk = vec![0u8; 1 << 16];
        while s.write_all(&chunk).is_ok() {}
    });
    let mut o = opts(&format!("http://127.0.0.1:{port}/w.pth"), "", dest.clone());
    o.force = true;
    o.max_bytes = 1 << 20;
    let msg = fetch_weights(&o).unwrap_err().to_string();
    assert!(
        msg.contains("more than the expected 1048576 bytes"),
        "{msg}"
    );
    assert_eq!(listing(cache.path()), vec![CACHED_FILE.to_string()]);
}

/// Issue 28 defect 14: a download killed by SIGKILL (no handler runs) left
/// `.alexnet-download-XXXXXX.pth`, hundreds of MB, that no rerun removed. Now the temporary is
/// named after its destination and process, and the next run for that destination removes it.
#[cfg(unix)]
#[test]
fn a_download_killed_by_sigkill_is_cleaned_up_by_the_rerun() {
    let body = pth_bytes();
    let sha = sha256_hex(&body);
    // A server that sends half the body, then holds the connection open.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let half = body[..body.len() / 2].to_vec();
    let total = body.len();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut r = BufReader::new(s.try_clone().unwrap());
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n");
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&half);
        let _ = s.flush();
        std::thread::sleep(Duration::from_secs(30));
    });
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_alexnet"))
        .args(["fetch-weights", "--quiet", "--sha256-prefix", &sha[..8]])
        .args(["--url", &format!("http://127.0.0.1:{port}/w.pth")])
        .env(CACHE_ENV, cache.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the temporary holds much of the half body sent (the rest may sit in a
    // buffer), then kill -9.
    let start = Instant::now();
    let temp = loop {
        let found = listing(cache.path()).into_iter().find(|n| {
            std::fs::metadata(cache.path().join(n)).is_ok_and(|m| m.len() as usize >= total / 4)
        });
        if let Some(n) = found {
            break n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no download started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        temp.starts_with(&format!(".alexnet-{CACHED_FILE}.download-{}-", child.id()))
            && temp.ends_with(".pth"),
        "{temp}"
    );
    assert_eq!(
        listing(cache.path()),
        vec![temp.clone()],
        "left by the kill"
    );
    // The rerun, here one that finds the weights needless to fetch and one that fetches.
    let server = serve(body, false, 1);
    let o = alexnet(
        &[
            "fetch-weights",
            "--quiet",
            "--url",
            &server.url,
            "--sha256-prefix",
            &sha[..8],
        ],
        cache.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(listing(cache.path()), vec![CACHED_FILE.to_string()]);
    // A stale one of a download whose run is over goes with any later run, a cached one too.
    let dead = cache.path().join(format!(
        ".alexnet-{CACHED_FILE}.download-{}-aB3xYz.onnx",
        child.id()
    ));
    std::fs::write(&dead, b"half").unwrap();
    let o = alexnet(&["fetch-weights", "--quiet"], cache.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(listing(cache.path()), vec![CACHED_FILE.to_string()]);
}
