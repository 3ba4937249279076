//! [`Recording`]: one step on a [`Tape`], reading the parameter values of a [`Params`] store. Every operation
//! (`conv2d`, `dense`, `swish`, the losses, …) is a method of it, defined in [`ops`](crate::ops); this file holds
//! the leaves (inputs, parameters, reshapes), the backward pass and state assignment.

use std::time::{Duration, Instant};

use kiln_kernels::{Kernels, Threads};
use kiln_tensor::Tensor;

use crate::backward::{Backward, Grads};
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::params::{ParamId, Params};
use crate::tape::{Loc, MAX_BORROWED, Node, Tape, Var, View};

/// One step recorded on a [`Tape`] (from [`Tape::record`]), with the parameter values of `'p` borrowed for its
/// whole length: forward operations, then [`Recording::backward`]. Dropping it ends the step; the gradients stay
/// on the tape ([`Tape::param_grad`]) until the next recording.
pub struct Recording<'t, 'p> {
    pub(crate) tape: &'t mut Tape,
    pub(crate) params: &'p Params,
    pub(crate) borrowed: [&'p [f32]; MAX_BORROWED],
    pub(crate) n_borrowed: usize,
}

impl<'p> Recording<'_, 'p> {
    // ---- what the ops use ----------------------------------------------------------------------------------------

    pub(crate) fn check(&self, op: &'static str, v: Var) -> Result<Dims> {
        Ok(self.tape.st.node(op, v)?.dims)
    }

    pub(crate) fn requires(&self, vars: &[Var]) -> bool {
        self.tape.grad_enabled && vars.iter().any(|&v| self.tape.st.nodes[v.index as usize].requires_grad)
    }

    pub(crate) fn push_node(&mut self, dims: Dims, value: Loc, requires_grad: bool) -> Var {
        let st = &mut self.tape.st;
        let index = st.nodes.len() as u32;
        let grad = match value {
            Loc::Param(p) => Some(Loc::Param(p)),
            _ => None,
        };
        st.nodes.push(Node { dims, value, grad, grad_written: false, requires_grad, softmax_of: None, bf16: false });
        Var { index, step: st.step }
    }

    /// The values of this step, for an operation's forward code.
    pub(crate) fn view(&self) -> View<'_> {
        View { st: &self.tape.st, params: self.params, borrowed: &self.borrowed[..self.n_borrowed] }
    }

    /// Allocates an output of `dims`, fills it with `f(view, out)` and records it as a new node.
    pub(crate) fn compute(
        &mut self,
        what: &'static str,
        dims: Dims,
        requires_grad: bool,
        f: impl FnOnce(&View<'_>, &mut [f32]) -> Result<()>,
    ) -> Result<Var> {
        let i = self.tape.st.alloc(what, dims.numel())?;
        let mut buf = std::mem::take(&mut self.tape.st.bufs[i]);
        let res = f(&self.view(), buf.as_mut_slice());
        self.tape.st.bufs[i] = buf;
        res?;
        Ok(self.push_node(dims, Loc::Buf(i), requires_grad))
    }

    /// Records the backward step of `out`.
    pub(crate) fn record<B: Backward>(&mut self, out: Var, b: B) {
        self.tape.push_record(out, b);
    }

    // ---- settings ------------------------------------------------------------------------------------------------

    /// The kernel table in use.
    pub fn kernels(&self) -> &'static Kernels {
        self.tape.st.kernels
    }

    /// The kernels' threading policy.
    pub fn threads(&self) -> Threads {
        self.tape.st.threads
    }

    /// Whether operations are recorded for differentiation.
    pub fn grad_enabled(&self) -> bool {
        self.tape.grad_enabled
    }

    /// Number of backward records made so far in this step (to attribute records to layers).
    pub fn record_count(&self) -> usize {
        self.tape.used
    }

    /// The parameter store this step reads.
    pub fn params(&self) -> &'p Params {
        self.params
    }

    // ---- leaves --------------------------------------------------------------------------------------------------

    fn check_len(dims: &[usize], len: usize) -> Result<Dims> {
        let d = Dims::new(dims)?;
        if len != d.numel() {
            return Err(AutogradError::Shape {
                op: "input",
                what: "data length",
                expected: format!("{} elements", d.numel()),
                got: Dims::new(&[len])?,
            });
        }
        Ok(d)
    }

    /// A constant input (no gradient) holding a copy of `data`.
    pub fn input(&mut self, dims: &[usize], data: &[f32]) -> Result<Var> {
        let d = Self::check_len(dims, data.len())?;
        self.compute("input", d, false, |_, out| {
            out.copy_from_slice(data);
            Ok(())
        })
    }

    /// A constant input of `dims` filled in place by `fill`.
    pub fn input_with(&mut self, dims: &[usize], fill: impl FnOnce(&mut [f32])) -> Result<Var> {
        let d = Dims::new(dims)?;
        self.compute("input", d, false, |_, out| {
            fill(out);
            Ok(())
        })
    }

    /// A constant input of `dims` filled in place by `fill` from the tape's seeded generator
    /// ([`Tape::seed`](crate::Tape::seed)): the random parameters of an augmentation layer, drawn like dropout's
    /// masks.
    pub fn input_random(
        &mut self,
        dims: &[usize],
        fill: impl FnOnce(&mut rand_chacha::ChaCha8Rng, &mut [f32]),
    ) -> Result<Var> {
        let d = Dims::new(dims)?;
        let i = self.tape.st.alloc("input", d.numel())?;
        fill(&mut self.tape.rng, &mut self.tape.st.bufs[i].as_mut_slice()[..d.numel()]);
        Ok(self.push_node(d, Loc::Buf(i), false))
    }

    /// A constant input that *is* `data` (no copy), borrowed for the step like the parameters — a batch
    /// gathered by the caller. At most four per step.
    pub fn input_ref(&mut self, dims: &[usize], data: &'p [f32]) -> Result<Var> {
        let d = Self::check_len(dims, data.len())?;
        if self.n_borrowed == MAX_BORROWED {
            return Err(AutogradError::Parameter {
                op: "input_ref",
                what: "borrowed inputs",
                value: (MAX_BORROWED + 1) as f64,
                expected: "at most four per step",
            });
        }
        self.borrowed[self.n_borrowed] = data;
        self.n_borrowed += 1;
        Ok(self.push_node(d, Loc::Borrowed(self.n_borrowed - 1), false))
    }

    /// A constant input copied from a tensor.
    pub fn tensor(&mut self, t: &Tensor) -> Result<Var> {
        self.input(t.dims(), t.as_slice())
    }

    /// A leaf variable that *is* the parameter `id` of the store (no copy): its gradient lands in the tape's
    /// gradient of that parameter ([`Tape::param_grad`]).
    pub fn param(&mut self, id: ParamId) -> Result<Var> {
        let dims = self.params.dims(id)?;
        let req = self.tape.grad_enabled && self.params.trainable(id)?;
        Ok(self.push_node(dims, Loc::Param(id.index()), req))
    }

    /// Keras `variable.assign(value)`: after this step the engine writes `value` into the parameter `id` (state
    /// such as a moving mean; [`Tape::assignments`] lists them). Shapes must match.
    pub fn assign(&mut self, id: ParamId, value: Var) -> Result<()> {
        let want = self.params.dims(id)?;
        let got = self.check("assign", value)?;
        if want != got {
            return Err(AutogradError::Shape { op: "assign", what: "value", expected: want.to_string(), got });
        }
        self.tape.assigns.push((id, value));
        Ok(())
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
        let value = self.tape.st.nodes[x.index as usize].value;
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

    // ---- reading -------------------------------------------------------------------------------------------------

    /// The dimensions of `v`.
    pub fn dims(&self, v: Var) -> Result<Dims> {
        self.check("dims", v)
    }

    /// The value of `v`.
    pub fn value(&self, v: Var) -> Result<&[f32]> {
        self.check("value", v)?;
        let n = &self.tape.st.nodes[v.index as usize];
        Ok(match n.value {
            Loc::Buf(i) => &self.tape.st.bufs[i].as_slice()[..n.dims.numel()],
            Loc::Param(p) => self.params.value(ParamId::from_index(p))?,
            Loc::Borrowed(i) => self.borrowed[i],
        })
    }

    /// The value of `v` copied into a tensor.
    pub fn to_tensor(&self, v: Var) -> Result<Tensor> {
        let d = self.check("to_tensor", v)?;
        Ok(Tensor::from_slice(d.as_slice(), self.value(v)?)?)
    }

    /// The gradient of `v` after [`Recording::backward`] (`None` if it received none).
    pub fn grad(&self, v: Var) -> Result<Option<&[f32]>> {
        let n = self.tape.st.node("grad", v)?;
        Ok(n.grad_written.then(|| self.tape.st.grad(v)))
    }

    /// A parameter's gradient so far in this step (`None` if it received none).
    pub fn param_grad(&self, id: ParamId) -> Option<&[f32]> {
        self.tape.param_grad(id)
    }

    // ---- the reverse pass ----------------------------------------------------------------------------------------

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
    /// vector-Jacobian product of PyTorch's `out.backward(seed)`. On one replica a whole-batch exchange is its own
    /// sums, so the pass runs to the end.
    pub fn backward_from(&mut self, out: Var, seed: &[f32]) -> Result<()> {
        let mut pass = self.backward_begin(out, seed)?;
        while pass == Backprop::Exchange {
            self.exchange_alone();
            pass = self.backward_resume()?;
        }
        Ok(())
    }

    /// Starts the backward pass from `out` with its gradient `seed` and runs it until it ends or a record needs
    /// whole-batch sums ([`Backprop::Exchange`]: read [`Recording::exchange`], set the sums over all replicas with
    /// [`Recording::set_exchange_global`], then [`Recording::backward_resume`]). How the data-parallel engine
    /// keeps replicas in lockstep.
    pub fn backward_begin(&mut self, out: Var, seed: &[f32]) -> Result<Backprop> {
        let d = self.check("backward", out)?;
        if seed.len() != d.numel() {
            return Err(AutogradError::Shape {
                op: "backward",
                what: "seed gradient",
                expected: format!("{} elements", d.numel()),
                got: Dims::new(&[seed.len()])?,
            });
        }
        let tape = &mut *self.tape;
        if !tape.st.nodes[out.index as usize].requires_grad {
            return Err(AutogradError::NoGradient);
        }
        let (params, borrowed) = (self.params, &self.borrowed[..self.n_borrowed]);
        tape.st.update_grad(params, borrowed, out, |_, g, acc| {
            for (g, &s) in g.iter_mut().zip(seed) {
                if acc { *g += s } else { *g = s }
            }
            Ok(())
        })?;
        if let Some(p) = &mut tape.profile {
            p.clear();
            p.resize(tape.used, Duration::ZERO);
        }
        tape.paused_at = None;
        let used = self.tape.used;
        self.run_backward(used)
    }

    /// Continues a backward pass stopped for an exchange, with the sums set by
    /// [`Recording::set_exchange_global`].
    pub fn backward_resume(&mut self) -> Result<Backprop> {
        let i = self.tape.paused_at.take().ok_or(AutogradError::NotPaused)?;
        self.run_record(i)?;
        self.run_backward(i)
    }

    /// This replica's partial sums of the current exchange (a forward statistics op or a paused backward pass).
    pub fn exchange(&self) -> &[f64] {
        &self.tape.st.exchange_local
    }

    /// Sets the sums over every replica for the current exchange (added in replica order by the caller).
    pub fn set_exchange_global(&mut self, sums: &[f64]) {
        let g = &mut self.tape.st.exchange_global;
        g.clear();
        g.extend_from_slice(sums);
    }

    /// On a single replica: the whole batch's sums of the current exchange are this replica's own.
    pub fn exchange_alone(&mut self) {
        let st = &mut self.tape.st;
        st.exchange_global.clone_from(&st.exchange_local);
    }

    /// Runs backward records `end − 1` down to 0, stopping at one that asks for an exchange.
    fn run_backward(&mut self, end: usize) -> Result<Backprop> {
        let (params, borrowed) = (self.params, &self.borrowed[..self.n_borrowed]);
        let tape = &mut *self.tape;
        for i in (0..end).rev() {
            let out = tape.outs[i];
            if !tape.st.nodes[out.index as usize].grad_written {
                continue;
            }
            let start = tape.profile.is_some().then(Instant::now);
            let exchange = tape.backs[i].partials(out, &mut Grads { st: &mut tape.st, params, borrowed })?;
            if exchange {
                if let (Some(p), Some(t)) = (&mut tape.profile, start) {
                    p[i] = t.elapsed();
                }
                tape.paused_at = Some(i);
                return Ok(Backprop::Exchange);
            }
            tape.backs[i].backward(out, &mut Grads { st: &mut tape.st, params, borrowed })?;
            if let (Some(p), Some(t)) = (&mut tape.profile, start) {
                p[i] = t.elapsed();
            }
        }
        Ok(Backprop::Done)
    }

    /// Runs the backward rule of record `i` (the second half of an exchanging record).
    fn run_record(&mut self, i: usize) -> Result<()> {
        let (params, borrowed) = (self.params, &self.borrowed[..self.n_borrowed]);
        let tape = &mut *self.tape;
        let out = tape.outs[i];
        let start = tape.profile.is_some().then(Instant::now);
        tape.backs[i].backward(out, &mut Grads { st: &mut tape.st, params, borrowed })?;
        if let (Some(p), Some(t)) = (&mut tape.profile, start) {
            p[i] += t.elapsed();
        }
        Ok(())
    }
}

/// How far [`Recording::backward_begin`] / [`Recording::backward_resume`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backprop {
    /// Every record ran: the gradients are complete.
    Done,
    /// Stopped at a record that needs sums over the whole batch (see [`Recording::exchange`]).
    Exchange,
}
