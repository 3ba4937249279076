//! The downloader against a real HTTP/1.1 server on 127.0.0.1 (a small std-only server in this file: it has to
//! misbehave on purpose — drop connections mid-body, lie in Content-Length — which ordinary server crates do not
//! offer). Every server thread handles a bounded number of connections and stops by itself after 30 s.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{gzip, images, labels};
use kiln_mnist::download::{FileSpec, MNIST_FILES, download};
use kiln_mnist::{Mnist, MnistError};
use sha2::{Digest, Sha256};

#[derive(Clone)]
enum Reply {
    Ok(Vec<u8>),
    NotFound,
    /// Announce the full length, send `n` bytes, close.
    DropAfter(Vec<u8>, usize),
}

struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(routes: HashMap<String, Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut served = 0;
            while Instant::now() < deadline && served < 64 {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                served += 1;
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
                log.lock().unwrap().push(path.clone());
                let mut out = stream;
                let _ = match routes.get(&path).cloned().unwrap_or(Reply::NotFound) {
                    Reply::Ok(body) => {
                        write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                            .and_then(|()| out.write_all(&body))
                    }
                    Reply::NotFound => out.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
                    ),
                    Reply::DropAfter(body, n) => {
                        write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                            .and_then(|()| out.write_all(&body[..n]))
                    }
                };
                let _ = out.flush();
                let _ = out.shutdown(std::net::Shutdown::Both);
            }
        });
        Server { addr, requests }
    }

    fn mirror(&self) -> String {
        format!("http://{}/mnist/", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn sha_hex(bytes: &[u8]) -> &'static str {
    let hex: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    Box::leak(hex.into_boxed_str())
}

/// Two synthetic files with their specs and routes.
fn synthetic() -> (Vec<FileSpec>, HashMap<String, Reply>, Vec<Vec<u8>>) {
    let raw = vec![labels(7), images(2)];
    let names = ["toy-labels-idx1-ubyte", "toy-images-idx3-ubyte"];
    let specs: Vec<FileSpec> = names.iter().zip(&raw).map(|(n, r)| FileSpec { name: n, sha256: sha_hex(r) }).collect();
    let routes = names.iter().zip(&raw).map(|(n, r)| (format!("/mnist/{n}.gz"), Reply::Ok(gzip(r)))).collect();
    (specs, routes, raw)
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn success_synthetic() {
    let (specs, routes, _) = synthetic();
    let server = Server::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln/mnist");
    download(&cache, &server.mirror(), &specs).unwrap();
    assert_eq!(dir_entries(&cache), vec!["toy-images-idx3-ubyte.gz", "toy-labels-idx1-ubyte.gz"]);
    assert_eq!(server.requests().len(), 2);
    // A second call finds both verified and fetches nothing.
    download(&cache, &server.mirror(), &specs).unwrap();
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn success_real_mnist_from_mnist_dir() {
    let Some(src) = std::env::var_os("MNIST_DIR").map(std::path::PathBuf::from) else {
        println!("skipped: MNIST_DIR is not set");
        return;
    };
    let routes = MNIST_FILES
        .iter()
        .map(|s| {
            let bytes = std::fs::read(src.join(format!("{}.gz", s.name))).unwrap();
            (format!("/mnist/{}.gz", s.name), Reply::Ok(bytes))
        })
        .collect();
    let server = Server::start(routes);
    let dir = tempfile::tempdir().unwrap();
    Mnist::download(dir.path(), &server.mirror()).unwrap();
    assert_eq!(dir_entries(dir.path()).len(), 4);
    let m = Mnist::load(dir.path()).unwrap();
    assert_eq!(m.train.len(), 60000);
    assert_eq!(&m.test.labels()[..5], &[7, 2, 1, 0, 4]);
}

#[test]
fn corrupted_file_is_a_checksum_error_and_leaves_nothing() {
    let (specs, mut routes, _) = synthetic();
    // Valid gzip, valid IDX, wrong content.
    routes.insert("/mnist/toy-images-idx3-ubyte.gz".into(), Reply::Ok(gzip(&images(3))));
    let server = Server::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let err = download(dir.path(), &server.mirror(), &specs).unwrap_err();
    assert!(matches!(err, MnistError::Checksum { .. }), "{err:?}");
    assert!(err.to_string().contains("toy-images-idx3-ubyte"), "{err}");
    // The good file landed; the corrupt one left no trace (no partial or temporary file).
    assert_eq!(dir_entries(dir.path()), vec!["toy-labels-idx1-ubyte.gz"]);
}

#[test]
fn broken_gzip_is_a_gzip_error() {
    let (specs, mut routes, _) = synthetic();
    let mut bad = gzip(&images(2));
    let mid = bad.len() / 2;
    bad[mid..].iter_mut().for_each(|b| *b ^= 0x5a);
    routes.insert("/mnist/toy-images-idx3-ubyte.gz".into(), Reply::Ok(bad));
    let server = Server::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let err = download(dir.path(), &server.mirror(), &specs).unwrap_err();
    assert!(matches!(err, MnistError::Gzip { .. } | MnistError::Checksum { .. }), "{err:?}");
    assert!(err.to_string().contains("toy-images-idx3-ubyte"), "{err}");
    assert_eq!(dir_entries(dir.path()), vec!["toy-labels-idx1-ubyte.gz"]);
}

#[test]
fn connection_dropped_mid_file() {
    let (specs, mut routes, _) = synthetic();
    let body = gzip(&images(2));
    let half = body.len() / 2;
    routes.insert("/mnist/toy-images-idx3-ubyte.gz".into(), Reply::DropAfter(body, half));
    let server = Server::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let err = download(dir.path(), &server.mirror(), &specs).unwrap_err();
    assert!(matches!(err, MnistError::Download { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("toy-images-idx3-ubyte.gz") && msg.contains(&dir.path().display().to_string()), "{msg}");
    assert_eq!(dir_entries(dir.path()), vec!["toy-labels-idx1-ubyte.gz"]);
}

#[test]
fn http_404() {
    let (specs, mut routes, _) = synthetic();
    routes.remove("/mnist/toy-labels-idx1-ubyte.gz");
    let server = Server::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let err = download(dir.path(), &server.mirror(), &specs).unwrap_err();
    assert!(matches!(err, MnistError::Download { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("404") && msg.contains("toy-labels-idx1-ubyte.gz"), "{msg}");
    assert!(dir_entries(dir.path()).is_empty());
}

#[test]
fn missing_mirror() {
    // A port that was just free: nothing listens there, the connection is refused.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (specs, _, _) = synthetic();
    let dir = tempfile::tempdir().unwrap();
    let err = download(dir.path(), &format!("http://127.0.0.1:{port}/mnist"), &specs).unwrap_err();
    assert!(matches!(err, MnistError::Download { .. }), "{err:?}");
    assert!(err.to_string().contains("toy-labels-idx1-ubyte.gz"), "{err}");
    assert!(dir_entries(dir.path()).is_empty());
    // Not a URL at all.
    let err = download(dir.path(), "not a url", &specs).unwrap_err();
    assert!(matches!(err, MnistError::Download { .. }), "{err:?}");
}

#[test]
fn a_good_cache_is_never_touched() {
    let (specs, routes, raw) = synthetic();
    let good = Server::start(routes);
    let dir = tempfile::tempdir().unwrap();
    download(dir.path(), &good.mirror(), &specs).unwrap();
    let before: Vec<(Vec<u8>, std::time::SystemTime)> = dir_entries(dir.path())
        .iter()
        .map(|n| {
            let p = dir.path().join(n);
            (std::fs::read(&p).unwrap(), std::fs::metadata(&p).unwrap().modified().unwrap())
        })
        .collect();
    // A mirror that now serves corrupt data for everything.
    let bad_routes = specs.iter().map(|s| (format!("/mnist/{}.gz", s.name), Reply::Ok(gzip(&raw[0][..10])))).collect();
    let bad = Server::start(bad_routes);
    download(dir.path(), &bad.mirror(), &specs).unwrap();
    assert!(bad.requests().is_empty(), "verified files must not be fetched again");
    // Remove one file: only that one is fetched, it fails, and the other stays byte-identical.
    std::fs::remove_file(dir.path().join("toy-images-idx3-ubyte.gz")).unwrap();
    let err = download(dir.path(), &bad.mirror(), &specs).unwrap_err();
    assert!(matches!(err, MnistError::Checksum { .. }), "{err:?}");
    assert_eq!(bad.requests(), vec!["/mnist/toy-images-idx3-ubyte.gz"]);
    let p = dir.path().join("toy-images-idx3-ubyte.gz");
    assert!(!p.exists());
    let labels_path = dir.path().join("toy-labels-idx1-ubyte.gz");
    let kept = (std::fs::read(&labels_path).unwrap(), std::fs::metadata(&labels_path).unwrap().modified().unwrap());
    assert!(before.contains(&kept));
}
