//! 2-D convolution (Keras `Conv2D` semantics: cross-correlation, NHWC activations, HWIO weights, bias per output
//! channel) — forward, backward-data, backward-filter and bias gradient — by four algorithms:
//!
//! - [`ConvAlgo::Direct`]: the small-channel planar "wide-row" kernel of KERNELS.md §3 (stride 1, dilation 1,
//!   `in_c ≤ 8`, `out_c ≤ 16`; any padding). Backward-data is the same kernel on padded `dy` with rotated,
//!   channel-swapped weights; backward-filter is a vector reduction with fixed per-chunk partial sums.
//! - [`ConvAlgo::ImplicitGemm`]: an indirect GEMM over NHWC (any stride, padding, dilation): output pixels × output
//!   channels in registers, the reduction over (tap, input channel) reading input rows through an indirection
//!   table; backward-data gathers `dy` the same way (a tap that hits no output row reads a zero row), and
//!   backward-filter reduces `xᵀ·dy` per tap in register tiles (input channels × output channels) over every
//!   pixel, in fixed chunks added in f64.
//! - [`ConvAlgo::Im2col`]: tiled im2col (bounded scratch) + [`sgemm`](crate::sgemm); col2im for backward-data.
//! - [`ConvAlgo::Winograd`]: F(2×2,3×3), F(4×4,3×3) and F(2×2,5×5) with the √2 points of KERNELS.md §1.2
//!   (the last two share one 6×6 input transform), stride 1 and dilation 1; backward-data through the rotated
//!   filter; backward-filter by F(3×3,2×2), F(3×3,4×4) and F(5×5,2×2) (dy tiles as the filter).
//!
//! Every entry point validates the geometry and slice lengths once and returns the algorithm it ran.
//! Results are bitwise identical for any number of threads: work is split into disjoint outputs, and the
//! reductions that span images (backward-filter) sum fixed-size chunks in a fixed order or run inside the
//! (deterministic) SGEMM.

mod api;
pub(crate) mod direct;
pub(crate) mod igemm;
pub(crate) mod im2col;
mod plan;
pub(crate) mod scratch;
pub(crate) mod table;
pub(crate) mod winograd;

use std::fmt;

pub use plan::{ConvPlan, KeptInput};

use crate::dispatch::Kernels;
use crate::error::{KernelError, Result};
use crate::gemm::Threads;
use crate::geometry::Conv2dGeometry;
use crate::isa::Isa;
use crate::precision::DType;

/// The Winograd tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WinogradTile {
    /// Chosen from the kernel size and the output size (see [`ConvAlgo::resolve`]).
    #[default]
    Auto,
    /// F(2×2, 3×3): 4×4 tiles, points {0, ±1, ∞}.
    F2x2K3x3,
    /// F(4×4, 3×3): 6×6 tiles, points {0, ±√2/2, ±√2, ∞}.
    F4x4K3x3,
    /// F(2×2, 5×5): 6×6 tiles, the same points (and input transform) as F(4×4, 3×3).
    F2x2K5x5,
}

impl WinogradTile {
    /// Output tile side m.
    pub fn m(self) -> usize {
        match self {
            WinogradTile::F4x4K3x3 => 4,
            _ => 2,
        }
    }
    /// Kernel side r (0 for `Auto`).
    pub fn r(self) -> usize {
        match self {
            WinogradTile::Auto => 0,
            WinogradTile::F2x2K3x3 | WinogradTile::F4x4K3x3 => 3,
            WinogradTile::F2x2K5x5 => 5,
        }
    }
}

/// A convolution algorithm; every one but `Auto` can be forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConvAlgo {
    /// Chosen per geometry and pass by [`ConvAlgo::resolve`].
    #[default]
    Auto,
    /// Planar wide-row direct convolution for small channel counts.
    Direct,
    /// Indirect (implicit) GEMM over NHWC.
    ImplicitGemm,
    /// Tiled im2col + SGEMM.
    Im2col,
    /// Winograd minimal filtering.
    Winograd(WinogradTile),
}

impl fmt::Display for ConvAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConvAlgo::Auto => "auto",
            ConvAlgo::Direct => "direct",
            ConvAlgo::ImplicitGemm => "igemm",
            ConvAlgo::Im2col => "im2col",
            ConvAlgo::Winograd(WinogradTile::Auto) => "winograd",
            ConvAlgo::Winograd(WinogradTile::F2x2K3x3) => "winograd-f2x3",
            ConvAlgo::Winograd(WinogradTile::F4x4K3x3) => "winograd-f4x3",
            ConvAlgo::Winograd(WinogradTile::F2x2K5x5) => "winograd-f2x5",
        })
    }
}

/// A pass of the convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvPass {
    /// `y = conv(x, w) + bias`.
    Forward,
    /// `dx = ∂L/∂x` from `dy` and `w`.
    BackwardData,
    /// `dw = ∂L/∂w` from `x` and `dy`.
    BackwardFilter,
}

impl fmt::Display for ConvPass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConvPass::Forward => "fwd",
            ConvPass::BackwardData => "bwd_data",
            ConvPass::BackwardFilter => "bwd_filter",
        })
    }
}

/// Largest input channel count the direct kernel takes (KERNELS.md §3).
pub const DIRECT_MAX_IN_C: usize = 8;
/// Largest output channel count the direct kernel takes.
pub const DIRECT_MAX_OUT_C: usize = 16;

impl ConvAlgo {
    /// Why this (concrete) algorithm cannot run `pass` on `g`, or `None` if it can.
    pub fn unsupported_reason(self, g: &Conv2dGeometry, pass: ConvPass) -> Option<&'static str> {
        // Every algorithm now runs all three passes; the pass stays in the signature for `resolve`'s choices.
        let _ = pass;
        let unit = g.stride_h() == 1 && g.stride_w() == 1 && g.dilation_h() == 1 && g.dilation_w() == 1;
        match self {
            ConvAlgo::Auto | ConvAlgo::ImplicitGemm | ConvAlgo::Im2col => None,
            ConvAlgo::Direct => {
                if !unit {
                    Some("the direct kernel needs stride 1 and dilation 1")
                } else if g.in_c() > DIRECT_MAX_IN_C || g.out_c() > DIRECT_MAX_OUT_C {
                    Some("the direct kernel needs in_c <= 8 and out_c <= 16")
                } else {
                    None
                }
            }
            ConvAlgo::Winograd(tile) => {
                if !unit {
                    Some("Winograd needs stride 1 and dilation 1")
                } else if g.kernel_h() != g.kernel_w() || !matches!(g.kernel_h(), 3 | 5) {
                    Some("Winograd needs a 3x3 or 5x5 kernel")
                } else if tile != WinogradTile::Auto && tile.r() != g.kernel_h() {
                    Some("this Winograd tile is for another kernel size")
                } else {
                    None
                }
            }
        }
    }

    /// The concrete algorithm `Auto` (or `Winograd(Auto)`) stands for on the kernels of `isa`, or an
    /// [`KernelError::Unsupported`] error if a forced algorithm cannot run this geometry and pass.
    ///
    /// `Auto` is this function of the geometry and ISA (crossovers from criterion medians of
    /// `cargo benches --bench conv`, one thread; the measurements are in the README's measured sections):
    /// - stride 1, dilation 1, `in_c ≤ 8`, `out_c ≤ 16` → `Direct` (the flagship layers; conv2 batch 32 forward
    ///   130.7 µs vs 2968 µs implicit GEMM and 3242 µs im2col, backward-filter 261 µs vs 3362 µs im2col);
    /// - 3×3 or 5×5, stride 1, dilation 1, both channel counts ≥ 128, or ≥ 64 on maps of at least 28×28 →
    ///   `Winograd`: 5×5 → F(2×2,5×5); 3×3 → F(4×4,3×3), or F(2×2,3×3) for outputs under 8×8 and for maps up to
    ///   14×14 (backward-filter: the matching F(r×r, m×m)); c128@28² forward 37.9 ms vs 84.2 im2col and 124.6
    ///   implicit GEMM, backward-filter 37.7 vs 75.4 im2col and 372 implicit GEMM (Zen 4);
    /// - with AVX2 (8-wide vectors, where the column matrix costs relatively more than with AVX-512) Winograd
    ///   already pays from 64 channels on any map and, in the forward pass, from 32 channels on maps of at least
    ///   28×28 (Zen 3, the Fashion-MNIST flagship's layers at batch 32: c64@14² forward 5.46 ms vs 10.01 im2col,
    ///   backward-data 5.24 vs 8.71, backward-filter 4.89 vs 7.52; c32@28² forward 9.92 vs 14.36, but
    ///   backward-data 10.98 vs 9.76 and backward-filter 9.66 vs 8.54 favour im2col);
    /// - the other 3×3/5×5 layers with 16 or more channels → `Im2col` in every pass: there the tile transforms
    ///   cost more than the multiplications they save (Zen 5, batch 32: c32@28² forward 3.32 ms vs 3.82
    ///   F(4×4,3×3), backward-data 3.09 vs 3.99, backward-filter 2.59 vs 4.59; c64@14² ties);
    /// - a reduction of at most 64 terms (`in_c·kh·kw`, e.g. a first layer on one-channel images) → `Im2col`: a
    ///   short dot product per output leaves implicit GEMM's registers idle (c1→32@28² 3×3, AVX2: forward
    ///   2.48 ms vs 6.33, backward-filter 1.96 vs 3.80);
    /// - other backward-filter passes → `Im2col` (c64@56² 92.2 ms vs 314.5 implicit GEMM);
    /// - everything else → `ImplicitGemm` (its forward ties im2col: c256@14² 69.1 vs 73.1 ms, c64@56² 99.4 vs
    ///   104.9) and needs no column buffer.
    pub fn resolve(self, g: &Conv2dGeometry, pass: ConvPass, isa: Isa) -> Result<ConvAlgo> {
        if let Some(reason) = self.unsupported_reason(g, pass) {
            return Err(KernelError::Unsupported { op: "conv2d", what: self.to_string(), reason });
        }
        Ok(match self {
            ConvAlgo::Auto => {
                let winograd = ConvAlgo::Winograd(WinogradTile::Auto).unsupported_reason(g, pass).is_none();
                if ConvAlgo::Direct.unsupported_reason(g, pass).is_none() {
                    ConvAlgo::Direct
                } else if g.in_c() >= 16 && g.out_c() >= 16 && winograd {
                    let (channels, side) = (g.in_c().min(g.out_c()), g.out_h().min(g.out_w()));
                    let wide = channels >= 128 || (channels >= 64 && side >= 28);
                    let avx2 = isa == Isa::Avx2Fma
                        && (channels >= 64 || (channels >= 32 && side >= 28 && pass == ConvPass::Forward));
                    if wide || avx2 { ConvAlgo::Winograd(winograd_tile(g)) } else { ConvAlgo::Im2col }
                } else if pass == ConvPass::BackwardFilter || g.in_c() * g.kernel_h() * g.kernel_w() <= 64 {
                    ConvAlgo::Im2col
                } else {
                    ConvAlgo::ImplicitGemm
                }
            }
            ConvAlgo::Winograd(WinogradTile::Auto) => ConvAlgo::Winograd(winograd_tile(g)),
            other => other,
        })
    }
}

/// The Winograd tile `Auto` uses (criterion medians, `cargo benches --bench conv`, AVX-512,
/// 1 thread, batch 32, 3×3 `same`): F(4×4,3×3) beats F(2×2,3×3) on c64@56² (fwd 74.0 vs 91.0 ms, bwd-data 53.4
/// vs 89.7, bwd-filter 53.1 vs 93.5) and c128@28² (fwd 37.9 vs 57.2 ms); on c256@14² F(2×2,3×3) wins forward
/// (51.8 vs 56.3 ms) and backward-data (50.7 vs 60.8) and ties backward-filter (45.3 vs 45.1) — ncnn's rule
/// (small maps with many channels take F(2,3)) holds here too.
fn winograd_tile(g: &Conv2dGeometry) -> WinogradTile {
    let side = g.out_h().min(g.out_w());
    if g.kernel_h() == 5 {
        WinogradTile::F2x2K5x5
    } else if side < 8 || (side <= 14 && g.in_c() >= 128 && g.out_c() >= 128) {
        WinogradTile::F2x2K3x3
    } else {
        WinogradTile::F4x4K3x3
    }
}

/// Algorithm and threading policy of one convolution call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConvOptions {
    /// The algorithm (default `Auto`).
    pub algo: ConvAlgo,
    /// Threading (default: the current rayon pool).
    pub threads: Threads,
    /// The format products are computed in (default `f32`). Operands and results stay `f32`; `BF16` means
    /// oneDNN's `fpmath_mode::bf16`: operands rounded to bfloat16, accumulation in `f32`. No ISA has bf16
    /// convolution kernels yet, so anything but `F32` is [`KernelError::UnsupportedDType`].
    pub compute: DType,
}

impl ConvOptions {
    /// Options forcing `algo`, with the default threading.
    pub fn algo(algo: ConvAlgo) -> Self {
        ConvOptions { algo, ..ConvOptions::default() }
    }
    /// These options with another threading policy.
    pub fn threads(mut self, threads: Threads) -> Self {
        self.threads = threads;
        self
    }
    /// These options with another compute format.
    pub fn compute(mut self, compute: DType) -> Self {
        self.compute = compute;
        self
    }
    /// Whether `k` has convolution kernels computing in [`ConvOptions::compute`].
    pub(crate) fn check_compute(&self, k: &Kernels, op: &'static str) -> Result<()> {
        match self.compute {
            DType::F32 => Ok(()),
            dtype => Err(KernelError::UnsupportedDType { op, dtype, isa: k.isa().name() }),
        }
    }
}

/// Number of parts to split `items` into for `threads` (1 when single-threaded).
pub(crate) fn parts(threads: Threads, items: usize) -> usize {
    match threads {
        Threads::Single => 1,
        Threads::Rayon => rayon::current_num_threads().min(items).max(1),
    }
}

/// Runs `f(start, len)` over `parts` contiguous ranges covering `0..items`, on the rayon pool when `parts > 1`.
pub(crate) fn split<F: Fn(usize, usize) + Sync>(parts: usize, items: usize, f: F) {
    use rayon::prelude::*;
    let span = items.div_ceil(parts.max(1)).max(1);
    if parts <= 1 {
        f(0, items);
    } else {
        (0..parts).into_par_iter().for_each(|p| {
            let start = p * span;
            if start < items {
                f(start, span.min(items - start));
            }
        });
    }
}
