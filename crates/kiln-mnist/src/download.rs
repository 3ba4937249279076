//! Verified download of the MNIST files.
//!
//! Each file is fetched as `<mirror>/<name>.gz` into a temporary file next to its destination, decompressed and
//! checked against the SHA-256 of the **decompressed** original (so any recompression of the archive is accepted,
//! but not a single changed byte of data), and only then renamed into place atomically. A failed or corrupt
//! download removes its temporary file; an existing file that already verifies is never rewritten, so a good cache
//! cannot be damaged by a bad mirror.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::error::{MnistError, Result};

/// The default mirror: the public CVDF copy of the original files, used by TensorFlow's tutorials and burn.
pub const DEFAULT_MIRROR: &str = "https://storage.googleapis.com/cvdf-datasets/mnist/";
/// Environment variable overriding the mirror (a base URL; `<name>.gz` is appended).
pub const ENV_MIRROR: &str = "KILN_MNIST_MIRROR";

/// A file to download: its base name (without `.gz`) and the SHA-256 of its decompressed content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    /// Base name, e.g. `train-images-idx3-ubyte`; stored as `<name>.gz`.
    pub name: &'static str,
    /// Lower-case hex SHA-256 of the decompressed file.
    pub sha256: &'static str,
}

/// The four MNIST files with the SHA-256 of their decompressed content, as published in `SHA256SUMS.idx`
/// (a copy is `src/sha256sums.idx`; a unit test keeps the two in step). These identify the bytes of the original
/// distribution, whose training images have MD5 6bbc9ace898e44ae57da46a324031adb.
pub const MNIST_FILES: [FileSpec; 4] = [
    FileSpec {
        name: "train-images-idx3-ubyte",
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    FileSpec {
        name: "train-labels-idx1-ubyte",
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    FileSpec {
        name: "t10k-images-idx3-ubyte",
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    FileSpec {
        name: "t10k-labels-idx1-ubyte",
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

/// The mirror to use: `KILN_MNIST_MIRROR` if set and non-empty, else [`DEFAULT_MIRROR`].
pub fn mirror_from_env() -> String {
    std::env::var(ENV_MIRROR).ok().filter(|m| !m.trim().is_empty()).unwrap_or_else(|| DEFAULT_MIRROR.to_string())
}

/// Lower-case hex SHA-256 of everything `reader` yields.
fn sha256_hex(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// SHA-256 of a file's content after decompression (gzip recognised by its magic bytes; raw files as they are).
pub fn decompressed_sha256(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| MnistError::io(path, e))?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(|e| MnistError::io(path, e))?;
    let file = File::open(path).map_err(|e| MnistError::io(path, e))?;
    if n == 2 && magic == [0x1f, 0x8b] {
        sha256_hex(MultiGzDecoder::new(BufReader::new(file)))
            .map_err(|e| MnistError::Gzip { path: path.to_path_buf(), source: e })
    } else {
        sha256_hex(BufReader::new(file)).map_err(|e| MnistError::io(path, e))
    }
}

/// Whether `dir` already holds `spec` (raw or `.gz`) with the right checksum; returns that file.
fn verified_existing(dir: &Path, spec: &FileSpec) -> Option<PathBuf> {
    [dir.join(spec.name), dir.join(format!("{}.gz", spec.name))]
        .into_iter()
        .filter(|p| p.is_file())
        .find(|p| decompressed_sha256(p).is_ok_and(|sum| sum == spec.sha256))
}

/// A temporary file removed on drop unless [`Temp::persist`] renamed it into place.
struct Temp {
    path: Option<PathBuf>,
}

impl Temp {
    fn persist(mut self, to: &Path) -> io::Result<()> {
        let from = self.path.take().expect("persist is called once");
        fs::rename(&from, to).inspect_err(|_| {
            let _ = fs::remove_file(&from);
        })
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Downloads every file of `files` that `dir` does not already hold in verified form, from `mirror`
/// (`<mirror>/<name>.gz`), creating `dir` if needed. Errors name the URL and the destination.
pub fn download(dir: &Path, mirror: &str, files: &[FileSpec]) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| MnistError::io(dir, e))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(120)))
        .build()
        .into();
    for spec in files {
        if verified_existing(dir, spec).is_some() {
            continue;
        }
        fetch(&agent, dir, mirror, spec)?;
    }
    Ok(())
}

fn fetch(agent: &ureq::Agent, dir: &Path, mirror: &str, spec: &FileSpec) -> Result<()> {
    let url = format!("{}/{}.gz", mirror.trim_end_matches('/'), spec.name);
    let dest = dir.join(format!("{}.gz", spec.name));
    let fail = |reason: String| MnistError::Download { url: url.clone(), path: dest.clone(), reason };
    let tmp_path = dir.join(format!(".{}.gz.part-{}", spec.name, std::process::id()));
    let mut tmp_file = File::create(&tmp_path).map_err(|e| MnistError::io(&tmp_path, e))?;
    let tmp = Temp { path: Some(tmp_path.clone()) };

    let response = agent.get(&url).call().map_err(|e| match e {
        ureq::Error::StatusCode(code) => fail(format!("the server answered HTTP {code}")),
        other => fail(other.to_string()),
    })?;
    let mut body = response.into_body().into_with_config().limit(crate::idx::DEFAULT_LIMIT).reader();
    io::copy(&mut body, &mut tmp_file).map_err(|e| fail(format!("the transfer broke off: {e}")))?;
    tmp_file.flush().and_then(|()| tmp_file.sync_all()).map_err(|e| MnistError::io(&tmp_path, e))?;
    drop(tmp_file);

    let got = decompressed_sha256(&tmp_path).map_err(|e| match e {
        MnistError::Gzip { source, .. } => MnistError::Gzip { path: PathBuf::from(&url), source },
        other => other,
    })?;
    if got != spec.sha256 {
        return Err(MnistError::Checksum { path: PathBuf::from(&url), expected: spec.sha256.to_string(), got });
    }
    tmp.persist(&dest).map_err(|e| MnistError::io(&dest, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sums: &str) -> Vec<(String, String)> {
        sums.lines().filter_map(|l| l.split_once("  ")).map(|(s, n)| (n.trim().into(), s.trim().into())).collect()
    }

    #[test]
    fn compiled_sums_match_the_published_file() {
        let published = parse(include_str!("sha256sums.idx"));
        // When the shared folder is beside the checkout (CI, developers), the copy must equal the original.
        let original = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/mnist/SHA256SUMS.idx");
        if let Ok(text) = fs::read_to_string(&original) {
            assert_eq!(parse(&text), published, "src/sha256sums.idx differs from {}", original.display());
        }
        assert_eq!(published.len(), 4);
        for spec in MNIST_FILES {
            assert!(
                published.contains(&(spec.name.to_string(), spec.sha256.to_string())),
                "{} differs from SHA256SUMS.idx",
                spec.name
            );
        }
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(&b"abc"[..]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
