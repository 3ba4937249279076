//! # kiln-tensor
//!
//! The tensor core of Kiln: [`Shape`] (any rank, row-major; images are NHWC), [`Tensor`] (owned `f32` storage
//! aligned to 64 bytes), [`TensorView`] (borrowed, reshaped or batch-sliced without copying), `f16`/`bf16`
//! storage ([`HalfTensor`]), a pandas-like table for printing 2-D results ([`Table`]) and the [`Data`] sources
//! models read samples from.
//!
//! Computation is in `f32`. Every operation that can be handed inconsistent input returns a [`TensorError`].
//!
//! ```
//! use kiln_tensor::Tensor;
//!
//! let logits = Tensor::from_slice(&[2, 3], &[0.1, 0.7, 0.2, 0.9, 0.05, 0.05])?;
//! assert_eq!(logits.argmax(1)?, vec![1, 0]);
//! println!("{:.2}", logits); // pandas-like table, rounded to 2 decimals
//! # Ok::<(), kiln_tensor::TensorError>(())
//! ```

#![forbid(unsafe_code)]

pub mod data;
mod display;
mod dtype;
mod error;
mod shape;
mod tensor;

pub use data::{ClassIndices, Data, ImagesU8, OneHot, Rows};
pub use display::Table;
pub use dtype::{DType, HalfElement, HalfTensor};
pub use error::{Result, TensorError};
pub use half::{bf16, f16};
pub use shape::Shape;
pub use tensor::{BatchView, Tensor, TensorView};
