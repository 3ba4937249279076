//! Single-precision GEMM: `C = alpha·op(A)·op(B) + beta·C`, row-major with leading dimensions, `op` = identity or
//! transpose on each side.
//!
//! [`sgemm`] validates once ([`GemmGeometry`] + slice lengths), then runs the best kernel of this CPU
//! ([`Kernels::best`](crate::dispatch::Kernels::best)); [`Kernels::for_isa`](crate::dispatch::Kernels::for_isa)
//! reaches any other ISA the CPU supports, for tests and benches. `beta = 0` never reads C (it may hold NaN).
//!
//! Threads: large products are split across the rayon pool into disjoint blocks of C rows or columns, never along
//! the reduction, and each element is computed by the same sequence of operations in any block, so results are
//! bitwise identical for any number of threads.

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;
pub(crate) mod blocking;
pub(crate) mod portable;
pub(crate) mod table;
pub(crate) mod task;
pub(crate) mod widening;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

use rayon::prelude::*;

use crate::dispatch::Kernels;
use crate::error::Result;
use crate::geometry::GemmGeometry;
use crate::precision::Element;
use table::GemmTable;
use task::GemmTask;

/// How a GEMM may use threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Threads {
    /// On the calling thread only; never touches rayon (safe where threads cannot be spawned, e.g. under
    /// qemu-user).
    Single,
    /// Split large products across the current rayon pool (the global pool, or the one a caller `install`s).
    #[default]
    Rayon,
}

/// Products below this many FLOPs run on one thread: a rayon fan-out costs a few microseconds, as much as a
/// 1-MFLOP product at ~200 GFLOP/s.
pub const PARALLEL_MIN_FLOPS: u64 = 1 << 21;

/// `C = alpha·op(A)·op(B) + beta·C` with the best kernel for this CPU, multi-threaded when large.
pub fn sgemm(g: &GemmGeometry, alpha: f32, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) -> Result<()> {
    Kernels::best().sgemm(g, alpha, a, b, beta, c)
}

impl Kernels {
    /// [`sgemm`] with this table's kernel, multi-threaded when large.
    pub fn sgemm(&self, g: &GemmGeometry, alpha: f32, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) -> Result<()> {
        self.gemm(Threads::Rayon, g, alpha, a, b, beta, c)
    }

    /// [`sgemm`] with this table's kernel and an explicit threading policy.
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm_with(
        &self,
        threads: Threads,
        g: &GemmGeometry,
        alpha: f32,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: &mut [f32],
    ) -> Result<()> {
        self.gemm(threads, g, alpha, a, b, beta, c)
    }

    /// `C = alpha·op(A)·op(B) + beta·C` with A and B of element `T` and C in `f32` (the accumulation format of
    /// every element type). bf16 runs natively where the CPU has bf16 arithmetic (AVX-512 BF16) and otherwise by
    /// widening to this ISA's f32 kernel, with the same bits either way unless values are subnormal
    /// ([`Kernels::native`] tells which).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm<T: Element>(
        &self,
        threads: Threads,
        g: &GemmGeometry,
        alpha: f32,
        a: &[T],
        b: &[T],
        beta: f32,
        c: &mut [f32],
    ) -> Result<()> {
        let Some(table) = T::gemm_table(self) else {
            return T::gemm_without_table(self, threads, g, alpha, a, b, beta, c);
        };
        g.check(a.len(), b.len(), c.len())?;
        let task = GemmTask::new(g, alpha, a, b, beta, c);
        match threads {
            Threads::Single => run_gemm(table, &task),
            Threads::Rayon => run_gemm_parallel(table, &task),
        }
        Ok(())
    }
}

fn run_gemm<T: Element>(table: &GemmTable<T>, t: &GemmTask<T>) {
    // SAFETY: `table` comes from a `&Kernels`, which exists only for an ISA this CPU supports (`for_isa` / `best`),
    // and `Element::gemm_table` hands out a table needing an ISA extension only where the CPU has it; the task was
    // built from a validated geometry and checked slices (or is a disjoint sub-block of such a task).
    unsafe { (table.run)(t) }
}

fn run_gemm_parallel<T: Element>(table: &GemmTable<T>, t: &GemmTask<T>) {
    let threads = rayon::current_num_threads();
    let (mr, nr) = table.tile;
    let (m_tiles, n_tiles) = (t.m.div_ceil(mr), t.n.div_ceil(nr));
    if threads <= 1 || t.flops() < PARALLEL_MIN_FLOPS || m_tiles.max(n_tiles) < 2 {
        return run_gemm(table, t);
    }
    // Split the dimension with more tiles into whole-tile blocks, one per thread.
    let (tiles, tile, by_rows) = if m_tiles >= n_tiles { (m_tiles, mr, true) } else { (n_tiles, nr, false) };
    let parts = threads.min(tiles);
    let span = tiles.div_ceil(parts) * tile;
    let extent = if by_rows { t.m } else { t.n };
    (0..parts).into_par_iter().for_each(|p| {
        let start = p * span;
        if start < extent {
            let len = span.min(extent - start);
            let sub = if by_rows { t.rows(start, len) } else { t.cols(start, len) };
            run_gemm(table, &sub);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::precision::DType;

    /// Every table computes bf16 (natively or by widening); only the native ones report it as native.
    #[test]
    fn bf16_runs_on_every_isa() {
        let g = GemmGeometry::new(2, 2, 3).unwrap();
        let (a, b) = ([half::bf16::ONE; 6], [half::bf16::from_f32(0.5); 6]);
        for isa in crate::Isa::available() {
            let k = Kernels::for_isa(isa).unwrap();
            let mut c = [0.0f32; 4];
            k.gemm(Threads::Single, &g, 1.0, &a, &b, 0.0, &mut c).unwrap();
            assert_eq!(c, [1.5; 4], "{isa}");
            assert_eq!(k.native(DType::BF16), isa.supports(DType::BF16), "{isa}");
            assert!(!k.bf16_by_widening().native(DType::BF16));
        }
    }
}
