//! Shapes the benches share: the flagship MNIST network's layers at batch 32 (KERNELS.md §3) plus standard
//! convolution layers, so that every bench family measures the same workloads.

use kiln_kernels::{Conv2dGeometry, GemmGeometry, KernelError};

/// Batch size of the flagship training job (Keras default).
pub const FLAGSHIP_BATCH: usize = 32;

/// A named convolution layer.
#[derive(Debug, Clone, Copy)]
pub struct ConvCase {
    /// Bench id component, e.g. `mnist_conv1_b32`.
    pub name: &'static str,
    /// The layer.
    pub geometry: Conv2dGeometry,
}

/// A named GEMM.
#[derive(Debug, Clone, Copy)]
pub struct GemmCase {
    /// Bench id component, e.g. `dense1_fwd_32x84x2400`.
    pub name: &'static str,
    /// The product.
    pub geometry: GemmGeometry,
}

/// The flagship convolutions (conv1 28×28×1→3 5×5, conv2 24×24×3→6 5×5, valid) at batch 32 and 256, and 3×3
/// `same` layers with 64/128/256 channels at 56²/28²/14², batch 32, as in `../shared/anchors/torch_conv_bench.py`,
/// and the Fashion-MNIST flagship's 3×3 layers at one replica's batch of 32.
pub fn conv_cases() -> Result<Vec<ConvCase>, KernelError> {
    let same = kiln_kernels::Padding::Same;
    Ok(vec![
        ConvCase { name: "conv1_b32", geometry: Conv2dGeometry::spec(FLAGSHIP_BATCH, [28, 28, 1], [5, 5], 3).build()? },
        ConvCase { name: "conv2_b32", geometry: Conv2dGeometry::spec(FLAGSHIP_BATCH, [24, 24, 3], [5, 5], 6).build()? },
        ConvCase { name: "conv1_b256", geometry: Conv2dGeometry::spec(256, [28, 28, 1], [5, 5], 3).build()? },
        ConvCase { name: "conv2_b256", geometry: Conv2dGeometry::spec(256, [24, 24, 3], [5, 5], 6).build()? },
        ConvCase {
            name: "c64_56x56_3x3_b32",
            geometry: Conv2dGeometry::spec(FLAGSHIP_BATCH, [56, 56, 64], [3, 3], 64).padding(same).build()?,
        },
        ConvCase {
            name: "c128_28x28_3x3_b32",
            geometry: Conv2dGeometry::spec(FLAGSHIP_BATCH, [28, 28, 128], [3, 3], 128).padding(same).build()?,
        },
        // The Fashion-MNIST flagship's 3×3 layers as one replica sees them (batch 64 split in two).
        ConvCase {
            name: "fashion_c1to32_28x28_b32",
            geometry: Conv2dGeometry::spec(FLAGSHIP_BATCH, [28, 28, 1], [3, 3], 32).padding(same).build()?,
        },
        ConvCase {
            name: "fashion_c32_28x28_b32",
            geometry: Conv2dGeometry::spec(FLAGSHIP_BATCH, [28, 28, 32], [3, 3], 32).padding(same).build()?,
        },
        ConvCase {
            name: "fashion_c32to64_14x14_b32",
            geometry: Conv2dGeometry::spec(FLAGSHIP_BATCH, [14, 14, 32], [3, 3], 64).padding(same).build()?,
        },
        ConvCase {
            name: "fashion_c64_14x14_b32",
            geometry: Conv2dGeometry::spec(FLAGSHIP_BATCH, [14, 14, 64], [3, 3], 64).padding(same).build()?,
        },
        ConvCase {
            name: "c256_14x14_3x3_b32",
            geometry: Conv2dGeometry::spec(FLAGSHIP_BATCH, [14, 14, 256], [3, 3], 256).padding(same).build()?,
        },
    ])
}

/// The flagship Dense products (forward M=32 K=2400 N=84 and M=32 K=84 N=10) and square GEMMs.
pub fn gemm_cases() -> Result<Vec<GemmCase>, KernelError> {
    Ok(vec![
        GemmCase { name: "dense1_fwd_32x84x2400", geometry: GemmGeometry::new(FLAGSHIP_BATCH, 84, 2400)? },
        GemmCase { name: "dense2_fwd_32x10x84", geometry: GemmGeometry::new(FLAGSHIP_BATCH, 10, 84)? },
        GemmCase { name: "square_256", geometry: GemmGeometry::new(256, 256, 256)? },
        GemmCase { name: "square_1024", geometry: GemmGeometry::new(1024, 1024, 1024)? },
    ])
}

#[cfg(test)]
mod tests {
    #[test]
    fn cases_build() {
        assert_eq!(super::conv_cases().unwrap().len(), 7);
        assert_eq!(super::gemm_cases().unwrap()[0].geometry.flops(), 2 * 32 * 84 * 2400);
    }
}
