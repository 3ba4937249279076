//! `train-mnist` as the ranks of a real MPI job (Open MPI's `mpirun`, this binary built with the `distributed`
//! feature): two ranks write the bytes one process writes; a killed rank ends the job with an error naming it;
//! a stopped rank makes its peer fail within the timeout instead of hanging; and a run resumed after the kill,
//! on two ranks or on one process, ends with the bytes of an uninterrupted run.
//!
//! Run by `.ci/run` after it installs Open MPI: `cargo test -p xtask --features distributed --test mpi_ranks`.
#![cfg(feature = "distributed")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

/// `MNIST_DIR`, or `None` after saying `skipped` — a failure when `KILN_REQUIRE_MNIST` is set (CI sets it).
fn mnist() -> Option<PathBuf> {
    match std::env::var_os("MNIST_DIR") {
        Some(d) => Some(d.into()),
        None if std::env::var_os("KILN_REQUIRE_MNIST").is_some() => panic!("KILN_REQUIRE_MNIST is set, MNIST_DIR not"),
        None => {
            eprintln!("skipped: MNIST_DIR is not set");
            None
        }
    }
}

/// `train-mnist` on a small share of MNIST, one thread per rank.
fn job(data: &Path, out: &Path, epochs: usize, limit: usize) -> Vec<String> {
    let mut a: Vec<String> = ["train-mnist", "--quiet", "--threads", "1", "--seed", "3"].map(String::from).to_vec();
    a.extend(["--epochs".into(), epochs.to_string(), "--limit".into(), limit.to_string()]);
    a.extend(["--data-dir".into(), data.display().to_string(), "--out".into(), out.display().to_string()]);
    a
}

fn alone(args: &[String]) -> Command {
    let mut c = Command::new(XTASK);
    c.args(args);
    c
}

fn mpirun(ranks: usize, args: &[String]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["-n", &ranks.to_string(), "--oversubscribe", "--bind-to", "none"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .arg(XTASK)
        .args(args);
    c
}

fn run(mut c: Command) -> Output {
    let out = c.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{c:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).expect("the run saved its weights")
}

/// The pid of rank `rank` of the xtask processes writing to `out` (read from /proc: the launcher's variables).
fn rank_pid(rank: usize, out: &Path) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let has = |hay: &[u8], needle: &str| hay.split(|&b| b == 0).any(|s| s == needle.as_bytes());
        if has(&cmd, &out.display().to_string()) && has(&env, &want) {
            return Some(pid);
        }
    }
    None
}

/// Starts `c`, waits until `ready` holds, then signals rank `rank`'s process; returns the job's output.
fn signal_rank_when(mut c: Command, ready: impl Fn() -> bool, out: &Path, rank: usize, signal: &str) -> Output {
    let child: Child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("mpirun starts");
    let t0 = Instant::now();
    while !ready() {
        assert!(t0.elapsed() < Duration::from_secs(120), "the run never got ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = rank_pid(rank, out).expect("rank's process found");
    let killed = Command::new("kill").args([signal, &pid.to_string()]).status().expect("kill runs");
    assert!(killed.success());
    // Bounded: the job must end by itself (the test harness would hang otherwise; CI's timeout is the backstop).
    child.wait_with_output().expect("mpirun ends")
}

#[test]
fn two_ranks_write_the_bytes_of_one_process() {
    let Some(data) = mnist() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("alone"), dir.path().join("ranks"));
    run(alone(&job(&data, &a, 2, 2000)));
    run(mpirun(2, &job(&data, &b, 2, 2000)));
    assert!(weights(&a) == weights(&b), "two ranks and one process with two replicas differ");
    let metrics: serde_json::Value = serde_json::from_slice(&std::fs::read(b.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["ranks"], 2);
    assert_eq!(metrics["replicas"], 2);
    // Sent per rank and step: its replica's record for the peer's shard — loss, counts, and a flag and the
    // gradient shard of each of the seed model's 8 parameters (203,068 values; the longer shard, rank 1's, has
    // 101,535) — and its updated shard of the weights, both padded to the longer shard.
    assert_eq!(metrics["epochs"][0]["exchange_bytes_per_step"], 4 * ((3 + 8 + 101_535) + 101_535));
    assert!(metrics["epochs"][0]["exchange_seconds"].as_f64().unwrap() > 0.0);
    // …and a count of replicas that does not split over the ranks is refused on every rank.
    let mut odd = job(&data, &dir.path().join("odd"), 1, 200);
    odd.extend(["--replicas".into(), "3".into()]);
    let out = mpirun(2, &odd).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 replicas cannot be spread evenly over 2 ranks"));
}

#[test]
fn a_killed_rank_ends_the_job_and_a_resumed_run_matches() {
    let Some(data) = mnist() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (whole, cut) = (dir.path().join("whole"), dir.path().join("cut"));
    run(alone(&job(&data, &whole, 6, 6000)));

    let backup = cut.join("backup").join("checkpoint.safetensors");
    let killed = signal_rank_when(mpirun(2, &job(&data, &cut, 6, 6000)), || backup.is_file(), &cut, 1, "-KILL");
    let said = format!("{}{}", String::from_utf8_lossy(&killed.stdout), String::from_utf8_lossy(&killed.stderr));
    assert!(!killed.status.success(), "the job went on without rank 1");
    assert!(said.contains("rank 1"), "the error names the killed rank: {said}");
    assert!(!cut.join("model.safetensors").exists(), "the killed job finished anyway");

    // Resumed on one process (another rank count) from a copy, and on two ranks: both end as the whole run.
    let copy = dir.path().join("cut-copy");
    std::fs::create_dir_all(copy.join("backup")).unwrap();
    for e in std::fs::read_dir(cut.join("backup")).unwrap().flatten() {
        std::fs::copy(e.path(), copy.join("backup").join(e.file_name())).unwrap();
    }
    let mut resume_alone = job(&data, &copy, 6, 6000);
    resume_alone.push("--resume".into());
    run(alone(&resume_alone));
    let mut resume = job(&data, &cut, 6, 6000);
    resume.push("--resume".into());
    run(mpirun(2, &resume));
    assert!(weights(&cut) == weights(&whole), "resumed on two ranks ≠ uninterrupted");
    assert!(weights(&copy) == weights(&whole), "resumed on one process ≠ uninterrupted");
}

#[test]
fn a_stopped_rank_fails_the_job_within_the_timeout() {
    let Some(data) = mnist() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stopped");
    let mut args = job(&data, &out, 50, 6000);
    args.extend(["--mpi-timeout".into(), "3".into()]);
    let started = Instant::now();
    let backup = out.join("backup").join("checkpoint.safetensors");
    let res = signal_rank_when(mpirun(2, &args), || backup.is_file(), &out, 1, "-STOP");
    let said = format!("{}{}", String::from_utf8_lossy(&res.stdout), String::from_utf8_lossy(&res.stderr));
    assert!(!res.status.success());
    assert!(said.contains("did not complete within 3s"), "rank 0 says why it stopped: {said}");
    assert!(started.elapsed() < Duration::from_secs(90), "the job ended {:?} after it started", started.elapsed());
}
