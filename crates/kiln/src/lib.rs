//! # Kiln
//!
//! SIMD-optimised CPU kernels (GEMM and 2-D convolution, chosen at run time for AVX-512, AVX2+FMA, NEON or a
//! portable path) with a small deep-learning framework on top. This is the facade crate: it re-exports the
//! workspace's crates under short names, and [`prelude`] brings the everyday types into scope.
//!
//! ```
//! use kiln::prelude::*;
//!
//! let conv = Conv2dGeometry::spec(32, [28, 28, 1], [5, 5], 3).padding(Padding::Valid).build()?;
//! assert_eq!(conv.output_shape(), [32, 24, 24, 3]);
//! let x = Tensor::zeros(&conv.input_shape())?;
//! assert_eq!(x.shape().to_string(), "(32, 28, 28, 1)");
//! println!("kernels will run on {}", Isa::best());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod flagships;

pub use kiln_autograd as autograd;
pub use kiln_kernels as kernels;
pub use kiln_mnist as mnist;
pub use kiln_nn as nn;
pub use kiln_tensor as tensor;

/// The types most programs need: `use kiln::prelude::*;`.
pub mod prelude {
    pub use kiln_autograd::{AutogradError, Params, Recording, Tape};
    pub use kiln_kernels::{
        Conv2dGeometry, ConvAlgo, ConvOptions, ConvPass, GemmGeometry, Isa, KernelError, Kernels, Padding, Threads,
        Transpose, WinogradTile,
    };
    pub use kiln_mnist::{BatchOptions, Dataset, LabelFormat, Mnist, MnistError, Scale};
    /// The activation functions (`ActivationFn::Swish`), named apart from Keras' `Activation` layer.
    pub use kiln_nn::Activation as ActivationFn;
    pub use kiln_nn::layers::{
        Activation, Add, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Dense, DepthwiseConv2D, Dropout,
        Flatten, FlipMode, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D, RandomFlip, RandomRotation,
        RandomTranslation, RandomZoom, Rescaling,
    };
    pub use kiln_nn::{
        Call, ClassIndices, DTypePolicy, Data, FitOptions, History, ImagesU8, Input, Model, NnError, OneHot, Optimizer,
        Rows, Sequential, Validation, Verbose,
    };
    pub use kiln_tensor::{DType, Shape, Tensor, TensorError, TensorView, bf16, f16};
}

/// The README's Rust examples, compiled and run as doctests so the quick tour cannot drift from the API.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
