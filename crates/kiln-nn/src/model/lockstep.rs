//! A training step whose replicas meet at whole-batch statistics (BatchNormalization): the forward pass runs
//! per replica in segments that end at a statistics layer, where the replicas' partial sums are added in replica
//! order and handed back to each; the backward pass stops at the same layers for the sums of their gradients.
//! The sums are added in the same fixed order whether the replicas run on two threads or one after the other, so
//! the step's bits do not depend on the thread count; across ranks every rank's replicas' partial sums are
//! all-gathered and added in that same replica order ([`Meet::Across`]).

use kiln_autograd::{Backprop, Params, Recording, Tape, Var};
use smallvec::SmallVec;

use super::engine::{Net, Values};
use crate::distributed::Collective;
use crate::error::{NnError, Result};

/// A replica's recording and its forward values.
type Replica<'r, 't, 'p> = (Recording<'t, 'p>, &'r mut Values);

/// Per-replica values in replica order: inline for a process's usual one or two replicas (a step allocates
/// nothing), on the heap beyond.
type PerReplica<T> = SmallVec<[T; 2]>;

/// Runs `f` on each of this process's replicas, two at a time (on two threads when `parallel`), then `extra`
/// after the first replica's part.
fn each<'t, 'p, T: Send>(
    parallel: bool,
    reps: &mut [Replica<'_, 't, 'p>],
    extra: Option<&mut (dyn FnMut() + Send)>,
    f: impl Fn(usize, &mut Recording<'t, 'p>, &mut Values) -> T + Sync,
) -> PerReplica<T> {
    let mut out = PerReplica::new();
    let mut extra = extra;
    for pair in reps.chunks_mut(2) {
        let k = out.len();
        match pair {
            [(r0, v0), (r1, v1)] => {
                let pending = &mut extra;
                let mut first = || {
                    let a = f(k, r0, v0);
                    if let Some(e) = pending.take() {
                        e();
                    }
                    a
                };
                let (a, b) = if parallel {
                    crate::parallel::join_balanced(first, || f(k + 1, r1, v1))
                } else {
                    let a = first();
                    (a, f(k + 1, r1, v1))
                };
                out.push(a);
                out.push(b);
            }
            [(r0, v0)] => out.push(f(k, r0, v0)),
            _ => {}
        }
    }
    if let Some(e) = extra {
        e();
    }
    out
}

/// Where a lockstep step's partial sums meet: among this process's replicas, or among all replicas of all ranks.
pub(crate) enum Meet<'c> {
    /// This process's replicas are all the replicas.
    Local,
    /// The first `total` replicas of the ranks of `comm`, this rank's among them.
    Across { comm: &'c dyn Collective, total: usize },
}

/// `f64` values as pairs of `f32` bit patterns (a collective moves bits unchanged) and back.
fn push_f64_bits(out: &mut Vec<f32>, v: f64) {
    let b = v.to_bits();
    out.push(f32::from_bits(b as u32));
    out.push(f32::from_bits((b >> 32) as u32));
}

fn f64_of_bits(p: &[f32]) -> f64 {
    f64::from_bits(u64::from(p[0].to_bits()) | (u64::from(p[1].to_bits()) << 32))
}

/// Adds the replicas' partial sums in replica order and gives each replica the totals.
fn exchange(sums: &mut Vec<f64>, reps: &mut [Replica<'_, '_, '_>], meet: &Meet<'_>) -> Result<()> {
    let n = reps.first().map_or(0, |r| r.0.exchange().len());
    if reps.iter().any(|r| r.0.exchange().len() != n) {
        return Err(NnError::config("model", "the replicas' batch statistics differ in size"));
    }
    sums.clear();
    match meet {
        Meet::Local => {
            for (k, (r, _)) in reps.iter().enumerate() {
                if k == 0 {
                    sums.extend_from_slice(r.exchange());
                } else {
                    sums.iter_mut().zip(r.exchange()).for_each(|(s, v)| *s += v);
                }
            }
        }
        Meet::Across { comm, total } => {
            let mut local = Vec::with_capacity(2 * n * reps.len());
            for (r, _) in reps.iter() {
                r.exchange().iter().for_each(|&v| push_f64_bits(&mut local, v));
            }
            let mut all = vec![0.0f32; local.len() * comm.size()];
            comm.all_gather(&local, &mut all)?;
            for (k, part) in all.chunks_exact((2 * n).max(1)).take(*total).enumerate() {
                let vals = part.chunks_exact(2).map(f64_of_bits);
                if k == 0 {
                    sums.extend(vals);
                } else {
                    sums.iter_mut().zip(vals).for_each(|(s, v)| *s += v);
                }
            }
        }
    }
    for (r, _) in reps.iter_mut() {
        r.set_exchange_global(sums);
    }
    Ok(())
}

/// Whether every replica's loss is finite (all ranks' replicas across ranks: they must agree on the backward pass).
fn all_finite(losses: &[f32], meet: &Meet<'_>) -> Result<bool> {
    match meet {
        Meet::Local => Ok(losses.iter().all(|l| l.is_finite())),
        Meet::Across { comm, total } => {
            let mut all = vec![0.0f32; losses.len() * comm.size()];
            comm.all_gather(losses, &mut all)?;
            Ok(all.iter().take(*total).all(|l| l.is_finite()))
        }
    }
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

    /// Starts replica `t`'s recording of a lockstep step on its part `p`.
    fn start_replica<'r, 'p>(
        &self,
        t: &'r mut Tape,
        vals: &'r mut Values,
        params: &'p Params,
        p: &Part<'p>,
    ) -> Result<Replica<'r, 'r, 'p>> {
        t.seed(p.seed);
        t.set_grad_enabled(true);
        t.set_share(f64::from(p.share));
        let mut rec = t.record(params);
        let (d, k) = Self::batch_dims(p.batch, self.input_shape);
        vals.start(rec.input_ref(&d[..k], p.x)?);
        Ok((rec, vals))
    }

    /// This process's replicas' parts of a training step in lockstep (see the module docs), their sums meeting as
    /// `meet` says; returns each one's mean loss and correct predictions. `sums` is reused between steps.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn train_lockstep<'r>(
        &self,
        replicas: impl IntoIterator<Item = (&'r mut Tape, &'r mut Values)>,
        params: &Params,
        parts: &[Part<'_>],
        parallel: bool,
        prefetch: Option<&mut (dyn FnMut() + Send)>,
        sums: &mut Vec<f64>,
        meet: &Meet<'_>,
    ) -> Result<PerReplica<(f32, usize)>> {
        let mut reps: PerReplica<Replica<'_, '_, '_>> = PerReplica::new();
        for ((t, vals), p) in replicas.into_iter().zip(parts) {
            reps.push(self.start_replica(t, vals, params, p)?);
        }
        if reps.is_empty() || reps.len() != parts.len() {
            return Err(NnError::config("model", "replica tapes missing"));
        }
        let n = reps.len();
        let mut prefetch = prefetch;
        let (mut from, mut pending) = (0, None);
        loop {
            let to = (from..self.layers.len())
                .find(|&i| self.layers[i].layer.batch_statistics())
                .unwrap_or(self.layers.len());
            for done in
                each(parallel, &mut reps, prefetch.take(), |_, rec, vals| self.segment(rec, vals, pending, from, to))
            {
                done?;
            }
            if to == self.layers.len() {
                break;
            }
            exchange(sums, &mut reps, meet)?;
            (from, pending) = (to + 1, Some(to));
        }
        let outcomes: PerReplica<(Var, f32, usize)> =
            each(parallel, &mut reps, None, |k, rec, vals| self.outcome(rec, vals.last(), parts[k].y, parts[k].batch))
                .into_iter()
                .collect::<Result<_>>()?;
        let losses: PerReplica<f32> = outcomes.iter().map(|o| o.1).collect();
        if all_finite(&losses, meet)? {
            let mut states = each(parallel, &mut reps, None, |k, rec, _| rec.backward_begin(outcomes[k].0, &[1.0]));
            loop {
                let (mut done, mut paused) = (0, 0);
                for s in states {
                    match s? {
                        Backprop::Done => done += 1,
                        Backprop::Exchange => paused += 1,
                    }
                }
                if done == n {
                    break;
                }
                if paused != n {
                    return Err(NnError::config("model", "the replicas' backward passes diverged"));
                }
                exchange(sums, &mut reps, meet)?;
                states = each(parallel, &mut reps, None, |_, rec, _| rec.backward_resume());
            }
        }
        Ok(outcomes.iter().map(|o| (o.1, o.2)).collect())
    }
}
