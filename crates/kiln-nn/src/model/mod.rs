//! [`Model`]: a graph of layers built functionally (`Input` → layer → layer, with merges joining branches) or a
//! chain built with [`Sequential`], compiled with a loss and an optimizer, trained with [`Model::fit`].
//!
//! The model owns one [`Params`] store (every weight and every piece of layer state, once) and one [`Tape`] per
//! data-parallel replica (activations and gradients only). This file builds models and answers questions about
//! them; `engine.rs` runs a training or inference step over the replicas, `fit.rs` runs whole datasets.

mod across;
mod engine;
mod fit;
mod lockstep;
mod options;
mod work;

pub use options::{
    BatchStats, Compiled, ConvChoice, EpochLog, Evaluation, FitOptions, History, LayerTime, StepProfile, Validation,
};
pub use work::{LayerFlops, StepBytes};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kiln_autograd::{MAX_RANK, Params, Tape};
use kiln_kernels::{ConvOptions, ConvPass, Isa, Kernels, Threads};
use kiln_tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{NnError, Result};
use crate::layer::Layer;
use crate::layers::default_base_name;
use crate::optim::{Loss, Metric, Optimizer, OptimizerState};
use crate::policy::DTypePolicy;
use crate::schedules::LearningRateSchedule;
use crate::symbolic::SymbolicTensor;

/// The seed used for weight initialisation and shuffling until [`Model::set_seed`] is called.
pub const DEFAULT_SEED: u64 = 0x6b69_6c6e;

/// A layer of the model and where its inputs come from. Slots are in Keras' order of `model.layers`, which is
/// an order in which every layer comes after the layers it reads, so a forward pass runs them in turn.
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) layer: Box<dyn Layer>,
    pub(crate) output_shape: Vec<usize>,
    /// The values this layer's call reads, in call order: 0 is the model's input, `k + 1` the output of slot `k`.
    pub(crate) inputs: Vec<usize>,
    /// A ReLU the layer before already applied ([`Layer::fuse_relu`]): the step passes its input on.
    pub(crate) fused: bool,
}

/// A layer to assemble and the values it reads (see [`Slot::inputs`]).
pub(crate) type Wiring = (Box<dyn Layer>, Vec<usize>);

/// A Keras-like model (see the [crate docs](crate)).
pub struct Model {
    pub(crate) name: String,
    pub(crate) functional: bool,
    pub(crate) input_name: String,
    pub(crate) input_shape: Vec<usize>,
    pub(crate) layers: Vec<Slot>,
    /// Every weight and every piece of layer state, once.
    pub(crate) params: Params,
    /// One tape per data-parallel replica, made on first use; the first also serves inference.
    pub(crate) tapes: Vec<Tape>,
    pub(crate) seed: u64,
    pub(crate) compiled: Option<Compiled>,
    pub(crate) state: OptimizerState,
    pub(crate) epochs_done: usize,
    pub(crate) metadata: BTreeMap<String, String>,
    kernels: &'static Kernels,
    conv: ConvOptions,
    threads: Option<usize>,
    threads_set: bool,
    /// Replicas a training batch is split over (1, or 2 when data-parallel; across ranks, all ranks' together).
    replicas: usize,
    /// The ranks this model trains with, when it trains across processes.
    collective: Option<Arc<dyn crate::distributed::Collective>>,
    /// The buffers of a step across ranks: this rank's replicas' results, and every rank's.
    exchange_bufs: [Vec<f32>; 2],
    /// Time spent in the steps' gradient exchanges since the epoch began, and the last step's bytes sent.
    pub(crate) exchanged: (std::time::Duration, usize),
    /// Across ranks: each rank's optimizer state is current only in its shard (see [`crate::distributed`]).
    pub(crate) slots_sharded: bool,
    /// Across ranks: a step leaves the optimizer state sharded (`fit` gathers it when needed) instead of
    /// gathering it at once.
    pub(crate) settle_later: bool,
    pool: Option<Arc<rayon::ThreadPool>>,
    /// The kernels' threading inside the current pool (set by `in_pool`).
    kernel_threads: Threads,
    /// fit's batch buffers, kept between calls: (current x, current y, next x, next y).
    batch_bufs: [Vec<f32>; 4],
    /// The learning rate as a function of the step, when set (it then overrides the optimizer's rate).
    pub(crate) schedule: Option<LearningRateSchedule>,
    /// Keras `model.stop_training`: set by a callback, read by `fit` after every batch and epoch.
    stop_training: bool,
    /// The epoch a callback restored a backup at, during `on_train_begin` (Keras' `model._initial_epoch`).
    pub(crate) restored_epoch: Option<usize>,
    /// The replicas' whole-batch sums of a lockstep step, reused.
    sums: Vec<f64>,
    /// Each replica's values of the forward pass, reused.
    values: Vec<engine::Values>,
    /// Keras' `class_weight` of the running `fit` (empty outside it or without one).
    pub(crate) class_weight: Vec<f32>,
    /// How the layers compute (Keras' dtype policy).
    dtype_policy: DTypePolicy,
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
        let layers = self.layers.into_iter().enumerate().map(|(k, l)| (l, vec![k])).collect();
        Model::assemble("sequential", false, "input_layer", self.input_shape, layers)
    }
}

/// Fuses each `Activation("relu")` into the layer before it when that layer can apply it
/// ([`Layer::fuse_relu`], BatchNormalization) and nothing else reads that layer's output: one pass over the
/// activations instead of two, forward and backward, with the same bits.
fn fuse_relus(slots: &mut [Slot]) {
    for k in 1..slots.len() {
        let readers = slots.iter().flat_map(|s| &s.inputs).filter(|&&v| v == k).count();
        if slots[k].layer.is_relu() && slots[k].inputs == [k] && readers == 1 && slots[k - 1].layer.fuse_relu() {
            slots[k].fused = true;
        }
    }
}

/// A seed for the random stream `stream` of `index` (an epoch, a step) under `seed` (SplitMix64 finaliser).
pub(crate) fn mix(seed: u64, index: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Random streams of [`mix`]: weight initialisation, shuffling, and per replica the dropout masks.
pub(crate) mod stream {
    pub(crate) const INIT: u64 = 1;
    pub(crate) const SHUFFLE: u64 = 2;
    /// Replica `r`'s masks use stream `REPLICA + r`.
    pub(crate) const REPLICA: u64 = 3;
}

impl Model {
    /// Keras `Model(inputs, outputs)`: the layers that lead from `inputs` to `outputs`, in Keras' order (see
    /// [`Model::layers`]). Layers that do not lead to `outputs` are left out; a layer reading a tensor that does
    /// not come from `inputs` is an error (Keras' "graph disconnected").
    pub fn new(inputs: &SymbolicTensor, outputs: &SymbolicTensor) -> Result<Model> {
        let graph = crate::graph::Graph::trace(inputs, outputs)?;
        let input_name = inputs.0.input_name.clone().unwrap_or_else(|| "input_layer".into());
        Model::assemble("functional", true, &input_name, inputs.0.shape.clone(), graph.wiring())
    }

    pub(crate) fn assemble(
        name: &str,
        functional: bool,
        input_name: &str,
        input_shape: Vec<usize>,
        layers: Vec<Wiring>,
    ) -> Result<Model> {
        if input_shape.len() + 1 > MAX_RANK {
            return Err(NnError::config("model", format!("inputs of rank {} are not supported", input_shape.len())));
        }
        let mut params = Params::new();
        let mut used: HashMap<String, usize> = HashMap::new();
        used.insert(input_name.to_owned(), 1);
        let mut slots: Vec<Slot> = Vec::new();
        for (mut layer, inputs) in layers {
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
            let shapes = inputs
                .iter()
                .map(|&i| match i {
                    0 => Ok(input_shape.as_slice()),
                    k => slots.get(k - 1).map(|s| s.output_shape.as_slice()).ok_or_else(|| {
                        NnError::config(&name, format!("reads value {k}, which no earlier layer makes"))
                    }),
                })
                .collect::<Result<Vec<_>>>()?;
            let out = layer.output_shape_of(&shapes)?;
            if out.len() + 1 > MAX_RANK {
                return Err(NnError::config(&name, "output rank too large"));
            }
            let first = shapes.first().ok_or_else(|| NnError::config(&name, "a layer needs an input"))?.to_vec();
            layer.build(&name, &first, &mut params)?;
            slots.push(Slot { name, layer, output_shape: out, inputs, fused: false });
        }
        fuse_relus(&mut slots);
        let mut model = Model {
            name: name.to_owned(),
            functional,
            input_name: input_name.to_owned(),
            input_shape,
            layers: slots,
            params,
            tapes: Vec::new(),
            seed: DEFAULT_SEED,
            compiled: None,
            state: OptimizerState::default(),
            epochs_done: 0,
            metadata: Default::default(),
            kernels: Kernels::best(),
            conv: ConvOptions::default(),
            threads: None,
            threads_set: false,
            replicas: 1,
            collective: None,
            exchange_bufs: Default::default(),
            exchanged: Default::default(),
            slots_sharded: false,
            settle_later: false,
            pool: None,
            kernel_threads: Threads::Rayon,
            batch_bufs: Default::default(),
            schedule: None,
            stop_training: false,
            restored_epoch: None,
            sums: Vec::new(),
            values: vec![engine::Values::default(), engine::Values::default()],
            class_weight: Vec::new(),
            dtype_policy: DTypePolicy::Float32,
        };
        model.initialize()?;
        Ok(model)
    }

    fn initialize(&mut self) -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed, 0, stream::INIT));
        for slot in &self.layers {
            slot.layer.initialize(&mut self.params, &mut rng)?;
        }
        if let Some(c) = self.compiled {
            self.state = OptimizerState::new(c.optimizer, &self.params)?;
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
        let batch = batch_size.div_ceil(self.replicas);
        let (algo, isa) = (self.conv.algo, self.kernels.isa());
        let mut out = Vec::new();
        for slot in &self.layers {
            let input = slot.inputs.first().copied().unwrap_or(0);
            if let Some(g) = slot.layer.conv_geometry(self.value_shape(input), batch) {
                // A layer reading the model's input computes no input gradient.
                let data = if input == 0 { None } else { Some(algo.resolve(&g, ConvPass::BackwardData, isa)?) };
                out.push(ConvChoice {
                    layer: slot.name.clone(),
                    forward: algo.resolve(&g, ConvPass::Forward, isa)?,
                    backward_data: data,
                    backward_filter: algo.resolve(&g, ConvPass::BackwardFilter, isa)?,
                });
            }
        }
        Ok(out)
    }

    /// Free-form string metadata saved with the model in `model.json` (e.g. how inputs were preprocessed).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
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

    /// The per-sample shape of value `k` of the graph (0: the input, `k + 1`: slot `k`'s output).
    pub(crate) fn value_shape(&self, k: usize) -> &[usize] {
        match k {
            0 => &self.input_shape,
            k => self.layers.get(k - 1).map_or(&[], |s| &s.output_shape),
        }
    }

    /// The name of the layer making value `k` (0: the input layer).
    pub(crate) fn value_name(&self, k: usize) -> &str {
        match k {
            0 => &self.input_name,
            k => self.layers.get(k - 1).map_or("", |s| &s.name),
        }
    }

    /// `(name, class name, per-sample output shape)` of every layer, in Keras' order of `model.layers`: by
    /// decreasing depth (the longest path to the output), ties in the order a depth-first walk from the output
    /// meets them — so every layer comes after the layers it reads.
    pub fn layers(&self) -> Vec<(&str, &'static str, &[usize])> {
        self.layers.iter().map(|s| (s.name.as_str(), s.layer.class_name(), s.output_shape.as_slice())).collect()
    }

    /// The names of the layers each layer reads, in call order (`input_layer` for the model's input), in the
    /// order of [`Model::layers`]: Keras' "Connected to".
    pub fn inbound(&self) -> Vec<Vec<&str>> {
        self.layers.iter().map(|s| s.inputs.iter().map(|&k| self.value_name(k)).collect()).collect()
    }

    /// Whether every layer reads the one before it (Keras then prints `summary()` without "Connected to").
    pub fn is_chain(&self) -> bool {
        self.layers.iter().enumerate().all(|(k, s)| s.inputs == [k])
    }

    /// Number of scalars in all weights (trainable and not).
    pub fn count_params(&self) -> usize {
        self.params.count()
    }

    /// The parameter store: every weight and every piece of layer state.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Every weight as `(name, tensor)` in Keras layout (`conv2d/kernel` HWIO, `dense/kernel` (in, out), …).
    pub fn weights(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for id in self.params.ids() {
            let dims = self.params.dims(id)?;
            out.push((self.params.name(id)?.to_owned(), Tensor::from_slice(dims.as_slice(), self.params.value(id)?)?));
        }
        Ok(out)
    }

    /// Keras `get_weights()`: every weight and piece of layer state, in the order of [`Model::weights`].
    pub fn get_weights(&self) -> Result<Vec<Tensor>> {
        Ok(self.weights()?.into_iter().map(|(_, t)| t).collect())
    }

    /// Keras `set_weights(weights)`: as many tensors as [`Model::get_weights`] returns, each of the same shape;
    /// nothing is changed unless all fit.
    pub fn set_weights(&mut self, weights: &[Tensor]) -> Result<()> {
        let ids: Vec<_> = self.params.ids().collect();
        if ids.len() != weights.len() {
            return Err(NnError::Data {
                what: "weights",
                expected: format!("{} tensors", ids.len()),
                got: weights.len().to_string(),
            });
        }
        for (&id, w) in ids.iter().zip(weights) {
            let dims = self.params.dims(id)?;
            if dims.as_slice() != w.dims() {
                return Err(NnError::Data {
                    what: "weight",
                    expected: format!("{} of shape {dims}", self.params.name(id)?),
                    got: w.shape().to_string(),
                });
            }
        }
        for (&id, w) in ids.iter().zip(weights) {
            self.params.set_value(id, w.as_slice())?;
        }
        Ok(())
    }

    /// Overwrites the weight named `name` (same shape required).
    pub fn set_weight(&mut self, name: &str, value: &Tensor) -> Result<()> {
        let id = self.params.find(name).ok_or_else(|| NnError::config("model", format!("no weight named `{name}`")))?;
        let dims = self.params.dims(id)?;
        if dims.as_slice() != value.dims() {
            return Err(NnError::Data {
                what: "weight",
                expected: format!("{name} of shape {dims}"),
                got: value.shape().to_string(),
            });
        }
        self.params.set_value(id, value.as_slice())?;
        Ok(())
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
        self.state = OptimizerState::new(c.optimizer, &self.params)?;
        self.compiled = Some(c);
        Ok(())
    }

    /// The compile settings, if compiled.
    pub fn compiled(&self) -> Option<Compiled> {
        self.compiled
    }

    /// The learning rate of the next update (Keras `optimizer.learning_rate`): the schedule's value at
    /// [`Model::iterations`] when one is set, else the compiled optimizer's rate.
    pub fn learning_rate(&self) -> Result<f32> {
        let c = self.compiled.ok_or(NnError::NotCompiled("reading the learning rate"))?;
        Ok(self.schedule.as_ref().map_or(c.optimizer.lr(), |s| s.at(self.state.iterations)))
    }

    /// Sets the learning rate (Keras `optimizer.learning_rate = lr`), as callbacks do; an error when a schedule
    /// sets it, as in Keras, or when it is not a finite number ≥ 0.
    pub fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        let c = self.compiled.as_mut().ok_or(NnError::NotCompiled("setting the learning rate"))?;
        if self.schedule.is_some() {
            return Err(NnError::config(
                "optimizer",
                "the learning rate comes from a LearningRateSchedule, so it cannot be set",
            ));
        }
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(NnError::config("optimizer", format!("learning rate {lr} must be a finite number ≥ 0")));
        }
        c.optimizer = c.optimizer.learning_rate(lr);
        Ok(())
    }

    /// Makes the learning rate a function of the step (Keras `optimizer(learning_rate=schedule)`), evaluated
    /// before every update at [`Model::iterations`]; `None` returns to the optimizer's own rate. Saved with the
    /// model and its checkpoints.
    pub fn set_learning_rate_schedule(&mut self, schedule: Option<LearningRateSchedule>) {
        self.schedule = schedule;
    }

    /// The learning-rate schedule, if one is set.
    pub fn learning_rate_schedule(&self) -> Option<&LearningRateSchedule> {
        self.schedule.as_ref()
    }

    /// Keras `model.stop_training`: whether `fit` ends after the current batch (and that epoch's end).
    pub fn stop_training(&self) -> bool {
        self.stop_training
    }

    /// Asks `fit` to stop after the current batch (its epoch still ends: validation, callbacks, history), as a
    /// Keras callback sets `self.model.stop_training = True`.
    pub fn set_stop_training(&mut self, on: bool) {
        self.stop_training = on;
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
        self.kernels = k;
        for t in &mut self.tapes {
            t.set_kernels(k);
        }
        self.dtype_policy.notice_widening(k);
        Ok(())
    }

    /// Sets how the layers compute, by Keras' policy name: `"float32"` (the default) or `"mixed_bfloat16"` (see
    /// [`DTypePolicy`]); any other name is an error. Weights and optimizer state are unchanged (they stay f32), so
    /// the policy can change between `fit` calls. On a CPU without bf16 arithmetic the bf16 products run by
    /// widening to f32, which is said once on standard error.
    pub fn set_dtype_policy(&mut self, name: &str) -> Result<()> {
        self.set_dtype_policy_to(DTypePolicy::from_name(name)?);
        Ok(())
    }

    /// [`Model::set_dtype_policy`] with the policy as a value.
    pub fn set_dtype_policy_to(&mut self, policy: DTypePolicy) {
        self.dtype_policy = policy;
        for t in &mut self.tapes {
            t.set_precision(policy.precision());
        }
        policy.notice_widening(self.kernels);
    }

    /// The dtype policy in use (Keras' `model.dtype_policy`).
    pub fn dtype_policy(&self) -> DTypePolicy {
        self.dtype_policy
    }

    /// The kernel table in use.
    pub fn kernels(&self) -> &'static Kernels {
        self.kernels
    }

    /// The convolution algorithm choice of every convolution (default `ConvAlgo::Auto`); its threading follows
    /// [`Model::set_threads`].
    pub fn set_conv_options(&mut self, opts: ConvOptions) {
        self.conv = opts;
        for t in &mut self.tapes {
            t.set_conv_options(opts.threads(t.threads()));
        }
    }

    /// The convolution options in use.
    pub fn conv_options(&self) -> ConvOptions {
        self.conv
    }

    /// Whether each training batch is split in two halves computed on two replicas (possibly in parallel) whose
    /// gradients are averaged (see [`Model::set_data_parallel`]).
    pub fn data_parallel(&self) -> bool {
        self.replicas > 1
    }

    /// Splits every training batch into two halves, each run forward and backward on its own replica (its own
    /// tape, reading the one parameter store; in parallel when the model has ≥ 2 threads), then averages the
    /// two gradients (`(n₀·g₀ + n₁·g₁)/n`, fixed order) inside one optimizer step. The result is the same
    /// mean-loss gradient up to rounding, and bitwise identical for any thread count (the split does not depend
    /// on it); off by default, so that a step sums exactly like Keras.
    pub fn set_data_parallel(&mut self, on: bool) {
        self.replicas = if on { 2 } else { 1 };
    }

    /// Splits every training batch over `replicas` model replicas whose gradients are reduced in replica order
    /// (see [`Model::set_data_parallel`] for two; more run two at a time). Trained across ranks
    /// ([`Model::set_collective`]) the replicas are spread evenly over the ranks, and the same count gives the
    /// same bits on one process or on any number of ranks.
    pub fn set_replicas(&mut self, replicas: usize) -> Result<()> {
        if replicas == 0 {
            return Err(NnError::config("model", "replicas must be ≥ 1"));
        }
        self.replicas = replicas;
        Ok(())
    }

    /// Replicas a training batch is split over (all ranks' together).
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// Trains across processes: every training step from now on runs this rank's share of the replicas and
    /// exchanges gradients with the other ranks of `group` (see [`crate::distributed`]). The weights and
    /// optimizer state of rank 0 are copied to every rank now and again at the start of every `fit`.
    /// Every rank must build, compile and fit the same model with the same data and options.
    pub fn set_collective(&mut self, group: Arc<dyn crate::distributed::Collective>) -> Result<()> {
        crate::distributed::placement(self.replicas, group.rank(), group.size())?;
        self.collective = Some(group);
        self.broadcast_from_root()
    }

    /// Trains on this process alone again. (After a `fit` across ranks that failed mid-epoch each rank may hold
    /// only its own shard of the optimizer state current — gathered again by the next `fit` on the same ranks.)
    pub fn clear_collective(&mut self) {
        self.collective = None;
    }

    /// This process's rank among the ranks training the model (0 when it trains alone).
    pub fn rank(&self) -> usize {
        self.collective.as_ref().map_or(0, |c| c.rank())
    }

    /// Whether this process speaks for the run (TensorFlow's "chief"): rank 0, or a model training alone. Only
    /// the chief prints progress and writes checkpoints, backups and logs from `fit` and its callbacks.
    pub fn is_chief(&self) -> bool {
        self.rank() == 0
    }
}
