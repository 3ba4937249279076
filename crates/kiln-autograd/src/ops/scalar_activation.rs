//! Elementwise ops computed one element at a time, without a SIMD kernel (none of them is on a flagship's hot
//! path): leaky ReLU, ELU and GELU with TensorFlow's formulas and gradients, and Keras `Rescaling`'s
//! `x·scale + offset` (rounded after the product and after the sum, as Keras' `inputs * scale + offset`).

use crate::backward::{Backward, Grads};
use crate::error::{AutogradError, Result};
use crate::recording::Recording;
use crate::tape::Var;

/// Keras 3's `negative_slope` of the `"leaky_relu"` activation.
pub const LEAKY_RELU_SLOPE: f32 = 0.2;

#[derive(Clone, Copy)]
enum Scalar {
    LeakyRelu(f32),
    Elu(f32),
    Gelu,
    Rescale(f32, f32),
}

impl Scalar {
    fn forward(self, x: f32) -> f32 {
        match self {
            // TensorFlow: `max(α·x, x)` for α < 1; `x > 0 ? x : α·x` in general.
            Scalar::LeakyRelu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x
                }
            }
            // TensorFlow's Elu: `x < 0 ? eˣ − 1 : x`, then scaled by α where x ≤ 0 (Keras' `ops.elu`).
            Scalar::Elu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * (x.exp() - 1.0)
                }
            }
            Scalar::Rescale(scale, offset) => x * scale + offset,
            Scalar::Gelu => {
                let x = f64::from(x);
                (0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
            }
        }
    }

    /// The derivative at `x` (TensorFlow's gradient rules: leaky ReLU takes the slope at 0, ELU 1 for x > 0).
    fn derivative(self, x: f32) -> f32 {
        match self {
            Scalar::LeakyRelu(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    a
                }
            }
            Scalar::Elu(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    a * x.exp()
                }
            }
            Scalar::Rescale(scale, _) => scale,
            Scalar::Gelu => {
                let x = f64::from(x);
                let cdf = 0.5 * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2));
                let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
                (cdf + x * pdf) as f32
            }
        }
    }
}

struct ScalarBackward {
    x: Var,
    kind: Scalar,
}

impl Backward for ScalarBackward {
    fn backward(&self, out: Var, g: &mut Grads<'_>) -> Result<()> {
        let kind = self.kind;
        g.update(self.x, |st, dx, acc| {
            for ((d, &x), &dy) in dx.iter_mut().zip(st.value(self.x)).zip(st.grad(out)) {
                let v = dy * kind.derivative(x);
                *d = if acc { *d + v } else { v };
            }
            Ok(())
        })
    }
}

impl Recording<'_, '_> {
    fn scalar_activation(&mut self, op: &'static str, x: Var, kind: Scalar) -> Result<Var> {
        let d = self.check(op, x)?;
        let req = self.requires(&[x]);
        let out = self.compute(op, d, req, |st, y| {
            for (o, &v) in y.iter_mut().zip(st.value(x)) {
                *o = kind.forward(v);
            }
            Ok(())
        })?;
        if req {
            self.record(out, ScalarBackward { x, kind });
        }
        Ok(out)
    }

    /// `x` for `x > 0`, else `negative_slope·x` (Keras `leaky_relu`).
    pub fn leaky_relu(&mut self, x: Var, negative_slope: f32) -> Result<Var> {
        if !negative_slope.is_finite() {
            let value = f64::from(negative_slope);
            return Err(AutogradError::Parameter {
                op: "leaky_relu",
                what: "negative_slope",
                value,
                expected: "finite",
            });
        }
        self.scalar_activation("leaky_relu", x, Scalar::LeakyRelu(negative_slope))
    }

    /// `x` for `x > 0`, else `alpha·(eˣ − 1)` (Keras `elu`).
    pub fn elu(&mut self, x: Var, alpha: f32) -> Result<Var> {
        if !alpha.is_finite() {
            return Err(AutogradError::Parameter {
                op: "elu",
                what: "alpha",
                value: f64::from(alpha),
                expected: "finite",
            });
        }
        self.scalar_activation("elu", x, Scalar::Elu(alpha))
    }

    /// `½x(1 + erf(x/√2))` (Keras `gelu` with `approximate=False`), evaluated in f64 and rounded once.
    pub fn gelu(&mut self, x: Var) -> Result<Var> {
        self.scalar_activation("gelu", x, Scalar::Gelu)
    }

    /// `x·scale + offset`, elementwise (Keras `Rescaling`); both constants must be finite.
    pub fn rescale(&mut self, x: Var, scale: f32, offset: f32) -> Result<Var> {
        for (what, v) in [("scale", scale), ("offset", offset)] {
            if !v.is_finite() {
                return Err(AutogradError::Parameter { op: "rescale", what, value: f64::from(v), expected: "finite" });
            }
        }
        self.scalar_activation("rescale", x, Scalar::Rescale(scale, offset))
    }
}
