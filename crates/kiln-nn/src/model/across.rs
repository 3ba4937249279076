//! A training step across ranks (see [`crate::distributed`]): this rank's replicas run forward and backward,
//! every rank receives every replica's results for its shard of the parameters, reduces them in replica order
//! and steps the optimizer on that shard, and the updated shards go to every rank — and the copy of rank 0's
//! weights and optimizer state that starts such a run.

use kiln_autograd::{ParamId, Tape};
use kiln_kernels::Threads;

use super::engine::{Net, Values};
use super::lockstep::{Meet, Part};
use super::{BatchStats, Model, mix, stream};
use crate::distributed::{Collective, Placement, placement, replica_rows, shard};
use crate::error::{NnError, Result};

/// A replica's record in the exchanged buffer: whether its part succeeded, its mean loss, its correct
/// predictions, then per parameter (in id order) a flag for "wrote a gradient" and the gradient's values.
const HEAD: usize = 3;

/// `f32` carries counts exactly below 2²⁴; the step's counts (correct predictions of a batch) are far below.
fn count_as_f32(n: usize) -> f32 {
    n as f32
}

impl Model {
    /// The exchanged record's length for shard `rank` of `ranks`: the head, and a flag and the shard's values of
    /// every parameter.
    fn record_len(&self, rank: usize, ranks: usize) -> Result<usize> {
        let mut n = HEAD;
        for id in self.params.ids() {
            n += 1 + shard(self.params.dims(id)?.numel(), rank, ranks).len();
        }
        Ok(n)
    }

    /// One training step of a batch `x`, `y` (the whole global batch: every rank passes the same) when training
    /// across the ranks of `comm`; `prefetch` runs once during it.
    pub(crate) fn step_across(
        &mut self,
        comm: &dyn Collective,
        x: &[f32],
        y: &[f32],
        batch: usize,
        prefetch: Option<&mut (dyn FnMut() + Send)>,
    ) -> Result<BatchStats> {
        let c = self.compiled.ok_or(NnError::NotCompiled("training"))?;
        let (me, ranks) = (comm.rank(), comm.size());
        let place = placement(self.replicas, me, ranks)?;
        let lockstep = Net::of(&self.layers, &self.input_shape, self.compiled).needs_lockstep();
        // The replicas that get rows: with fewer samples than replicas the rest sit out, as on one process.
        let total = place.total.min(batch).max(1);
        if lockstep && total < place.total {
            // Every replica must reach each statistics layer's exchange (the same on every rank: one global batch).
            return Err(NnError::unsupported(
                "model",
                "batch across ranks with BatchNormalization",
                format!("{batch} samples for {} replicas (give every replica at least one)", place.total),
            ));
        }
        self.ensure_tapes(place.count);
        let (xl, yl) = (x.len() / batch.max(1), y.len() / batch.max(1));
        // Every record padded to the longest shard's, so that every rank sends blocks of one length.
        let mut rec_len = 0;
        for r in 0..ranks {
            rec_len = rec_len.max(self.record_len(r, ranks)?);
        }
        let [mut sent, mut all] = std::mem::take(&mut self.exchange_bufs);
        sent.clear();
        sent.resize(ranks * place.count * rec_len, 0.0);
        all.clear();
        all.resize(sent.len(), 0.0);

        let parts = net_parts(place, total, batch, x, y, xl, yl);
        let local = if lockstep {
            self.local_lockstep(&parts, prefetch, comm, total, batch)
        } else {
            self.local_parts(&parts, prefetch)
        };
        let res = self.pack(&local, &mut sent, rec_len, me, ranks);
        // Every rank takes part in the exchange, also after a failure, so no peer waits in vain.
        let t0 = std::time::Instant::now();
        let exchanged = comm.all_to_all(&sent, &mut all);
        let mut bytes = 4 * (ranks - 1) * place.count * rec_len;
        if ranks > 1 {
            self.exchanged.0 += t0.elapsed();
        }
        let stepped = res
            .and(exchanged)
            .and_then(|()| self.reduce_and_step(c, (&sent, &all), rec_len, place, total, batch, ranks));
        // The updated shards, for every rank (only when the step was taken: every rank decided alike).
        let stepped = match stepped {
            Ok((stats, true)) if ranks > 1 => {
                let t1 = std::time::Instant::now();
                let gathered = self.gather_shards(comm, &mut sent, &mut all, Shards::Weights);
                self.exchanged.0 += t1.elapsed();
                gathered.map(|b| {
                    bytes += b;
                    // The optimizer's state now holds this rank's shard only; it is gathered when needed.
                    self.slots_sharded = true;
                    stats
                })
            }
            other => other.map(|(stats, _)| stats),
        };
        if ranks > 1 {
            self.exchanged.1 = bytes;
        }
        let stepped = stepped.and_then(|s| {
            if !self.settle_later {
                self.settle_optimizer_with(comm, &mut sent, &mut all)?;
            }
            Ok(s)
        });
        // Layer state (BatchNormalization's moving statistics): every rank's replicas saw the global statistics.
        let stepped = stepped.and_then(|s| self.apply_assignments().map(|()| s));
        self.exchange_bufs = [sent, all];
        stepped
    }

    /// Gives every rank every rank's shard of the trainable parameters' `what` (this rank's are current, the
    /// others' stale), through `send` and `recv`; returns the bytes this rank sent to its peers.
    fn gather_shards(
        &mut self,
        comm: &dyn Collective,
        send: &mut Vec<f32>,
        recv: &mut Vec<f32>,
        what: Shards,
    ) -> Result<usize> {
        let (me, ranks) = (comm.rank(), comm.size());
        let mut trainable = Vec::with_capacity(self.params.len());
        for id in self.params.ids() {
            if self.params.trainable(id)? {
                trainable.push((id, self.params.dims(id)?.numel()));
            }
        }
        let copies = match what {
            Shards::Weights => 1,
            Shards::OptimizerState => self.state.slots.len(),
        };
        let block = (0..ranks)
            .map(|r| copies * trainable.iter().map(|&(_, n)| shard(n, r, ranks).len()).sum::<usize>())
            .max()
            .unwrap_or(0);
        send.clear();
        for k in 0..copies {
            for &(id, n) in &trainable {
                let src = match what {
                    Shards::Weights => self.params.value(id)?,
                    Shards::OptimizerState => &self.state.slots[k][id.index()][..],
                };
                send.extend_from_slice(&src[shard(n, me, ranks)]);
            }
        }
        send.resize(block, 0.0);
        recv.clear();
        recv.resize(ranks * block, 0.0);
        comm.all_gather(send, recv)?;
        for q in (0..ranks).filter(|&q| q != me) {
            let mut at = q * block;
            for k in 0..copies {
                for &(id, n) in &trainable {
                    let part = shard(n, q, ranks);
                    let dst = match what {
                        Shards::Weights => self.params.value_mut(id)?,
                        Shards::OptimizerState => &mut self.state.slots[k][id.index()][..],
                    };
                    dst[part.clone()].copy_from_slice(&recv[at..at + part.len()]);
                    at += part.len();
                }
            }
        }
        Ok(4 * (ranks - 1) * block)
    }

    /// Gathers the optimizer's state on every rank when the steps across ranks left each with its own shard
    /// current; every rank must call it at the same point.
    pub(crate) fn settle_optimizer(&mut self) -> Result<()> {
        let Some(comm) = self.collective.clone() else { return Ok(()) };
        let [mut send, mut recv] = std::mem::take(&mut self.exchange_bufs);
        let res = self.settle_optimizer_with(&*comm, &mut send, &mut recv);
        self.exchange_bufs = [send, recv];
        res
    }

    fn settle_optimizer_with(&mut self, comm: &dyn Collective, send: &mut Vec<f32>, recv: &mut Vec<f32>) -> Result<()> {
        if !self.slots_sharded {
            return Ok(());
        }
        if comm.size() > 1 {
            self.gather_shards(comm, send, recv, Shards::OptimizerState)?;
        }
        self.slots_sharded = false;
        Ok(())
    }

    /// Runs this rank's replicas, two at a time (in parallel when the model has the threads); returns each one's
    /// mean loss and correct predictions, `None` for a replica without rows.
    fn local_parts(
        &mut self,
        parts: &[Option<LocalPart<'_>>],
        prefetch: Option<&mut (dyn FnMut() + Send)>,
    ) -> Vec<Option<Result<(f32, usize)>>> {
        let parallel = parts.iter().flatten().count() > 1
            && self.threads().is_some_and(|t| t > 1)
            && rayon::current_num_threads() > 1;
        let kernel_threads = if parallel { Threads::Single } else { self.kernel_threads };
        let seeds: Vec<u64> = parts
            .iter()
            .map(|p| {
                p.as_ref().map_or(0, |p| mix(self.seed, self.state.iterations, stream::REPLICA + p.replica as u64))
            })
            .collect();
        let net = Net::of(&self.layers, &self.input_shape, self.compiled).with_class_weight(&self.class_weight);
        let params = &self.params;
        let conv = self.conv;
        let run = |t: &mut Tape, v: &mut Values, k: usize| {
            parts[k].as_ref().map(|p| {
                t.set_threads(kernel_threads);
                t.set_conv_options(conv.threads(kernel_threads));
                net.train_part(t, v, params, seeds[k], p.x, p.y, p.batch, None)
            })
        };
        let n = parts.len();
        if self.tapes.len() < n || self.values.len() < n {
            return vec![Some(Err(NnError::config("model", "replica tapes missing")))];
        }
        let mut out = Vec::with_capacity(n);
        let mut prefetch = prefetch;
        let pairs = self.tapes[..n].chunks_mut(2).zip(self.values[..n].chunks_mut(2));
        for (pair, (ts, vs)) in pairs.enumerate() {
            let k = 2 * pair;
            match (ts, vs) {
                ([t0, t1], [v0, v1]) if parallel => {
                    let pf = &mut prefetch;
                    let (a, b) = crate::parallel::join_balanced(
                        || {
                            let r = run(t0, v0, k);
                            if let Some(f) = pf.take() {
                                f();
                            }
                            r
                        },
                        || run(t1, v1, k + 1),
                    );
                    out.extend([a, b]);
                }
                (ts, vs) => out.extend(ts.iter_mut().zip(vs).enumerate().map(|(j, (t, v))| run(t, v, k + j))),
            }
        }
        if let Some(f) = prefetch {
            f();
        }
        out
    }

    /// Runs this rank's replicas in lockstep with every other rank's (a model with BatchNormalization: the
    /// partial sums of each statistics layer meet across ranks, in replica order); every part has rows.
    fn local_lockstep(
        &mut self,
        parts: &[Option<LocalPart<'_>>],
        prefetch: Option<&mut (dyn FnMut() + Send)>,
        comm: &dyn Collective,
        total: usize,
        batch: usize,
    ) -> Vec<Option<Result<(f32, usize)>>> {
        let parallel = parts.len() > 1 && self.threads().is_some_and(|t| t > 1) && rayon::current_num_threads() > 1;
        let kernel_threads = if parallel { Threads::Single } else { self.kernel_threads };
        let mut steps = Vec::with_capacity(parts.len());
        for p in parts {
            let Some(p) = p else { return vec![Some(Err(NnError::config("model", "a replica without rows")))] };
            steps.push(Part {
                seed: mix(self.seed, self.state.iterations, stream::REPLICA + p.replica as u64),
                share: p.batch as f32 / batch as f32,
                x: p.x,
                y: p.y,
                batch: p.batch,
            });
        }
        let net = Net::of(&self.layers, &self.input_shape, self.compiled).with_class_weight(&self.class_weight);
        let conv = self.conv;
        let tapes = self.tapes.iter_mut().zip(self.values.iter_mut()).take(parts.len()).map(|(t, v)| {
            t.set_threads(kernel_threads);
            t.set_conv_options(conv.threads(kernel_threads));
            (t, v)
        });
        let meet = Meet::Across { comm, total };
        match net.train_lockstep(tapes, &self.params, &steps, parallel, prefetch, &mut self.sums, &meet) {
            Ok(done) => done.into_iter().map(|r| Some(Ok(r))).collect(),
            Err(e) => vec![Some(Err(e))],
        }
    }

    /// Writes this rank's replicas' records into `sent`, for each rank the records of its shard (see [`HEAD`]),
    /// each `rec_len` long — for this rank `me` the heads and flags only: its own gradients are read from the
    /// replicas' tapes. The first local failure is returned after its record says so.
    fn pack(
        &self,
        local: &[Option<Result<(f32, usize)>>],
        sent: &mut [f32],
        rec_len: usize,
        me: usize,
        ranks: usize,
    ) -> Result<()> {
        let mut failure = Ok(());
        let blocks = sent.chunks_exact_mut(local.len().max(1) * rec_len);
        for (dest, block) in blocks.enumerate() {
            for (k, (out, part)) in block.chunks_exact_mut(rec_len).zip(local).enumerate() {
                out.fill(0.0);
                match part {
                    None => out[0] = 1.0,
                    Some(Err(e)) => {
                        if failure.is_ok() {
                            failure = Err(NnError::config("model", e.to_string()));
                        }
                    }
                    Some(Ok((loss, correct))) => {
                        out[..HEAD].copy_from_slice(&[1.0, *loss, count_as_f32(*correct)]);
                        let mut at = HEAD;
                        for id in self.params.ids() {
                            let part = shard(self.params.dims(id)?.numel(), dest, ranks);
                            if let Some(g) = self.tapes[k].param_grad(id) {
                                out[at] = 1.0;
                                if dest != me {
                                    out[at + 1..at + 1 + part.len()].copy_from_slice(&g[part.clone()]);
                                }
                            }
                            at += 1 + part.len();
                        }
                    }
                }
            }
        }
        failure
    }

    /// Reduces every replica's record (this rank's shard, every record `rec_len` long: the peers' from `all`,
    /// this rank's heads from `sent` and gradients from its tapes) in replica order and steps the optimizer on this
    /// rank's shard; says whether the step was taken (a finite loss).
    #[allow(clippy::too_many_arguments)]
    fn reduce_and_step(
        &mut self,
        c: super::Compiled,
        (sent, all): (&[f32], &[f32]),
        rec_len: usize,
        place: Placement,
        total: usize,
        batch: usize,
        ranks: usize,
    ) -> Result<(BatchStats, bool)> {
        let me = place.first / place.count.max(1);
        let own = place.first..place.first + place.count;
        let records: Vec<&[f32]> = (0..total)
            .map(|r| {
                let from = if own.contains(&r) { &sent[me * place.count * rec_len..] } else { all };
                let at = if own.contains(&r) { (r - place.first) * rec_len } else { r * rec_len };
                &from[at..at + rec_len]
            })
            .collect();
        if let Some(r) = records.iter().position(|rec| rec[0] != 1.0) {
            return Err(NnError::Distributed {
                rank: r / placement(self.replicas, 0, ranks)?.count,
                message: format!("replica {r} failed its part of step {}", self.state.iterations + 1),
            });
        }
        let shares: Vec<f32> = (0..total).map(|r| replica_rows(batch, total, r).len() as f32 / batch as f32).collect();
        let (mut loss, mut correct) = (0.0f32, 0usize);
        for (r, rec) in records.iter().enumerate() {
            // One replica: its loss as it is; more: Σ aᵣ·lᵣ in replica order, as the single-process step.
            loss = if total == 1 {
                rec[1]
            } else if r == 0 {
                shares[0] * rec[1]
            } else {
                loss + shares[r] * rec[1]
            };
            correct += rec[2] as usize;
        }
        let stats = BatchStats { loss, correct, samples: batch };
        if !loss.is_finite() {
            return Ok((stats, false));
        }
        // Per parameter: where its flag sits in a record, and the range of its values this rank steps.
        let mut layout = Vec::with_capacity(self.params.len());
        let mut at = HEAD;
        for id in self.params.ids() {
            let part = shard(self.params.dims(id)?.numel(), me, ranks);
            let next = at + 1 + part.len();
            layout.push((at, part));
            at = next;
        }
        let tapes = &self.tapes;
        let grad = |r: usize, id: ParamId| {
            let (at, part) = &layout[id.index()];
            let rec = records[r];
            if rec[*at] != 1.0 {
                None
            } else if own.contains(&r) {
                // This rank's replica: its gradient where its tape holds it (no copy).
                tapes[r - place.first].param_grad(id).map(|g| &g[part.clone()])
            } else {
                Some(&rec[at + 1..at + 1 + part.len()])
            }
        };
        let optimizer = match &self.schedule {
            Some(s) => c.optimizer.learning_rate(s.at(self.state.iterations)),
            None => c.optimizer,
        };
        let parallel = self.threads().is_some_and(|t| t > 1) && rayon::current_num_threads() > 1;
        self.state.step(optimizer, self.kernels, &mut self.params, grad, &shares, parallel, (me, ranks))?;
        Ok((stats, true))
    }

    /// Copies rank 0's weights, optimizer state, step count, learning rate and seed to every rank (nothing when the
    /// model trains alone).
    pub(crate) fn broadcast_from_root(&mut self) -> Result<()> {
        let Some(comm) = self.collective.clone() else { return Ok(()) };
        self.settle_optimizer()?;
        let lr = self.compiled.map_or(0.0, |c| c.optimizer.lr());
        let it = self.state.iterations;
        let seed = self.seed;
        let mut buf = vec![
            f32::from_bits(it as u32),
            f32::from_bits((it >> 32) as u32),
            f32::from_bits(self.epochs_done as u32),
            lr,
            f32::from_bits(seed as u32),
            f32::from_bits((seed >> 32) as u32),
        ];
        for id in self.params.ids() {
            buf.extend_from_slice(self.params.value(id)?);
        }
        for slot in &self.state.slots {
            for v in slot {
                buf.extend_from_slice(v);
            }
        }
        // The lengths first: a rank whose model differs fails here instead of in a mismatched copy.
        let mut len = [f32::from_bits(buf.len() as u32)];
        comm.broadcast(0, &mut len)?;
        if len[0].to_bits() as usize != buf.len() {
            return Err(NnError::Distributed {
                rank: comm.rank(),
                message: format!(
                    "its model and optimizer hold {} values, rank 0's {} (every rank must build the same model)",
                    buf.len(),
                    len[0].to_bits()
                ),
            });
        }
        comm.broadcast(0, &mut buf)?;
        self.state.iterations = u64::from(buf[0].to_bits()) | (u64::from(buf[1].to_bits()) << 32);
        self.epochs_done = buf[2].to_bits() as usize;
        if let Some(c) = &mut self.compiled {
            c.optimizer = c.optimizer.learning_rate(buf[3]);
        }
        // The seed too: the shuffle and every replica's dropout masks derive from it.
        self.seed = u64::from(buf[4].to_bits()) | (u64::from(buf[5].to_bits()) << 32);
        let mut at = 6;
        let ids: Vec<ParamId> = self.params.ids().collect();
        for id in ids {
            let n = self.params.dims(id)?.numel();
            self.params.set_value(id, &buf[at..at + n])?;
            at += n;
        }
        for slot in &mut self.state.slots {
            for v in slot.iter_mut() {
                let n = v.len();
                v.copy_from_slice(&buf[at..at + n]);
                at += n;
            }
        }
        Ok(())
    }
}

impl Model {
    /// Across ranks: rank 0's weights and state after the callbacks' `on_train_begin` (a restored backup) and its
    /// first epoch, for every rank; alone: `start`.
    pub(crate) fn agree_on_start(&mut self, start: usize) -> Result<usize> {
        let Some(comm) = self.collective.clone() else { return Ok(start) };
        self.broadcast_from_root()?;
        let mut s = [f32::from_bits(start as u32)];
        comm.broadcast(0, &mut s)?;
        Ok(s[0].to_bits() as usize)
    }

    /// Across ranks: rank 0's `flag`, for every rank; alone: `flag`.
    pub(crate) fn agree_on_flag(&self, flag: bool) -> Result<bool> {
        let Some(comm) = &self.collective else { return Ok(flag) };
        let mut f = [if flag { 1.0 } else { 0.0 }];
        comm.broadcast(0, &mut f)?;
        Ok(f[0] != 0.0)
    }
}

/// What [`Model::gather_shards`] gathers.
#[derive(Clone, Copy)]
enum Shards {
    Weights,
    OptimizerState,
}

/// One local replica's share of a step across ranks.
struct LocalPart<'d> {
    replica: usize,
    x: &'d [f32],
    y: &'d [f32],
    batch: usize,
}

/// This rank's replicas' rows of the global batch (`None` for a replica without rows).
fn net_parts<'d>(
    place: Placement,
    total: usize,
    batch: usize,
    x: &'d [f32],
    y: &'d [f32],
    xl: usize,
    yl: usize,
) -> Vec<Option<LocalPart<'d>>> {
    (place.first..place.first + place.count)
        .map(|replica| {
            (replica < total).then(|| {
                let rows = replica_rows(batch, total, replica);
                LocalPart {
                    replica,
                    x: &x[rows.start * xl..rows.end * xl],
                    y: &y[rows.start * yl..rows.end * yl],
                    batch: rows.len(),
                }
            })
        })
        .collect()
}
