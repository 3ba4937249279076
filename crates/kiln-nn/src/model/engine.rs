//! One step over the model's replicas: the forward pass of every layer on a [`Recording`], the loss, the
//! backward pass, the optimizer's fixed-order reduction of the replicas' gradients, and the layers' state
//! assignments — and inference on the first replica.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_autograd::{MAX_RANK, Params, Recording, Tape, Var};
use kiln_kernels::{FlushDenormals, Threads, set_flush_denormals};
use kiln_tensor::{Data, Tensor};

use super::lockstep::{Meet, Part};
use super::{BatchStats, Compiled, LayerTime, Model, Slot, StepProfile, mix, stream};
use crate::error::{NnError, Result};
use crate::optim::Loss;

/// What a pass needs from a model, borrowed apart from its tapes and store.
pub(crate) struct Net<'a> {
    pub(crate) layers: &'a [Slot],
    pub(crate) input_shape: &'a [usize],
    pub(crate) output_shape: &'a [usize],
    pub(crate) compiled: Option<Compiled>,
    /// Keras' `class_weight` of the training step (by class index; empty: none).
    pub(crate) class_weight: &'a [f32],
}

/// Per layer: its forward time and the range of backward records it made.
type Times = Vec<(Duration, usize, usize)>;

/// One replica's values of a forward pass, kept between steps so a step allocates nothing: the graph's values
/// (the input, then each layer's output, as [`Slot::inputs`] numbers them) and the arguments of one call.
#[derive(Debug, Default)]
pub(crate) struct Values {
    vals: Vec<Var>,
    args: Vec<Var>,
}

impl Values {
    /// Starts a pass at the input `x`.
    pub(crate) fn start(&mut self, x: Var) {
        self.vals.clear();
        self.vals.push(x);
    }

    /// Value `k` (0: the input, `k + 1`: slot `k`'s output).
    pub(crate) fn get(&self, k: usize) -> Var {
        self.vals[k]
    }

    /// The last value made (the model's output once every layer ran).
    pub(crate) fn last(&self) -> Var {
        self.vals[self.vals.len() - 1]
    }

    /// Records the next layer, `slot`, on its inputs (`Model::assemble` checked that they come before it).
    pub(crate) fn call(&mut self, rec: &mut Recording<'_, '_>, slot: &Slot, training: bool) -> Result<Var> {
        if slot.fused {
            // The layer before applied this ReLU.
            let v = self.vals[slot.inputs[0]];
            self.vals.push(v);
            return Ok(v);
        }
        self.args.clear();
        self.args.extend(slot.inputs.iter().map(|&k| self.vals[k]));
        let v = slot.layer.forward_of(rec, &self.args, training)?;
        self.vals.push(v);
        Ok(v)
    }

    /// Adds the output of a layer computed apart (the second half of a batch-statistics layer).
    pub(crate) fn push(&mut self, v: Var) {
        self.vals.push(v);
    }
}

impl<'a> Net<'a> {
    /// The pass over `layers` (a model's fields, borrowed apart from its tapes and store).
    pub(crate) fn of(layers: &'a [Slot], input_shape: &'a [usize], compiled: Option<Compiled>) -> Self {
        let output_shape = layers.last().map_or(input_shape, |s| s.output_shape.as_slice());
        Net { layers, input_shape, output_shape, compiled, class_weight: &[] }
    }

    /// This pass with Keras' `class_weight` (by class index; classes past the end weigh 1).
    pub(crate) fn with_class_weight(mut self, class_weight: &'a [f32]) -> Self {
        self.class_weight = class_weight;
        self
    }

    /// The class of target row `r` of `y`: the index for sparse labels, else the arg-max (as Keras does to turn
    /// `class_weight` into sample weights).
    fn target_class(&self, y: &[f32], r: usize) -> usize {
        let sparse = self.compiled.is_some_and(|c| c.loss == Loss::SparseCategoricalCrossentropy);
        let classes = self.output_shape.last().copied().unwrap_or(1).max(1);
        if sparse { y[r] as usize } else { argmax(&y[r * classes..(r + 1) * classes]) }
    }

    /// The class weight of target row `r` (1 without class weights or for a class past the end).
    fn sample_weight(&self, y: &[f32], r: usize) -> f32 {
        if self.class_weight.is_empty() {
            return 1.0;
        }
        self.class_weight.get(self.target_class(y, r)).copied().unwrap_or(1.0)
    }

    /// `[batch, sample dims…]` and its rank.
    pub(crate) fn batch_dims(batch: usize, sample: &[usize]) -> ([usize; MAX_RANK], usize) {
        let mut d = [0usize; MAX_RANK];
        d[0] = batch;
        d[1..=sample.len()].copy_from_slice(sample);
        (d, sample.len() + 1)
    }

    /// Records the forward pass of a batch `x` (borrowed, not copied); returns the output variable.
    pub(crate) fn forward<'p>(
        &self,
        rec: &mut Recording<'_, 'p>,
        values: &mut Values,
        x: &'p [f32],
        batch: usize,
        training: bool,
        mut times: Option<&mut Times>,
    ) -> Result<Var> {
        let (d, rank) = Self::batch_dims(batch, self.input_shape);
        values.start(rec.input_ref(&d[..rank], x)?);
        for slot in self.layers {
            let (t0, r0) = (Instant::now(), rec.record_count());
            values.call(rec, slot, training)?;
            if let Some(t) = times.as_deref_mut() {
                t.push((t0.elapsed(), r0, rec.record_count()));
            }
        }
        Ok(values.last())
    }

    /// The target dimensions of a batch for the compiled loss.
    fn target_dims(&self, batch: usize) -> ([usize; MAX_RANK], usize) {
        match self.compiled.map(|c| c.loss) {
            Some(Loss::SparseCategoricalCrossentropy) => Self::batch_dims(batch, &[]),
            _ => Self::batch_dims(batch, self.output_shape),
        }
    }

    /// Records the loss of `out` against the targets `y` (borrowed).
    pub(crate) fn loss<'p>(&self, rec: &mut Recording<'_, 'p>, out: Var, y: &'p [f32], batch: usize) -> Result<Var> {
        let c = self.compiled.ok_or(NnError::NotCompiled("computing a loss"))?;
        let (d, rank) = self.target_dims(batch);
        let t = rec.input_ref(&d[..rank], y)?;
        let w = if self.class_weight.is_empty() {
            None
        } else {
            Some(rec.input_with(&[batch], |w| {
                for (r, w) in w.iter_mut().enumerate() {
                    *w = self.sample_weight(y, r);
                }
            })?)
        };
        Ok(match c.loss {
            Loss::CategoricalCrossentropy => rec.categorical_crossentropy_weighted(out, t, w)?,
            Loss::SparseCategoricalCrossentropy => rec.sparse_categorical_crossentropy_weighted(out, t, w)?,
            Loss::MeanSquaredError => rec.mse_weighted(out, t, w)?,
        })
    }

    /// Samples of a batch whose prediction (arg-max) is the target class. Unweighted, also under
    /// `class_weight`: Keras weights only `weighted_metrics`, not `metrics=["accuracy"]`.
    pub(crate) fn correct(&self, rec: &Recording<'_, '_>, out: Var, y: &[f32]) -> Result<usize> {
        if !self.compiled.is_some_and(|c| c.accuracy) {
            return Ok(0);
        }
        let p = rec.value(out)?;
        let classes = self.output_shape.last().copied().unwrap_or(1).max(1);
        Ok(p.chunks_exact(classes).enumerate().filter(|(r, row)| argmax(row) == self.target_class(y, *r)).count())
    }

    /// One replica's part of a training step: forward, loss and (for a finite loss) backward, with the replica's
    /// own dropout stream. Returns the mean loss and the correct predictions of its samples.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn train_part(
        &self,
        tape: &mut Tape,
        values: &mut Values,
        params: &Params,
        rng_seed: u64,
        x: &[f32],
        y: &[f32],
        batch: usize,
        times: Option<&mut Times>,
    ) -> Result<(f32, usize)> {
        tape.seed(rng_seed);
        tape.set_grad_enabled(true);
        // The whole batch on this tape (a tape that was a half in an earlier data-parallel step had its share).
        tape.set_share(1.0);
        let mut rec = tape.record(params);
        let out = self.forward(&mut rec, values, x, batch, true, times)?;
        let l = self.loss(&mut rec, out, y, batch)?;
        let loss = rec.value(l)?[0];
        let correct = self.correct(&rec, out, y)?;
        if loss.is_finite() {
            rec.backward(l)?;
        }
        Ok((loss, correct))
    }
}

pub(crate) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

impl Model {
    /// Makes sure there are `n` replica tapes, with the model's kernels and options.
    pub(crate) fn ensure_tapes(&mut self, n: usize) {
        while self.tapes.len() < n {
            let mut t = Tape::with_kernels(self.kernels);
            t.set_replica(self.tapes.len());
            t.set_threads(self.kernel_threads);
            t.set_conv_options(self.conv.threads(self.kernel_threads));
            t.set_precision(self.dtype_policy().precision());
            self.tapes.push(t);
        }
        while self.values.len() < n {
            self.values.push(Values::default());
        }
    }

    /// Runs `f` on the model's thread pool (or on the calling thread), with subnormals flushed.
    pub(crate) fn in_pool<R: Send>(&mut self, f: impl FnOnce(&mut Model) -> Result<R> + Send) -> Result<R> {
        let Some(n) = self.threads() else {
            let _flush = FlushDenormals::new();
            self.set_kernel_threads(Threads::Single);
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
        self.set_kernel_threads(Threads::Rayon);
        pool.install(|| f(self))
    }

    fn set_kernel_threads(&mut self, threads: Threads) {
        self.kernel_threads = threads;
        for t in &mut self.tapes {
            t.set_threads(threads);
            t.set_conv_options(self.conv.threads(threads));
        }
    }

    pub(crate) fn batch_len(&self, what: &'static str, len: usize, per: usize, dims: &[usize]) -> Result<usize> {
        if per == 0 || !len.is_multiple_of(per) {
            return Err(NnError::Data {
                what,
                expected: format!("a whole number of samples of shape {dims:?}"),
                got: format!("{len} values"),
            });
        }
        Ok(len / per)
    }

    pub(crate) fn target_sample_len(&self) -> usize {
        match self.compiled.map(|c| c.loss) {
            Some(Loss::SparseCategoricalCrossentropy) => 1,
            _ => self.output_shape().iter().product(),
        }
    }

    /// One training step; `prefetch` (fit gathering its next batch) runs once during it, overlapped with the
    /// second replica's part when there is one. With `profile`, the step runs on one replica and is timed per
    /// layer.
    pub(crate) fn step(
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
        if let Some(comm) = self.collective.clone() {
            if profile.is_some() {
                // A step on one rank alone would leave its weights apart from the others'.
                return Err(NnError::unsupported("model", "profile_step", "while training across ranks"));
            }
            return self.step_across(&*comm, x, y, batch, prefetch);
        }
        if self.replicas > 2 && profile.is_none() {
            // More than two replicas take the cross-rank step on a group of one: the bits of N ranks'.
            return self.step_across(&crate::distributed::Solo, x, y, batch, prefetch);
        }
        let replicas = if profile.is_none() && batch >= 2 { self.replicas } else { 1 };
        self.ensure_tapes(replicas);
        let parallel = replicas > 1 && self.threads().is_some_and(|t| t > 1) && rayon::current_num_threads() > 1;
        // Each replica draws its dropout masks from its own stream of the model's seed and this step.
        let seeds = [0, 1].map(|r| mix(self.seed, self.state.iterations, stream::REPLICA + r));
        let n0 = batch.div_ceil(replicas);
        let (xl, yl) = (x.len() / batch, y.len() / batch);
        let (x0, x1) = x.split_at(n0 * xl);
        let (y0, y1) = y.split_at(n0 * yl);
        let net = Net::of(&self.layers, &self.input_shape, self.compiled).with_class_weight(&self.class_weight);
        let params = &self.params;
        let mut times = profile.as_ref().map(|_| Vec::with_capacity(self.layers.len()));
        let [v0, v1, ..] = &mut self.values[..] else {
            return Err(NnError::config("model", "replica values missing"));
        };
        let (loss, correct, shares) = match &mut self.tapes[..replicas] {
            [tape] => {
                if let Some(f) = prefetch {
                    f();
                }
                let (loss, correct) = net.train_part(tape, v0, params, seeds[0], x, y, batch, times.as_mut())?;
                (loss, correct, [1.0, 0.0])
            }
            [t0, t1] => {
                let n1 = batch - n0;
                let kernel_threads = if parallel { Threads::Single } else { self.kernel_threads };
                for t in [&mut *t0, &mut *t1] {
                    t.set_threads(kernel_threads);
                    t.set_conv_options(self.conv.threads(kernel_threads));
                }
                let (w0, w1) = (n0 as f32 / batch as f32, n1 as f32 / batch as f32);
                let first = |t0: &mut Tape, v0: &mut Values| net.train_part(t0, v0, params, seeds[0], x0, y0, n0, None);
                let second =
                    |t1: &mut Tape, v1: &mut Values| net.train_part(t1, v1, params, seeds[1], x1, y1, n1, None);
                let (h0, h1) = if net.needs_lockstep() {
                    let parts = [
                        Part { seed: seeds[0], share: w0, x: x0, y: y0, batch: n0 },
                        Part { seed: seeds[1], share: w1, x: x1, y: y1, batch: n1 },
                    ];
                    let h = net.train_lockstep(
                        [(t0, v0), (t1, v1)],
                        params,
                        &parts,
                        parallel,
                        prefetch,
                        &mut self.sums,
                        &Meet::Local,
                    )?;
                    (Ok(h[0]), Ok(h[1]))
                } else if parallel {
                    crate::parallel::join_balanced(
                        || {
                            let r = first(t0, v0);
                            if let Some(f) = prefetch {
                                f();
                            }
                            r
                        },
                        || second(t1, v1),
                    )
                } else {
                    let h = (first(t0, v0), second(t1, v1));
                    if let Some(f) = prefetch {
                        f();
                    }
                    h
                };
                let ((l0, c0), (l1, c1)) = (h0?, h1?);
                (w0 * l0 + w1 * l1, c0 + c1, [w0, w1])
            }
            _ => return Err(NnError::config("model", "replica tapes missing")),
        };
        let stats = BatchStats { loss, correct, samples: batch };
        if !loss.is_finite() {
            return Ok(stats);
        }
        let t_opt = Instant::now();
        let kernels = self.kernels;
        let optimizer = match &self.schedule {
            Some(s) => c.optimizer.learning_rate(s.at(self.state.iterations)),
            None => c.optimizer,
        };
        let tapes = &self.tapes[..replicas];
        self.state.step(
            optimizer,
            kernels,
            &mut self.params,
            |r, id| tapes.get(r).and_then(|t| t.param_grad(id)),
            &shares[..replicas],
            parallel,
            (0, 1),
        )?;
        self.apply_assignments()?;
        if let (Some(p), Some(times)) = (profile, times) {
            let bt = self.tapes[0].backward_times();
            let sum = |a: usize, b: usize| bt.get(a..b).map_or(Duration::ZERO, |s| s.iter().sum());
            p.layers = self
                .layers
                .iter()
                .zip(&times)
                .map(|(s, &(f, a, b))| LayerTime { name: s.name.clone(), forward: f, backward: sum(a, b) })
                .collect();
            let layers: Duration = p.layers.iter().map(|l| l.forward + l.backward).sum();
            p.loss = t_opt.duration_since(t_start).saturating_sub(layers);
            p.optimizer = t_opt.elapsed();
            p.total = t_start.elapsed();
        }
        Ok(stats)
    }

    /// Writes the state the layers assigned during the step ([`Recording::assign`]) into the store: the first
    /// replica's values (every replica assigns the same values: state derives from whole-batch statistics).
    pub(crate) fn apply_assignments(&mut self) -> Result<()> {
        let Some(tape) = self.tapes.first() else { return Ok(()) };
        for (id, value) in tape.assignments() {
            self.params.set_value(id, value)?;
        }
        Ok(())
    }

    /// Runs `f` on all of `x` and `y` as `f32` slices: read in place when the sources store them so (tensors),
    /// else gathered into the model's reused batch buffers.
    fn with_whole_batch<R>(
        &mut self,
        x: &dyn Data,
        y: &dyn Data,
        f: impl FnOnce(&mut Self, &[f32], &[f32]) -> Result<R>,
    ) -> Result<R> {
        self.check_x(x)?;
        self.check_y(x, y)?;
        if let (Some(xs), Some(ys)) = (x.contiguous(), y.contiguous()) {
            return f(self, xs, ys);
        }
        let [mut xbuf, mut ybuf, xn, yn] = std::mem::take(&mut self.batch_bufs);
        let res = gather_all(x, &mut xbuf).and_then(|()| gather_all(y, &mut ybuf)).and_then(|()| f(self, &xbuf, &ybuf));
        self.batch_bufs = [xbuf, ybuf, xn, yn];
        res
    }

    /// One training step on a batch (Keras `train_on_batch`): forward, loss, backward, optimizer update, on every
    /// sample of `x` and its target in `y`. A non-finite loss leaves the weights untouched and is an error.
    pub fn train_on_batch(&mut self, x: &dyn Data, y: &dyn Data) -> Result<BatchStats> {
        let s = self.with_whole_batch(x, y, |m, xs, ys| m.in_pool(|m| m.step(xs, ys, None, None)))?;
        if !s.loss.is_finite() {
            return Err(NnError::NonFiniteLoss {
                epoch: self.epochs_done + 1,
                step: self.state.iterations as usize + 1,
                value: s.loss,
            });
        }
        Ok(s)
    }

    /// One training step (as [`Model::train_on_batch`]) with wall-time measurements per layer (forward and
    /// backward), loss and optimizer.
    pub fn profile_step(&mut self, x: &dyn Data, y: &dyn Data) -> Result<StepProfile> {
        let mut p =
            StepProfile { layers: Vec::new(), loss: Duration::ZERO, optimizer: Duration::ZERO, total: Duration::ZERO };
        self.ensure_tapes(1);
        self.tapes[0].set_profiling(true);
        let res = self.with_whole_batch(x, y, |m, xs, ys| m.in_pool(|m| m.step(xs, ys, Some(&mut p), None)));
        self.tapes[0].set_profiling(false);
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

    /// Keras `predict_on_batch`: the outputs for every sample of `x` as one batch, nothing recorded.
    pub fn predict_on_batch(&mut self, x: &dyn Data) -> Result<Tensor> {
        self.predict(x, x.len().max(1))
    }

    pub(crate) fn predict_batch(&mut self, x: &[f32], out: &mut [f32]) -> Result<()> {
        let batch = self.batch_len("x", x.len(), self.input_shape.iter().product(), &self.input_shape)?;
        let per: usize = self.output_shape().iter().product();
        if out.len() != batch * per {
            return Err(NnError::Data {
                what: "predictions",
                expected: format!("{} values", batch * per),
                got: format!("{}", out.len()),
            });
        }
        self.ensure_tapes(1);
        let net = Net::of(&self.layers, &self.input_shape, self.compiled);
        let tape = &mut self.tapes[0];
        tape.set_grad_enabled(false);
        let res = {
            let mut rec = tape.record(&self.params);
            net.forward(&mut rec, &mut self.values[0], x, batch, false, None).and_then(|v| {
                out.copy_from_slice(rec.value(v)?);
                Ok(())
            })
        };
        tape.set_grad_enabled(true);
        res
    }

    /// Loss and correct predictions of one batch in inference mode.
    pub(crate) fn evaluate_batch(&mut self, x: &[f32], y: &[f32], batch: usize) -> Result<(f32, usize)> {
        self.ensure_tapes(1);
        let net = Net::of(&self.layers, &self.input_shape, self.compiled);
        let tape = &mut self.tapes[0];
        tape.set_grad_enabled(false);
        let res = (|| {
            let mut rec = tape.record(&self.params);
            let out = net.forward(&mut rec, &mut self.values[0], x, batch, false, None)?;
            let l = net.loss(&mut rec, out, y, batch)?;
            Ok((rec.value(l)?[0], net.correct(&rec, out, y)?))
        })();
        tape.set_grad_enabled(true);
        res
    }
}

/// Copies every sample of `d` into `buf` (resized; its capacity is kept between calls).
fn gather_all(d: &dyn Data, buf: &mut Vec<f32>) -> Result<()> {
    let n = d.len().checked_mul(d.sample_len()).ok_or_else(|| NnError::Data {
        what: "batch",
        expected: "a size that fits in memory".into(),
        got: format!("{} samples of {:?}", d.len(), d.sample_dims()),
    })?;
    buf.try_reserve(n.saturating_sub(buf.len())).map_err(|e| NnError::Data {
        what: "batch",
        expected: format!("memory for {n} floats"),
        got: e.to_string(),
    })?;
    buf.resize(n, 0.0);
    let mut idx = [0usize; 64];
    let per = d.sample_len().max(1);
    for (k, out) in buf.chunks_mut(64 * per).enumerate() {
        let m = out.len() / per;
        for (j, i) in idx[..m].iter_mut().enumerate() {
            *i = k * 64 + j;
        }
        d.gather(&idx[..m], out);
    }
    Ok(())
}
