//! The element-type slot: which number format a kernel's inputs are stored in.
//!
//! Kernels read and write `f32`, and the GEMM also takes bfloat16 inputs: Keras' `mixed_bfloat16` policy stores
//! activations and weights in bfloat16 and accumulates in `f32`, as oneDNN's and XNNPACK's bf16 GEMMs do.
//!
//! * [`DType`] names a format, [`Element`] is the (sealed) Rust type of one, implemented for `f32` and
//!   [`half::bf16`];
//! * [`Isa::supports`](crate::Isa::supports) says whether a tier has native arithmetic for a format on this CPU
//!   (bf16 needs AVX-512 BF16 or the Arm BF16 extension);
//! * [`Kernels::gemm`](crate::Kernels::gemm) is generic over the inputs' element (`C` stays `f32`): it runs the
//!   element's native table where the CPU has one (bf16: AVX-512 BF16) and otherwise widens bf16 to the ISA's f32
//!   kernel, with the same bits ([`Kernels::native`](crate::Kernels::native) says which);
//! * [`ConvOptions::precision`](crate::ConvOptions) carries the compute format of a convolution plan.

use std::fmt;
use std::str::FromStr;

use crate::dispatch::Kernels;
use crate::error::KernelError;
use crate::gemm::table::GemmTable;

/// A number format kernels can compute in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DType {
    /// IEEE 754 binary32.
    #[default]
    F32,
    /// bfloat16: binary32's exponent with a 7-bit mantissa (`f32` with the low 16 bits dropped).
    BF16,
}

impl DType {
    /// Every format, in the order used for reports.
    pub const ALL: [DType; 2] = [DType::F32, DType::BF16];

    /// Keras' name of the format: `float32`, `bfloat16`.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::BF16 => "bfloat16",
        }
    }

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::BF16 => 2,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = KernelError;

    /// Accepts Keras' names and the short `f32` / `bf16`, case-insensitively.
    fn from_str(s: &str) -> Result<Self, KernelError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "float32" | "f32" => Ok(DType::F32),
            "bfloat16" | "bf16" => Ok(DType::BF16),
            _ => Err(KernelError::UnknownDType(s.to_string())),
        }
    }
}

mod sealed {
    use super::*;
    use crate::gemm::Threads;
    use crate::geometry::GemmGeometry;

    /// Keeps [`Element`] closed to the formats Kiln has kernels for, and hides how they are found.
    pub trait Sealed {
        /// This element's native GEMM table in `k`, if `k`'s ISA has one and this CPU can run it.
        fn gemm_table(k: &Kernels) -> Option<&'static GemmTable<Self>>
        where
            Self: Sized + super::Element;

        /// The product where [`Sealed::gemm_table`] has none.
        #[allow(clippy::too_many_arguments)]
        fn gemm_without_table(
            k: &Kernels,
            threads: Threads,
            g: &GemmGeometry,
            alpha: f32,
            a: &[Self],
            b: &[Self],
            beta: f32,
            c: &mut [f32],
        ) -> crate::error::Result<()>
        where
            Self: Sized;
    }

    impl Sealed for f32 {
        fn gemm_table(k: &Kernels) -> Option<&'static GemmTable<f32>> {
            Some(k.gemm)
        }

        fn gemm_without_table(
            k: &Kernels,
            _: Threads,
            _: &GemmGeometry,
            _: f32,
            _: &[f32],
            _: &[f32],
            _: f32,
            _: &mut [f32],
        ) -> crate::error::Result<()> {
            // Unreachable: every ISA has an f32 table.
            Err(KernelError::UnsupportedDType { op: "gemm", dtype: DType::F32, isa: k.isa().name() })
        }
    }

    impl Sealed for half::bf16 {
        fn gemm_table(k: &Kernels) -> Option<&'static GemmTable<half::bf16>> {
            // The table's code uses the BF16 extension, which the tier's `&Kernels` alone does not prove.
            k.gemm_bf16.filter(|_| k.isa().supports(DType::BF16))
        }

        fn gemm_without_table(
            k: &Kernels,
            threads: Threads,
            g: &GemmGeometry,
            alpha: f32,
            a: &[half::bf16],
            b: &[half::bf16],
            beta: f32,
            c: &mut [f32],
        ) -> crate::error::Result<()> {
            crate::gemm::widening::gemm(k, threads, g, alpha, a, b, beta, c)
        }
    }
}

/// The Rust type of a [`DType`]: what kernel inputs of that format are stored as.
pub trait Element: sealed::Sealed + bytemuck::Pod + fmt::Debug + Send + Sync + 'static {
    /// The format.
    const DTYPE: DType;
    /// Exact widening to `f32`.
    fn to_f32(self) -> f32;
    /// Rounding to nearest even (the conversion of `vcvtneps2bf16` and Arm's `BFCVT`).
    fn from_f32(value: f32) -> Self;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(value: f32) -> Self {
        value
    }
}

impl Element for half::bf16 {
    const DTYPE: DType = DType::BF16;
    fn to_f32(self) -> f32 {
        half::bf16::to_f32(self)
    }
    fn from_f32(value: f32) -> Self {
        half::bf16::from_f32(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
            assert_eq!(d.to_string().to_uppercase().parse::<DType>().unwrap(), d);
        }
        assert_eq!("bf16".parse::<DType>().unwrap(), DType::BF16);
        assert!(matches!("float8".parse::<DType>(), Err(KernelError::UnknownDType(_))));
        assert_eq!(DType::BF16.size(), std::mem::size_of::<bf16>());
        assert_eq!(DType::F32.size(), std::mem::size_of::<f32>());
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        // 1 + 2^-8 lies halfway between 1 and the next bf16 (1 + 2^-7): ties go to the even mantissa, 1.
        assert_eq!(<bf16 as Element>::from_f32(1.0 + 2f32.powi(-8)).to_f32(), 1.0);
        // Just above halfway rounds up.
        assert_eq!(<bf16 as Element>::from_f32(1.0 + 2f32.powi(-8) + 2f32.powi(-20)).to_f32(), 1.0 + 2f32.powi(-7));
        assert_eq!(<f32 as Element>::from_f32(0.1).to_f32(), 0.1);
    }
}
