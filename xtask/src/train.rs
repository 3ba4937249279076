//! `cargo xtask train-mnist` and `train-fashion`: the two flagships end to end (see `TrainArgs` for the flags,
//! [`Job`] for what differs).
//!
//! Finds the data (`--data-dir`, `MNIST_DIR` / `FASHION_MNIST_DIR`, Debian's package for Fashion-MNIST, the
//! cache, else the verified download), prints the shapes and the first 10 label rows, builds and compiles the
//! model, prints `summary()`, fits with a per-epoch progress bar (and the job's callbacks), prints the predictions
//! for the first 5 training images beside their labels, evaluates on the 10,000 test images and writes
//! `model.safetensors`, `model.json`, `model.keras` (Keras 3), `metrics.json` and `training-curves.png` under `--out` (default
//! `target/kiln-runs/<timestamp>/`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use kiln::kernels::Isa;
use kiln::mnist::Dataset;
use kiln::nn::callbacks::{BackupAndRestore, Callback, EarlyStopping, Logs, ReduceLROnPlateau};
use kiln::prelude::*;
use serde_json::{Value, json};
use signal_hook::consts::SIGINT;

/// Which dataset to train on.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DatasetArg {
    /// MNIST handwritten digits.
    Mnist,
    /// Fashion-MNIST (Debian's `dataset-fashion-mnist`, or `FASHION_MNIST_DIR`).
    Fashion,
}

/// Optimizers by Keras name.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OptimizerArg {
    /// RMSprop (Keras' default: lr 1e-3, ρ 0.9, ε 1e-7).
    Rmsprop,
    /// Adam (lr 1e-3, β 0.9/0.999, ε 1e-7).
    Adam,
    /// AdamW (Adam with decoupled weight decay 0.004).
    Adamw,
    /// SGD (lr 0.01).
    Sgd,
}

/// ISA caps for `--isa`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum IsaArg {
    /// The `wide`-based portable kernels.
    Portable,
    /// AVX2 + FMA.
    Avx2,
    /// AVX-512 (F/BW/DQ/VL).
    Avx512,
    /// Arm NEON.
    Neon,
}

/// Keras dtype policies for `--precision`.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum PrecisionArg {
    /// Everything in f32 (Keras' default policy).
    #[default]
    #[value(name = "float32")]
    Float32,
    /// bf16 products with f32 accumulation, f32 weights and optimizer (Keras' `mixed_bfloat16`).
    #[value(name = "mixed_bfloat16")]
    MixedBfloat16,
}

impl PrecisionArg {
    /// The Keras policy name.
    pub fn name(self) -> &'static str {
        match self {
            PrecisionArg::Float32 => "float32",
            PrecisionArg::MixedBfloat16 => "mixed_bfloat16",
        }
    }
}

impl IsaArg {
    pub fn isa(self) -> Isa {
        match self {
            IsaArg::Portable => Isa::Portable,
            IsaArg::Avx2 => Isa::Avx2Fma,
            IsaArg::Avx512 => Isa::Avx512,
            IsaArg::Neon => Isa::Neon,
        }
    }
}

/// The two flagship jobs: what differs between `train-mnist` and `train-fashion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// The seed notebook: raw MNIST, RMSprop, batch 32, 10 epochs, one-hot labels.
    Mnist,
    /// The Fashion-MNIST CNN: Adam 1e-3, batch 64, `validation_split=0.1`, EarlyStopping(patience=3,
    /// restore_best_weights=True), ReduceLROnPlateau(patience=2), at most 15 epochs, class-index labels.
    Fashion,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::Mnist => "train-mnist",
            Job::Fashion => "train-fashion",
        }
    }
    fn model(self) -> Result<Model, NnError> {
        match self {
            Job::Mnist => kiln::flagships::mnist_notebook(),
            Job::Fashion => kiln::flagships::fashion_cnn(),
        }
    }
    fn epochs(self) -> usize {
        match self {
            Job::Mnist => 10,
            Job::Fashion => 15,
        }
    }
    fn batch_size(self) -> usize {
        match self {
            Job::Mnist => 32,
            Job::Fashion => 64,
        }
    }
    fn optimizer(self) -> OptimizerArg {
        match self {
            Job::Mnist => OptimizerArg::Rmsprop,
            Job::Fashion => OptimizerArg::Adam,
        }
    }
    fn validation_split(self) -> Option<f32> {
        match self {
            Job::Mnist => None,
            Job::Fashion => Some(0.1),
        }
    }
    fn dataset(self) -> DatasetArg {
        match self {
            Job::Mnist => DatasetArg::Mnist,
            Job::Fashion => DatasetArg::Fashion,
        }
    }
}

/// Flags of `cargo xtask train-mnist` and `train-fashion` (defaults per job: see [`Job`]).
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Epochs to train (default: train-mnist 10, train-fashion at most 15 with early stopping).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per training step (default: train-mnist 32, train-fashion 64).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seed of the weight initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Dataset (default: the job's, MNIST or Fashion-MNIST).
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetArg>,
    /// Directory holding the four IDX files (raw or .gz).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Scale pixels to [0, 1] (the notebook trains on raw 0..255).
    #[arg(long)]
    pub normalize: bool,
    /// Optimizer (default: train-mnist RMSprop, train-fashion Adam).
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,
    /// Learning rate (default: the optimizer's Keras default).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Train on the first N training images only (smoke runs).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output directory (default: `target/kiln-runs/<timestamp>/`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print only the final metrics.
    #[arg(long)]
    pub quiet: bool,
    /// Cap the SIMD level of the kernels (to compare paths).
    #[arg(long, value_enum)]
    pub isa: Option<IsaArg>,
    /// Keras dtype policy: `mixed_bfloat16` runs the layers' products on bf16 operands (natively where the CPU
    /// has AVX-512 BF16, else by exact widening to f32), weights and optimizer staying f32.
    #[arg(long, value_enum, default_value_t)]
    pub precision: PrecisionArg,
    /// Train each batch as one piece, summing exactly like Keras, instead of the default: split every batch in
    /// two halves trained on two model replicas (in parallel with ≥ 2 threads) whose gradients are averaged.
    /// Either way the results are identical for any --threads.
    #[arg(long)]
    pub no_data_parallel: bool,
    /// Hold out this fraction of the training images (the last ones, as Keras' `validation_split`) and evaluate
    /// on it after every epoch; the curves and metrics.json then show validation too (default: train-mnist
    /// none, train-fashion 0.1; 0 turns it off).
    #[arg(long)]
    pub validation_split: Option<f32>,
    /// Continue an interrupted run (killed, or stopped with Ctrl-C) from the backup of its last complete epoch
    /// (Keras' BackupAndRestore), ending with the same bits as an uninterrupted run. The run is `--out`, or else
    /// the most recent run under `target/kiln-runs/` that has a backup. Give the same flags as the first time.
    #[arg(long)]
    pub resume: bool,
    /// Start from a saved model of the job's architecture: a Keras `.keras` / `.h5` (say, the notebook trained in
    /// Keras and saved with `model.save`) or a Kiln run directory. Its weights, and its optimizer state when the
    /// file holds one for the job's optimizer, replace the initial ones, so training continues where it stopped.
    #[arg(long, conflicts_with = "resume")]
    pub from: Option<PathBuf>,
    /// Model replicas each batch is split over, their gradients reduced in replica order (default 2, or 1 with
    /// --no-data-parallel). The same count gives the same bits on one process or across any number of ranks.
    #[arg(long, conflicts_with = "no_data_parallel")]
    pub replicas: Option<usize>,
    /// Train as N processes (ranks) of an MPI job on this host: builds xtask with the `distributed` feature and
    /// runs this command under `mpirun -n N` (the replicas are spread over the ranks; rank 0 prints and writes).
    #[arg(long)]
    pub mpi: Option<usize>,
    /// Seconds a rank waits in a collective for its peers before the job fails (a dead or hung rank).
    #[arg(long, default_value_t = 120)]
    pub mpi_timeout: u64,
}

/// Where a run keeps its `BackupAndRestore` state.
const BACKUP: &str = "backup";

/// The most recent run directory under `runs` holding a backup.
fn latest_backup(runs: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| d.join(BACKUP).join(kiln::nn::io::CHECKPOINT).is_file())
        .collect();
    // Run directories are named by their start time (`%Y%m%d-%H%M%S`), so the greatest name is the newest.
    dirs.sort();
    dirs.pop()
}

/// Stops `fit` after the current batch once Ctrl-C was pressed (a second Ctrl-C exits at once).
struct Interrupt {
    flag: Arc<AtomicBool>,
    epoch: usize,
    hit: Option<usize>,
}

impl Callback for Interrupt {
    fn reads_state_after_batches(&self) -> bool {
        false
    }

    fn on_epoch_begin(&mut self, epoch: usize, _: &mut Model) -> kiln::nn::Result<()> {
        self.epoch = epoch;
        Ok(())
    }

    fn on_train_batch_end(&mut self, _: usize, _: &Logs, model: &mut Model) -> kiln::nn::Result<()> {
        if self.flag.load(Ordering::Relaxed) && self.hit.is_none() {
            self.hit = Some(self.epoch);
            model.set_stop_training(true);
        }
        Ok(())
    }
}

/// Ctrl-C sets the returned flag; pressed again while it is set, it ends the process (exit code 1).
fn ctrl_c_flag() -> Result<Arc<AtomicBool>, String> {
    let flag = Arc::new(AtomicBool::new(false));
    let err = |e: std::io::Error| format!("cannot install the Ctrl-C handler: {e}");
    signal_hook::flag::register_conditional_shutdown(SIGINT, 1, flag.clone()).map_err(err)?;
    signal_hook::flag::register(SIGINT, flag.clone()).map_err(err)?;
    Ok(flag)
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Creates `dir` and checks that files can be written there, before any training starts.
fn check_writable(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--out {}: cannot create the directory: {e}", dir.display()))?;
    let probe = dir.join(".kiln-write-test");
    std::fs::write(&probe, b"ok").map_err(|e| format!("--out {}: not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The convolution algorithm `Auto` runs for every Conv2D layer and pass of `model` (from the model itself).
fn conv_algorithms(model: &Model, batch: usize) -> Result<Value, String> {
    let mut out = serde_json::Map::new();
    for c in model.conv_algorithms(batch).map_err(|e| e.to_string())? {
        let data = c.backward_data.map_or_else(|| "not needed (first layer)".to_owned(), |a| format!("{a:?}"));
        let (forward, filter) = (format!("{:?}", c.forward), format!("{:?}", c.backward_filter));
        out.insert(c.layer, json!({"forward": forward, "backward_data": data, "backward_filter": filter}));
    }
    Ok(Value::Object(out))
}

/// An f32 as the shortest decimal that reads back as the same f32 (for readable JSON).
/// Sample dimensions as Python prints a shape's tail: `28, 28, 1`.
fn dims(d: &[usize]) -> String {
    d.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

fn short(v: f32) -> Value {
    v.to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

pub fn run(job: Job, args: TrainArgs, root: &Path) -> Result<(), String> {
    if let Some(ranks) = args.mpi {
        return crate::ranks::launch(ranks, root);
    }
    let start = Instant::now();
    // Rank 0 of an MPI job speaks for the run; the other ranks train silently and write nothing.
    let chief = crate::ranks::rank_from_env() == 0;
    let runs = root.join("target").join("kiln-runs");
    let out = match (&args.out, args.resume) {
        (Some(out), _) => out.clone(),
        // Only rank 0 reads the backup and writes; the other ranks (maybe on hosts without it) need no directory.
        (None, true) if !chief => runs.clone(),
        (None, true) => latest_backup(&runs).ok_or_else(|| {
            format!("--resume: no run with a backup under {} (give the run's directory with --out)", runs.display())
        })?,
        (None, false) => runs.join(chrono::Local::now().format("%Y%m%d-%H%M%S").to_string()),
    };
    let backup = out.join(BACKUP);
    if chief {
        check_writable(&out)?;
    }
    if chief && args.resume && !backup.join(kiln::nn::io::CHECKPOINT).is_file() {
        return Err(format!("--resume: {} holds no backup to continue from", out.display()));
    }
    if chief && !args.resume && backup.exists() {
        // A fresh run in a directory an interrupted run used: its backup must not be picked up.
        std::fs::remove_dir_all(&backup).map_err(|e| format!("{}: {e}", backup.display()))?;
    }
    let epochs = args.epochs.unwrap_or(job.epochs());
    let batch_size = args.batch_size.unwrap_or(job.batch_size());
    if epochs == 0 || batch_size == 0 {
        return Err("--epochs and --batch-size must be at least 1".into());
    }
    if args.threads == Some(0) {
        return Err("--threads must be at least 1".into());
    }
    let validation_split = args.validation_split.or(job.validation_split()).filter(|&f| f != 0.0);
    let validation = match validation_split {
        Some(f) if !(0.0..1.0).contains(&f) => return Err(format!("--validation-split {f}: must be in [0, 1)")),
        Some(f) => Validation::Split(f),
        None => Validation::None,
    };
    let isa = args.isa.map(IsaArg::isa);
    if let Some(isa) = isa
        && !isa.is_supported()
    {
        return Err(format!("--isa {isa}: this CPU cannot run it (it offers {:?})", Isa::available()));
    }
    let dataset = match args.dataset.unwrap_or(job.dataset()) {
        DatasetArg::Mnist => Dataset::Mnist,
        DatasetArg::Fashion => Dataset::FashionMnist,
    };
    let data = dataset.locate(args.data_dir.as_deref()).map_err(|e| match e {
        kiln::mnist::MnistError::NotFound { .. } => format!(
            "{e}\nWithout --data-dir and {}, {} downloads and verifies the data into the user cache.",
            dataset.env_var(),
            job.name()
        ),
        e => e.to_string(),
    })?;
    let n = args.limit.unwrap_or(data.train.len()).min(data.train.len());
    if n == 0 {
        return Err("--limit 0 leaves no training images".into());
    }
    let scale = if args.normalize { Scale::Unit } else { Scale::Raw };
    let say = !args.quiet && chief;

    let x_train = data.train.images(scale).map_err(|e| e.to_string())?.take(n);
    let labels = Labels::of(job, &data.train, n)?;
    if say {
        println!("({n}, {}) ({n}, {})", dims(x_train.sample_dims()), dims(labels.data().sample_dims()));
        println!("{}", labels.head(10)?);
    }

    let mut model = job.model().map_err(|e| e.to_string())?;
    let optimizer = match args.optimizer.unwrap_or(job.optimizer()) {
        OptimizerArg::Rmsprop => Optimizer::rmsprop(),
        OptimizerArg::Adam => Optimizer::adam(),
        OptimizerArg::Adamw => Optimizer::adamw(),
        OptimizerArg::Sgd => Optimizer::sgd(),
    };
    let optimizer = match args.lr {
        Some(lr) if !(lr.is_finite() && lr > 0.0) => return Err(format!("--lr {lr}: must be a positive number")),
        Some(lr) => optimizer.learning_rate(lr),
        None => optimizer,
    };
    model.compile(labels.loss(), optimizer, &["accuracy"]).map_err(|e| e.to_string())?;
    model.set_seed(args.seed).map_err(|e| e.to_string())?;
    // Each rank of an MPI job on this host takes its share of the cores.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or_else(|| (cores / crate::ranks::local_ranks()).max(1));
    model.set_threads(Some(threads)).map_err(|e| e.to_string())?;
    if let Some(isa) = isa {
        model.set_isa(isa).map_err(|e| e.to_string())?;
    }
    let replicas = args.replicas.unwrap_or(if args.no_data_parallel { 1 } else { 2 });
    model.set_replicas(replicas).map_err(|e| format!("--replicas: {e}"))?;
    model.set_dtype_policy(args.precision.name()).map_err(|e| e.to_string())?;
    // The ceiling the run's speed is stated against: this ISA's FMA peak on the run's threads (≈ 0.25 s).
    let peak = model
        .kernels()
        .fma_peak(model.threads().unwrap_or(1), Duration::from_millis(60), 3)
        .map_err(|e| format!("FMA peak probe: {e}"))?;
    let flops_per_sample = model.train_flops_per_sample();
    // Across ranks rank 0 reads the file; joining the job below hands its weights and state to the others.
    if let Some(from) = args.from.as_ref().filter(|_| chief) {
        let loaded = match from.extension().and_then(|e| e.to_str()) {
            Some("keras" | "h5") => model.load_keras_weights(from),
            _ => model.load_weights(from.join(kiln::nn::io::MODEL_WEIGHTS)),
        };
        loaded.map_err(|e| format!("--from: {e}"))?;
        if let Some(lr) = args.lr {
            // The file's current rate gave way to an explicit --lr.
            model.set_learning_rate(lr).map_err(|e| e.to_string())?;
        }
    }
    // Joins the MPI job this process is a rank of (rank 0's weights and state then hold for all).
    let group = crate::ranks::join(&mut model, Duration::from_secs(args.mpi_timeout.max(1)))?;
    let ranks = group.as_ref().map_or(1, |_| crate::ranks::world_size_from_env());
    model.set_metadata("input_scale", scale.factor().to_string());
    model.set_metadata("dataset", dataset.name());
    if say {
        model.print_summary();
        if model.dtype_policy() == DTypePolicy::MixedBfloat16 {
            println!(
                "dtype policy: mixed_bfloat16 (products on {}, f32 weights and optimizer)",
                model.dtype_policy().product_gemm(model.kernels())
            );
        }
    }

    let verbose = if say { Verbose::ProgressBar } else { Verbose::Silent };
    let mut restore = BackupAndRestore::new(&backup);
    let mut interrupt = Interrupt { flag: ctrl_c_flag()?, epoch: 0, hit: None };
    let mut early = EarlyStopping::new().patience(3).restore_best_weights(true).verbose(say);
    let mut plateau = ReduceLROnPlateau::new().patience(2).verbose(say);
    let opts = FitOptions::default().epochs(epochs).batch_size(batch_size).verbose(verbose).validation(validation);
    let mut opts = opts.callback(&mut restore).callback(&mut interrupt);
    if job == Job::Fashion {
        opts = opts.callback(&mut early).callback(&mut plateau);
    }
    let history = model.fit(&x_train, labels.data(), &opts).map_err(|e| e.to_string())?;
    drop(opts);
    if let Some(epoch) = interrupt.hit {
        return Err(format!(
            "interrupted during epoch {}; {} holds the state after epoch {epoch}. Continue with the same flags and: \
             --resume --out {}",
            epoch + 1,
            backup.display(),
            out.display()
        ));
    }
    if !chief {
        // The chief evaluates, saves and reports; this rank's work ends with training.
        drop(group);
        return Ok(());
    }
    let resumed_from = restore.restored_epochs();
    if let (Some(e), true) = (resumed_from, say) {
        println!("Resumed after epoch {e} from {}", backup.display());
    }

    // Achieved speed: the layers' training FLOPs over the epoch's training time.
    let gflops = |e: &kiln::nn::EpochLog| flops_per_sample as f64 * e.samples_per_second / 1e9;
    // And the memory traffic it implies (estimated from the plan; a full batch's step).
    let step_bytes = model.step_bytes(batch_size);
    let gbytes = |e: &kiln::nn::EpochLog| step_bytes.total() as f64 * e.samples_per_second / batch_size as f64 / 1e9;
    // Across ranks the job's ceiling is every rank's (each probed its own threads; the ranks are alike).
    let job_peak = peak.best_gflops * ranks as f64;
    let job_threads = peak.threads * ranks;
    if say {
        for e in &history.epochs {
            println!(
                "Epoch {}: {:.1} GFLOP/s = {:.1} % of the FMA peak ({:.1} GFLOP/s: {}, {} thread{}); {:.2} MB moved per \
                 step (estimate) = {:.1} GB/s",
                e.epoch,
                gflops(e),
                100.0 * gflops(e) / job_peak,
                job_peak,
                peak.isa.name(),
                job_threads,
                if job_threads == 1 { "" } else { "s" },
                step_bytes.total() as f64 / 1e6,
                gbytes(e),
            );
            if ranks > 1 {
                println!(
                    "         {ranks} ranks: {:.3} s of the epoch exchanging gradient and weight shards ({:.2} MB sent per rank and step)",
                    e.exchange_seconds,
                    e.exchange_bytes_per_step as f64 / 1e6
                );
            }
        }
    }

    let pred = model.predict_on_batch(&x_train.take(5)).map_err(|e| e.to_string())?;
    if say {
        println!("\nPredictions for the first 5 training images (rounded to 2 decimals):");
        println!("{pred:.2}");
        println!("Their labels:");
        println!("{}", labels.head(5)?);
    }

    let x_test = data.test.images(scale).map_err(|e| e.to_string())?;
    let test_labels = Labels::of(job, &data.test, data.test.len())?;
    let t0 = Instant::now();
    let test = model.evaluate(&x_test, test_labels.data(), 32).map_err(|e| e.to_string())?;
    let test_acc = test.accuracy.unwrap_or(f32::NAN);
    println!(
        "{steps}/{steps} - {secs:.0}s - test loss: {:.4} - test accuracy: {test_acc:.4}",
        test.loss,
        steps = x_test.len().div_ceil(32),
        secs = t0.elapsed().as_secs_f64().floor()
    );

    model.save(&out).map_err(|e| e.to_string())?;
    model.save_keras(out.join("model.keras")).map_err(|e| e.to_string())?;
    let epochs: Vec<Value> = history
        .epochs
        .iter()
        .map(|e| {
            json!({
                "epoch": e.epoch,
                "loss": short(e.loss),
                "accuracy": e.accuracy.map(short),
                "val_loss": e.val_loss.map(short),
                "val_accuracy": e.val_accuracy.map(short),
                "seconds": e.seconds,
                "train_seconds": e.train_seconds,
                "images_per_second": e.samples_per_second,
                "gflops": gflops(e),
                "peak_fraction": gflops(e) / job_peak,
                "gbytes_per_second": gbytes(e),
                "exchange_seconds": e.exchange_seconds,
                "exchange_bytes_per_step": e.exchange_bytes_per_step,
            })
        })
        .collect();
    let kernels = model.kernels();
    let metrics = json!({
        "kiln_version": env!("CARGO_PKG_VERSION"),
        "job": job.name(),
        "dataset": dataset.name(),
        "train_images": n,
        "test_images": x_test.len(),
        "normalize": args.normalize,
        "optimizer": model.compiled().map(|c| c.optimizer.config()),
        "batch_size": batch_size,
        "seed": args.seed,
        "threads": model.threads(),
        "data_parallel": replicas > 1,
        "replicas": replicas,
        "ranks": ranks,
        "resumed_after_epoch": resumed_from,
        "validation_split": validation_split,
        "early_stopping": (job == Job::Fashion).then(|| json!({
            "stopped_epoch": (early.stopped_epoch() > 0).then(|| early.stopped_epoch() + 1),
            "best_epoch": early.best().map(|_| early.best_epoch() + 1),
            "best_val_loss": early.best(),
        })),
        "final_learning_rate": model.learning_rate().ok().map(short),
        "isa": kernels.isa().name(),
        "precision": model.dtype_policy().name(),
        "kernels": {
            "gemm": kernels.gemm_name(),
            "products": model.dtype_policy().product_gemm(kernels),
            "conv2d": conv_algorithms(&model, batch_size)?,
            "flush_denormals": true,
        },
        "epochs": epochs,
        "median_epoch_seconds": median(history.epochs.iter().map(|e| e.seconds).collect()),
        "train_flops_per_image": flops_per_sample,
        "step_bytes": {
            "activations": step_bytes.activations,
            "weights": step_bytes.weights,
            "optimizer": step_bytes.optimizer,
            "total": step_bytes.total(),
        },
        "fma_peak": {
            "isa": peak.isa.name(),
            "threads": job_threads,
            "best_gflops": job_peak,
            "median_gflops": peak.median_gflops * ranks as f64,
        },
        "median_peak_fraction": median(history.epochs.iter().map(|e| gflops(e) / job_peak).collect()),
        "test": {"loss": short(test.loss), "accuracy": test.accuracy.map(short)},
        "peak_rss_bytes": peak_rss_bytes(),
        "wall_seconds": start.elapsed().as_secs_f64(),
    });
    let text = serde_json::to_string_pretty(&metrics).map_err(|e| e.to_string())?;
    std::fs::write(out.join("metrics.json"), text)
        .map_err(|e| format!("{}: {e}", out.join("metrics.json").display()))?;
    let png = out.join("training-curves.png");
    let title = format!("{} — {} images, batch {}, {}", dataset.name(), n, batch_size, optimizer.name());
    let curves = crate::plot::Curves {
        loss: &history.loss(),
        accuracy: &history.accuracy(),
        val_loss: &history.val_loss(),
        val_accuracy: &history.val_accuracy(),
    };
    let labelled = crate::plot::training_curves(&png, &curves, Some((test.loss, test_acc)), &title)?;
    if !labelled {
        eprintln!("warning: no TrueType font found (install fonts-dejavu-core); training-curves.png has no labels");
    }
    drop(group);
    if say {
        println!(
            "\nSaved model.safetensors, model.json, model.keras, metrics.json and training-curves.png to {}",
            out.display()
        );
    }
    Ok(())
}

/// The training or test labels in the job's form: one-hot rows for the notebook (categorical cross-entropy, as
/// it was written), class indices for the Fashion CNN (sparse categorical cross-entropy, as Keras' tutorials).
enum Labels<'a> {
    OneHot(kiln::mnist::OneHot<'a>),
    Sparse(kiln::nn::ClassIndices<'a>),
}

impl<'a> Labels<'a> {
    fn of(job: Job, split: &'a kiln::mnist::Split, n: usize) -> Result<Self, String> {
        Ok(match job {
            Job::Mnist => Labels::OneHot(split.one_hot().map_err(|e| e.to_string())?.take(n)),
            Job::Fashion => Labels::Sparse(split.class_indices().take(n)),
        })
    }
    fn data(&self) -> &dyn Data {
        match self {
            Labels::OneHot(d) => d,
            Labels::Sparse(d) => d,
        }
    }
    fn loss(&self) -> &'static str {
        match self {
            Labels::OneHot(_) => "categorical_crossentropy",
            Labels::Sparse(_) => "sparse_categorical_crossentropy",
        }
    }
    /// The first `n` labels as printed under the shapes.
    fn head(&self, n: usize) -> Result<String, String> {
        match self {
            Labels::OneHot(d) => Ok(format!("{:.1}", d.head(n).map_err(|e| e.to_string())?)),
            Labels::Sparse(d) => Ok(format!("{:?}", d.take(n).labels())),
        }
    }
}
