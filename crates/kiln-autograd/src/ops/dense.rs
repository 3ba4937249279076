//! Matrix products: `matmul`, the fused `dense` (`x·W + b`, Keras layout `W: (in, out)`) and `bias_add`.
//! When both operands hold bfloat16 values ([`Recording::round_bf16`]) the products take bf16 operands with f32
//! accumulation — on the bf16 GEMM where the CPU has bf16 arithmetic, else on the f32 GEMM, which multiplies bf16
//! values exactly too — the backward pass reading the output's gradient rounded to bf16.

use half::bf16;
use kiln_kernels::{DType, GemmGeometry, Kernels, Threads, Transpose};

use crate::backward::{Backward, Grads};
use crate::dims::Dims;
use crate::error::{AutogradError, Result};
use crate::ops::rows_cols;
use crate::recording::Recording;
use crate::tape::Var;

fn matrix(op: &'static str, what: &'static str, d: Dims) -> Result<(usize, usize)> {
    if d.rank() != 2 {
        return Err(AutogradError::Shape { op, what, expected: "a matrix (rank 2)".into(), got: d });
    }
    Ok((d.get(0), d.get(1)))
}

/// `c = op(a)·op(b) + beta·c` on the bf16 GEMM, `a` and `b` converted into `bufs` (round to nearest even:
/// exact for bf16 values).
#[allow(clippy::too_many_arguments)]
fn gemm_bf16(
    kernels: &Kernels,
    threads: Threads,
    geo: &GemmGeometry,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
    bufs: (&mut Vec<bf16>, &mut Vec<bf16>),
) -> Result<()> {
    let (ab, bb) = bufs;
    for (src, dst) in [(a, &mut *ab), (b, &mut *bb)] {
        dst.resize(src.len(), bf16::ZERO);
        kernels.f32_to_bf16(src, dst)?;
    }
    kernels.gemm::<bf16>(threads, geo, 1.0, ab, bb, beta, c)?;
    Ok(())
}

/// Backward of `y = x·w (+ b)`: `dx = dy·wᵀ`, `dw = xᵀ·dy`, `db = Σ_rows dy`.
struct DenseBackward {
    x: Var,
    w: Var,
    b: Option<Var>,
    m: usize,
    k: usize,
    n: usize,
    /// The products run on bf16 operands.
    bf16: bool,
}

impl DenseBackward {
    /// The bf16 form of the backward products: `dy` rounded to bf16 once, then `dx` and `dw` on the bf16 GEMM.
    fn backward_bf16(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let &DenseBackward { x, w, m, k, n, .. } = self;
        let [mut dyb, mut ob, mut tmp] = std::mem::take(&mut g.st.bf16_bufs);
        let res = (|| {
            {
                let st = g.view();
                dyb.resize(m * n, bf16::ZERO);
                st.kernels().f32_to_bf16(st.grad(out), &mut dyb)?;
            }
            g.update(x, |st, dx, acc| {
                let geo = GemmGeometry::spec(m, k, n).trans_b(Transpose::Yes).build()?;
                ob.resize(k * n, bf16::ZERO);
                st.kernels().f32_to_bf16(st.value(w), &mut ob)?;
                st.kernels().gemm::<bf16>(st.threads(), &geo, 1.0, &dyb, &ob, f32::from(u8::from(acc)), dx)?;
                Ok(())
            })?;
            g.update(w, |st, dw, acc| {
                let geo = GemmGeometry::spec(k, n, m).trans_a(Transpose::Yes).build()?;
                tmp.resize(m * k, bf16::ZERO);
                st.kernels().f32_to_bf16(st.value(x), &mut tmp)?;
                st.kernels().gemm::<bf16>(st.threads(), &geo, 1.0, &tmp, &dyb, f32::from(u8::from(acc)), dw)?;
                Ok(())
            })
        })();
        g.st.bf16_bufs = [dyb, ob, tmp];
        res
    }

    /// `dx += dy·wᵀ` and `dw += xᵀ·dy` on the f32 GEMM, with `dy` the output's gradient or, given, its rounded copy.
    fn backward_f32(&self, out: Var, g: &mut Grads<'_>, rounded: Option<&[f32]>) -> Result<()> {
        let &DenseBackward { x, w, m, k, n, .. } = self;
        g.update(x, |st, dx, acc| {
            let geo = GemmGeometry::spec(m, k, n).trans_b(Transpose::Yes).build()?;
            let dy = rounded.unwrap_or(st.grad(out));
            st.kernels().sgemm_with(st.threads(), &geo, 1.0, dy, st.value(w), f32::from(u8::from(acc)), dx)?;
            Ok(())
        })?;
        g.update(w, |st, dw, acc| {
            let geo = GemmGeometry::spec(k, n, m).trans_a(Transpose::Yes).build()?;
            let dy = rounded.unwrap_or(st.grad(out));
            st.kernels().sgemm_with(st.threads(), &geo, 1.0, st.value(x), dy, f32::from(u8::from(acc)), dw)?;
            Ok(())
        })
    }
}

impl Backward for DenseBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let b = self.b;
        if !self.bf16 {
            self.backward_f32(out, g, None)?;
        } else if g.st.kernels.native(DType::BF16) {
            self.backward_bf16(out, g)?;
        } else {
            // No bf16 arithmetic: the f32 GEMM on the bf16 values, `dy` rounded into a copy (see `dense`).
            let mut dy = std::mem::take(&mut g.st.rounded);
            dy.resize(self.m * self.n, 0.0);
            let res = (|| {
                g.view().kernels().round_to_bf16(g.view().grad(out), &mut dy)?;
                self.backward_f32(out, g, Some(&dy))
            })();
            g.st.rounded = dy;
            res?;
        }
        if let Some(b) = b {
            g.set(b, |st, db| Ok(st.kernels().column_sums(st.grad(out), db)?))?;
        }
        Ok(())
    }
}

struct BiasAddBackward {
    x: Var,
    b: Var,
}

impl Backward for BiasAddBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        crate::ops::pass_through(g, self.x, out)?;
        g.set(self.b, |st, db| Ok(st.kernels().column_sums(st.grad(out), db)?))
    }
}

impl Recording<'_, '_> {
    /// `x·w + b` for `x: (m, k)`, `w: (k, n)` (Keras `Dense` kernel layout) and an optional `b: (n)`.
    pub fn dense(&mut self, x: Var, w: Var, b: Option<Var>) -> Result<Var> {
        let op = "dense";
        let (m, k) = matrix(op, "input", self.check(op, x)?)?;
        let wd = self.check(op, w)?;
        let (wk, n) = matrix(op, "kernel", wd)?;
        if wk != k {
            return Err(AutogradError::Shape { op, what: "kernel rows", expected: format!("({k}, n)"), got: wd });
        }
        if let Some(b) = b {
            let bd = self.check(op, b)?;
            if bd.as_slice() != [n] {
                return Err(AutogradError::Shape { op, what: "bias", expected: format!("({n},)"), got: bd });
            }
        }
        let req = self.requires(&[x, w]) || b.is_some_and(|b| self.requires(&[b]));
        let bf16 = self.is_bf16(x) && self.is_bf16(w);
        // Without bf16 arithmetic the f32 GEMM takes the bf16 values as they are: the same exact products as
        // widening, summed in the f32 kernel's order, without converting and widening the operands per call.
        let native = bf16 && self.tape.st.kernels.native(DType::BF16);
        let [mut ab, mut bb, rest] = std::mem::take(&mut self.tape.st.bf16_bufs);
        let res = self.compute(op, Dims::new(&[m, n])?, req, |st, y| {
            let geo = GemmGeometry::new(m, n, k)?;
            if native {
                gemm_bf16(st.kernels(), st.threads(), &geo, st.value(x), st.value(w), 0.0, y, (&mut ab, &mut bb))?;
            } else {
                st.kernels().sgemm_with(st.threads(), &geo, 1.0, st.value(x), st.value(w), 0.0, y)?;
            }
            if let Some(b) = b
                && n > 0
            {
                st.kernels().bias_add(y, st.value(b))?;
            }
            Ok(())
        });
        self.tape.st.bf16_bufs = [ab, bb, rest];
        let out = res?;
        if req {
            self.record(out, DenseBackward { x, w, b, m, k, n, bf16 });
        }
        Ok(out)
    }

    /// Matrix product `a·b` of `a: (m, k)` and `b: (k, n)`.
    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.dense(a, b, None)
    }

    /// `x + b` with `b` broadcast along the last axis of `x` (a bias per channel for NHWC activations).
    pub fn bias_add(&mut self, x: Var, b: Var) -> Result<Var> {
        let op = "bias_add";
        let d = self.check(op, x)?;
        let (_, cols) = rows_cols(op, d)?;
        let bd = self.check(op, b)?;
        if bd.as_slice() != [cols] {
            return Err(AutogradError::Shape { op, what: "bias", expected: format!("({cols},)"), got: bd });
        }
        let req = self.requires(&[x, b]);
        let out = self.compute(op, d, req, |st, y| {
            y.copy_from_slice(st.value(x));
            if cols > 0 {
                st.kernels().bias_add(y, st.value(b))?;
            }
            Ok(())
        })?;
        if req {
            self.record(out, BiasAddBackward { x, b });
        }
        Ok(out)
    }
}
