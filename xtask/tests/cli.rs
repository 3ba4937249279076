//! `cargo xtask train-mnist` / `predict` on bad input: one clear message on stderr, a non-zero exit, never a
//! panic or a backtrace. With `MNIST_DIR`, a smoke run writes every output and `predict` reads them back.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("MNIST_DIR")
        .env("XDG_CACHE_HOME", "/nonexistent-kiln-cache")
        .env("HOME", "/nonexistent-kiln-home")
        .env("KILN_MNIST_MIRROR", "http://127.0.0.1:9/")
        .output()
        .expect("run xtask")
}

/// Fails unless the command failed cleanly with a message containing every `needle`.
fn fails_with(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("stack backtrace"), "panic: {stderr}");
    assert!(stderr.starts_with("error: "), "one clear message: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "expected `{n}` in: {stderr}");
    }
}

#[test]
fn data_not_found_says_where_it_looked_and_how_to_get_it() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = xtask(&["train-mnist", "--data-dir", "/nonexistent-mnist", "--out", out_dir.path().to_str().unwrap()]);
    fails_with(&out, &["not found", "/nonexistent-mnist", "MNIST_DIR"]);
}

#[test]
fn unwritable_out_is_refused_before_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("run");
    // The data directory does not exist either: the --out check must come first.
    let out = xtask(&["train-mnist", "--data-dir", "/nonexistent-mnist", "--out", bad.to_str().unwrap()]);
    fails_with(&out, &["--out"]);
}

#[test]
fn corrupt_data_reports_the_loader_error() {
    let dir = tempfile::tempdir().unwrap();
    for name in
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    {
        std::fs::write(dir.path().join(name), b"\x00\x00\x08\x03garbage").unwrap();
    }
    let out_dir = tempfile::tempdir().unwrap();
    let out =
        xtask(&["train-mnist", "--data-dir", dir.path().to_str().unwrap(), "--out", out_dir.path().to_str().unwrap()]);
    fails_with(&out, &["train-images-idx3-ubyte"]);
}

#[test]
fn bad_flags_are_errors() {
    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path().to_str().unwrap();
    fails_with(&xtask(&["train-mnist", "--epochs", "0", "--out", o]), &["--epochs"]);
    fails_with(&xtask(&["train-mnist", "--threads", "0", "--out", o]), &["--threads"]);
    let out = xtask(&["train-mnist", "--dataset", "cifar"]);
    assert!(!out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn predict_rejects_missing_mismatched_models_and_unreadable_pngs() {
    fails_with(&xtask(&["predict", "--model", "/nonexistent-model", "--index", "0"]), &["--model", "model.json"]);
    // A model of another shape.
    let dir = tempfile::tempdir().unwrap();
    let other = kiln::nn::Sequential::new(&[10]).add(kiln::nn::layers::Dense::new(3)).build().unwrap();
    other.save(dir.path()).unwrap();
    fails_with(&xtask(&["predict", "--model", dir.path().to_str().unwrap(), "--index", "0"]), &["28×28×1"]);
    // Corrupt weights next to a good architecture.
    std::fs::write(dir.path().join("model.safetensors"), b"garbage").unwrap();
    fails_with(&xtask(&["predict", "--model", dir.path().to_str().unwrap(), "--index", "0"]), &["model.safetensors"]);
    // An unreadable PNG, with a valid model.
    let good = tempfile::tempdir().unwrap();
    let mut m = kiln::nn::Sequential::new(&[28, 28, 1])
        .add(kiln::nn::layers::Flatten::new())
        .add(kiln::nn::layers::Dense::new(10).activation(kiln::nn::Activation::Softmax))
        .build()
        .unwrap();
    m.compile("categorical_crossentropy", kiln::nn::Optimizer::rmsprop(), &["accuracy"]).unwrap();
    m.save(good.path()).unwrap();
    let png = good.path().join("digit.png");
    std::fs::write(&png, b"not a png").unwrap();
    fails_with(
        &xtask(&["predict", "--model", good.path().to_str().unwrap(), png.to_str().unwrap()]),
        &["digit.png", "cannot read the image"],
    );
    // A real PNG of any size works.
    let img = image::GrayImage::from_fn(56, 40, |x, y| image::Luma([if (x / 8 + y / 8) % 2 == 0 { 255 } else { 0 }]));
    img.save(&png).unwrap();
    let out = xtask(&["predict", "--model", good.path().to_str().unwrap(), png.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("predicted class"));
}

/// A smoke run on real data: every output is written, the model loads, `predict --index` works.
#[test]
fn smoke_run_writes_outputs_that_predict_reads() {
    let Some(mnist) = std::env::var_os("MNIST_DIR") else {
        assert!(std::env::var_os("KILN_REQUIRE_MNIST").is_none(), "KILN_REQUIRE_MNIST is set but MNIST_DIR is not");
        println!("skipped: MNIST_DIR is not set");
        return;
    };
    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path().to_str().unwrap();
    let m = Path::new(&mnist).to_str().unwrap();
    let out = xtask(&["train-mnist", "--data-dir", m, "--limit", "256", "--epochs", "2", "--out", o]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "(256, 28, 28, 1) (256, 10)",
        "Total params: 203,068 (793.23 KB)",
        "Epoch 2/2",
        "8/8 [======",
        "test accuracy",
        "% of the FMA peak",
    ] {
        assert!(stdout.contains(needle), "`{needle}` missing from:\n{stdout}");
    }
    for f in ["model.json", "model.safetensors", "model.keras", "metrics.json", "training-curves.png"] {
        assert!(out_dir.path().join(f).is_file(), "{f}");
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["epochs"].as_array().unwrap().len(), 2);
    assert!(metrics["test"]["accuracy"].as_f64().unwrap() > 0.2);
    assert!(metrics["peak_rss_bytes"].as_u64().unwrap() > 0);
    // The run states its speed against its own FMA peak: the notebook's 2,467,440 training FLOPs per image, a
    // positive peak, and per epoch a fraction that is a real fraction (a miscounted FLOP total shows here).
    assert_eq!(metrics["train_flops_per_image"].as_u64(), Some(2_467_440));
    assert!(metrics["fma_peak"]["best_gflops"].as_f64().unwrap() > 0.0);
    for e in metrics["epochs"].as_array().unwrap() {
        let f = e["peak_fraction"].as_f64().unwrap();
        assert!(f > 0.0 && f < 1.0, "peak fraction {f}");
    }
    let png = image::open(out_dir.path().join("training-curves.png")).unwrap();
    assert_eq!((png.width(), png.height()), (1200, 500));
    // With a validation split, every epoch reports validation figures (and the curves draw them).
    let val_dir = tempfile::tempdir().unwrap();
    let v = val_dir.path().to_str().unwrap();
    let args = ["train-mnist", "--data-dir", m, "--limit", "256", "--epochs", "2", "--validation-split", "0.25"];
    let out = xtask(&[&args[..], &["--quiet", "--out", v]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let vm: serde_json::Value =
        serde_json::from_slice(&std::fs::read(val_dir.path().join("metrics.json")).unwrap()).unwrap();
    for e in vm["epochs"].as_array().unwrap() {
        assert!(e["val_loss"].as_f64().is_some() && e["val_accuracy"].as_f64().is_some(), "{e}");
    }
    fails_with(&xtask(&["train-mnist", "--validation-split", "1.5", "--out", v]), &["--validation-split"]);
    let out = xtask(&["predict", "--model", o, "--index", "0", "--data-dir", m]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("class 9:") && stdout.contains("(label 7)"), "{stdout}");
    // The Keras file of the same run predicts the same probabilities.
    let keras = out_dir.path().join("model.keras");
    let out_keras = xtask(&["predict", "--model", keras.to_str().unwrap(), "--index", "0", "--data-dir", m]);
    assert!(out_keras.status.success(), "{}", String::from_utf8_lossy(&out_keras.stderr));
    assert_eq!(String::from_utf8_lossy(&out_keras.stdout), stdout);
    // Training continues from a Keras file (weights and RMSprop state); another architecture is refused.
    let from_dir = tempfile::tempdir().unwrap();
    let f = from_dir.path().to_str().unwrap();
    let args = ["train-mnist", "--data-dir", m, "--limit", "256", "--epochs", "1", "--quiet", "--out", f];
    let out = xtask(&[&args[..], &["--from", keras.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let small = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/kiln-nn/tests/fixtures/keras_files/small.keras");
    fails_with(&xtask(&[&args[..], &["--from", small]].concat()), &["--from", "small.keras"]);
    let check = xtask(&[
        "check-metrics",
        out_dir.path().join("metrics.json").to_str().unwrap(),
        "--min-test-accuracy",
        "0.999",
    ]);
    fails_with(&check, &["below 0.999"]);
}

/// `MNIST_DIR` as a string, or `None` (skipped) — a failure when `KILN_REQUIRE_MNIST` is set.
fn mnist_dir() -> Option<String> {
    let Some(mnist) = std::env::var_os("MNIST_DIR") else {
        assert!(std::env::var_os("KILN_REQUIRE_MNIST").is_none(), "KILN_REQUIRE_MNIST is set but MNIST_DIR is not");
        println!("skipped: MNIST_DIR is not set");
        return None;
    };
    Some(mnist.into_string().unwrap())
}

/// Starts `xtask train-mnist` with `args`, waits until its backup of epoch 1 exists, lets it run 60 ms into
/// epoch 2, then stops it with `stop(child)`; returns how it ended and its stderr.
fn interrupt_run(args: &[&str], out: &Path, stop: impl FnOnce(&mut Child)) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .args(["--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xtask");
    let backup = out.join("backup").join("checkpoint.safetensors");
    let t0 = Instant::now();
    while !backup.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first backup");
        assert!(t0.elapsed() < Duration::from_secs(120), "no backup after 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(60));
    stop(&mut child);
    let out = child.wait_with_output().unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Keras' BackupAndRestore in `train-mnist`: a run killed with SIGKILL in its second epoch, or stopped with
/// Ctrl-C (SIGINT), continues with `--resume` and ends with exactly the weights of a run never interrupted.
#[test]
fn killed_or_interrupted_runs_resume_to_the_same_bits() {
    let Some(m) = mnist_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let args = ["train-mnist", "--data-dir", &m, "--limit", "12000", "--epochs", "3", "--seed", "5", "--quiet"];
    let whole = dir.path().join("whole");
    let out = xtask(&[&args[..], &["--out", whole.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!whole.join("backup").exists(), "a complete run deletes its backup");
    let reference = std::fs::read(whole.join("model.safetensors")).unwrap();

    let killed = dir.path().join("killed");
    let (status, _) = interrupt_run(&args, &killed, |c| c.kill().unwrap());
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL, not finished ({status})");
    assert!(!killed.join("model.safetensors").exists());

    let stopped = dir.path().join("stopped");
    let (status, stderr) = interrupt_run(&args, &stopped, |c| {
        // The shell's builtin `kill`: no procps package needed.
        let kill = format!("kill -INT {}", c.id());
        assert!(Command::new("sh").args(["-c", &kill]).status().unwrap().success());
    });
    assert!(!status.success());
    assert!(stderr.contains("interrupted during epoch 2") && stderr.contains("--resume"), "{stderr}");

    for run in [killed, stopped] {
        let out = xtask(&[&args[..], &["--resume", "--out", run.to_str().unwrap()]].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let metrics: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap();
        assert_eq!(metrics["resumed_after_epoch"], 1);
        assert!(std::fs::read(run.join("model.safetensors")).unwrap() == reference, "{}: bits differ", run.display());
    }
    let none = dir.path().join("none");
    fails_with(&xtask(&[&args[..], &["--resume", "--out", none.to_str().unwrap()]].concat()), &["no backup"]);
}
