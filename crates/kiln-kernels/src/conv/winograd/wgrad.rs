//! Winograd backward-filter: F(r×r, m×m) with dy tiles as the filter.

// Register arrays are indexed by small constant-bound loops on purpose (they unroll into named registers).
#![allow(clippy::needless_range_loop)]

use super::*;

/// Backward-filter by Winograd: per block of dy tiles, `V = Bᵀ x B` of the input patches and `U = G dy Gᵀ` of the
/// dy tiles, then per tile element ξ one GEMM `M[ξ] += V[ξ]ᵀ · U[ξ]` (c_in × c_out, reducing over the block's
/// tiles, blocks in a fixed order), and finally `dW = Aᵀ M A` for every (c_in, c_out) pair.
pub(crate) fn backward_filter(
    k: &Kernels,
    g: &Conv2dGeometry,
    tile: WinogradTile,
    threads: Threads,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) -> Result<()> {
    let tile = if tile == WinogradTile::Auto { crate::conv::winograd_tile(g) } else { tile };
    let (set, [bt, gm, at]) = wgrad_coeffs(tile);
    let (mt, r, al) = (tile.m(), set.m, set.alpha);
    let (bt, gm, at) = (Mat1d::of(bt, al, al), Mat1d::of(gm, al, mt), Mat1d::of(at, r, al));
    let xi = al * al;
    let (ci, co, oh, ow) = (g.in_c(), g.out_c(), g.out_h(), g.out_w());
    let (th, tw) = (oh.div_ceil(mt), ow.div_ceil(mt));
    let tiles = g.batch() * th * tw;
    let block = (262_144 / (xi * (ci + co))).clamp(16, 256).min(tiles);
    let mut v = Scratch::take(xi * block * ci);
    let mut u = Scratch::take(xi * block * co);
    let mut m = Scratch::zeroed(xi * ci * co);
    let mut d = Scratch::take(xi * ci.max(co));
    let mut tmp = Scratch::take(xi * ci.max(co).max(ci * co));
    let gemm = |rows: usize| GemmGeometry::spec(ci, co, rows).trans_a(crate::geometry::Transpose::Yes).build();
    let (top, left) = (g.pad_top() as isize, g.pad_left() as isize);
    let live_dy = live_dy(g);
    for (bi, t0) in (0..tiles).step_by(block).enumerate() {
        let nt = block.min(tiles - t0);
        for b in 0..nt {
            let t = t0 + b;
            let (n, rest) = (t / (th * tw), t % (th * tw));
            let (ty, tx) = (rest / tw, rest % tw);
            // Input patch α×α×ci at (ty·m − top, tx·m − left), zero outside.
            let image = [(0, g.in_h()), (0, g.in_w())];
            gather_patch(x, [g.in_h(), g.in_w(), ci], image, n, [(ty * mt, top), (tx * mt, left)], al, &mut d);
            let job = Transform::Input {
                bt,
                d: &d,
                d_row: al * ci,
                tmp: &mut tmp,
                v: &mut v[b * ci..],
                v_stride: block * ci,
                ch: ci,
            };
            // SAFETY: supported ISA (a `&Kernels` exists); the transform indexes through checked slices.
            unsafe { (k.conv.winograd_transform)(job) };
            // dy tile m×m×co, zero beyond the output and where dy meets no input pixel.
            for i in 0..mt {
                for j in 0..mt {
                    let dst = &mut d[(i * mt + j) * co..][..co];
                    let (a, c) = (ty * mt + i, tx * mt + j);
                    if live_dy[0].contains(&a) && live_dy[1].contains(&c) {
                        dst.copy_from_slice(&dy[g.output_index(n, a, c, 0)..][..co]);
                    } else {
                        dst.fill(0.0);
                    }
                }
            }
            let job = Transform::Output {
                at: gm,
                mt: &d,
                m_stride: co,
                tmp: &mut tmp,
                y: &mut rows_of(&mut u[b * co..], al, al * block * co),
                y_stride: block * co,
                bias: None,
                ch: co,
            };
            // SAFETY: as above.
            unsafe { (k.conv.winograd_transform)(job) };
        }
        let gg = gemm(nt)?;
        for e in 0..xi {
            k.sgemm_with(
                threads,
                &gg,
                1.0,
                &v[e * block * ci..][..nt * ci],
                &u[e * block * co..][..nt * co],
                if bi == 0 { 0.0 } else { 1.0 },
                &mut m[e * ci * co..][..ci * co],
            )?;
        }
    }
    // dW[u][v][ci][co] = (Aᵀ M A)[u][v] for every (ci, co): one output transform over ci·co "channels", which
    // writes HWIO directly.
    let job = Transform::Output {
        at,
        mt: &m,
        m_stride: ci * co,
        tmp: &mut tmp,
        y: &mut rows_of(dw, r, r * ci * co),
        y_stride: ci * co,
        bias: None,
        ch: ci * co,
    };
    // SAFETY: as above.
    unsafe { (k.conv.winograd_transform)(job) };
    // A tap that meets no input pixel has an exactly zero gradient (see `live_taps`).
    let live = live_taps(g);
    for (t, px) in dw.chunks_exact_mut(ci * co).enumerate() {
        if !(live[0].contains(&(t / r)) && live[1].contains(&(t % r))) {
            px.fill(0.0);
        }
    }
    Ok(())
}
