//! The [`Tape`]: values, parameters, gradients and the recorded [`Backward`] steps of one training step, kept
//! and reused from step to step.
//!
//! Memory is reused, not freed: every value and gradient lives in an arena of aligned buffers handed out in
//! order, and [`Tape::reset`] only rewinds the arena. A training step that records the same operations on the
//! same shapes as the step before therefore touches the allocator not at all: the buffers, the node list and
//! even the boxed [`Backward`] records (overwritten in place when the type matches) are recycled.

use std::any::Any;

use std::time::{Duration, Instant};

use kiln_kernels::{AlignedVec, ConvOptions, Kernels, Threads};
use kiln_tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backward::{Backward, Grads};
use crate::dims::Dims;
use crate::error::{AutogradError, Result};

/// A value recorded on a [`Tape`] during the current step (a cheap copyable handle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Var {
    pub(crate) index: u32,
    pub(crate) step: u32,
}

/// A trainable (or frozen) parameter held by a [`Tape`] across steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub(crate) u32);

impl ParamId {
    /// The parameter's position in registration order.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The id of the `i`-th registered parameter (an error at use if there is none).
    pub fn from_index(i: usize) -> ParamId {
        ParamId(u32::try_from(i).unwrap_or(u32::MAX))
    }
}

/// Where a value or gradient lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    /// Arena buffer.
    Buf(usize),
    /// A parameter's value (for values) or gradient (for gradients).
    Param(usize),
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
}

/// A parameter: its value and gradient, persistent across steps.
#[derive(Clone)]
pub(crate) struct Param {
    pub(crate) name: String,
    pub(crate) dims: Dims,
    pub(crate) value: AlignedVec,
    pub(crate) grad: AlignedVec,
    pub(crate) grad_written: bool,
    pub(crate) trainable: bool,
}

/// One parameter seen from a tape and its replica ([`Tape::zip_replica_mut`]).
#[derive(Debug)]
pub struct ReplicaParam<'a> {
    /// This tape's value.
    pub value: &'a mut [f32],
    /// This tape's gradient buffer (meaningful only when `grad_written`).
    pub grad: &'a mut [f32],
    /// Whether this tape's gradient was written in the last backward pass.
    pub grad_written: bool,
    /// Whether the parameter is trainable.
    pub trainable: bool,
    /// The replica's value.
    pub replica_value: &'a mut [f32],
    /// The replica's gradient (meaningful only when `replica_grad_written`).
    pub replica_grad: &'a [f32],
    /// Whether the replica's gradient was written.
    pub replica_grad_written: bool,
}

/// Everything a [`Backward`] step may read: node values, dimensions and gradients.
pub struct State {
    pub(crate) nodes: Vec<Node>,
    pub(crate) bufs: Vec<AlignedVec>,
    pub(crate) next_buf: usize,
    pub(crate) params: Vec<Param>,
    pub(crate) scratch: AlignedVec,
    pub(crate) kernels: &'static Kernels,
    pub(crate) conv: ConvOptions,
    pub(crate) threads: Threads,
    pub(crate) step: u32,
}

/// A reverse-mode tape (see the [crate docs](crate) for an example).
pub struct Tape {
    pub(crate) st: State,
    backs: Vec<Box<dyn Backward>>,
    outs: Vec<Var>,
    used: usize,
    profile: Option<Vec<Duration>>,
    grad_enabled: bool,
    training: bool,
    pub(crate) rng: ChaCha8Rng,
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

    /// The value of `v`.
    pub fn value(&self, v: Var) -> &[f32] {
        let n = &self.nodes[v.index as usize];
        match n.value {
            Loc::Buf(i) => &self.bufs[i].as_slice()[..n.dims.numel()],
            Loc::Param(p) => self.params[p].value.as_slice(),
        }
    }

    /// The gradient of `v` accumulated so far (empty when nothing has been written yet).
    pub fn grad(&self, v: Var) -> &[f32] {
        let n = &self.nodes[v.index as usize];
        if !n.grad_written {
            return &[];
        }
        match n.grad {
            Some(Loc::Buf(i)) => &self.bufs[i].as_slice()[..n.dims.numel()],
            Some(Loc::Param(p)) => self.params[p].grad.as_slice(),
            None => &[],
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
            Loc::Param(p) => std::mem::take(&mut self.params[p].grad),
        }
    }

    fn put(&mut self, loc: Loc, buf: AlignedVec) {
        match loc {
            Loc::Buf(i) => self.bufs[i] = buf,
            Loc::Param(p) => self.params[p].grad = buf,
        }
    }

    /// Runs `f(state, gradient buffer, accumulate)` on the gradient of `v`: `accumulate` is false the first time
    /// (the buffer holds stale data and must be overwritten) and true afterwards (add to it).
    pub(crate) fn update_grad(&mut self, v: Var, f: impl FnOnce(&State, &mut [f32], bool) -> Result<()>) -> Result<()> {
        let idx = v.index as usize;
        let node = self.nodes[idx];
        if !node.requires_grad {
            return Ok(());
        }
        let loc = match node.grad {
            Some(loc) => loc,
            None => {
                let loc = Loc::Buf(self.alloc("gradient", node.dims.numel())?);
                self.nodes[idx].grad = Some(loc);
                loc
            }
        };
        let accumulate = match loc {
            Loc::Param(p) => self.params[p].grad_written,
            Loc::Buf(_) => node.grad_written,
        };
        let mut buf = self.take(loc);
        let res = f(self, &mut buf.as_mut_slice()[..node.dims.numel()], accumulate);
        self.put(loc, buf);
        res?;
        self.nodes[idx].grad_written = true;
        if let Loc::Param(p) = loc {
            self.params[p].grad_written = true;
        }
        Ok(())
    }

    /// Like [`State::update_grad`] for kernels that can only overwrite: on accumulation the result goes through
    /// a scratch buffer and is added.
    pub(crate) fn set_grad(&mut self, v: Var, f: impl FnOnce(&State, &mut [f32]) -> Result<()>) -> Result<()> {
        let n = self.nodes[v.index as usize];
        if !n.requires_grad {
            return Ok(());
        }
        let written = match n.grad {
            Some(Loc::Param(p)) => self.params[p].grad_written,
            _ => n.grad_written,
        };
        if !written {
            return self.update_grad(v, |st, g, _| f(st, g));
        }
        let len = n.dims.numel();
        let mut scratch = std::mem::take(&mut self.scratch);
        if scratch.len() < len {
            scratch.try_resize(len, 0.0).map_err(|_| AutogradError::Alloc { what: "scratch", elements: len })?;
        }
        let res = f(self, &mut scratch.as_mut_slice()[..len]);
        let res = res.and_then(|()| {
            self.update_grad(v, |_, g, _| {
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
                params: Vec::new(),
                scratch: AlignedVec::new(),
                kernels,
                conv: ConvOptions::default(),
                threads: Threads::Rayon,
                step: 0,
            },
            backs: Vec::new(),
            outs: Vec::new(),
            used: 0,
            profile: None,
            grad_enabled: true,
            training: true,
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }

    /// The kernel table in use.
    pub fn kernels(&self) -> &'static Kernels {
        self.st.kernels
    }

    /// Switches to another kernel table (parameters are kept).
    pub fn set_kernels(&mut self, kernels: &'static Kernels) {
        self.st.kernels = kernels;
    }

    /// Sets the convolution algorithm choice and threading used by `conv2d` (default: `Auto`, rayon).
    pub fn set_conv_options(&mut self, opts: ConvOptions) {
        self.st.conv = opts;
    }

    /// Sets the threading of every kernel (GEMMs and convolutions): `Threads::Single` keeps all work on the
    /// calling thread, `Threads::Rayon` (default) splits large kernels over the current rayon pool. Results are
    /// bitwise identical either way.
    pub fn set_threads(&mut self, threads: Threads) {
        self.st.threads = threads;
        self.st.conv = self.st.conv.threads(threads);
    }

    /// The kernels' threading policy.
    pub fn threads(&self) -> Threads {
        self.st.threads
    }

    /// Turns on (or off) timing of each recorded backward step, read with [`Tape::backward_times`].
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(Vec::new);
    }

    /// Number of backward records made so far in this step (to attribute records to layers).
    pub fn record_count(&self) -> usize {
        self.used
    }

    /// With profiling on: the wall time of each backward record of the last [`Tape::backward`], by record index
    /// (zero for records that were skipped).
    pub fn backward_times(&self) -> &[Duration] {
        self.profile.as_deref().unwrap_or(&[])
    }

    /// Re-seeds the generator used by dropout.
    pub fn seed(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// Whether operations are recorded for differentiation (true by default).
    pub fn grad_enabled(&self) -> bool {
        self.grad_enabled
    }

    /// Turns recording on or off; with it off (inference, `no_grad`) nothing is recorded and no value requires
    /// a gradient.
    pub fn set_grad_enabled(&mut self, on: bool) {
        self.grad_enabled = on;
    }

    /// Runs `f` with recording off, then restores the previous setting.
    pub fn no_grad<R>(&mut self, f: impl FnOnce(&mut Tape) -> R) -> R {
        let prev = self.grad_enabled;
        self.grad_enabled = false;
        let r = f(self);
        self.grad_enabled = prev;
        r
    }

    /// Training mode (dropout active) or inference mode.
    pub fn training(&self) -> bool {
        self.training
    }

    /// Sets training mode.
    pub fn set_training(&mut self, on: bool) {
        self.training = on;
    }

    /// Starts a new step: forgets every [`Var`] (using an old one is an error) and every parameter gradient,
    /// keeping all memory for reuse.
    pub fn reset(&mut self) {
        self.st.nodes.clear();
        self.st.next_buf = 0;
        self.st.step = self.st.step.wrapping_add(1);
        self.used = 0;
        self.outs.clear();
        for p in &mut self.st.params {
            p.grad_written = false;
        }
    }

    /// Read access to values and gradients.
    pub fn state(&self) -> &State {
        &self.st
    }

    // ---- parameters -------------------------------------------------------------------------------------------

    /// Registers a parameter with its initial value; it persists across [`Tape::reset`].
    pub fn add_param(&mut self, name: impl Into<String>, value: &Tensor, trainable: bool) -> Result<ParamId> {
        let dims = Dims::new(value.dims())?;
        let data = AlignedVec::try_from_slice(value.as_slice())
            .map_err(|_| AutogradError::Alloc { what: "parameter", elements: value.len() })?;
        let grad = AlignedVec::try_zeros(value.len())
            .map_err(|_| AutogradError::Alloc { what: "parameter gradient", elements: value.len() })?;
        let id = ParamId(self.st.params.len() as u32);
        self.st.params.push(Param { name: name.into(), dims, value: data, grad, grad_written: false, trainable });
        Ok(id)
    }

    fn param_ref(&self, id: ParamId) -> Result<&Param> {
        self.st.params.get(id.index()).ok_or(AutogradError::UnknownParam { index: id.0 })
    }

    /// Number of parameters registered.
    pub fn num_params(&self) -> usize {
        self.st.params.len()
    }

    /// A parameter's name.
    pub fn param_name(&self, id: ParamId) -> Result<&str> {
        Ok(&self.param_ref(id)?.name)
    }

    /// A parameter's dimensions.
    pub fn param_dims(&self, id: ParamId) -> Result<Dims> {
        Ok(self.param_ref(id)?.dims)
    }

    /// A parameter's current value.
    pub fn param_value(&self, id: ParamId) -> Result<&[f32]> {
        Ok(self.param_ref(id)?.value.as_slice())
    }

    /// A parameter's gradient from the last [`Tape::backward`], or `None` if it received none.
    pub fn param_grad(&self, id: ParamId) -> Result<Option<&[f32]>> {
        let p = self.param_ref(id)?;
        Ok(p.grad_written.then(|| p.grad.as_slice()))
    }

    /// Whether a parameter is trainable.
    pub fn param_trainable(&self, id: ParamId) -> Result<bool> {
        Ok(self.param_ref(id)?.trainable)
    }

    /// Overwrites a parameter's value; the length must match.
    pub fn set_param_value(&mut self, id: ParamId, value: &[f32]) -> Result<()> {
        let p = self.st.params.get_mut(id.index()).ok_or(AutogradError::UnknownParam { index: id.0 })?;
        if p.value.len() != value.len() {
            return Err(AutogradError::Shape {
                op: "set_param_value",
                what: "parameter value",
                expected: format!("{} elements for {}", p.value.len(), p.name),
                got: Dims::new(&[value.len()])?,
            });
        }
        p.value.copy_from_slice(value);
        Ok(())
    }

    /// Visits every parameter with its mutable value and its gradient (`None` if it received none) — what an
    /// optimizer step needs.
    pub fn for_each_param_mut(
        &mut self,
        mut f: impl FnMut(ParamId, &mut [f32], Option<&[f32]>) -> Result<()>,
    ) -> Result<()> {
        for (i, p) in self.st.params.iter_mut().enumerate() {
            let grad = (p.grad_written && p.trainable).then(|| p.grad.as_slice());
            f(ParamId(i as u32), p.value.as_mut_slice(), grad)?;
        }
        Ok(())
    }

    /// A new tape with the same kernels, settings and parameters (names, shapes, current values), for a
    /// data-parallel replica: the same [`ParamId`]s refer to the same parameters on both.
    pub fn fork(&self) -> Tape {
        let mut t = Tape::with_kernels(self.st.kernels);
        t.st.conv = self.st.conv;
        t.st.threads = self.st.threads;
        t.st.params = self.st.params.clone();
        for p in &mut t.st.params {
            p.grad_written = false;
        }
        t
    }

    /// Copies every parameter value from `other` (a [`Tape::fork`] of this tape); no allocation.
    pub fn copy_params_from(&mut self, other: &Tape) -> Result<()> {
        self.check_same_params(other)?;
        for (p, q) in self.st.params.iter_mut().zip(&other.st.params) {
            p.value.copy_from_slice(&q.value);
        }
        Ok(())
    }

    /// Combines parameter gradients with a replica's: `g = a·g + b·g_other` for every parameter (a gradient that
    /// was not written counts as zero), in a fixed order, so the result does not depend on which thread ran which
    /// replica. Used to average the gradients of a batch split across replicas (`a = n₀/n`, `b = n₁/n`).
    pub fn combine_grads(&mut self, other: &Tape, a: f32, b: f32) -> Result<()> {
        self.check_same_params(other)?;
        for (p, q) in self.st.params.iter_mut().zip(&other.st.params) {
            match (p.grad_written, q.grad_written) {
                (true, true) => {
                    for (g, &h) in p.grad.iter_mut().zip(q.grad.iter()) {
                        *g = a * *g + b * h;
                    }
                }
                (true, false) => p.grad.iter_mut().for_each(|g| *g *= a),
                (false, true) => {
                    for (g, &h) in p.grad.iter_mut().zip(q.grad.iter()) {
                        *g = b * h;
                    }
                    p.grad_written = true;
                }
                (false, false) => {}
            }
        }
        Ok(())
    }

    /// Visits every parameter together with the same parameter of `replica` (a [`Tape::fork`]), with mutable
    /// access to both values and to this tape's gradient — what a fused "average the replicas' gradients, step,
    /// copy the new weights to the replica" pass needs. After the visit, a gradient counts as written here when
    /// either side had one (the visitor is expected to have combined them as [`Tape::combine_grads`] does).
    pub fn zip_replica_mut(
        &mut self,
        replica: &mut Tape,
        mut f: impl FnMut(ParamId, ReplicaParam<'_>) -> Result<()>,
    ) -> Result<()> {
        self.check_same_params(replica)?;
        for (i, (p, q)) in self.st.params.iter_mut().zip(replica.st.params.iter_mut()).enumerate() {
            f(
                ParamId(i as u32),
                ReplicaParam {
                    value: p.value.as_mut_slice(),
                    grad: p.grad.as_mut_slice(),
                    grad_written: p.grad_written,
                    trainable: p.trainable,
                    replica_value: q.value.as_mut_slice(),
                    replica_grad: q.grad.as_slice(),
                    replica_grad_written: q.grad_written,
                },
            )?;
            p.grad_written |= q.grad_written;
        }
        Ok(())
    }

    fn check_same_params(&self, other: &Tape) -> Result<()> {
        let same = self.st.params.len() == other.st.params.len()
            && self.st.params.iter().zip(&other.st.params).all(|(p, q)| p.dims == q.dims);
        if same {
            Ok(())
        } else {
            Err(AutogradError::Parameter {
                op: "replica",
                what: "parameter count",
                value: other.st.params.len() as f64,
                expected: "the same parameters as this tape (a fork)",
            })
        }
    }

    // ---- recording --------------------------------------------------------------------------------------------

    pub(crate) fn check(&self, op: &'static str, v: Var) -> Result<Dims> {
        Ok(self.st.node(op, v)?.dims)
    }

    pub(crate) fn requires(&self, vars: &[Var]) -> bool {
        self.grad_enabled && vars.iter().any(|&v| self.st.nodes[v.index as usize].requires_grad)
    }

    pub(crate) fn push_node(&mut self, dims: Dims, value: Loc, requires_grad: bool) -> Var {
        let index = self.st.nodes.len() as u32;
        let grad = match value {
            Loc::Param(p) => Some(Loc::Param(p)),
            Loc::Buf(_) => None,
        };
        self.st.nodes.push(Node { dims, value, grad, grad_written: false, requires_grad, softmax_of: None });
        Var { index, step: self.st.step }
    }

    /// Allocates an output of `dims`, fills it with `f(state, out)` and records it as a new node.
    pub(crate) fn compute(
        &mut self,
        what: &'static str,
        dims: Dims,
        requires_grad: bool,
        f: impl FnOnce(&State, &mut [f32]) -> Result<()>,
    ) -> Result<Var> {
        let i = self.st.alloc(what, dims.numel())?;
        let mut buf = std::mem::take(&mut self.st.bufs[i]);
        let res = f(&self.st, buf.as_mut_slice());
        self.st.bufs[i] = buf;
        res?;
        Ok(self.push_node(dims, Loc::Buf(i), requires_grad))
    }

    /// Records the backward step of `out`, reusing last step's box at this position when it holds the same type.
    pub(crate) fn record<B: Backward>(&mut self, out: Var, b: B) {
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

    /// A constant input (no gradient) holding a copy of `data`.
    pub fn input(&mut self, dims: &[usize], data: &[f32]) -> Result<Var> {
        let d = Dims::new(dims)?;
        if data.len() != d.numel() {
            return Err(AutogradError::Shape {
                op: "input",
                what: "data length",
                expected: format!("{} elements", d.numel()),
                got: Dims::new(&[data.len()])?,
            });
        }
        self.compute("input", d, false, |_, out| {
            out.copy_from_slice(data);
            Ok(())
        })
    }

    /// A constant input of `dims` filled in place by `fill` (avoids a copy when gathering a batch).
    pub fn input_with(&mut self, dims: &[usize], fill: impl FnOnce(&mut [f32])) -> Result<Var> {
        let d = Dims::new(dims)?;
        self.compute("input", d, false, |_, out| {
            fill(out);
            Ok(())
        })
    }

    /// A constant input copied from a tensor.
    pub fn tensor(&mut self, t: &Tensor) -> Result<Var> {
        self.input(t.dims(), t.as_slice())
    }

    /// A leaf variable that *is* the parameter `id` (no copy): its gradient lands in the parameter's gradient.
    pub fn param(&mut self, id: ParamId) -> Result<Var> {
        let p = self.param_ref(id)?;
        let (dims, trainable) = (p.dims, p.trainable);
        let req = self.grad_enabled && trainable;
        Ok(self.push_node(dims, Loc::Param(id.index()), req))
    }

    /// A variable of another shape over the same values (no copy); the gradient flows back unchanged.
    pub fn reshape(&mut self, x: Var, dims: &[usize]) -> Result<Var> {
        let xd = self.check("reshape", x)?;
        let d = Dims::new(dims)?;
        if d.numel() != xd.numel() {
            return Err(AutogradError::Shape {
                op: "reshape",
                what: "element count",
                expected: format!("{} elements", d.numel()),
                got: xd,
            });
        }
        let req = self.requires(&[x]);
        let value = self.st.nodes[x.index as usize].value;
        let out = self.push_node(d, value, req);
        if req {
            self.record(out, crate::ops::reshape::ReshapeBackward { x });
        }
        Ok(out)
    }

    /// Keras `Flatten`: `(n, d1, d2, …)` → `(n, d1·d2·…)`, row-major (for NHWC: H, W, then C fastest).
    pub fn flatten(&mut self, x: Var) -> Result<Var> {
        let xd = self.check("flatten", x)?;
        if xd.rank() < 1 {
            return Err(AutogradError::Shape { op: "flatten", what: "rank", expected: "rank ≥ 1".into(), got: xd });
        }
        let n = xd.get(0);
        let rest = xd.as_slice()[1..].iter().product();
        self.reshape(x, &[n, rest])
    }

    /// The dimensions of `v`.
    pub fn dims(&self, v: Var) -> Result<Dims> {
        self.check("dims", v)
    }

    /// The value of `v`.
    pub fn value(&self, v: Var) -> Result<&[f32]> {
        self.check("value", v)?;
        Ok(self.st.value(v))
    }

    /// The value of `v` copied into a tensor.
    pub fn to_tensor(&self, v: Var) -> Result<Tensor> {
        let d = self.check("to_tensor", v)?;
        Ok(Tensor::from_slice(d.as_slice(), self.st.value(v))?)
    }

    /// The gradient of `v` after [`Tape::backward`] (`None` if it received none).
    pub fn grad(&self, v: Var) -> Result<Option<&[f32]>> {
        let n = self.st.node("grad", v)?;
        Ok(n.grad_written.then(|| self.st.grad(v)))
    }

    /// Back-propagates from the single-element `loss`: fills the gradient of every recorded value and of every
    /// trainable parameter it depends on (parameter gradients are overwritten by the first contribution of the
    /// step and summed after that).
    pub fn backward(&mut self, loss: Var) -> Result<()> {
        let d = self.check("backward", loss)?;
        if d.numel() != 1 {
            return Err(AutogradError::NotScalar { dims: d });
        }
        self.backward_from(loss, &[1.0])
    }

    /// Back-propagates from any value `out` whose gradient is given as `seed` (same number of elements): the
    /// vector-Jacobian product of PyTorch's `out.backward(seed)`.
    pub fn backward_from(&mut self, out: Var, seed: &[f32]) -> Result<()> {
        let d = self.check("backward", out)?;
        if seed.len() != d.numel() {
            return Err(AutogradError::Shape {
                op: "backward",
                what: "seed gradient",
                expected: format!("{} elements", d.numel()),
                got: Dims::new(&[seed.len()])?,
            });
        }
        if !self.st.nodes[out.index as usize].requires_grad {
            return Err(AutogradError::NoGradient);
        }
        self.st.update_grad(out, |_, g, acc| {
            for (g, &s) in g.iter_mut().zip(seed) {
                if acc { *g += s } else { *g = s }
            }
            Ok(())
        })?;
        if let Some(p) = &mut self.profile {
            p.clear();
            p.resize(self.used, Duration::ZERO);
        }
        for i in (0..self.used).rev() {
            let out = self.outs[i];
            if !self.st.nodes[out.index as usize].grad_written {
                continue;
            }
            let start = self.profile.is_some().then(Instant::now);
            self.backs[i].backward(out, &mut Grads { st: &mut self.st })?;
            if let (Some(p), Some(t)) = (&mut self.profile, start) {
                p[i] = t.elapsed();
            }
        }
        Ok(())
    }
}
