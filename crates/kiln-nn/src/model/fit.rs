//! Whole datasets: Keras `fit`, `evaluate` and `predict`, in batches gathered from a [`Data`] source into
//! buffers the step's tapes read in place.

use std::time::Instant;

use kiln_tensor::{Data, Rows, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{EpochLog, Evaluation, FitOptions, History, Model, Validation, mix, stream};
use crate::callbacks::{Callback, Logs};
use crate::error::{NnError, Result};
use crate::progress::EpochProgress;

/// Keras' logs of an epoch (or of the batches so far): `loss`, `accuracy`, `val_loss`, `val_accuracy`.
fn epoch_logs(loss: f32, accuracy: Option<f32>, val: Option<Evaluation>) -> Logs {
    let mut logs = Logs::default();
    write_logs(&mut logs, loss, accuracy, val);
    logs
}

/// Writes the figures into `logs` (replacing values in place).
fn write_logs(logs: &mut Logs, loss: f32, accuracy: Option<f32>, val: Option<Evaluation>) {
    logs.set("loss", f64::from(loss));
    if let Some(a) = accuracy {
        logs.set("accuracy", f64::from(a));
    }
    if let Some(v) = val {
        logs.set("val_loss", f64::from(v.loss));
        if let Some(a) = v.accuracy {
            logs.set("val_accuracy", f64::from(a));
        }
    }
}

fn slice(d: &dyn Data, start: usize, len: usize) -> Result<Rows<'_>> {
    Ok(Rows::new(d, start..start + len)?)
}

impl Model {
    pub(super) fn check_x(&self, x: &dyn Data) -> Result<()> {
        if x.sample_dims() != self.input_shape.as_slice() {
            return Err(NnError::Data {
                what: "x",
                expected: format!("samples of shape {:?}", self.input_shape),
                got: format!("{:?}", x.sample_dims()),
            });
        }
        Ok(())
    }

    pub(super) fn check_y(&self, x: &dyn Data, y: &dyn Data) -> Result<()> {
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
            for chunk in indices.chunks(bs) {
                let (xb, yb) = (&mut xbuf[..chunk.len() * x.sample_len()], &mut ybuf[..chunk.len() * y.sample_len()]);
                x.gather(chunk, xb);
                y.gather(chunk, yb);
                let (l, c) = m.evaluate_batch(xb, yb, chunk.len())?;
                loss += f64::from(l) * chunk.len() as f64;
                correct += c;
            }
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
        let (train_x, train_y, val_x, val_y): (Rows<'_>, Rows<'_>, Option<Rows<'_>>, Option<Rows<'_>>);
        let split_at = match opts.validation {
            Validation::Split(f) => {
                if !(0.0..1.0).contains(&f) {
                    return Err(NnError::config("fit", format!("validation_split {f} must be in [0, 1)")));
                }
                ((n as f64) * (1.0 - f64::from(f))).ceil() as usize
            }
            _ => n,
        };
        train_x = slice(x, 0, split_at)?;
        train_y = slice(y, 0, split_at)?;
        match opts.validation {
            Validation::Split(_) if split_at < n => {
                val_x = Some(slice(x, split_at, n - split_at)?);
                val_y = Some(slice(y, split_at, n - split_at)?);
            }
            Validation::Data(vx, vy) => {
                self.check_x(vx)?;
                self.check_y(vx, vy)?;
                val_x = Some(slice(vx, 0, vx.len())?);
                val_y = Some(slice(vy, 0, vy.len())?);
            }
            _ => {
                val_x = None;
                val_y = None;
            }
        }
        if train_x.len() == 0 {
            return Err(NnError::Data { what: "x", expected: "at least one training sample".into(), got: "0".into() });
        }
        if let Some(w) = opts.class_weight
            && let Some((class, v)) = w.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(NnError::Data {
                what: "class_weight",
                expected: "finite weights ≥ 0".into(),
                got: format!("{v} for class {class}"),
            });
        }
        let mut start = opts.initial_epoch;
        if let Some(dir) = &opts.resume_from {
            // Across ranks, rank 0 reads the checkpoint and the copy below hands it to the others.
            if self.is_chief() {
                self.load_checkpoint(dir)?;
            }
        }
        self.broadcast_from_root()?;
        if opts.resume_from.is_some() {
            start = self.epochs_done;
        }
        let mut history = History::default();
        let bs = opts.batch_size;
        let (xl, yl) = (x.sample_len(), y.sample_len());
        let [mut xbuf, mut ybuf, mut xnext, mut ynext] = std::mem::take(&mut self.batch_bufs);
        for (b, len) in [(&mut xbuf, xl), (&mut ybuf, yl), (&mut xnext, xl), (&mut ynext, yl)] {
            b.resize(bs * len, 0.0);
        }
        let mut callbacks = opts.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        let cbs: &mut Vec<&mut dyn Callback> = &mut callbacks;
        self.class_weight.clear();
        self.class_weight.extend_from_slice(opts.class_weight.unwrap_or(&[]));
        // Across ranks the steps leave the optimizer state sharded; fit gathers it where something may read it.
        self.settle_later = true;
        let res = self.in_pool(|m| {
            m.stop_training = false;
            m.restored_epoch = None;
            for cb in cbs.iter_mut() {
                cb.on_train_begin(m)?;
            }
            // A callback that restored a backup (BackupAndRestore) moves the start, as Keras' `_initial_epoch`;
            // across ranks rank 0's restored state and start hold for all.
            let start = m.restored_epoch.take().unwrap_or(start);
            let start = m.agree_on_start(start)?;
            for epoch in start..opts.epochs {
                for cb in cbs.iter_mut() {
                    cb.on_epoch_begin(epoch, m)?;
                }
                let t0 = Instant::now();
                m.exchanged = Default::default();
                let mut order: Vec<usize> = (0..train_x.len()).collect();
                if opts.shuffle {
                    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(m.seed, epoch as u64, stream::SHUFFLE)));
                }
                let steps = train_x.len().div_ceil(bs);
                let verbose = if m.is_chief() { opts.verbose } else { crate::Verbose::Silent };
                let mut bar = EpochProgress::start(verbose, epoch + 1, opts.epochs, steps);
                let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
                // Batch k + 1 is gathered during step k (into the other buffer pair), off the critical path.
                let chunk_at = |k: usize| &order[(k * bs).min(order.len())..((k + 1) * bs).min(order.len())];
                let first = chunk_at(0);
                train_x.gather(first, &mut xbuf[..first.len() * xl]);
                train_y.gather(first, &mut ybuf[..first.len() * yl]);
                let mut complete = true;
                let mut batch_logs = Logs::default();
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
                    loss_sum += f64::from(s.loss) * s.samples as f64;
                    correct += s.correct;
                    seen += s.samples;
                    let (run_loss, run_acc) =
                        ((loss_sum / seen as f64) as f32, c.accuracy.then(|| correct as f32 / seen as f32));
                    bar.step(k + 1, run_loss, run_acc);
                    if !cbs.is_empty() {
                        if cbs.iter().any(|cb| cb.reads_state_after_batches()) {
                            m.settle_optimizer()?;
                        }
                        write_logs(&mut batch_logs, run_loss, run_acc, None);
                        for cb in cbs.iter_mut() {
                            cb.on_train_batch_end(k, &batch_logs, m)?;
                        }
                    }
                    if !cbs.is_empty() {
                        // Across ranks a callback's decision to stop is rank 0's, for every rank.
                        m.stop_training = m.agree_on_flag(m.stop_training)?;
                    }
                    if m.stop_training {
                        complete = k + 1 == steps;
                        break;
                    }
                    if !s.loss.is_finite() {
                        return Err(NnError::NonFiniteLoss { epoch: epoch + 1, step: k + 1, value: s.loss });
                    }
                }
                // Across ranks the optimizer state is whole again on every rank before anything may save it.
                m.settle_optimizer()?;
                let train_seconds = t0.elapsed().as_secs_f64();
                let (loss, acc) =
                    ((loss_sum / seen as f64) as f32, c.accuracy.then(|| (correct as f64 / seen as f64) as f32));
                let val = match (&val_x, &val_y) {
                    (Some(vx), Some(vy)) => Some(m.evaluate(vx, vy, bs)?),
                    _ => None,
                };
                // An epoch cut short (a callback stopped training mid-epoch) does not count as done: checkpoints and
                // backups keep the last complete epoch, from which a resumed run continues bitwise.
                if complete {
                    m.epochs_done = epoch + 1;
                }
                bar.clear();
                let mut logs = epoch_logs(loss, acc, val);
                for cb in cbs.iter_mut() {
                    cb.on_epoch_end(epoch, &mut logs, m)?;
                }
                // Across ranks rank 0's state and decisions after its callbacks (restored weights, a new learning
                // rate, stopping) hold for every rank.
                m.stop_training = m.agree_on_flag(m.stop_training)?;
                m.broadcast_from_root()?;
                if let Some(dir) = opts.checkpoint.as_ref().filter(|_| complete && m.is_chief()) {
                    m.save_checkpoint(dir)?;
                }
                bar.finish(loss, acc, val.map(|v| (v.loss, v.accuracy)));
                history.epochs.push(EpochLog {
                    epoch: epoch + 1,
                    loss,
                    accuracy: acc,
                    val_loss: val.map(|v| v.loss),
                    val_accuracy: val.and_then(|v| v.accuracy),
                    learning_rate: logs.get("learning_rate").map(|v| v as f32),
                    train_seconds,
                    seconds: t0.elapsed().as_secs_f64(),
                    samples_per_second: seen as f64 / train_seconds.max(1e-9),
                    exchange_seconds: m.exchanged.0.as_secs_f64(),
                    exchange_bytes_per_step: m.exchanged.1,
                });
                if m.stop_training {
                    break;
                }
            }
            for cb in cbs.iter_mut() {
                cb.on_train_end(m)?;
            }
            Ok(())
        });
        drop(callbacks);
        self.settle_later = false;
        self.class_weight.clear();
        self.batch_bufs = [xbuf, ybuf, xnext, ynext];
        res.map(|()| history)
    }
}
