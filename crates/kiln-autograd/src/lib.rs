//! # kiln-autograd
//!
//! Reverse-mode automatic differentiation for Kiln: a [`Tape`] records each operation together with a small
//! [`Backward`] implementation holding its saved state (after burn's design), and [`Tape::backward`] walks the
//! records in reverse. Values, gradients and records are kept between steps and reused, so a training step that
//! repeats the previous one allocates nothing. All arithmetic goes through the SIMD kernels of `kiln-kernels`
//! (convolutions with [`ConvAlgo::Auto`](kiln_kernels::ConvAlgo::Auto) by default).
//!
//! ```
//! use kiln_autograd::{Tape, Conv2dParams};
//! use kiln_tensor::Tensor;
//!
//! let mut tape = Tape::new();
//! let w = tape.add_param("conv/kernel", &Tensor::full(&[3, 3, 1, 2], 0.1)?, true)?;
//! let b = tape.add_param("conv/bias", &Tensor::zeros(&[2])?, true)?;
//! for _step in 0..2 {
//!     tape.reset();
//!     let x = tape.input(&[1, 4, 4, 1], &[1.0; 16])?;
//!     let (wv, bv) = (tape.param(w)?, tape.param(b)?);
//!     let y = tape.conv2d(x, wv, Some(bv), Conv2dParams::default())?;
//!     let y = tape.swish(y)?;
//!     let loss = tape.mean(y)?;
//!     tape.backward(loss)?;
//!     assert_eq!(tape.param_grad(b)?.unwrap().len(), 2);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod backward;
mod dims;
mod error;
pub mod ops;
mod tape;

pub use backward::{Backward, Grads};
pub use dims::{Dims, MAX_RANK};
pub use error::{AutogradError, Result};
pub use ops::activation::Activation;
pub use ops::conv2d::Conv2dParams;
pub use ops::loss::EPSILON;
pub use ops::pool::PoolPadding;
pub use tape::{ParamId, ReplicaParam, State, Tape, Var};
