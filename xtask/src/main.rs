//! Kiln's chores, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! * `cargo xtask train-mnist [FLAGS]` — the notebook end to end (see `train_mnist.rs`).
//! * `cargo xtask predict --model DIR (--index N | IMAGE.png)` — classify one image with a saved model.
//! * `cargo xtask isa` — which instruction sets this CPU offers and which one the kernels will use.
//! * `cargo xtask fuzz [--seconds N] [TARGET…]` — runs the cargo-fuzz targets under `fuzz/` with libFuzzer on the
//!   nightly toolchain (installing `cargo-fuzz` from crates.io if it is missing), N seconds each.
//! * `cargo xtask test-long [--scale N]` — the long test tier: the workspace's tests with N× (default 10) the
//!   property-test cases, in the `checked` profile (debug assertions and overflow checks everywhere).
//! * `cargo xtask neon` — builds the NEON kernels for `aarch64-unknown-linux-gnu` with Debian's `rustc-web` and
//!   runs their property tests under `qemu-aarch64` on the main thread (`../shared/neon/README.md`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};
use kiln_kernels::Isa;

mod keras_export;
mod plot;
mod predict;
mod ranks;
mod train;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Kiln project chores")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train the Keras notebook's CNN on MNIST (or Fashion-MNIST) and report, save and plot the results.
    TrainMnist(train::TrainArgs),
    /// Train the Fashion-MNIST CNN (BatchNormalization, augmentation, early stopping) and report, save and plot
    /// the results.
    TrainFashion(train::TrainArgs),
    /// Classify one image (a test-set index or a PNG) with a model saved by train-mnist.
    Predict(predict::PredictArgs),
    /// Save models (Keras files or Kiln model directories) as `.keras` after one Kiln training step, with the
    /// predictions and next-step loss `benches/reference/keras_files.py check DIR` compares in Keras.
    KerasExport {
        /// Directory to write `<name>.keras` and `<name>.json` into.
        #[arg(long)]
        out: PathBuf,
        /// The models.
        #[arg(required = true)]
        models: Vec<PathBuf>,
    },
    /// Fail unless a train-mnist metrics.json reports at least the given test accuracy (used by CI).
    CheckMetrics {
        /// The metrics.json file.
        file: PathBuf,
        /// Minimum test accuracy, in [0, 1].
        #[arg(long)]
        min_test_accuracy: f64,
    },
    /// Print the instruction sets this CPU supports and the one Kiln's kernels choose.
    Isa,
    /// Measure the f32 FMA peak of every ISA this CPU supports, on one thread and on all threads (the ceiling the
    /// training jobs' "fraction of peak" is stated against).
    Peak {
        /// Timed rounds per measurement (best and median are reported).
        #[arg(long, default_value_t = 7)]
        rounds: usize,
        /// Milliseconds per round.
        #[arg(long, default_value_t = 200)]
        round_ms: u64,
    },
    /// Build the NEON kernels for aarch64 and run their property tests under qemu-user.
    Neon,
    /// The long test tier: every test of the workspace with 10× the property-test cases, built with debug
    /// assertions and overflow checks in every crate (the `checked` profile). CI runs it after `cargo test`.
    TestLong {
        /// Multiplier of every property test's case count.
        #[arg(long, default_value_t = 10)]
        scale: u32,
    },
    /// Run cargo-fuzz targets (all of them unless named) for a bounded time each.
    Fuzz {
        /// Seconds of fuzzing per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Targets to run (default: every file in fuzz/fuzz_targets).
        targets: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::TrainMnist(args) => train::run(train::Job::Mnist, args, &workspace_root()),
        Cmd::TrainFashion(args) => train::run(train::Job::Fashion, args, &workspace_root()),
        Cmd::Predict(args) => predict::run(args),
        Cmd::KerasExport { out, models } => keras_export::run(out, models),
        Cmd::CheckMetrics { file, min_test_accuracy } => check_metrics(&file, min_test_accuracy),
        Cmd::Isa => {
            isa_report();
            Ok(())
        }
        Cmd::Peak { rounds, round_ms } => peak(rounds, round_ms),
        Cmd::Fuzz { seconds, targets } => fuzz(seconds, targets),
        Cmd::Neon => neon(),
        Cmd::TestLong { scale } => test_long(scale),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn check_metrics(file: &Path, min: f64) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: invalid JSON: {e}", file.display()))?;
    let acc = v["test"]["accuracy"].as_f64().ok_or_else(|| format!("{}: no test.accuracy", file.display()))?;
    let epoch = v["median_epoch_seconds"].as_f64().unwrap_or(f64::NAN);
    println!("test accuracy {acc:.4} (minimum {min}); median epoch {epoch:.3} s; {}", file.display());
    if acc >= min { Ok(()) } else { Err(format!("test accuracy {acc:.4} is below {min}")) }
}

fn isa_report() {
    for isa in Isa::ALL {
        let state = if isa.is_supported() { "supported" } else { "not supported" };
        let formats: Vec<&str> =
            kiln_kernels::DType::ALL.into_iter().filter(|d| isa.supports(*d)).map(|d| d.name()).collect();
        println!(
            "{:<9} {state:<13} native formats: {}",
            isa.name(),
            if formats.is_empty() { "-".to_string() } else { formats.join(", ") }
        );
    }
    match std::env::var(kiln_kernels::isa::ENV_ISA_CAP) {
        Ok(cap) => println!("KILN_ISA cap: {cap}"),
        Err(_) => println!("KILN_ISA cap: (unset)"),
    }
    let best = kiln_kernels::Kernels::best();
    println!("kernels use: {}", Isa::best());
    println!(
        "bf16 products run on: {}{}",
        best.gemm_name_for(kiln_kernels::DType::BF16),
        if best.native(kiln_kernels::DType::BF16) { "" } else { " (no bf16 arithmetic on this CPU: widened to f32)" }
    );
}

/// A saved model: a Keras file (`.keras`, `.h5`) by its extension, else a Kiln model directory.
fn load_model(path: &Path) -> kiln::nn::Result<kiln::prelude::Model> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("keras" | "h5") => kiln::prelude::Model::load_keras(path),
        _ => kiln::prelude::Model::load(path),
    }
}

fn peak(rounds: usize, round_ms: u64) -> Result<(), String> {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    for isa in Isa::ALL {
        let Some(k) = kiln_kernels::Kernels::for_isa(isa) else { continue };
        for threads in if all > 1 { vec![1, all] } else { vec![1] } {
            let p =
                k.fma_peak(threads, std::time::Duration::from_millis(round_ms), rounds).map_err(|e| e.to_string())?;
            println!(
                "{:<9} {threads} thread{}: best {:>7.1} GFLOP/s, median {:>7.1} ({:.1} per thread)",
                isa.name(),
                if threads == 1 { " " } else { "s" },
                p.best_gflops,
                p.median_gflops,
                p.best_gflops / threads as f64
            );
        }
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    // xtask/ lives directly under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{cmd:?} failed with {status}")) }
}

fn test_long(scale: u32) -> Result<(), String> {
    let root = workspace_root();
    run(Command::new("cargo")
        .current_dir(&root)
        .env(kiln_kernels::testing::ENV_TEST_SCALE, scale.max(1).to_string())
        .args(["test", "--workspace", "--profile", "checked"]))
}

fn fuzz(seconds: u64, mut targets: Vec<String>) -> Result<(), String> {
    let root = workspace_root();
    let fuzz_dir = root.join("fuzz");
    if targets.is_empty() {
        let entries = std::fs::read_dir(fuzz_dir.join("fuzz_targets"))
            .map_err(|e| format!("cannot list {}: {e}", fuzz_dir.join("fuzz_targets").display()))?;
        targets = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.path().file_stem().and_then(|s| s.to_str()).map(str::to_string))
            .collect();
        targets.sort();
    }
    let has_cargo_fuzz =
        Command::new("cargo").args(["+nightly", "fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if !has_cargo_fuzz {
        println!("installing cargo-fuzz from crates.io");
        run(Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]))?;
    }
    for target in &targets {
        println!("== fuzzing {target} for {seconds} s");
        run(Command::new("cargo").current_dir(&root).args([
            "+nightly",
            "fuzz",
            "run",
            target,
            "--",
            &format!("-max_total_time={seconds}"),
        ]))?;
    }
    Ok(())
}

/// Debian packages that provide the aarch64 toolchain, linker and emulator.
const NEON_PACKAGES: &str =
    "rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user";

fn neon() -> Result<(), String> {
    let root = workspace_root();
    let missing: Vec<&str> =
        ["/usr/bin/rustc", "/usr/bin/cargo", "/usr/bin/aarch64-linux-gnu-gcc", "/usr/bin/qemu-aarch64"]
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing {}; install with: dpkg --add-architecture arm64 && apt-get update && apt-get install -y {NEON_PACKAGES}",
            missing.join(", ")
        ));
    }
    // Linker and runner for the target come from .cargo/config.toml; the harness-free test runs on the main thread.
    run(Command::new("/usr/bin/cargo").current_dir(&root).env("RUSTC", "/usr/bin/rustc").args([
        "test",
        "--release",
        "--target",
        "aarch64-unknown-linux-gnu",
        "--target-dir",
        "target/aarch64",
        "-p",
        "kiln-kernels",
        "--test",
        "neon",
    ]))
}
