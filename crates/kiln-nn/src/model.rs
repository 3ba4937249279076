//! [`Model`]: a chain of layers built functionally (`Input` → layer → layer) or with [`Sequential`], compiled
//! with a loss and an optimizer, trained with [`Model::fit`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_autograd::{MAX_RANK, ParamId, Tape, Var};
use kiln_kernels::{ConvAlgo, ConvPass, FlushDenormals, Isa, Kernels, Threads, set_flush_denormals};
use kiln_tensor::Tensor;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::{Data, Slice};
use crate::error::{NnError, Result};
use crate::layer::Layer;
use crate::layers::default_base_name;
use crate::optim::{Loss, Metric, Optimizer, OptimizerState};
use crate::progress::{EpochProgress, Verbose};
use crate::symbolic::SymbolicTensor;

/// The seed used for weight initialisation and shuffling until [`Model::set_seed`] is called.
pub const DEFAULT_SEED: u64 = 0x6b69_6c6e;

pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) layer: Box<dyn Layer>,
    pub(crate) output_shape: Vec<usize>,
}

/// Loss, optimizer and metrics chosen by [`Model::compile`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compiled {
    /// The loss.
    pub loss: Loss,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Whether accuracy is tracked.
    pub accuracy: bool,
}

/// Loss and correct predictions of one batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchStats {
    /// Mean loss over the batch.
    pub loss: f32,
    /// Samples whose predicted class is right.
    pub correct: usize,
    /// Samples in the batch.
    pub samples: usize,
}

/// Result of [`Model::evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evaluation {
    /// Mean loss over all samples.
    pub loss: f32,
    /// Accuracy (when compiled with the `accuracy` metric).
    pub accuracy: Option<f32>,
}

/// One epoch of [`History`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochLog {
    /// Epoch number, 1-based.
    pub epoch: usize,
    /// Mean training loss (weighted by batch size, as Keras).
    pub loss: f32,
    /// Training accuracy.
    pub accuracy: Option<f32>,
    /// Validation loss.
    pub val_loss: Option<f32>,
    /// Validation accuracy.
    pub val_accuracy: Option<f32>,
    /// Wall time of the training steps, seconds.
    pub train_seconds: f64,
    /// Wall time of the whole epoch (training, validation, checkpoint), seconds.
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
}

/// What `fit` returns: one [`EpochLog`] per epoch (Keras' `History.history`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct History {
    /// The epochs, in order.
    pub epochs: Vec<EpochLog>,
}

impl History {
    /// Training loss per epoch.
    pub fn loss(&self) -> Vec<f32> {
        self.epochs.iter().map(|e| e.loss).collect()
    }
    /// Training accuracy per epoch.
    pub fn accuracy(&self) -> Vec<f32> {
        self.epochs.iter().filter_map(|e| e.accuracy).collect()
    }
}

/// Validation during `fit`.
#[derive(Clone, Copy, Default)]
pub enum Validation<'a> {
    /// None.
    #[default]
    None,
    /// Keras' `validation_split`: the *last* fraction of the samples (before shuffling) is held out.
    Split(f32),
    /// Keras' `validation_data=(x, y)`.
    Data(&'a dyn Data, &'a dyn Data),
}

/// Options of [`Model::fit`] (Keras' arguments and defaults).
#[derive(Clone)]
pub struct FitOptions<'a> {
    /// Epochs to train up to (default 1).
    pub epochs: usize,
    /// Samples per step (default 32).
    pub batch_size: usize,
    /// Shuffle the training samples every epoch (default true; the order depends only on the seed and epoch).
    pub shuffle: bool,
    /// Validation data.
    pub validation: Validation<'a>,
    /// Output.
    pub verbose: Verbose,
    /// Epoch to start from (0-based, Keras' `initial_epoch`).
    pub initial_epoch: usize,
    /// Save a checkpoint (weights + optimizer state) in this directory after every epoch.
    pub checkpoint: Option<PathBuf>,
    /// Resume from the checkpoint in this directory: restores weights and optimizer state and continues with
    /// the epoch after the last one saved.
    pub resume_from: Option<PathBuf>,
}

impl Default for FitOptions<'_> {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            validation: Validation::None,
            verbose: Verbose::ProgressBar,
            initial_epoch: 0,
            checkpoint: None,
            resume_from: None,
        }
    }
}

impl<'a> FitOptions<'a> {
    /// Sets `epochs`.
    pub fn epochs(mut self, n: usize) -> Self {
        self.epochs = n;
        self
    }
    /// Sets `batch_size`.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }
    /// Sets `shuffle`.
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }
    /// Sets the validation data.
    pub fn validation(mut self, v: Validation<'a>) -> Self {
        self.validation = v;
        self
    }
    /// Sets `verbose`.
    pub fn verbose(mut self, v: Verbose) -> Self {
        self.verbose = v;
        self
    }
    /// Saves a checkpoint after every epoch.
    pub fn checkpoint(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint = Some(dir.into());
        self
    }
    /// Resumes from a checkpoint.
    pub fn resume_from(mut self, dir: impl Into<PathBuf>) -> Self {
        self.resume_from = Some(dir.into());
        self
    }
}

/// The convolution algorithms of one layer ([`Model::conv_algorithms`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvChoice {
    /// Layer name.
    pub layer: String,
    /// Forward pass.
    pub forward: ConvAlgo,
    /// Backward-data pass (`None` for a first layer, whose input gradient is never computed).
    pub backward_data: Option<ConvAlgo>,
    /// Backward-filter pass.
    pub backward_filter: ConvAlgo,
}

/// Wall time of one layer in a profiled training step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerTime {
    /// Layer name.
    pub name: String,
    /// Forward time.
    pub forward: Duration,
    /// Backward time.
    pub backward: Duration,
}

/// A per-layer breakdown of one training step ([`Model::profile_step`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepProfile {
    /// Per layer, in model order.
    pub layers: Vec<LayerTime>,
    /// The loss' forward and backward.
    pub loss: Duration,
    /// The optimizer update.
    pub optimizer: Duration,
    /// The whole step.
    pub total: Duration,
}

/// A Keras-like model (see the [crate docs](crate)).
pub struct Model {
    pub(crate) name: String,
    pub(crate) functional: bool,
    pub(crate) input_name: String,
    pub(crate) input_shape: Vec<usize>,
    pub(crate) layers: Vec<Slot>,
    pub(crate) tape: Tape,
    pub(crate) seed: u64,
    pub(crate) compiled: Option<Compiled>,
    pub(crate) state: OptimizerState,
    pub(crate) epochs_done: usize,
    pub(crate) metadata: std::collections::BTreeMap<String, String>,
    threads: Option<usize>,
    threads_set: bool,
    data_parallel: bool,
    pub(crate) replica: Option<Box<Tape>>,
    pool: Option<Arc<rayon::ThreadPool>>,
    /// fit's batch buffers, kept between calls: (current x, current y, next x, next y).
    batch_bufs: [Vec<f32>; 4],
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("input_shape", &self.input_shape)
            .field("layers", &self.layers().iter().map(|l| l.0).collect::<Vec<_>>())
            .field("compiled", &self.compiled)
            .finish_non_exhaustive()
    }
}

/// A sequential model under construction (Keras `Sequential([Input(shape), layer, …])`).
pub struct Sequential {
    input_shape: Vec<usize>,
    layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    /// A model whose samples have `input_shape` (no batch axis).
    pub fn new(input_shape: &[usize]) -> Self {
        Sequential { input_shape: input_shape.to_vec(), layers: Vec::new() }
    }

    /// Appends a layer (Keras `model.add(layer)`).
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Layer + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Builds the model (checks every layer's input shape, creates and initialises the weights).
    pub fn build(self) -> Result<Model> {
        Model::assemble("sequential", false, "input_layer", self.input_shape, self.layers)
    }
}

fn mix(seed: u64, epoch: usize, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a forward/backward pass needs from a model, borrowed apart from its tapes.
struct Net<'a> {
    layers: &'a [Slot],
    input_shape: &'a [usize],
    output_shape: &'a [usize],
    compiled: Option<Compiled>,
}

impl Net<'_> {
    /// Records the forward pass of a batch on `tape`; returns the output variable. `times` receives each layer's
    /// forward time and the range of backward records it made.
    fn forward(
        &self,
        tape: &mut Tape,
        x: &[f32],
        batch: usize,
        mut times: Option<&mut Vec<(Duration, usize, usize)>>,
    ) -> Result<Var> {
        let mut d = [0usize; MAX_RANK];
        d[0] = batch;
        d[1..=self.input_shape.len()].copy_from_slice(self.input_shape);
        let mut v = tape.input(&d[..=self.input_shape.len()], x)?;
        for slot in self.layers {
            let (t0, r0) = (Instant::now(), tape.record_count());
            v = slot.layer.forward(tape, v)?;
            if let Some(t) = times.as_deref_mut() {
                t.push((t0.elapsed(), r0, tape.record_count()));
            }
        }
        Ok(v)
    }

    /// Samples of a batch whose prediction (arg-max) is the target class.
    fn correct(&self, tape: &Tape, out: Var, y: &[f32]) -> Result<usize> {
        let Some(c) = self.compiled.filter(|c| c.accuracy) else { return Ok(0) };
        let p = tape.value(out)?;
        let classes = self.output_shape.last().copied().unwrap_or(1).max(1);
        let sparse = c.loss == Loss::SparseCategoricalCrossentropy;
        let mut n = 0;
        for (r, row) in p.chunks_exact(classes).enumerate() {
            let target = if sparse { y[r] as usize } else { argmax(&y[r * classes..(r + 1) * classes]) };
            n += usize::from(argmax(row) == target);
        }
        Ok(n)
    }
}

/// Records the loss of `out` against targets `y` of dimensions `dims`.
fn loss_on(tape: &mut Tape, c: Compiled, out: Var, dims: &[usize], y: &[f32]) -> Result<Var> {
    let t = tape.input(dims, y)?;
    Ok(match c.loss {
        Loss::CategoricalCrossentropy => tape.categorical_crossentropy(out, t)?,
        Loss::SparseCategoricalCrossentropy => tape.sparse_categorical_crossentropy(out, t)?,
        Loss::MeanSquaredError => tape.mse(out, t)?,
    })
}

fn slice(d: &dyn Data, start: usize, len: usize) -> Slice<'_> {
    Slice { inner: d, start, len, scratch_dims: d.sample_dims().to_vec() }
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

impl Model {
    /// Keras `Model(inputs, outputs)`: the layers that lead from `inputs` to `outputs`.
    pub fn new(inputs: &SymbolicTensor, outputs: &SymbolicTensor) -> Result<Model> {
        let mut layers = Vec::new();
        let mut node = outputs.clone();
        loop {
            let Some(parent) = node.0.parent.clone() else { break };
            if let Some(l) = &node.0.layer {
                layers.push(l.box_clone());
            }
            node = parent;
        }
        if !Arc::ptr_eq(&node.0, &inputs.0) {
            return Err(NnError::config("model", "the outputs were not computed from these inputs"));
        }
        layers.reverse();
        let input_name = node.0.input_name.clone().unwrap_or_else(|| "input_layer".into());
        Model::assemble("functional", true, &input_name, node.0.shape.clone(), layers)
    }

    pub(crate) fn assemble(
        name: &str,
        functional: bool,
        input_name: &str,
        input_shape: Vec<usize>,
        layers: Vec<Box<dyn Layer>>,
    ) -> Result<Model> {
        if input_shape.len() + 1 > MAX_RANK {
            return Err(NnError::config("model", format!("inputs of rank {} are not supported", input_shape.len())));
        }
        let mut tape = Tape::new();
        let mut used: HashMap<String, usize> = HashMap::new();
        used.insert(input_name.to_owned(), 1);
        let mut slots = Vec::new();
        let mut shape = input_shape.clone();
        for mut layer in layers {
            let name = match layer.name() {
                Some(n) => n.to_owned(),
                None => {
                    let base = default_base_name(layer.class_name());
                    let mut k = 0;
                    loop {
                        let candidate = if k == 0 { base.clone() } else { format!("{base}_{k}") };
                        if !used.contains_key(&candidate) {
                            break candidate;
                        }
                        k += 1;
                    }
                }
            };
            if used.insert(name.clone(), 1).is_some() {
                return Err(NnError::config(&name, "two layers have this name"));
            }
            layer.set_name(name.clone());
            let out = layer.output_shape(&shape)?;
            if out.len() + 1 > MAX_RANK {
                return Err(NnError::config(&name, "output rank too large"));
            }
            layer.build(&name, &shape, &mut tape)?;
            slots.push(Slot { name, layer, output_shape: out.clone() });
            shape = out;
        }
        let mut model = Model {
            name: name.to_owned(),
            functional,
            input_name: input_name.to_owned(),
            input_shape,
            layers: slots,
            tape,
            seed: DEFAULT_SEED,
            compiled: None,
            state: OptimizerState::default(),
            epochs_done: 0,
            metadata: Default::default(),
            threads: None,
            threads_set: false,
            data_parallel: false,
            replica: None,
            pool: None,
            batch_bufs: Default::default(),
        };
        model.initialize()?;
        Ok(model)
    }

    fn initialize(&mut self) -> Result<()> {
        self.replica = None;
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed, 0, 1));
        for slot in &self.layers {
            slot.layer.initialize(&mut self.tape, &mut rng)?;
        }
        if let Some(c) = self.compiled {
            self.state = OptimizerState::new(c.optimizer, &self.tape)?;
        }
        self.epochs_done = 0;
        Ok(())
    }

    /// Re-initialises every weight (and the optimizer state) from `seed`, which also drives shuffling and
    /// dropout in `fit`. The same seed gives bitwise the same training on any thread count.
    pub fn set_seed(&mut self, seed: u64) -> Result<()> {
        self.seed = seed;
        self.initialize()
    }

    /// The seed in use.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The model's name (`functional` or `sequential` by default).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The convolution algorithm `ConvAlgo::Auto` runs for every convolution layer and pass when training at
    /// `batch_size` (per replica when data-parallel).
    pub fn conv_algorithms(&self, batch_size: usize) -> Result<Vec<ConvChoice>> {
        let batch = if self.data_parallel { batch_size.div_ceil(2) } else { batch_size };
        let algo = self.tape.state().conv_options().algo;
        let mut shape = self.input_shape.as_slice();
        let mut out = Vec::new();
        for (i, slot) in self.layers.iter().enumerate() {
            if let Some(g) = slot.layer.conv_geometry(shape, batch) {
                let data = if i == 0 { None } else { Some(algo.resolve(&g, ConvPass::BackwardData)?) };
                out.push(ConvChoice {
                    layer: slot.name.clone(),
                    forward: algo.resolve(&g, ConvPass::Forward)?,
                    backward_data: data,
                    backward_filter: algo.resolve(&g, ConvPass::BackwardFilter)?,
                });
            }
            shape = &slot.output_shape;
        }
        Ok(out)
    }

    /// Free-form string metadata saved with the model in `model.json` (e.g. how inputs were preprocessed).
    pub fn metadata(&self) -> &std::collections::BTreeMap<String, String> {
        &self.metadata
    }

    /// Sets a metadata entry (see [`Model::metadata`]).
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.insert(key.into(), value.into());
    }

    /// Per-sample input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        self.layers.last().map_or(&self.input_shape, |s| &s.output_shape)
    }

    /// `(name, class name, per-sample output shape)` of every layer.
    pub fn layers(&self) -> Vec<(&str, &'static str, &[usize])> {
        self.layers.iter().map(|s| (s.name.as_str(), s.layer.class_name(), s.output_shape.as_slice())).collect()
    }

    /// Number of scalars in all weights.
    pub fn count_params(&self) -> usize {
        (0..self.tape.num_params())
            .filter_map(|i| self.tape.param_dims(ParamId::from_index(i)).ok())
            .map(|d| d.numel())
            .sum()
    }

    /// Every weight as `(name, tensor)` in Keras layout (`conv2d/kernel` HWIO, `dense/kernel` (in, out), …).
    pub fn weights(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for i in 0..self.tape.num_params() {
            let id = ParamId::from_index(i);
            let dims = self.tape.param_dims(id)?;
            out.push((
                self.tape.param_name(id)?.to_owned(),
                Tensor::from_slice(dims.as_slice(), self.tape.param_value(id)?)?,
            ));
        }
        Ok(out)
    }

    /// Overwrites the weight named `name` (same shape required).
    pub fn set_weight(&mut self, name: &str, value: &Tensor) -> Result<()> {
        for i in 0..self.tape.num_params() {
            let id = ParamId::from_index(i);
            if self.tape.param_name(id)? == name {
                let dims = self.tape.param_dims(id)?;
                if dims.as_slice() != value.dims() {
                    return Err(NnError::Data {
                        what: "weight",
                        expected: format!("{name} of shape {dims}"),
                        got: value.shape().to_string(),
                    });
                }
                self.tape.set_param_value(id, value.as_slice())?;
                self.replica = None;
                return Ok(());
            }
        }
        Err(NnError::config("model", format!("no weight named `{name}`")))
    }

    /// Keras `compile(loss=…, optimizer=…, metrics=[…])`: the loss by name, an optimizer, metric names.
    pub fn compile(&mut self, loss: &str, optimizer: Optimizer, metrics: &[&str]) -> Result<()> {
        let loss = Loss::from_name(loss)?;
        let mut accuracy = false;
        for m in metrics {
            accuracy |= Metric::from_name(m)? == Metric::Accuracy;
        }
        self.compile_with(Compiled { loss, optimizer, accuracy })
    }

    /// `compile` with typed arguments.
    pub fn compile_with(&mut self, c: Compiled) -> Result<()> {
        if matches!(c.loss, Loss::CategoricalCrossentropy | Loss::SparseCategoricalCrossentropy)
            && self.output_shape().len() != 1
        {
            return Err(NnError::config(
                "compile",
                "cross-entropy losses need a model with a vector output per sample",
            ));
        }
        self.state = OptimizerState::new(c.optimizer, &self.tape)?;
        self.compiled = Some(c);
        Ok(())
    }

    /// The compile settings, if compiled.
    pub fn compiled(&self) -> Option<Compiled> {
        self.compiled
    }

    /// Optimizer steps taken so far (Keras `optimizer.iterations`).
    pub fn iterations(&self) -> u64 {
        self.state.iterations
    }

    /// Epochs completed by `fit` so far (restored by resuming from a checkpoint).
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// Threads for training and inference: `Some(n)` runs every computation on a dedicated pool of `n` rayon
    /// threads (the default is one per core), `None` on the calling thread alone with single-threaded kernels.
    /// Either way the results are bitwise identical, and subnormal floats are flushed to zero on the threads
    /// that compute (as TensorFlow does; see [`kiln_kernels::float_env`]).
    pub fn set_threads(&mut self, n: Option<usize>) -> Result<()> {
        self.pool = None;
        self.threads = n.map(|n| n.max(1));
        self.threads_set = true;
        Ok(())
    }

    /// The thread count in use (`None`: the calling thread only).
    pub fn threads(&self) -> Option<usize> {
        if self.threads_set { self.threads } else { Some(rayon::current_num_threads()) }
    }

    /// Uses the kernels of `isa` (e.g. to compare AVX-512 with AVX2 or the portable path); an error if this CPU
    /// lacks it.
    pub fn set_isa(&mut self, isa: Isa) -> Result<()> {
        let k = Kernels::for_isa(isa).ok_or_else(|| NnError::config("model", format!("this CPU cannot run {isa}")))?;
        self.tape.set_kernels(k);
        self.replica = None;
        Ok(())
    }

    /// The kernel table in use.
    pub fn kernels(&self) -> &'static Kernels {
        self.tape.kernels()
    }

    /// The model's tape (advanced use: conv options, threading of the kernels, profiling).
    pub fn tape_mut(&mut self) -> &mut Tape {
        self.replica = None;
        &mut self.tape
    }

    fn in_pool<R: Send>(&mut self, f: impl FnOnce(&mut Model) -> Result<R> + Send) -> Result<R> {
        let Some(n) = self.threads() else {
            let _flush = FlushDenormals::new();
            self.tape.set_threads(Threads::Single);
            return f(self);
        };
        if self.pool.as_ref().is_some_and(|p| p.current_thread_index().is_some()) {
            // Already on one of our workers (a nested call such as validation inside `fit`).
            return f(self);
        }
        let pool = match &self.pool {
            Some(p) => p.clone(),
            None => {
                let p = Arc::new(
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(n)
                        .thread_name(|i| format!("kiln-{i}"))
                        .start_handler(|_| {
                            set_flush_denormals(true);
                        })
                        .build()
                        .map_err(|e| NnError::Threads { threads: n, message: e.to_string() })?,
                );
                self.pool = Some(p.clone());
                p
            }
        };
        self.tape.set_threads(Threads::Rayon);
        pool.install(|| f(self))
    }

    // ---- one batch ---------------------------------------------------------------------------------------------

    fn batch_len(&self, what: &'static str, len: usize, per: usize, dims: &[usize]) -> Result<usize> {
        if per == 0 || !len.is_multiple_of(per) {
            return Err(NnError::Data {
                what,
                expected: format!("a whole number of samples of shape {dims:?}"),
                got: format!("{len} values"),
            });
        }
        Ok(len / per)
    }

    fn target_dims(&self, batch: usize) -> ([usize; MAX_RANK], usize) {
        let mut d = [0usize; MAX_RANK];
        d[0] = batch;
        match self.compiled.map(|c| c.loss) {
            Some(Loss::SparseCategoricalCrossentropy) => (d, 1),
            _ => {
                let out = self.output_shape();
                d[1..=out.len()].copy_from_slice(out);
                (d, out.len() + 1)
            }
        }
    }

    fn target_sample_len(&self) -> usize {
        match self.compiled.map(|c| c.loss) {
            Some(Loss::SparseCategoricalCrossentropy) => 1,
            _ => self.output_shape().iter().product(),
        }
    }

    fn net(&self) -> Net<'_> {
        Net {
            layers: &self.layers,
            input_shape: &self.input_shape,
            output_shape: self.output_shape(),
            compiled: self.compiled,
        }
    }

    /// Records the forward pass of a batch on the model's tape; returns the output variable.
    fn forward(&mut self, x: &[f32], batch: usize, times: Option<&mut Vec<(Duration, usize, usize)>>) -> Result<Var> {
        let net = Net { layers: &self.layers, input_shape: &self.input_shape, output_shape: &[], compiled: None };
        net.forward(&mut self.tape, x, batch, times)
    }

    fn loss(&mut self, out: Var, y: &[f32], batch: usize) -> Result<Var> {
        let c = self.compiled.ok_or(NnError::NotCompiled("computing a loss"))?;
        let (d, rank) = self.target_dims(batch);
        loss_on(&mut self.tape, c, out, &d[..rank], y)
    }

    fn correct(&self, out: Var, y: &[f32]) -> Result<usize> {
        self.net().correct(&self.tape, out, y)
    }

    /// Whether each training batch is split in two halves computed on two tape replicas (possibly in parallel)
    /// whose gradients are averaged (see [`Model::set_data_parallel`]).
    pub fn data_parallel(&self) -> bool {
        self.data_parallel
    }

    /// Splits every training batch into two halves, each run forward and backward on its own replica of the
    /// model (in parallel when the model has ≥ 2 threads), then averages the two gradients
    /// (`(n₀·g₀ + n₁·g₁)/n`, fixed order) before one optimizer step. The result is the same mean-loss gradient
    /// up to rounding, and bitwise identical for any thread count (the split does not depend on it); off by
    /// default, so that a step sums exactly like Keras.
    pub fn set_data_parallel(&mut self, on: bool) {
        self.data_parallel = on;
        if !on {
            self.replica = None;
        }
    }

    /// The two-replica step: returns (loss, correct) for the whole batch, or a non-finite loss (no update).
    /// `prefetch` (gathering the next batch) runs on the calling thread after its half, while the other half
    /// finishes.
    fn step_data_parallel(
        &mut self,
        x: &[f32],
        y: &[f32],
        batch: usize,
        prefetch: Option<&mut (dyn FnMut() + Send)>,
    ) -> Result<BatchStats> {
        let c = self.compiled.ok_or(NnError::NotCompiled("training"))?;
        if self.replica.is_none() {
            self.replica = Some(Box::new(self.tape.fork()));
        }
        let n0 = batch.div_ceil(2);
        let n1 = batch - n0;
        let (xl, yl) = (x.len() / batch, y.len() / batch);
        let parallel = self.threads().is_some_and(|t| t > 1) && rayon::current_num_threads() > 1;
        let (d0, r0) = self.target_dims(n0);
        let (d1, r1) = self.target_dims(n1);
        let net = Net {
            layers: &self.layers,
            input_shape: &self.input_shape,
            output_shape: self.layers.last().map_or(&self.input_shape, |s| &s.output_shape),
            compiled: self.compiled,
        };
        let tape0 = &mut self.tape;
        let tape1 = self.replica.as_deref_mut().ok_or_else(|| NnError::config("model", "replica missing"))?;
        let threads = if parallel { Threads::Single } else { tape0.threads() };
        tape0.set_threads(threads);
        tape1.set_threads(threads);
        let half = |tape: &mut Tape, x: &[f32], y: &[f32], n: usize, d: &[usize]| -> Result<(f32, usize)> {
            tape.reset();
            tape.set_training(true);
            tape.set_grad_enabled(true);
            let out = net.forward(tape, x, n, None)?;
            let l = loss_on(tape, c, out, d, y)?;
            let loss = tape.value(l)?[0];
            let correct = net.correct(tape, out, y)?;
            if loss.is_finite() {
                tape.backward(l)?;
            }
            Ok((loss, correct))
        };
        let (a, b) = (x.split_at(n0 * xl), y.split_at(n0 * yl));
        let (h0, h1) = if parallel {
            crate::parallel::join_balanced(
                || {
                    let r = half(tape0, a.0, b.0, n0, &d0[..r0]);
                    if let Some(f) = prefetch {
                        f();
                    }
                    r
                },
                || half(tape1, a.1, b.1, n1, &d1[..r1]),
            )
        } else {
            let h = (half(tape0, a.0, b.0, n0, &d0[..r0]), half(tape1, a.1, b.1, n1, &d1[..r1]));
            if let Some(f) = prefetch {
                f();
            }
            h
        };
        let ((l0, c0), (l1, c1)) = (h0?, h1?);
        let (w0, w1) = (n0 as f32 / batch as f32, n1 as f32 / batch as f32);
        let loss = w0 * l0 + w1 * l1;
        let stats = BatchStats { loss, correct: c0 + c1, samples: batch };
        if !loss.is_finite() {
            return Ok(stats);
        }
        self.state.step_replicas(c.optimizer, tape0, tape1, (w0, w1), parallel)?;
        Ok(stats)
    }

    /// One training step; `prefetch` (fit gathering its next batch) runs once during it, overlapped with the
    /// second data-parallel half when there is one.
    fn step(
        &mut self,
        x: &[f32],
        y: &[f32],
        profile: Option<&mut StepProfile>,
        prefetch: Option<&mut (dyn FnMut() + Send)>,
    ) -> Result<BatchStats> {
        let c = self.compiled.ok_or(NnError::NotCompiled("training"))?;
        let t_start = Instant::now();
        let batch = self.batch_len("x", x.len(), self.input_shape.iter().product(), &self.input_shape)?;
        let yb = self.batch_len("y", y.len(), self.target_sample_len(), self.output_shape())?;
        if yb != batch {
            return Err(NnError::Data {
                what: "y",
                expected: format!("{batch} samples"),
                got: format!("{yb} samples"),
            });
        }
        if self.data_parallel && profile.is_none() && batch >= 2 {
            return self.step_data_parallel(x, y, batch, prefetch);
        }
        if let Some(f) = prefetch {
            f();
        }
        self.tape.reset();
        self.tape.set_training(true);
        self.tape.set_grad_enabled(true);
        let mut times = profile.as_ref().map(|_| Vec::with_capacity(self.layers.len()));
        let out = self.forward(x, batch, times.as_mut())?;
        let t_loss = Instant::now();
        let loss_var = self.loss(out, y, batch)?;
        let loss = self.tape.value(loss_var)?[0];
        let correct = self.correct(out, y)?;
        let stats = BatchStats { loss, correct, samples: batch };
        if !loss.is_finite() {
            return Ok(stats);
        }
        self.tape.backward(loss_var)?;
        let t_opt = Instant::now();
        self.state.step(c.optimizer, &mut self.tape)?;
        if let (Some(p), Some(times)) = (profile, times) {
            let bt = self.tape.backward_times();
            let sum = |a: usize, b: usize| bt.get(a..b).map_or(Duration::ZERO, |s| s.iter().sum());
            p.layers = self
                .layers
                .iter()
                .zip(&times)
                .map(|(s, &(f, a, b))| LayerTime { name: s.name.clone(), forward: f, backward: sum(a, b) })
                .collect();
            let layers_backward: Duration = p.layers.iter().map(|l| l.backward).sum();
            p.loss = t_opt.duration_since(t_loss).saturating_sub(layers_backward);
            p.optimizer = t_opt.elapsed();
            p.total = t_start.elapsed();
        }
        Ok(stats)
    }

    /// One training step on a batch (Keras `train_on_batch`): forward, loss, backward, optimizer update.
    /// `x` holds whole samples of the input shape, `y` the matching targets. A non-finite loss leaves the
    /// weights untouched and is an error.
    pub fn train_on_batch(&mut self, x: &[f32], y: &[f32]) -> Result<BatchStats> {
        let s = self.in_pool(|m| m.step(x, y, None, None))?;
        if !s.loss.is_finite() {
            return Err(NnError::NonFiniteLoss {
                epoch: self.epochs_done + 1,
                step: self.state.iterations as usize + 1,
                value: s.loss,
            });
        }
        Ok(s)
    }

    /// One training step with wall-time measurements per layer (forward and backward), loss and optimizer.
    pub fn profile_step(&mut self, x: &[f32], y: &[f32]) -> Result<StepProfile> {
        let mut p =
            StepProfile { layers: Vec::new(), loss: Duration::ZERO, optimizer: Duration::ZERO, total: Duration::ZERO };
        self.tape.set_profiling(true);
        let res = self.in_pool(|m| m.step(x, y, Some(&mut p), None));
        self.tape.set_profiling(false);
        let s = res?;
        if !s.loss.is_finite() {
            return Err(NnError::NonFiniteLoss {
                epoch: self.epochs_done + 1,
                step: self.state.iterations as usize + 1,
                value: s.loss,
            });
        }
        Ok(p)
    }

    /// Inference on one batch into `out` (`batch × output size`), with nothing recorded for differentiation.
    pub fn predict_on_batch(&mut self, x: &[f32], out: &mut [f32]) -> Result<()> {
        self.in_pool(|m| m.predict_batch(x, out))
    }

    fn predict_batch(&mut self, x: &[f32], out: &mut [f32]) -> Result<()> {
        let batch = self.batch_len("x", x.len(), self.input_shape.iter().product(), &self.input_shape)?;
        let per: usize = self.output_shape().iter().product();
        if out.len() != batch * per {
            return Err(NnError::Data {
                what: "predictions",
                expected: format!("{} values", batch * per),
                got: format!("{}", out.len()),
            });
        }
        self.tape.reset();
        self.tape.set_training(false);
        self.tape.set_grad_enabled(false);
        let res = self.forward(x, batch, None).and_then(|v| {
            out.copy_from_slice(self.tape.value(v)?);
            Ok(())
        });
        self.tape.set_grad_enabled(true);
        self.tape.set_training(true);
        res
    }

    // ---- whole datasets ----------------------------------------------------------------------------------------

    fn check_x(&self, x: &dyn Data) -> Result<()> {
        if x.sample_dims() != self.input_shape.as_slice() {
            return Err(NnError::Data {
                what: "x",
                expected: format!("samples of shape {:?}", self.input_shape),
                got: format!("{:?}", x.sample_dims()),
            });
        }
        Ok(())
    }

    fn check_y(&self, x: &dyn Data, y: &dyn Data) -> Result<()> {
        if y.len() != x.len() {
            return Err(NnError::Data {
                what: "y",
                expected: format!("{} samples (as many as x)", x.len()),
                got: y.len().to_string(),
            });
        }
        if y.sample_len() != self.target_sample_len() {
            return Err(NnError::Data {
                what: "y",
                expected: format!(
                    "{} values per sample for {}",
                    self.target_sample_len(),
                    self.compiled.map_or("the loss", |c| c.loss.name())
                ),
                got: format!("{:?}", y.sample_dims()),
            });
        }
        Ok(())
    }

    /// Keras `predict`: the outputs for every sample of `x`, in batches, nothing recorded.
    pub fn predict(&mut self, x: &dyn Data, batch_size: usize) -> Result<Tensor> {
        self.check_x(x)?;
        let bs = batch_size.max(1);
        let per: usize = self.output_shape().iter().product();
        let mut dims = vec![x.len()];
        dims.extend_from_slice(self.output_shape());
        let mut out = Tensor::zeros(&dims)?;
        let mut xbuf = vec![0.0; bs * x.sample_len()];
        let indices: Vec<usize> = (0..x.len()).collect();
        let o = out.as_mut_slice();
        self.in_pool(|m| {
            for (k, chunk) in indices.chunks(bs).enumerate() {
                let xb = &mut xbuf[..chunk.len() * x.sample_len()];
                x.gather(chunk, xb);
                m.predict_batch(xb, &mut o[k * bs * per..(k * bs + chunk.len()) * per])?;
            }
            Ok::<(), NnError>(())
        })?;
        Ok(out)
    }

    /// Keras `evaluate`: mean loss (and accuracy) over all samples, in batches, nothing recorded.
    pub fn evaluate(&mut self, x: &dyn Data, y: &dyn Data, batch_size: usize) -> Result<Evaluation> {
        self.check_x(x)?;
        self.check_y(x, y)?;
        let c = self.compiled.ok_or(NnError::NotCompiled("evaluate"))?;
        let bs = batch_size.max(1);
        let indices: Vec<usize> = (0..x.len()).collect();
        self.in_pool(|m| {
            let (mut xbuf, mut ybuf) = (vec![0.0; bs * x.sample_len()], vec![0.0; bs * y.sample_len()]);
            let (mut loss, mut correct) = (0.0f64, 0usize);
            m.tape.set_training(false);
            m.tape.set_grad_enabled(false);
            let res = (|| {
                for chunk in indices.chunks(bs) {
                    let (xb, yb) =
                        (&mut xbuf[..chunk.len() * x.sample_len()], &mut ybuf[..chunk.len() * y.sample_len()]);
                    x.gather(chunk, xb);
                    y.gather(chunk, yb);
                    m.tape.reset();
                    let out = m.forward(xb, chunk.len(), None)?;
                    let l = m.loss(out, yb, chunk.len())?;
                    loss += f64::from(m.tape.value(l)?[0]) * chunk.len() as f64;
                    correct += m.correct(out, yb)?;
                }
                Ok::<(), NnError>(())
            })();
            m.tape.set_grad_enabled(true);
            m.tape.set_training(true);
            res?;
            let n = x.len().max(1) as f64;
            Ok(Evaluation { loss: (loss / n) as f32, accuracy: c.accuracy.then_some((correct as f64 / n) as f32) })
        })
    }

    /// Keras `fit`: trains for `opts.epochs` epochs and returns the [`History`]. A non-finite loss stops
    /// training with [`NnError::NonFiniteLoss`] naming the epoch and step (the weights keep their last finite
    /// values).
    pub fn fit(&mut self, x: &dyn Data, y: &dyn Data, opts: &FitOptions<'_>) -> Result<History> {
        let c = self.compiled.ok_or(NnError::NotCompiled("fit"))?;
        self.check_x(x)?;
        self.check_y(x, y)?;
        if opts.batch_size == 0 {
            return Err(NnError::config("fit", "batch_size must be ≥ 1"));
        }
        let n = x.len();
        let (train_x, train_y, val_x, val_y): (Slice<'_>, Slice<'_>, Option<Slice<'_>>, Option<Slice<'_>>);
        let split_at = match opts.validation {
            Validation::Split(f) => {
                if !(0.0..1.0).contains(&f) {
                    return Err(NnError::config("fit", format!("validation_split {f} must be in [0, 1)")));
                }
                ((n as f64) * (1.0 - f64::from(f))).ceil() as usize
            }
            _ => n,
        };
        train_x = slice(x, 0, split_at);
        train_y = slice(y, 0, split_at);
        match opts.validation {
            Validation::Split(_) if split_at < n => {
                val_x = Some(slice(x, split_at, n - split_at));
                val_y = Some(slice(y, split_at, n - split_at));
            }
            Validation::Data(vx, vy) => {
                self.check_x(vx)?;
                self.check_y(vx, vy)?;
                val_x = Some(slice(vx, 0, vx.len()));
                val_y = Some(slice(vy, 0, vy.len()));
            }
            _ => {
                val_x = None;
                val_y = None;
            }
        }
        if train_x.len == 0 {
            return Err(NnError::Data { what: "x", expected: "at least one training sample".into(), got: "0".into() });
        }
        let mut start = opts.initial_epoch;
        if let Some(dir) = &opts.resume_from {
            self.load_checkpoint(dir)?;
            start = self.epochs_done;
        }
        let mut history = History::default();
        let bs = opts.batch_size;
        let (xl, yl) = (x.sample_len(), y.sample_len());
        let [mut xbuf, mut ybuf, mut xnext, mut ynext] = std::mem::take(&mut self.batch_bufs);
        for (b, len) in [(&mut xbuf, xl), (&mut ybuf, yl), (&mut xnext, xl), (&mut ynext, yl)] {
            b.resize(bs * len, 0.0);
        }
        let res = self.in_pool(|m| {
            for epoch in start..opts.epochs {
                let t0 = Instant::now();
                let mut order: Vec<usize> = (0..train_x.len).collect();
                if opts.shuffle {
                    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(m.seed, epoch, 2)));
                }
                m.tape.seed(mix(m.seed, epoch, 3));
                let steps = train_x.len.div_ceil(bs);
                let mut bar = EpochProgress::start(opts.verbose, epoch + 1, opts.epochs, steps);
                let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
                // Batch k + 1 is gathered during step k (into the other buffer pair), off the critical path.
                let chunk_at = |k: usize| &order[(k * bs).min(order.len())..((k + 1) * bs).min(order.len())];
                let first = chunk_at(0);
                train_x.gather(first, &mut xbuf[..first.len() * xl]);
                train_y.gather(first, &mut ybuf[..first.len() * yl]);
                for k in 0..steps {
                    let (chunk, next) = (chunk_at(k), chunk_at(k + 1));
                    let (xb, yb) = (&xbuf[..chunk.len() * xl], &ybuf[..chunk.len() * yl]);
                    let (xn, yn) = (&mut xnext[..next.len() * xl], &mut ynext[..next.len() * yl]);
                    let mut prefetch = || {
                        train_x.gather(next, xn);
                        train_y.gather(next, yn);
                    };
                    let s = m.step(xb, yb, None, Some(&mut prefetch))?;
                    std::mem::swap(&mut xbuf, &mut xnext);
                    std::mem::swap(&mut ybuf, &mut ynext);
                    if !s.loss.is_finite() {
                        return Err(NnError::NonFiniteLoss { epoch: epoch + 1, step: k + 1, value: s.loss });
                    }
                    loss_sum += f64::from(s.loss) * s.samples as f64;
                    correct += s.correct;
                    seen += s.samples;
                    bar.step(k + 1, (loss_sum / seen as f64) as f32, c.accuracy.then(|| correct as f32 / seen as f32));
                }
                let train_seconds = t0.elapsed().as_secs_f64();
                let (loss, acc) =
                    ((loss_sum / seen as f64) as f32, c.accuracy.then(|| (correct as f64 / seen as f64) as f32));
                let val = match (&val_x, &val_y) {
                    (Some(vx), Some(vy)) => Some(m.evaluate(vx, vy, bs)?),
                    _ => None,
                };
                m.epochs_done = epoch + 1;
                if let Some(dir) = &opts.checkpoint {
                    m.save_checkpoint(dir)?;
                }
                bar.finish(loss, acc, val.map(|v| (v.loss, v.accuracy)));
                history.epochs.push(EpochLog {
                    epoch: epoch + 1,
                    loss,
                    accuracy: acc,
                    val_loss: val.map(|v| v.loss),
                    val_accuracy: val.and_then(|v| v.accuracy),
                    train_seconds,
                    seconds: t0.elapsed().as_secs_f64(),
                    samples_per_second: seen as f64 / train_seconds.max(1e-9),
                });
            }
            Ok(())
        });
        self.batch_bufs = [xbuf, ybuf, xnext, ynext];
        res.map(|()| history)
    }
}
