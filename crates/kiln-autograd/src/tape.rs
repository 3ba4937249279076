//! The [`Tape`]: one replica's memory of a training step — the values and gradients it computes, the recorded
//! [`Backward`] steps, and the parameters' gradients — kept and reused from step to step. Parameter *values* are
//! not here: they live once in a [`Params`] store that every replica's tape reads during a step
//! ([`Tape::record`]).
//!
//! Memory is reused, not freed: every value and gradient lives in an arena of aligned buffers handed out in
//! order, and a new recording only rewinds the arena. A training step that records the same operations on the
//! same shapes as the step before therefore touches the allocator not at all: the buffers, the node list and
//! even the boxed [`Backward`] records (overwritten in place when the type matches) are recycled.

use std::any::Any;
use std::ops::Deref;
use std::time::Duration;

use kiln_kernels::optim::{Stream, stream_buffer};
use kiln_kernels::{AlignedVec, ConvOptions, ConvPlan, Kernels, Threads};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backward::Backward;
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::params::{ParamId, Params};
use crate::precision::Precision;
use crate::recording::Recording;

/// A value recorded on a [`Tape`] during the current step (a cheap copyable handle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Var {
    pub(crate) index: u32,
    pub(crate) step: u32,
}

/// Where a value or gradient lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    /// Arena buffer.
    Buf(usize),
    /// A parameter's value (in the [`Params`] store) or gradient (in the tape).
    Param(usize),
    /// A slice borrowed by the recording (an input batch), by position in its list.
    Borrowed(usize),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    pub(crate) dims: Dims,
    pub(crate) value: Loc,
    pub(crate) grad: Option<Loc>,
    pub(crate) grad_written: bool,
    pub(crate) requires_grad: bool,
    /// When this node is `softmax(z)`: `z`, so a cross-entropy loss can use the fused, stable kernel.
    pub(crate) softmax_of: Option<Var>,
    /// Every element is a bfloat16 value (made by [`Recording::round_bf16`]): a product reading it may use the
    /// bf16 kernels, whose conversion of it is exact.
    pub(crate) bf16: bool,
}

/// A parameter's gradient on one tape.
#[derive(Clone, Default)]
pub(crate) struct ParamGrad {
    pub(crate) buf: AlignedVec,
    pub(crate) written: bool,
}

/// One replica's arena: nodes, buffers, parameter gradients and settings (what [`View`] shows to the ops).
pub struct State {
    pub(crate) nodes: Vec<Node>,
    pub(crate) bufs: Vec<AlignedVec>,
    pub(crate) next_buf: usize,
    pub(crate) grads: Vec<ParamGrad>,
    pub(crate) scratch: AlignedVec,
    pub(crate) kernels: &'static Kernels,
    pub(crate) conv: ConvOptions,
    pub(crate) threads: Threads,
    pub(crate) step: u32,
    /// The step's convolutions' plans, by the order of their `conv2d` calls (kept across steps; `None` while
    /// an op has its plan out).
    pub(crate) plans: Vec<Option<ConvPlan>>,
    /// This tape's data-parallel replica (0 or 1): where its large gradients sit in a page
    /// (`kiln_kernels::optim::Stream`).
    pub(crate) replica: usize,
    /// `conv2d` calls so far in this step.
    pub(crate) convs: usize,
    /// Whole-batch statistics across replicas (see [`Recording::exchange`]): this replica's partial sums …
    pub(crate) exchange_local: Vec<f64>,
    /// Per-channel coefficients of a batch normalization's kernels (kept, so a step allocates nothing).
    pub(crate) channel_coef: Vec<f32>,
    /// … and the sums over every replica, in replica order, set by the engine.
    pub(crate) exchange_global: Vec<f64>,
    /// This replica's share of the batch (its samples ÷ the batch's), by which its gradient partials are
    /// weighted before they are added (its loss is the mean over its own samples).
    pub(crate) share: f64,
    /// The numeric policy the layers recording on this tape follow.
    pub(crate) precision: Precision,
    /// bf16 operands of the products that run on the bf16 kernels (converted per call, kept for reuse).
    pub(crate) bf16_bufs: [Vec<half::bf16>; 3],
    /// A gradient rounded to bf16 for the f32 GEMM (products on bf16 values where the CPU lacks bf16 arithmetic).
    pub(crate) rounded: Vec<f32>,
}

/// What an operation's forward and backward code reads: the arena of its tape and the parameter values of the
/// step (dereferences to [`State`] for the settings).
pub struct View<'a> {
    pub(crate) st: &'a State,
    pub(crate) params: &'a Params,
    pub(crate) borrowed: &'a [&'a [f32]],
}

/// Most slices one recording borrows ([`Recording::input_ref`]: a batch's inputs and targets).
pub(crate) const MAX_BORROWED: usize = 4;

impl Deref for View<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.st
    }
}

impl View<'_> {
    /// The value of `v`.
    pub fn value(&self, v: Var) -> &[f32] {
        let n = &self.st.nodes[v.index as usize];
        match n.value {
            Loc::Buf(i) => &self.st.bufs[i].as_slice()[..n.dims.numel()],
            // The op that recorded the node checked the id against this store.
            Loc::Param(p) => self.params.value(ParamId::from_index(p)).unwrap_or(&[]),
            Loc::Borrowed(i) => self.borrowed[i],
        }
    }

    /// The gradient of `v` accumulated so far (empty when nothing has been written yet).
    pub fn grad(&self, v: Var) -> &[f32] {
        self.st.grad(v)
    }

    /// The version of `v`'s value when it is a parameter (see [`Params::version`]); `None` for computed values.
    pub fn version(&self, v: Var) -> Option<u64> {
        match self.st.nodes[v.index as usize].value {
            Loc::Param(p) => self.params.version(ParamId::from_index(p)).ok(),
            _ => None,
        }
    }
}

/// A reverse-mode tape (see the [crate docs](crate) for an example).
pub struct Tape {
    pub(crate) st: State,
    pub(crate) backs: Vec<Box<dyn Backward>>,
    pub(crate) outs: Vec<Var>,
    pub(crate) used: usize,
    pub(crate) profile: Option<Vec<Duration>>,
    pub(crate) grad_enabled: bool,
    pub(crate) rng: ChaCha8Rng,
    /// `(parameter, value)` pairs recorded by [`Recording::assign`] this step.
    pub(crate) assigns: Vec<(ParamId, Var)>,
    /// The backward record a pass stopped at for an exchange ([`Recording::backward_resume`] continues there).
    pub(crate) paused_at: Option<usize>,
}

impl Default for Tape {
    fn default() -> Self {
        Tape::new()
    }
}

impl State {
    pub(crate) fn node(&self, op: &'static str, v: Var) -> Result<&Node> {
        if v.step != self.step {
            return Err(AutogradError::StaleVar { op, index: v.index });
        }
        self.nodes.get(v.index as usize).ok_or(AutogradError::StaleVar { op, index: v.index })
    }

    /// The dimensions of `v` (valid variables only; checked by the op that recorded the backward step).
    pub fn dims(&self, v: Var) -> Dims {
        self.nodes[v.index as usize].dims
    }

    /// The gradient of `v` accumulated so far (empty when nothing has been written yet).
    pub fn grad(&self, v: Var) -> &[f32] {
        let n = &self.nodes[v.index as usize];
        if !n.grad_written {
            return &[];
        }
        match n.grad {
            Some(Loc::Buf(i)) => &self.bufs[i].as_slice()[..n.dims.numel()],
            Some(Loc::Param(p)) => self.grads[p].buf.as_slice(),
            _ => &[],
        }
    }

    /// Whether `v` needs a gradient.
    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.index as usize].requires_grad
    }

    /// The kernel table in use.
    pub fn kernels(&self) -> &'static Kernels {
        self.kernels
    }

    /// The convolution options in use.
    pub fn conv_options(&self) -> ConvOptions {
        self.conv
    }

    /// The threading policy of the GEMMs.
    pub fn threads(&self) -> Threads {
        self.threads
    }

    /// Hands out the next arena buffer, sized to `len` (reused from the previous step when possible).
    pub(crate) fn alloc(&mut self, what: &'static str, len: usize) -> Result<usize> {
        let i = self.next_buf;
        if i == self.bufs.len() {
            self.bufs.push(AlignedVec::new());
        }
        let b = &mut self.bufs[i];
        if b.len() != len {
            b.try_resize(len, 0.0).map_err(|_| AutogradError::Alloc { what, elements: len })?;
        }
        self.next_buf += 1;
        Ok(i)
    }

    fn take(&mut self, loc: Loc) -> AlignedVec {
        match loc {
            Loc::Buf(i) => std::mem::take(&mut self.bufs[i]),
            Loc::Param(p) => std::mem::take(&mut self.grads[p].buf),
            Loc::Borrowed(_) => AlignedVec::new(),
        }
    }

    fn put(&mut self, loc: Loc, buf: AlignedVec) {
        match loc {
            Loc::Buf(i) => self.bufs[i] = buf,
            Loc::Param(p) => self.grads[p].buf = buf,
            Loc::Borrowed(_) => {}
        }
    }

    /// Runs `f(view, gradient buffer, accumulate)` on the gradient of `v`: `accumulate` is false the first time
    /// (the buffer holds stale data and must be overwritten) and true afterwards (add to it).
    pub(crate) fn update_grad(
        &mut self,
        params: &Params,
        borrowed: &[&[f32]],
        v: Var,
        f: impl FnOnce(&View<'_>, &mut [f32], bool) -> Result<()>,
    ) -> Result<()> {
        let idx = v.index as usize;
        let node = self.nodes[idx];
        if !node.requires_grad {
            return Ok(());
        }
        let len = node.dims.numel();
        let loc = match node.grad {
            Some(loc) => loc,
            None => {
                let loc = Loc::Buf(self.alloc("gradient", len)?);
                self.nodes[idx].grad = Some(loc);
                loc
            }
        };
        let accumulate = match loc {
            Loc::Param(p) => {
                // A parameter's gradient buffer is sized on its first use and kept.
                let g = &mut self.grads[p];
                if g.buf.len() != len {
                    let alloc = AutogradError::Alloc { what: "gradient", elements: len };
                    g.buf = stream_buffer(len, Stream::Gradient(self.replica)).map_err(|_| alloc)?;
                }
                g.written
            }
            _ => node.grad_written,
        };
        let mut buf = self.take(loc);
        let res = f(&View { st: self, params, borrowed }, &mut buf.as_mut_slice()[..len], accumulate);
        self.put(loc, buf);
        res?;
        self.nodes[idx].grad_written = true;
        if let Loc::Param(p) = loc {
            self.grads[p].written = true;
        }
        Ok(())
    }

    /// Like [`State::update_grad`] for kernels that can only overwrite: on accumulation the result goes through
    /// a scratch buffer and is added.
    pub(crate) fn set_grad(
        &mut self,
        params: &Params,
        borrowed: &[&[f32]],
        v: Var,
        f: impl FnOnce(&View<'_>, &mut [f32]) -> Result<()>,
    ) -> Result<()> {
        let n = self.nodes[v.index as usize];
        if !n.requires_grad {
            return Ok(());
        }
        let written = match n.grad {
            Some(Loc::Param(p)) => self.grads[p].written,
            _ => n.grad_written,
        };
        if !written {
            return self.update_grad(params, borrowed, v, |st, g, _| f(st, g));
        }
        let len = n.dims.numel();
        let mut scratch = std::mem::take(&mut self.scratch);
        if scratch.len() < len {
            scratch.try_resize(len, 0.0).map_err(|_| AutogradError::Alloc { what: "scratch", elements: len })?;
        }
        let res = f(&View { st: self, params, borrowed }, &mut scratch.as_mut_slice()[..len]);
        let res = res.and_then(|()| {
            self.update_grad(params, borrowed, v, |_, g, _| {
                for (g, s) in g.iter_mut().zip(&scratch.as_slice()[..len]) {
                    *g += s;
                }
                Ok(())
            })
        });
        self.scratch = scratch;
        res
    }
}

impl Tape {
    /// An empty tape on the best kernels of this CPU ([`Kernels::best`]), automatic convolution algorithms.
    pub fn new() -> Self {
        Tape::with_kernels(Kernels::best())
    }

    /// An empty tape using the given kernel table (e.g. `Kernels::for_isa(Isa::Avx2Fma)`).
    pub fn with_kernels(kernels: &'static Kernels) -> Self {
        Tape {
            st: State {
                nodes: Vec::new(),
                bufs: Vec::new(),
                next_buf: 0,
                grads: Vec::new(),
                scratch: AlignedVec::new(),
                kernels,
                conv: ConvOptions::default(),
                threads: Threads::Rayon,
                step: 0,
                plans: Vec::new(),
                replica: 0,
                convs: 0,
                exchange_local: Vec::new(),
                channel_coef: Vec::new(),
                exchange_global: Vec::new(),
                share: 1.0,
                precision: Precision::Float32,
                bf16_bufs: Default::default(),
                rounded: Vec::new(),
            },
            backs: Vec::new(),
            outs: Vec::new(),
            used: 0,
            profile: None,
            grad_enabled: true,
            rng: ChaCha8Rng::seed_from_u64(0),
            assigns: Vec::new(),
            paused_at: None,
        }
    }

    /// The kernel table in use.
    pub fn kernels(&self) -> &'static Kernels {
        self.st.kernels
    }

    /// Switches to another kernel table.
    pub fn set_kernels(&mut self, kernels: &'static Kernels) {
        self.st.kernels = kernels;
        self.st.plans.clear();
    }

    /// Sets the convolution algorithm choice and threading used by `conv2d` (default: `Auto`, rayon).
    pub fn set_conv_options(&mut self, opts: ConvOptions) {
        self.st.conv = opts;
    }

    /// The convolution options in use.
    pub fn conv_options(&self) -> ConvOptions {
        self.st.conv
    }

    /// Marks this tape as data-parallel replica `r`: its large parameter gradients are placed apart from the other
    /// replica's within a page, so the optimizer step that reads both does not suffer 4K aliasing.
    pub fn set_replica(&mut self, r: usize) {
        self.st.replica = r;
    }

    /// Sets the threading of every kernel (GEMMs and convolutions): `Threads::Single` keeps all work on the
    /// calling thread, `Threads::Rayon` (default) splits large kernels over the current rayon pool. Results are
    /// bitwise identical either way.
    pub fn set_threads(&mut self, threads: Threads) {
        self.st.threads = threads;
        self.st.conv = self.st.conv.threads(threads);
    }

    /// The numeric policy of the layers recording on this tape ([`Precision::Float32`] by default).
    pub fn set_precision(&mut self, precision: Precision) {
        self.st.precision = precision;
    }

    /// The numeric policy in use.
    pub fn precision(&self) -> Precision {
        self.st.precision
    }

    /// The kernels' threading policy.
    pub fn threads(&self) -> Threads {
        self.st.threads
    }

    /// Turns on (or off) timing of each recorded backward step, read with [`Tape::backward_times`].
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(Vec::new);
    }

    /// With profiling on: the wall time of each backward record of the last backward pass, by record index
    /// (zero for records that were skipped).
    pub fn backward_times(&self) -> &[Duration] {
        self.profile.as_deref().unwrap_or(&[])
    }

    /// Re-seeds the generator used by dropout (a data-parallel replica is seeded from the model's seed, the
    /// step and its replica index, so its masks are its own and repeat with the seed).
    pub fn seed(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// This replica's share of a data-parallel batch (its samples ÷ the batch's; 1 by default): the weight of its
    /// gradient partial sums in a whole-batch exchange ([`Recording::exchange`]).
    pub fn set_share(&mut self, share: f64) {
        self.st.share = share;
    }

    /// Whether operations are recorded for differentiation (true by default).
    pub fn grad_enabled(&self) -> bool {
        self.grad_enabled
    }

    /// Turns recording on or off; with it off (inference) nothing is recorded and no value requires a gradient.
    pub fn set_grad_enabled(&mut self, on: bool) {
        self.grad_enabled = on;
    }

    /// Starts a new step reading the parameter values of `params`: forgets every [`Var`] of the previous step
    /// (using an old one is an error) and every parameter gradient, keeping all memory for reuse.
    pub fn record<'t, 'p>(&'t mut self, params: &'p Params) -> Recording<'t, 'p> {
        self.reset(params.len());
        Recording { tape: self, params, borrowed: [&[]; MAX_BORROWED], n_borrowed: 0 }
    }

    fn reset(&mut self, params: usize) {
        self.st.nodes.clear();
        self.st.next_buf = 0;
        self.st.step = self.st.step.wrapping_add(1);
        self.st.convs = 0;
        self.used = 0;
        self.outs.clear();
        self.assigns.clear();
        self.paused_at = None;
        if self.st.grads.len() < params {
            self.st.grads.resize_with(params, ParamGrad::default);
        }
        for g in &mut self.st.grads {
            g.written = false;
        }
    }

    /// Number of backward records made so far in this step (to attribute records to layers).
    pub fn record_count(&self) -> usize {
        self.used
    }

    /// A parameter's gradient from the last backward pass, or `None` if it received none.
    pub fn param_grad(&self, id: ParamId) -> Option<&[f32]> {
        self.st.grads.get(id.index()).filter(|g| g.written).map(|g| g.buf.as_slice())
    }

    /// The values the last step assigned to parameters ([`Recording::assign`]), in the order they were recorded.
    pub fn assignments(&self) -> impl Iterator<Item = (ParamId, &[f32])> + '_ {
        self.assigns.iter().filter_map(|&(id, v)| {
            let n = self.st.nodes.get(v.index as usize).filter(|_| v.step == self.st.step)?;
            match n.value {
                Loc::Buf(i) => Some((id, &self.st.bufs[i].as_slice()[..n.dims.numel()])),
                _ => None,
            }
        })
    }

    /// Records the backward step of `out`, reusing last step's box at this position when it holds the same type.
    pub(crate) fn push_record<B: Backward>(&mut self, out: Var, b: B) {
        let i = self.used;
        if i < self.backs.len() {
            let slot: &mut dyn Any = self.backs[i].as_mut();
            match slot.downcast_mut::<B>() {
                Some(s) => *s = b,
                None => self.backs[i] = Box::new(b),
            }
        } else {
            self.backs.push(Box::new(b));
        }
        self.outs.push(out);
        self.used += 1;
    }
}
