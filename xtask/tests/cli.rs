//! `cargo xtask train-mnist` / `predict` on bad input: one clear message on stderr, a non-zero exit, never a
//! panic or a backtrace. With `MNIST_DIR`, a smoke run writes every output and `predict` reads them back.

use std::path::Path;
use std::process::{Command, Output};

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
    for needle in
        ["(256, 28, 28, 1) (256, 10)", "Total params: 203,068 (793.23 KB)", "Epoch 2/2", "8/8 [======", "test accuracy"]
    {
        assert!(stdout.contains(needle), "`{needle}` missing from:\n{stdout}");
    }
    for f in ["model.json", "model.safetensors", "metrics.json", "training-curves.png"] {
        assert!(out_dir.path().join(f).is_file(), "{f}");
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["epochs"].as_array().unwrap().len(), 2);
    assert!(metrics["test"]["accuracy"].as_f64().unwrap() > 0.2);
    assert!(metrics["peak_rss_bytes"].as_u64().unwrap() > 0);
    let png = image::open(out_dir.path().join("training-curves.png")).unwrap();
    assert_eq!((png.width(), png.height()), (1200, 500));
    let out = xtask(&["predict", "--model", o, "--index", "0", "--data-dir", m]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("class 9:") && stdout.contains("(label 7)"), "{stdout}");
    let check = xtask(&[
        "check-metrics",
        out_dir.path().join("metrics.json").to_str().unwrap(),
        "--min-test-accuracy",
        "0.999",
    ]);
    fails_with(&check, &["below 0.999"]);
}
