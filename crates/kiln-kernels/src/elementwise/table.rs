//! The elementwise family's dispatch table, one `static TABLE` per ISA (stamped by `per_isa!` in `stamp.rs`).

use super::Backward;
use super::Unary;
use super::channel::{BnGrad, BnGradCoefficients};
use super::softmax::SoftmaxOp;

/// `channel_affine(x, a, b, relu, y)`.
type ChannelAffine = unsafe fn(&[f32], &[f32], &[f32], bool, &mut [f32]);

/// The elementwise kernels of one ISA.
pub(crate) struct ElementwiseTable {
    pub(crate) unary: unsafe fn(Unary, &[f32], &mut [f32]),
    pub(crate) backward: unsafe fn(Backward, &[f32], &[f32], &mut [f32]),
    pub(crate) swish_pair: unsafe fn(&[f32], &mut [f32], &mut [f32]),
    pub(crate) bias_add: unsafe fn(usize, &mut [f32], &[f32]),
    pub(crate) column_sums: unsafe fn(usize, &[f32], &mut [f32]),
    pub(crate) softmax: unsafe fn(SoftmaxOp<'_>),
    pub(crate) channel_affine: ChannelAffine,
    pub(crate) batch_norm_backward_data: unsafe fn(BnGradCoefficients<'_>, BnGrad<'_>, &mut [f32]),
    pub(crate) to_bf16: unsafe fn(&[f32], &mut [half::bf16]),
    pub(crate) from_bf16: unsafe fn(&[half::bf16], &mut [f32]),
    pub(crate) round_to_bf16: unsafe fn(&[f32], &mut [f32]),
}

/// One ISA's `#[target_feature]` entries around the generic kernels, and their table.
macro_rules! elementwise_entries {
    ($(#[$attr:meta])* Token = $t:ty, token = $token:expr) => {
        use $crate::elementwise::{Backward, Unary, softmax::SoftmaxOp, table::ElementwiseTable};
        use $crate::elementwise::channel::{BnGrad, BnGradCoefficients};

        /// # Safety
        /// The CPU supports this ISA; `x.len() == y.len()`.
        $(#[$attr])*
        unsafe fn unary(op: Unary, x: &[f32], y: &mut [f32]) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::elementwise::unary(s, op, x, y)
        }
        /// # Safety
        /// The CPU supports this ISA; the three slices have equal lengths.
        $(#[$attr])*
        unsafe fn backward(op: Backward, v: &[f32], dy: &[f32], dx: &mut [f32]) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::elementwise::backward(s, op, v, dy, dx)
        }
        /// # Safety
        /// The CPU supports this ISA; the three slices have equal lengths.
        $(#[$attr])*
        unsafe fn swish_pair(x: &[f32], y: &mut [f32], d: &mut [f32]) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::elementwise::swish_with_derivative(s, x, y, d)
        }
        /// # Safety
        /// The CPU supports this ISA; `y.len()` is a multiple of `channels == bias.len()`.
        $(#[$attr])*
        unsafe fn bias_add(channels: usize, y: &mut [f32], bias: &[f32]) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::elementwise::bias_add(s, channels, y, bias)
        }
        /// # Safety
        /// The CPU supports this ISA; `dy.len()` is a multiple of `channels == db.len()`.
        $(#[$attr])*
        unsafe fn column_sums(channels: usize, dy: &[f32], db: &mut [f32]) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::elementwise::column_sums(s, channels, dy, db)
        }
        /// # Safety
        /// The CPU supports this ISA; the slices are whole rows of `cols` (validated by the safe entry).
        $(#[$attr])*
        unsafe fn softmax(op: SoftmaxOp<'_>) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::elementwise::softmax::run(s, op)
        }

        /// # Safety
        /// The CPU supports this ISA; `x` and `y` are whole rows of `a.len() == b.len()` channels, of one length.
        $(#[$attr])*
        unsafe fn channel_affine(x: &[f32], a: &[f32], b: &[f32], relu: bool, y: &mut [f32]) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::elementwise::channel::channel_affine(s, x, a, b, relu, y)
        }
        /// # Safety
        /// The CPU supports this ISA; the coefficients share one length, and `x`, `dy`, the ReLU output and `dx`
        /// are whole rows of it, of one length (validated by the safe entry).
        $(#[$attr])*
        unsafe fn batch_norm_backward_data(k: BnGradCoefficients<'_>, op: BnGrad<'_>, dx: &mut [f32]) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::elementwise::channel::batch_norm_backward_data(s, k, op, dx)
        }

        /// # Safety
        /// The CPU supports this ISA; equal lengths.
        $(#[$attr])*
        unsafe fn to_bf16(x: &[f32], y: &mut [half::bf16]) {
            $crate::elementwise::convert::to_bf16(x, y)
        }
        /// # Safety
        /// The CPU supports this ISA; equal lengths.
        $(#[$attr])*
        unsafe fn from_bf16(x: &[half::bf16], y: &mut [f32]) {
            $crate::elementwise::convert::from_bf16(x, y)
        }
        /// # Safety
        /// The CPU supports this ISA; equal lengths.
        $(#[$attr])*
        unsafe fn round_to_bf16(x: &[f32], y: &mut [f32]) {
            $crate::elementwise::convert::round_to_bf16(x, y)
        }

        /// This ISA's elementwise kernels.
        pub(crate) static TABLE: ElementwiseTable = ElementwiseTable {
            unary,
            backward,
            swish_pair,
            bias_add,
            column_sums,
            softmax,
            channel_affine,
            batch_norm_backward_data,
            to_bf16,
            from_bf16,
            round_to_bf16,
        };
    };
}

per_isa!(elementwise_entries);
