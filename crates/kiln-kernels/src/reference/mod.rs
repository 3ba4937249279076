//! Naive, f64-accumulating reference implementations: the specification every optimised kernel is tested
//! against (DESIGN.md §3.3, KERNELS.md §6).
//!
//! They are slow on purpose: straight loops, no blocking, no SIMD. Each returns a [`Reference`]: the exact-ish
//! result in `f64` together with the per-element error scale `b_i = Σ |a|·|b|` over the terms that produced
//! element `i` (bias and `beta·C` counted as one more term), whose maximum `B` sets the tolerance of
//! KERNELS.md §1.6: `|got_i − ref_i| ≤ K_alg · eps32 · B`.
//!
//! The backward convolution references are written as scatter loops over the output, independently of the
//! forward gather loop, and are validated against it by the adjoint identity and by finite differences
//! (`tests/reference.rs`).

mod conv2d;
mod gemm;

pub use conv2d::{bias_gradient, conv2d_backward_data, conv2d_backward_filter, conv2d_bias_gradient, conv2d_forward};
pub use gemm::gemm;

use std::fmt;

/// `K_alg` for direct convolution, im2col / implicit GEMM and GEMM, in any summation order (KERNELS.md §1.6:
/// about 3× the worst measured K of 2.5, rounded to a power of two).
pub const K_DIRECT: f64 = 8.0;
/// `K_alg` for Winograd F(2×2,3×3) forward / backward-data and its F(3×3,2×2) weight gradient (worst measured 2.3).
pub const K_WINOGRAD_F2_3: f64 = 8.0;
/// `K_alg` for the 6×6-tile Winograd family with √2 points: F(4×4,3×3), F(2×2,5×5), their backward-data and
/// F(3×3,4×4) / F(5×5,2×2) weight gradients (worst measured 13.0).
pub const K_WINOGRAD_SQRT2_6X6: f64 = 32.0;

/// A reference result: values computed in `f64` and the per-element error scales.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// The result, in the same element order as the kernel's output (dense, row-major).
    pub values: Vec<f64>,
    /// Per-element scale `b_i = Σ |a|·|b|` (plus |bias| or |beta·c|), same order as `values`.
    pub bounds: Vec<f64>,
    /// `B = max_i b_i` (0 for an empty result).
    pub scale: f64,
}

impl Reference {
    pub(crate) fn new(values: Vec<f64>, bounds: Vec<f64>) -> Self {
        debug_assert_eq!(values.len(), bounds.len());
        let scale = bounds.iter().copied().fold(0.0, f64::max);
        Reference { values, bounds, scale }
    }

    /// Largest error a result may have under the tensor-level tolerance with constant `k_alg`:
    /// `k_alg · f32::EPSILON · B`.
    pub fn allowed_error(&self, k_alg: f64) -> f64 {
        k_alg * f64::from(f32::EPSILON) * self.scale
    }

    /// Compares `got` (in the reference's element order) with the tensor-level tolerance
    /// `|got_i − ref_i| ≤ k_alg · eps32 · B` of KERNELS.md §1.6. A NaN, a wrong count, or any element outside
    /// the bound is a [`Mismatch`] naming the worst element.
    pub fn check<I: IntoIterator<Item = f32>>(&self, got: I, k_alg: f64) -> Result<(), Mismatch> {
        let allowed = self.allowed_error(k_alg);
        let mut count = 0usize;
        let mut bad = 0usize;
        let mut worst: Option<(usize, f32, f64, f64)> = None;
        let rank = |err: f64| if err.is_nan() { f64::INFINITY } else { err };
        for (i, g) in got.into_iter().enumerate() {
            count += 1;
            let Some(&expected) = self.values.get(i) else { continue };
            let err = (f64::from(g) - expected).abs();
            // A NaN error (NaN result) is never within the bound.
            if err.is_nan() || err > allowed {
                bad += 1;
                if worst.is_none_or(|(_, _, _, w)| rank(err) > rank(w)) {
                    worst = Some((i, g, expected, err));
                }
            }
        }
        if count != self.values.len() || bad > 0 {
            return Err(Mismatch {
                expected_len: self.values.len(),
                got_len: count,
                bad,
                worst,
                allowed,
                k_alg,
                scale: self.scale,
            });
        }
        Ok(())
    }
}

/// Why a kernel result failed [`Reference::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// Elements the reference has.
    pub expected_len: usize,
    /// Elements the kernel produced.
    pub got_len: usize,
    /// Elements outside the bound.
    pub bad: usize,
    /// The worst element: (index, got, expected, |error|).
    pub worst: Option<(usize, f32, f64, f64)>,
    /// The bound `k_alg · eps32 · B`.
    pub allowed: f64,
    /// The `K_alg` used.
    pub k_alg: f64,
    /// `B`.
    pub scale: f64,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.expected_len != self.got_len {
            write!(f, "result has {} elements, reference has {}; ", self.got_len, self.expected_len)?;
        }
        write!(
            f,
            "{} element(s) outside |err| <= {} * eps32 * B = {:e} (B = {:e})",
            self.bad, self.k_alg, self.allowed, self.scale
        )?;
        if let Some((i, got, expected, err)) = self.worst {
            write!(
                f,
                "; worst at {i}: got {got:e}, expected {expected:e}, |err| = {err:e} = {:.2} eps32*B",
                err / (f64::from(f32::EPSILON) * self.scale)
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Mismatch {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_accepts_within_and_rejects_outside() {
        let r = Reference::new(vec![1.0, -2.0, 0.0], vec![4.0, 4.0, 0.0]);
        let tol = r.allowed_error(8.0);
        assert_eq!(tol, 8.0 * f64::from(f32::EPSILON) * 4.0);
        assert!(r.check([1.0f32, -2.0, 0.0], 8.0).is_ok());
        let off = (1.0 + 2.0 * tol) as f32;
        let err = r.check([off, -2.0, 0.0], 8.0).unwrap_err();
        assert_eq!(err.bad, 1);
        assert_eq!(err.worst.unwrap().0, 0);
        assert!(r.check([1.0, f32::NAN, 0.0], 8.0).is_err());
        assert!(r.check([1.0, -2.0], 8.0).is_err());
        assert!(r.check([1.0, -2.0, 0.0, 5.0], 8.0).is_err());
        // B = 0 rows demand exact zeros only through the global scale: here B = 4 allows tiny noise at index 2.
        assert!(r.check([1.0, -2.0, 1e-9], 8.0).is_ok());
        assert!(!r.check([1.0, -2.0, 1e-3], 8.0).unwrap_err().to_string().is_empty());
    }
}
