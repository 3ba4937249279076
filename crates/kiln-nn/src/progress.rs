//! Keras-style per-epoch progress output (indicatif), e.g.
//! `1875/1875 [==============================] - 1s 512us/step - loss: 0.1234 - accuracy: 0.9612`.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How much `fit` prints (Keras' `verbose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbose {
    /// Nothing.
    Silent,
    /// `Epoch i/n`, a live progress bar, and the bar's final line per epoch.
    #[default]
    ProgressBar,
    /// `Epoch i/n` and one summary line per epoch.
    OneLine,
}

/// Keras' compact time per step: `3s/step`, `12ms/step`, `512us/step`.
pub fn per_step(d: Duration, steps: usize) -> String {
    let t = d.as_secs_f64() / steps.max(1) as f64;
    if t >= 1.0 {
        format!("{t:.0}s/step")
    } else if t >= 1e-3 {
        format!("{:.0}ms/step", t * 1e3)
    } else {
        format!("{:.0}us/step", t * 1e6)
    }
}

fn metrics_text(loss: f32, accuracy: Option<f32>, val: Option<(f32, Option<f32>)>) -> String {
    let mut s = format!("loss: {loss:.4}");
    if let Some(a) = accuracy {
        s += &format!(" - accuracy: {a:.4}");
    }
    if let Some((vl, va)) = val {
        s += &format!(" - val_loss: {vl:.4}");
        if let Some(va) = va {
            s += &format!(" - val_accuracy: {va:.4}");
        }
    }
    s
}

/// The output of one epoch.
pub(crate) struct EpochProgress {
    verbose: Verbose,
    bar: Option<ProgressBar>,
    steps: usize,
    start: Instant,
    last_draw: Instant,
}

impl EpochProgress {
    pub(crate) fn start(verbose: Verbose, epoch: usize, epochs: usize, steps: usize) -> Self {
        if verbose != Verbose::Silent {
            println!("Epoch {epoch}/{epochs}");
        }
        let bar = (verbose == Verbose::ProgressBar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stdout());
            if let Ok(style) = ProgressStyle::with_template("{pos}/{len} [{bar:30}] - ETA: {eta} - {msg}") {
                bar.set_style(style.progress_chars("=>."));
            }
            bar
        });
        let now = Instant::now();
        EpochProgress { verbose, bar, steps, start: now, last_draw: now }
    }

    /// Called after each step with the running means; redraws at most every 100 ms.
    pub(crate) fn step(&mut self, step: usize, loss: f32, accuracy: Option<f32>) {
        let Some(bar) = &self.bar else { return };
        if self.last_draw.elapsed() >= Duration::from_millis(100) || step == self.steps {
            self.last_draw = Instant::now();
            bar.set_position(step as u64);
            bar.set_message(metrics_text(loss, accuracy, None));
        }
    }

    /// Removes the moving bar (before callbacks print at the end of the epoch); `finish` then prints the final
    /// line.
    pub(crate) fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// Prints the epoch's final line.
    pub(crate) fn finish(self, loss: f32, accuracy: Option<f32>, val: Option<(f32, Option<f32>)>) {
        let elapsed = self.start.elapsed();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let metrics = metrics_text(loss, accuracy, val);
        match self.verbose {
            Verbose::Silent => {}
            Verbose::ProgressBar => println!(
                "{s}/{s} [{bar}] - {secs:.0}s {ps} - {metrics}",
                s = self.steps,
                bar = "=".repeat(30),
                secs = elapsed.as_secs_f64().floor(),
                ps = per_step(elapsed, self.steps),
            ),
            Verbose::OneLine => println!(
                "{s}/{s} - {secs:.0}s - {ps} - {metrics}",
                s = self.steps,
                secs = elapsed.as_secs_f64().floor(),
                ps = per_step(elapsed, self.steps),
            ),
        }
    }
}
