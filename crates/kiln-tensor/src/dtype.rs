//! Element types: Kiln computes in `f32` and stores in `f32`, `f16` or `bf16` ([`HalfTensor`]).
//!
//! Conversion precision (round-to-nearest-even, as `half` implements it):
//! * `f16`: 11 significant bits, so a normal value in `[2⁻¹⁴, 65504]` round-trips with relative error
//!   ≤ 2⁻¹¹ (4.9e-4); subnormals (down to 2⁻²⁴) with absolute error ≤ 2⁻²⁵; magnitudes above 65504 (more exactly
//!   from 65520) become ±∞.
//! * `bf16`: 8 significant bits and the exponent range of `f32`, so every finite value round-trips with relative
//!   error ≤ 2⁻⁸ (3.9e-3) (values within 2⁻⁸ of `f32::MAX` may round to ±∞); f32 subnormals lose bits likewise.
//! * Both keep ±∞, ±0 and NaN (as a NaN).

use std::fmt;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::error::{Result, TensorError};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// The element types Kiln can store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE 754 binary32 (compute and default storage type).
    F32,
    /// IEEE 754 binary16.
    F16,
    /// bfloat16 (the upper half of an `f32`).
    BF16,
}

impl DType {
    /// Bytes per element.
    pub const fn size_of(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// The name used by safetensors: `F32`, `F16`, `BF16`.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
        }
    }

    /// Relative precision of one rounding to this type, for normal values: 2⁻²⁴, 2⁻¹¹, 2⁻⁸.
    pub const fn unit_roundoff(self) -> f32 {
        match self {
            DType::F32 => f32::EPSILON / 2.0,
            DType::F16 => 1.0 / 2048.0,
            DType::BF16 => 1.0 / 256.0,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A 16-bit storage element type (`half::f16` or `half::bf16`).
pub trait HalfElement: Copy + Default + PartialEq + fmt::Debug + sealed::Sealed {
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Converts `src` into `dst` (same length), rounding to nearest even.
    fn from_f32_slice(dst: &mut [Self], src: &[f32]);
    /// Widens `src` into `dst` (same length), exactly.
    fn to_f32_slice(src: &[Self], dst: &mut [f32]);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

impl HalfElement for f16 {
    const DTYPE: DType = DType::F16;
    fn from_f32_slice(dst: &mut [Self], src: &[f32]) {
        dst.convert_from_f32_slice(src);
    }
    fn to_f32_slice(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
}

impl HalfElement for bf16 {
    const DTYPE: DType = DType::BF16;
    fn from_f32_slice(dst: &mut [Self], src: &[f32]) {
        dst.convert_from_f32_slice(src);
    }
    fn to_f32_slice(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
}

/// A tensor stored in a 16-bit type, for compact storage (weights files, caches). Convert to [`Tensor`] to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct HalfTensor<T: HalfElement> {
    shape: Shape,
    data: Vec<T>,
}

impl<T: HalfElement> HalfTensor<T> {
    /// A half tensor from raw 16-bit elements; an error if the length does not match the shape.
    pub fn from_vec(dims: &[usize], data: Vec<T>) -> Result<Self> {
        let shape = Shape::new(dims)?;
        if data.len() != shape.numel() {
            return Err(TensorError::LengthMismatch {
                op: "HalfTensor::from_vec",
                expected: shape.numel(),
                got: data.len(),
                shape,
            });
        }
        Ok(HalfTensor { shape, data })
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The stored elements.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// Widens to an `f32` tensor (exact).
    pub fn to_f32(&self) -> Result<Tensor> {
        let mut out = Tensor::zeros(self.shape.dims())?;
        T::to_f32_slice(&self.data, out.as_mut_slice());
        Ok(out)
    }

    /// Consumes the tensor, returning its shape and elements.
    pub fn into_parts(self) -> (Shape, Vec<T>) {
        (self.shape, self.data)
    }
}

impl Tensor {
    /// Rounds every element to `T` (nearest even); see the module docs for the precision.
    pub fn to_half<T: HalfElement>(&self) -> HalfTensor<T> {
        let mut data = vec![T::default(); self.len()];
        T::from_f32_slice(&mut data, self.as_slice());
        HalfTensor { shape: self.shape().clone(), data }
    }

    /// Rounds to `f16` storage.
    pub fn to_f16(&self) -> HalfTensor<f16> {
        self.to_half()
    }

    /// Rounds to `bf16` storage.
    pub fn to_bf16(&self) -> HalfTensor<bf16> {
        self.to_half()
    }

    /// An `f32` tensor from 16-bit elements; an error if the length does not match the shape.
    pub fn from_half<T: HalfElement>(dims: &[usize], data: &[T]) -> Result<Tensor> {
        let shape = Shape::new(dims)?;
        if data.len() != shape.numel() {
            return Err(TensorError::LengthMismatch {
                op: "from_half",
                expected: shape.numel(),
                got: data.len(),
                shape,
            });
        }
        let mut out = Tensor::zeros(dims)?;
        T::to_f32_slice(data, out.as_mut_slice());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_values_survive() {
        let x = Tensor::from_slice(&[6], &[0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1.5]).unwrap();
        for back in [x.to_f16().to_f32().unwrap(), x.to_bf16().to_f32().unwrap()] {
            let s = back.as_slice();
            assert_eq!(s[0].to_bits(), 0.0f32.to_bits());
            assert_eq!(s[1].to_bits(), (-0.0f32).to_bits());
            assert_eq!(s[2], f32::INFINITY);
            assert_eq!(s[3], f32::NEG_INFINITY);
            assert!(s[4].is_nan());
            assert_eq!(s[5], 1.5);
        }
        // Beyond the f16 range: infinity; bf16 keeps it.
        let big = Tensor::from_slice(&[1], &[1e6]).unwrap();
        assert_eq!(big.to_f16().to_f32().unwrap().as_slice()[0], f32::INFINITY);
        assert!((big.to_bf16().to_f32().unwrap().as_slice()[0] - 1e6).abs() <= 1e6 / 256.0);
    }

    #[test]
    fn lengths_are_checked() {
        assert!(HalfTensor::<f16>::from_vec(&[3], vec![f16::ZERO; 2]).is_err());
        assert!(Tensor::from_half(&[2, 2], &[bf16::ONE; 3]).is_err());
        let h = HalfTensor::from_vec(&[2], vec![bf16::ONE, bf16::NEG_ONE]).unwrap();
        assert_eq!(h.dtype(), DType::BF16);
        assert_eq!(h.to_f32().unwrap().as_slice(), &[1.0, -1.0]);
        assert_eq!(DType::F16.size_of(), 2);
        assert_eq!(DType::BF16.to_string(), "BF16");
    }
}
