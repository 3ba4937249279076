//! The BLIS/Goto loop nest (Goto & van de Geijn, TOMS 2008; Van Zee & van de Geijn, TOMS 2015), generic over the
//! microkernel, and the packing routines. Everything here is `#[inline(always)]` so that it is compiled inside each
//! ISA's `#[target_feature]` entry point together with that ISA's microkernel.
//!
//! ```text
//! for jc in 0..n step NC            B block  KC×NC  packed into NR-wide panels  (L3)
//!   for pc in 0..k step KC          beta for the first pc block, 1 after
//!     for ic in 0..m step MC        A block  MC×KC  packed into MR-tall panels  (L2)
//!       for jr in 0..nc step NR
//!         for ir in 0..mc step MR   microkernel: C[ir.., jr..] (MR×NR in registers), called on depth slices
//!                                   of ≤ CHAIN steps (each accumulator sums at most CHAIN products)
//! ```
//! The K blocking depends only on `k`, and each C element is produced by the same sequence of operations whatever
//! tile (full or edge) or thread computes it, so results do not depend on how C is split across threads.

use std::cell::RefCell;

use super::task::GemmTask;
use crate::buffer::AlignedVec;

/// A register-blocked microkernel and its cache blocking.
pub(crate) trait MicroKernel {
    /// Rows of the register tile.
    const MR: usize;
    /// Columns of the register tile.
    const NR: usize;
    /// Rows of A per packed block (a multiple of MR).
    const MC: usize;
    /// Depth per packed block.
    const KC: usize;
    /// Columns of B per packed block (a multiple of NR).
    const NC: usize;
    /// Whether the kernel can read B in place (`ldb != NR`) with fault-free masked loads at the right edge, which
    /// the loop nest then uses for small `m` (see [`DIRECT_B_MAX_M`]).
    const DIRECT_B: bool = false;
    /// Whether the kernel reads A through [`Tile::lda`] (`a[p·lda + i]`), so that the loop nest can hand it a
    /// stored Aᵀ in place instead of packing it (see [`DIRECT_A_MAX_N`]). Kernels without it are only given
    /// packed panels (`lda` = the panel height).
    const DIRECT_A: bool = false;
    /// Rows of an optional short microkernel ([`MicroKernel::kernel_small`]) used for a last tile of at most this
    /// many rows (0: none). A product with one row (batch-1 inference through a Dense layer), or the 4-row tail of
    /// a 16-row product, would otherwise pay for `MR` rows of broadcasts and FMAs per depth step.
    const SMALL_MR: usize = 0;

    /// Like [`MicroKernel::kernel`] for a tile of at most `SMALL_MR` rows whose A panel is packed `SMALL_MR`
    /// tall (`a[p·SMALL_MR + i]`). Only called when `SMALL_MR > 0`.
    ///
    /// # Safety
    /// As [`MicroKernel::kernel`], with `MR` replaced by `SMALL_MR`.
    unsafe fn kernel_small(t: &Tile) {
        // SAFETY: never called unless SMALL_MR > 0, in which case the kernel overrides this method.
        unsafe { Self::kernel(t) }
    }

    /// Packs a transposed block into one panel: `out[p·tile + j] = src[j·ld + p]` for `j < rows`, `p < kc` — row-major
    /// A into MR-tall panels, or a stored Bᵀ into NR-wide panels. Lanes `rows..tile` are left as the caller
    /// zero-filled them (an override may also write them, with zeros). The default is the scalar loop; ISAs override
    /// it with in-register transposes (compiled for AVX-512, the scalar loop became scatter instructions).
    ///
    /// # Safety
    /// `src` addresses `rows` rows of `kc` readable floats with stride `ld`; `out` holds at least `tile·kc` floats;
    /// `rows <= tile`; the CPU supports the kernel's ISA.
    #[inline(always)]
    unsafe fn pack_transposed(tile: usize, rows: usize, kc: usize, src: *const f32, ld: usize, out: &mut [f32]) {
        // SAFETY: forwarded contract.
        unsafe { pack_transposed_scalar(tile, rows, kc, src, ld, out) }
    }

    /// `C[0..mr, 0..nr] = alpha·(A_panel · B_panel) + beta·C` (C not read when `beta == 0`) for one [`Tile`].
    ///
    /// # Safety
    /// The tile's contract (see [`Tile`]) holds and the CPU supports the kernel's ISA.
    unsafe fn kernel(t: &Tile);
}

/// One microkernel call: `C[0..mr, 0..nr] = alpha·(A_panel · B_panel) + beta·C`.
///
/// Contract: `a[p·lda + i]` is readable for `p < k`, `i < MR` (`lda == MR`: a packed, zero-padded panel; a larger
/// `lda`: a stored Aᵀ read in place, whole `MR`-row tiles only, `DIRECT_A` kernels only); `b[p·ldb + j]` is
/// readable for `p < k`, `j < NR` when `ldb == NR` (a packed, zero-padded panel), and for `j < nr` otherwise (B read
/// in place; only `DIRECT_B` kernels are called so); `c` is valid for reads and writes of rows `0..mr` (stride
/// `ldc`) and columns `0..nr`; `mr <= MR`, `nr <= NR`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tile {
    pub k: usize,
    pub a: *const f32,
    pub lda: usize,
    pub b: *const f32,
    pub ldb: usize,
    pub c: *mut f32,
    pub ldc: usize,
    pub alpha: f32,
    pub beta: f32,
    pub mr: usize,
    pub nr: usize,
}

/// The scalar [`MicroKernel::pack_transposed`]: `out[p·tile + j] = src[j·ld + p]` for `j < rows`, `p < kc`.
///
/// # Safety
/// `src` addresses `rows` rows of `kc` readable floats with stride `ld`; `out` holds at least `tile·kc` floats;
/// `rows <= tile`.
#[inline(always)]
pub(crate) unsafe fn pack_transposed_scalar(
    tile: usize,
    rows: usize,
    kc: usize,
    src: *const f32,
    ld: usize,
    out: &mut [f32],
) {
    if rows == tile {
        for (p, col) in out.chunks_exact_mut(tile).take(kc).enumerate() {
            for (j, v) in col.iter_mut().enumerate() {
                // SAFETY: j < rows and p < kc: inside the block (caller's contract).
                *v = unsafe { *src.add(j * ld + p) };
            }
        }
    } else {
        for j in 0..rows {
            // SAFETY: row j < rows has kc readable floats.
            let row = unsafe { std::slice::from_raw_parts(src.add(j * ld), kc) };
            for (p, &v) in row.iter().enumerate() {
                out[p * tile + j] = v;
            }
        }
    }
}

/// Combines an edge tile computed in full into C: `tile[i·stride + j]` holds `alpha·acc` (rounded exactly as the
/// interior path rounds it); the valid `mr × nr` part is stored as is (`beta = 0`, C not read) or as the fused
/// `beta·c + tile`, matching the vector FMA of interior tiles bit for bit. `beta = 1` (every depth block after the
/// first) is the plain sum `c + tile`, which is that FMA's result exactly (`1·c` is exact, the sum is rounded
/// once either way) but needs no FMA: the portable kernel stores every tile through here, and without a
/// compile-time FMA `f32::mul_add` is a libm call per element (`fmaf`: 7 % of a portable 32×84×2400 product in
/// `perf`).
///
/// # Safety
/// `t.c` is valid for rows `0..t.mr` (stride `t.ldc`), columns `0..t.nr`; `tile` holds `t.mr` rows of `stride`.
#[inline(always)]
pub(crate) unsafe fn store_edge(tile: &[f32], stride: usize, t: &Tile) {
    for i in 0..t.mr {
        for j in 0..t.nr {
            // SAFETY: (i, j) is inside the mr × nr tile of C.
            unsafe {
                let dst = t.c.add(i * t.ldc + j);
                let r = tile[i * stride + j];
                *dst = if t.beta == 0.0 {
                    r
                } else if t.beta == 1.0 {
                    *dst + r
                } else {
                    t.beta.mul_add(*dst, r)
                };
            }
        }
    }
}

/// Largest `m` whose product with a cache-resident B ([`SHORT_MAX_B`]) runs as 16-row slabs of an ISA's short
/// path (rows of C in vector lanes, B read in place by broadcasts; see [`takes_short`]).
#[cfg(target_arch = "x86_64")]
pub(crate) const SHORT_MAX_M: usize = 64;
/// Largest op(B), in floats, that the 16-row slabs re-read per slab (1 MiB, the L2 of the Zen 5 the project
/// targets; the flagship Dense1 weight is 2400×84). Beyond it the loop nest's packed, cache-blocked B wins.
#[cfg(target_arch = "x86_64")]
pub(crate) const SHORT_MAX_B: usize = 1 << 18;
/// Smallest depth for which a row-contiguous B takes the slabs (each slab transposes its accumulators once per
/// column block and depth chain, which a short reduction does not repay).
#[cfg(target_arch = "x86_64")]
pub(crate) const SHORT_MIN_K: usize = 32;

/// Whether an ISA with a short path runs the task as 16-row slabs of it: a stored Bᵀ with at most 16 rows (the loop
/// nest would transpose all of B into panels for one short sweep of A), or with at most [`SHORT_MAX_M`] rows and a
/// cache-resident B; a row-contiguous, cache-resident B whose width is not a multiple of the kernel's `nr`-column
/// tile (whose last column tile then computes padding lanes), with more than `min_m` and at most [`SHORT_MAX_M`]
/// rows and a depth of at least [`SHORT_MIN_K`]. Both paths compute every element with the same operations, so the
/// choice never changes results (`tests/determinism.rs`); the ISA files give the measurements.
///
/// Returns `None` for the loop nest, else `Some(bt)`: whether B is a stored Bᵀ (`rsb == 1`; otherwise `csb == 1`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn takes_short(t: &GemmTask, nr: usize, min_m: usize) -> Option<bool> {
    if t.n == 0 || t.k == 0 {
        return None;
    }
    let cached_b = t.k.saturating_mul(t.n) <= SHORT_MAX_B;
    if t.rsb == 1 && t.csb != 1 {
        (t.m <= 16 || (t.m <= SHORT_MAX_M && cached_b)).then_some(true)
    } else {
        let row_b = t.csb == 1 && t.m > min_m && t.m <= SHORT_MAX_M && cached_b && t.k >= SHORT_MIN_K;
        (row_b && !t.n.is_multiple_of(nr)).then_some(false)
    }
}

/// Largest `m` for which a `DIRECT_B` kernel reads a row-contiguous B in place instead of packing it: packing B
/// costs O(k·n) per call and is amortised over only ⌈m / MR⌉ tiles. The flagship Dense forward (M = 32, K = 2400,
/// N = 84) spent about half its time packing B.
pub(crate) const DIRECT_B_MAX_M: usize = 64;

/// Largest `n` for which a `DIRECT_A` kernel reads a stored Aᵀ (`op(A)` with unit row stride) in place instead of
/// packing it: a packed A panel is reused by ⌈n / NR⌉ B panels, too few to pay for the pack when `n` is small. The
/// flagship Dense weight gradient `Xᵀ·dY` (M = 2400, N = 84, K = batch) spent a third of its time copying 12-float
/// runs of X into panels.
pub(crate) const DIRECT_A_MAX_N: usize = 128;

/// Longest chain of products one accumulator sums before the partial result goes to C (the microkernel is called
/// on depth slices of at most this many steps, the later ones with `beta = 1`). With one f32 chain over a whole
/// KC = 256 block, all-positive data reached 8.14·eps32·B at k = 258 (above the K = 8 of KERNELS.md §1.6;
/// `KILN_PROPTEST_SEED=2 PROPTEST_CASES=3000 cargo test --release -p kiln-kernels --test gemm`, every ISA). The
/// cache blocking (KC) is unchanged; the cost is one more load and store of the C tile per 128 depth steps.
pub(crate) const CHAIN: usize = 128;

thread_local! {
    /// Packing buffers, reused across calls on each thread (no allocation after the first call of a size).
    static PACK: RefCell<(AlignedVec, AlignedVec)> = const { RefCell::new((AlignedVec::new(), AlignedVec::new())) };
}

/// Packs rows `0..mc` × depth `0..kc` of op(A) (from `a`, strides `rsa`, `csa`) into `mr_tile`-tall panels
/// (`out[p·mr_tile + i]`, panel `i0 / mr_tile` at offset `i0·kc`), zero-padding the last panel — which is packed
/// `SMALL_MR` tall when it has at most `SMALL_MR` rows, for the short microkernel. Contiguous runs are read along
/// whichever stride is 1; row-major A goes through the kernel's transposing pack.
///
/// # Safety
/// `a` addresses an `mc × kc` block of op(A) within its slice; the CPU supports `K`'s ISA.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn pack_a<K: MicroKernel>(
    mr_tile: usize,
    mc: usize,
    kc: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    dst: &mut [f32],
) {
    for i0 in (0..mc).step_by(mr_tile) {
        let rows = (mc - i0).min(mr_tile);
        let mr_tile = if rows <= K::SMALL_MR { K::SMALL_MR } else { mr_tile };
        // SAFETY: rows i0..i0 + rows, depth 0..kc of the block are inside op(A); the panel at i0·kc holds
        // mr_tile·kc floats of dst; the ISA was checked by the entry point.
        unsafe {
            pack_a_panel::<K>(mr_tile, rows, kc, a.add(i0 * rsa), rsa, csa, &mut dst[i0 * kc..(i0 + mr_tile) * kc])
        };
    }
}

/// Packs rows `0..rows` × depth `0..kc` of op(A) into one `tile`-tall panel (`out[p·tile + i]`), lanes
/// `rows..tile` zero. Contiguous runs are read along whichever stride is 1; row-major A goes through the kernel's
/// transposing pack.
///
/// # Safety
/// `a` addresses a `rows × kc` block of op(A) within its slice; `rows <= tile`; `out` holds `tile·kc` floats; the
/// CPU supports `K`'s ISA.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn pack_a_panel<K: MicroKernel>(
    tile: usize,
    rows: usize,
    kc: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    out: &mut [f32],
) {
    let out = &mut out[..tile * kc];
    if rows < tile {
        out.fill(0.0);
    }
    if csa == 1 {
        // SAFETY: rows 0..rows, columns 0..kc of the block are readable with stride rsa; out holds tile·kc
        // floats; forwarded ISA contract.
        unsafe { K::pack_transposed(tile, rows, kc, a, rsa, out) };
    } else if rsa == 1 {
        // Aᵀ stored: the values of one depth index are contiguous.
        for p in 0..kc {
            // SAFETY: depth p < kc, rows 0..rows: inside the block.
            let src = unsafe { std::slice::from_raw_parts(a.add(p * csa), rows) };
            out[p * tile..p * tile + rows].copy_from_slice(src);
        }
    } else {
        for i in 0..rows {
            for p in 0..kc {
                // SAFETY: i < rows and p < kc.
                out[p * tile + i] = unsafe { *a.add(i * rsa + p * csa) };
            }
        }
    }
}

/// Packs depth `0..kc` × columns `0..nc` of op(B) into `nr_tile`-wide panels (`out[p·nr_tile + j]`), zero-padding
/// the last panel. Contiguous runs are read along whichever stride is 1; a stored Bᵀ (the Dense backward-data
/// product) goes through the kernel's transposing pack.
///
/// # Safety
/// `b` addresses a `kc × nc` block of op(B) within its slice; the CPU supports `K`'s ISA.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn pack_b<K: MicroKernel>(
    nr_tile: usize,
    kc: usize,
    nc: usize,
    b: *const f32,
    rsb: usize,
    csb: usize,
    dst: &mut [f32],
) {
    for (panel, out) in dst.chunks_exact_mut(nr_tile * kc).take(nc.div_ceil(nr_tile)).enumerate() {
        let j0 = panel * nr_tile;
        let cols = (nc - j0).min(nr_tile);
        if cols < nr_tile {
            out.fill(0.0);
        }
        if csb == 1 {
            for p in 0..kc {
                // SAFETY: row p < kc, columns j0..j0 + cols: inside the block.
                let src = unsafe { std::slice::from_raw_parts(b.add(p * rsb + j0), cols) };
                out[p * nr_tile..p * nr_tile + cols].copy_from_slice(src);
            }
        } else if rsb == 1 {
            // SAFETY: columns j0..j0 + cols of op(B) are rows of the stored Bᵀ with kc readable floats each
            // (stride csb); out holds nr_tile·kc floats; the ISA was checked by the entry point.
            unsafe { K::pack_transposed(nr_tile, cols, kc, b.add(j0 * csb), csb, out) };
        } else {
            for p in 0..kc {
                for j in 0..cols {
                    // SAFETY: p < kc and j0 + j < nc.
                    out[p * nr_tile + j] = unsafe { *b.add(p * rsb + (j0 + j) * csb) };
                }
            }
        }
    }
}

/// Runs a whole task on the calling thread.
///
/// # Safety
/// The task's pointers and strides are valid for its `m × n × k` problem (see [`GemmTask`]) and the CPU supports
/// `K`'s ISA.
#[inline(always)]
pub(crate) unsafe fn run<K: MicroKernel>(t: &GemmTask) {
    if t.m == 0 || t.n == 0 {
        return;
    }
    if t.k == 0 {
        // SAFETY: forwarded (C of the valid task).
        return unsafe { scale_c(t.m, t.n, t.c, t.ldc, t.beta) };
    }
    // The buffers are moved out of the thread-local and back, instead of running the loop nest inside
    // `LocalKey::with`'s closure: a closure gets the target features of the function it is written in (this one,
    // which has none), not those of the entry point `run` is inlined into. That left the loop nest and packing
    // without AVX and the microkernel out of line (AVX-512 1024³: 117 → 131 GFLOP/s when fixed, same run).
    let (mut pa, mut pb) = take_pack();
    {
        let kc_max = K::KC.min(t.k);
        let a_len = K::MC.min(t.m).div_ceil(K::MR) * K::MR * kc_max;
        let b_len = K::NC.min(t.n).div_ceil(K::NR) * K::NR * kc_max;
        if pa.len() < a_len {
            pa.resize(a_len, 0.0);
        }
        if pb.len() < b_len {
            pb.resize(b_len, 0.0);
        }
        for jc in (0..t.n).step_by(K::NC) {
            let nc = (t.n - jc).min(K::NC);
            for pc in (0..t.k).step_by(K::KC) {
                let kc = (t.k - pc).min(K::KC);
                let beta = if pc == 0 { t.beta } else { 1.0 };
                let direct = K::DIRECT_B && t.csb == 1 && t.m <= DIRECT_B_MAX_M;
                // With a single A block, each B panel is used by one sweep of A tiles only: pack it right before
                // that sweep so it is still in L1, instead of packing the whole KC×NC block first (the flagship
                // Dense backward-data product packs 2400×84 floats per call).
                let per_panel = !direct && t.m <= K::MC;
                if !direct && !per_panel {
                    // SAFETY: rows pc..pc+kc and columns jc..jc+nc of op(B) are inside the task's B.
                    unsafe { pack_b::<K>(K::NR, kc, nc, t.b.add(pc * t.rsb + jc * t.csb), t.rsb, t.csb, &mut pb) };
                }
                // A stored transposed (unit row stride) and few B panels: whole MR-row tiles read A in place.
                let direct_a = K::DIRECT_A && t.rsa == 1 && t.n <= DIRECT_A_MAX_N;
                for ic in (0..t.m).step_by(K::MC) {
                    let mc = (t.m - ic).min(K::MC);
                    // Rows 0..in_place of this block are read in place; the rest (all rows unless direct_a) are
                    // packed from the start of `pa`.
                    let in_place = if direct_a { mc / K::MR * K::MR } else { 0 };
                    // SAFETY: rows ic+in_place..ic+mc and depth pc..pc+kc of op(A) are inside the task's A.
                    let a0 = unsafe { t.a.add((ic + in_place) * t.rsa + pc * t.csa) };
                    // SAFETY: as above.
                    unsafe { pack_a::<K>(K::MR, mc - in_place, kc, a0, t.rsa, t.csa, &mut pa) };
                    for jr in (0..nc).step_by(K::NR) {
                        let nr = (nc - jr).min(K::NR);
                        if per_panel {
                            // SAFETY: rows pc..pc+kc and columns jc+jr..jc+jr+nr of op(B) are inside the task's B.
                            let b = unsafe { t.b.add(pc * t.rsb + (jc + jr) * t.csb) };
                            // SAFETY: as above; pb holds at least NR·kc floats.
                            unsafe { pack_b::<K>(K::NR, kc, nr, b, t.rsb, t.csb, &mut pb) };
                        }
                        for ir in (0..mc).step_by(K::MR) {
                            let mr = (mc - ir).min(K::MR);
                            // The last tile of at most SMALL_MR rows was packed SMALL_MR tall for the short kernel;
                            // both compute each element with the same operations, so results do not change.
                            let small = mr <= K::SMALL_MR;
                            let (b, ldb) = if direct {
                                // B in place: rows pc.., columns jc+jr.. (nr of them readable).
                                (t.b.wrapping_add(pc * t.rsb + jc + jr), t.rsb)
                            } else if per_panel {
                                (pb.as_ptr(), K::NR)
                            } else {
                                (pb.as_ptr().wrapping_add(jr * kc), K::NR)
                            };
                            let (a, lda) = if ir < in_place {
                                // A in place: rows ic+ir.., depth pc.. of op(A) (a whole MR-row tile).
                                (t.a.wrapping_add((ic + ir) * t.rsa + pc * t.csa), t.csa)
                            } else {
                                // The panel of rows ir.. starts at (ir − in_place)·kc inside the packed A block.
                                (
                                    pa.as_ptr().wrapping_add((ir - in_place) * kc),
                                    if small { K::SMALL_MR } else { K::MR },
                                )
                            };
                            // The depth block in slices of at most CHAIN products, each accumulated onto C.
                            for p0 in (0..kc).step_by(CHAIN) {
                                let tile = Tile {
                                    k: CHAIN.min(kc - p0),
                                    a: a.wrapping_add(p0 * lda),
                                    lda,
                                    b: b.wrapping_add(p0 * ldb),
                                    ldb,
                                    // SAFETY: the C tile at (ic+ir, jc+jr) is inside C.
                                    c: unsafe { t.c.add((ic + ir) * t.ldc + jc + jr) },
                                    ldc: t.ldc,
                                    alpha: t.alpha,
                                    beta: if p0 == 0 { beta } else { 1.0 },
                                    mr,
                                    nr,
                                };
                                // SAFETY: the packed A panel holds MR·kc floats (SMALL_MR·kc for the short kernel),
                                // or A is read in place (direct_a: a whole MR-row tile of op(A), DIRECT_A kernel);
                                // B is a packed NR·kc panel or, in direct mode, kc rows of op(B) with nr readable
                                // columns from jc+jr; depth p0.. of either starts p0 strides in; the C tile of size
                                // mr × nr is inside C; the entry point checked the ISA.
                                unsafe { if small { K::kernel_small(&tile) } else { K::kernel(&tile) } };
                            }
                        }
                    }
                }
            }
        }
    }
    put_pack(pa, pb);
}

/// `C = beta·C` for a product of depth 0; with `beta = 0`, C is overwritten without being read.
///
/// # Safety
/// `c` is valid for reads and writes of `m` rows of `n` floats with stride `ldc`.
#[inline(always)]
pub(crate) unsafe fn scale_c(m: usize, n: usize, c: *mut f32, ldc: usize, beta: f32) {
    for i in 0..m {
        // SAFETY: row i of C has n valid elements.
        let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), n) };
        if beta == 0.0 {
            row.fill(0.0);
        } else {
            row.iter_mut().for_each(|v| *v *= beta);
        }
    }
}

/// Moves this thread's packing buffers out (empty the first time), for a loop nest that packs; give them back with
/// [`put_pack`] so that later calls reuse them.
#[inline(always)]
pub(crate) fn take_pack() -> (AlignedVec, AlignedVec) {
    PACK.with(|bufs| std::mem::take(&mut *bufs.borrow_mut()))
}

/// Returns buffers taken by [`take_pack`].
#[inline(always)]
pub(crate) fn put_pack(pa: AlignedVec, pb: AlignedVec) {
    PACK.with(|bufs| *bufs.borrow_mut() = (pa, pb));
}
