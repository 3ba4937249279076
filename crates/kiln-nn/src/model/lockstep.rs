//! A training step whose replicas meet at whole-batch statistics (BatchNormalization): the forward pass runs
//! per replica in segments that end at a statistics layer, where the replicas' partial sums are added in replica
//! order and handed back to each; the backward pass stops at the same layers for the sums of their gradients.
//! The sums are added in the same fixed order whether the replicas run on two threads or one after the other, so
//! the step's bits do not depend on the thread count.

use kiln_autograd::{Backprop, Params, Recording, Tape, Var};

use super::engine::{Net, Values};
use crate::error::{NnError, Result};

/// Runs `f0` and `f1` on two threads (`parallel`) or one after the other.
fn both<A: Send, B: Send>(parallel: bool, f0: impl FnOnce() -> A + Send, f1: impl FnOnce() -> B + Send) -> (A, B) {
    if parallel { crate::parallel::join_balanced(f0, f1) } else { (f0(), f1()) }
}

/// Adds the two replicas' partial sums (replica 0's first) and gives each the total.
fn exchange(sums: &mut Vec<f64>, r0: &mut Recording<'_, '_>, r1: &mut Recording<'_, '_>) -> Result<()> {
    let (a, b) = (r0.exchange(), r1.exchange());
    if a.len() != b.len() {
        return Err(NnError::config("model", "the replicas' batch statistics differ in size"));
    }
    sums.clear();
    sums.extend(a.iter().zip(b).map(|(a, b)| a + b));
    r0.set_exchange_global(sums);
    r1.set_exchange_global(sums);
    Ok(())
}

/// One replica's share of a lockstep step.
pub(crate) struct Part<'d> {
    pub(crate) seed: u64,
    pub(crate) share: f32,
    pub(crate) x: &'d [f32],
    pub(crate) y: &'d [f32],
    pub(crate) batch: usize,
}

impl Net<'_> {
    /// Whether a training step must run its replicas in lockstep (some layer uses whole-batch statistics).
    pub(crate) fn needs_lockstep(&self) -> bool {
        self.layers.iter().any(|s| s.layer.batch_statistics())
    }

    /// The layers `from..to` of one replica's forward pass, after finishing the statistics layer `pending` (whose
    /// whole-batch sums are set) and before the statistics layer `to` (whose partial sums it leaves in the
    /// exchange), if any. Slots are in an order where every layer follows its inputs, so the layers before `to`
    /// have all they read.
    fn segment(
        &self,
        rec: &mut Recording<'_, '_>,
        values: &mut Values,
        pending: Option<usize>,
        from: usize,
        to: usize,
    ) -> Result<()> {
        if let Some(i) = pending {
            let slot = &self.layers[i];
            let v = slot.layer.forward_global(rec, values.get(slot.inputs[0]))?;
            values.push(v);
        }
        for slot in &self.layers[from..to] {
            values.call(rec, slot, true)?;
        }
        if let Some(slot) = self.layers.get(to) {
            slot.layer.forward_partials(rec, values.get(slot.inputs[0]))?;
        }
        Ok(())
    }

    /// The loss variable, its value and the correct predictions of one replica's output.
    fn outcome<'p>(
        &self,
        rec: &mut Recording<'_, 'p>,
        out: Var,
        y: &'p [f32],
        batch: usize,
    ) -> Result<(Var, f32, usize)> {
        let l = self.loss(rec, out, y, batch)?;
        Ok((l, rec.value(l)?[0], self.correct(rec, out, y)?))
    }

    /// Both replicas' parts of a training step in lockstep (see the module docs); returns each one's mean loss
    /// and correct predictions. `sums` is reused between steps.
    pub(crate) fn train_lockstep(
        &self,
        replicas: [(&mut Tape, &mut Values); 2],
        params: &Params,
        parts: [Part<'_>; 2],
        parallel: bool,
        prefetch: Option<&mut (dyn FnMut() + Send)>,
        sums: &mut Vec<f64>,
    ) -> Result<[(f32, usize); 2]> {
        let [(t0, vals0), (t1, vals1)] = replicas;
        for (t, p) in [&mut *t0, &mut *t1].into_iter().zip(&parts) {
            t.seed(p.seed);
            t.set_grad_enabled(true);
            t.set_share(f64::from(p.share));
        }
        let [p0, p1] = parts;
        let (mut r0, mut r1) = (t0.record(params), t1.record(params));
        let (d0, k0) = Self::batch_dims(p0.batch, self.input_shape);
        let (d1, k1) = Self::batch_dims(p1.batch, self.input_shape);
        vals0.start(r0.input_ref(&d0[..k0], p0.x)?);
        vals1.start(r1.input_ref(&d1[..k1], p1.x)?);
        let mut prefetch = prefetch;
        let (mut from, mut pending) = (0, None);
        loop {
            let to = (from..self.layers.len())
                .find(|&i| self.layers[i].layer.batch_statistics())
                .unwrap_or(self.layers.len());
            let pf = prefetch.take();
            let (a, b) = both(
                parallel,
                || {
                    let done = self.segment(&mut r0, vals0, pending, from, to);
                    if let Some(f) = pf {
                        f();
                    }
                    done
                },
                || self.segment(&mut r1, vals1, pending, from, to),
            );
            a?;
            b?;
            if to == self.layers.len() {
                break;
            }
            exchange(sums, &mut r0, &mut r1)?;
            (from, pending) = (to + 1, Some(to));
        }
        let (v0, v1) = (vals0.last(), vals1.last());
        let (a, b) =
            both(parallel, || self.outcome(&mut r0, v0, p0.y, p0.batch), || self.outcome(&mut r1, v1, p1.y, p1.batch));
        let ((l0, loss0, c0), (l1, loss1, c1)) = (a?, b?);
        if loss0.is_finite() && loss1.is_finite() {
            let (mut a, mut b) = both(parallel, || r0.backward_begin(l0, &[1.0]), || r1.backward_begin(l1, &[1.0]));
            loop {
                match (a?, b?) {
                    (Backprop::Done, Backprop::Done) => break,
                    (Backprop::Exchange, Backprop::Exchange) => {
                        exchange(sums, &mut r0, &mut r1)?;
                        (a, b) = both(parallel, || r0.backward_resume(), || r1.backward_resume());
                    }
                    _ => return Err(NnError::config("model", "the replicas' backward passes diverged")),
                }
            }
        }
        Ok([(loss0, c0), (loss1, c1)])
    }
}
