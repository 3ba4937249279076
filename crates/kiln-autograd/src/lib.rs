//! # kiln-autograd
//!
//! Reverse-mode automatic differentiation for Kiln. Parameter values live once in a [`Params`] store; each
//! data-parallel replica owns a [`Tape`] (its activations, gradients and recorded steps). A step is a
//! [`Recording`] on a tape ([`Tape::record`]), which borrows the store read-only: every operation records a small
//! [`Backward`] implementation holding its saved state (after burn's design), and [`Recording::backward`] walks
//! the records in reverse, leaving the parameters' gradients on the tape ([`Tape::param_grad`]). Values,
//! gradients and records are kept between steps and reused, so a training step that repeats the previous one
//! allocates nothing. All arithmetic goes through the SIMD kernels of `kiln-kernels` (convolutions with
//! [`ConvAlgo::Auto`](kiln_kernels::ConvAlgo::Auto) by default).
//!
//! ```
//! use kiln_autograd::{Conv2dParams, Params, Tape};
//! use kiln_tensor::Tensor;
//!
//! let mut params = Params::new();
//! let w = params.add("conv/kernel", &Tensor::full(&[3, 3, 1, 2], 0.1)?, true)?;
//! let b = params.add("conv/bias", &Tensor::zeros(&[2])?, true)?;
//! let mut tape = Tape::new();
//! for _step in 0..2 {
//!     let mut rec = tape.record(&params);
//!     let x = rec.input(&[1, 4, 4, 1], &[1.0; 16])?;
//!     let (wv, bv) = (rec.param(w)?, rec.param(b)?);
//!     let y = rec.conv2d(x, wv, Some(bv), Conv2dParams::default())?;
//!     let y = rec.swish(y)?;
//!     let loss = rec.mean(y)?;
//!     rec.backward(loss)?;
//!     // A plain SGD step on the store, from the gradients the step left on the tape.
//!     let grad = tape.param_grad(b).expect("the bias has a gradient").to_vec();
//!     for (v, g) in params.value_mut(b)?.iter_mut().zip(&grad) {
//!         *v -= 0.1 * g;
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod backward;
mod dims;
mod error;
pub mod ops;
mod params;
mod precision;
mod recording;
mod tape;

pub use backward::{Backward, Grads};
pub use dims::{Dims, MAX_RANK};
pub use error::{AutogradError, Result};
pub use ops::activation::Activation;
pub use ops::affine_transform::FillMode;
pub use ops::cast::GradRounding;
pub use ops::conv2d::Conv2dParams;
pub use ops::loss::EPSILON;
pub use ops::pool::PoolPadding;
pub use params::{ParamId, Params};
pub use precision::Precision;
pub use recording::{Backprop, Recording};
pub use tape::{State, Tape, Var, View};
