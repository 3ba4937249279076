//! Convolution against the f64 references for every algorithm × pass × ISA this host runs (an ISA it lacks
//! prints `skipped`, and fails under `KILN_REQUIRE_ISA`); thread-count determinism; typed errors for algorithms
//! forced onto geometries they cannot run.

mod common;

use common::conv::{ConvCase, algos, check_batching, check_conv, conv_case, lane_batched_geometries};
use common::{Coverage, cases, runner, testable_kernels};
use kiln_kernels::{
    Conv2dGeometry, ConvAlgo, ConvOptions, ConvPass, DType, Isa, KernelError, Kernels, Padding, Threads, WinogradTile,
};

fn property(isa: Isa) {
    let Some(k) = testable_kernels(isa) else { return };
    for (algo, pass) in algos() {
        let cov = Coverage::default();
        runner(cases(48))
            .run(&conv_case(algo), |case| {
                cov.record(&case.g);
                check_conv(k, algo, pass, &case, Threads::Single).map(|_| ())
            })
            .unwrap_or_else(|e| panic!("{isa} {algo} {pass}: {e}"));
        println!("ok: conv/{algo}/{isa}/{pass}");
        // Every case ran; the geometric features each algorithm supports all occurred.
        let n = |c: &std::cell::Cell<usize>| c.get();
        assert!(n(&cov.cases) >= 48 && n(&cov.same) > 0 && n(&cov.explicit) > 0, "{algo}: coverage");
        assert!(n(&cov.kernel_eq_image) > 0 && n(&cov.image1x1) > 0, "{algo}: coverage of edge images");
        if matches!(algo, ConvAlgo::ImplicitGemm | ConvAlgo::Im2col) {
            assert!(n(&cov.stride2plus) > 0 && n(&cov.dilation2) > 0, "{algo}: coverage of stride/dilation");
        }
    }
}

#[test]
fn conv_portable() {
    property(Isa::Portable);
}

#[test]
fn conv_avx2() {
    property(Isa::Avx2Fma);
}

#[test]
fn conv_avx512() {
    property(Isa::Avx512);
}

#[test]
fn conv_neon() {
    // Run under qemu by the harness-free tests/neon.rs (`cargo xtask neon`).
    property(Isa::Neon);
}

/// The flagship layers at batch 32 with raw-pixel inputs, every pass, through `Auto` (which picks Direct).
#[test]
fn flagship_layers_auto() {
    let k = Kernels::best();
    for (spec, dist) in
        [(Conv2dGeometry::spec(32, [28, 28, 1], [5, 5], 3), 1), (Conv2dGeometry::spec(32, [24, 24, 3], [5, 5], 6), 2)]
    {
        let case = ConvCase { g: spec.build().unwrap(), dist, seed: 7 };
        for pass in [ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter] {
            assert_eq!(ConvAlgo::Auto.resolve(&case.g, pass, k.isa()).unwrap(), ConvAlgo::Direct);
            check_conv(k, ConvAlgo::Auto, pass, &case, Threads::Rayon).unwrap();
        }
    }
}

/// The direct forward's and backward-data's lane-batched groups (images in the vector lanes) pass the reference check and give each
/// image the bits of its own batch-1 run, on every ISA here, with one thread and with the pool.
#[test]
fn direct_lane_batches_match_single_images() {
    for isa in [Isa::Portable, Isa::Avx2Fma, Isa::Avx512] {
        let Some(k) = testable_kernels(isa) else { continue };
        for g in lane_batched_geometries() {
            for threads in [Threads::Single, Threads::Rayon] {
                check_batching(k, &g, threads).unwrap_or_else(|e| panic!("{isa}: {e}"));
            }
        }
    }
}

/// Results are bitwise identical with 1, 2 and 3 threads, for every algorithm and pass.
#[test]
fn thread_count_does_not_change_bits() {
    let k = Kernels::best();
    let geometries = [
        Conv2dGeometry::spec(9, [28, 28, 1], [5, 5], 3).build().unwrap(),
        Conv2dGeometry::spec(5, [13, 11, 16], [3, 3], 17).padding(Padding::Same).build().unwrap(),
        Conv2dGeometry::spec(3, [12, 12, 17], [5, 5], 16).padding(Padding::uniform(2)).build().unwrap(),
        Conv2dGeometry::spec(3, [15, 14, 7], [3, 3], 33).stride(2).dilation(2).build().unwrap(),
    ];
    let pools: Vec<rayon::ThreadPool> =
        [2, 3].iter().map(|&t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap()).collect();
    let mut compared = 0;
    for g in geometries {
        let case = ConvCase { g, dist: 2, seed: 11 };
        for (algo, pass) in algos() {
            if algo.unsupported_reason(&g, pass).is_some() {
                continue;
            }
            let one = check_conv(k, algo, pass, &case, Threads::Single).unwrap();
            for pool in &pools {
                let many = pool.install(|| check_conv(k, algo, pass, &case, Threads::Rayon)).unwrap();
                let same = one.iter().zip(&many).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{algo} {pass} differs with {} threads", pool.current_num_threads());
                compared += 1;
            }
        }
    }
    assert!(compared >= 30, "only {compared} comparisons");
}

#[test]
fn forced_algorithms_that_do_not_apply_are_typed_errors() {
    const A512: Isa = Isa::Avx512;
    let k = Kernels::best();
    let strided = Conv2dGeometry::spec(1, [9, 9, 16], [3, 3], 16).stride(2).build().unwrap();
    let (x, w) = (vec![0.0; strided.input_len()], vec![0.0; strided.weight_len()]);
    let mut y = vec![0.0; strided.output_len()];
    for algo in [ConvAlgo::Direct, ConvAlgo::Winograd(WinogradTile::Auto)] {
        let err = k.conv2d_forward(&strided, ConvOptions::algo(algo), &x, &w, None, &mut y).unwrap_err();
        assert!(matches!(err, KernelError::Unsupported { .. }), "{err}");
    }
    let wide = Conv2dGeometry::spec(1, [9, 9, 32], [3, 3], 32).build().unwrap();
    assert!(matches!(ConvAlgo::Direct.resolve(&wide, ConvPass::Forward, A512), Err(KernelError::Unsupported { .. })));
    let k5 = Conv2dGeometry::spec(1, [9, 9, 32], [5, 5], 32).build().unwrap();
    let tile = ConvAlgo::Winograd(WinogradTile::F4x4K3x3);
    assert!(matches!(tile.resolve(&k5, ConvPass::Forward, A512), Err(KernelError::Unsupported { .. })));
    assert_eq!(
        ConvAlgo::Winograd(WinogradTile::Auto).resolve(&k5, ConvPass::BackwardFilter, A512).unwrap(),
        ConvAlgo::Winograd(WinogradTile::F2x2K5x5)
    );
    // Auto always resolves: to Winograd for wide 3×3 stride-1 layers, to im2col when there are too few channels
    // for the tile transforms to pay (the AVX-512 crossovers; AVX2's follow).
    assert_eq!(ConvAlgo::Auto.resolve(&wide, ConvPass::Forward, A512).unwrap(), ConvAlgo::Im2col);
    let wide128 = Conv2dGeometry::spec(1, [9, 9, 128], [3, 3], 128).build().unwrap();
    assert_eq!(
        ConvAlgo::Auto.resolve(&wide128, ConvPass::Forward, A512).unwrap(),
        ConvAlgo::Winograd(WinogradTile::F2x2K3x3)
    );
    let c64 = |side| Conv2dGeometry::spec(1, [side, side, 64], [3, 3], 64).padding(Padding::Same).build().unwrap();
    assert_eq!(
        ConvAlgo::Auto.resolve(&c64(56), ConvPass::BackwardData, A512).unwrap(),
        ConvAlgo::Winograd(WinogradTile::F4x4K3x3)
    );
    assert_eq!(ConvAlgo::Auto.resolve(&c64(14), ConvPass::BackwardData, A512).unwrap(), ConvAlgo::Im2col);
    assert_eq!(ConvAlgo::Auto.resolve(&strided, ConvPass::Forward, A512).unwrap(), ConvAlgo::ImplicitGemm);
    // The Winograd tile follows the benches: F(4,3) on c128@28², F(2,3) on c256@14² (forward).
    let c128 = Conv2dGeometry::spec(1, [28, 28, 128], [3, 3], 128).padding(Padding::Same).build().unwrap();
    let c256 = Conv2dGeometry::spec(1, [14, 14, 256], [3, 3], 256).padding(Padding::Same).build().unwrap();
    assert_eq!(
        ConvAlgo::Auto.resolve(&c128, ConvPass::Forward, A512).unwrap(),
        ConvAlgo::Winograd(WinogradTile::F4x4K3x3)
    );
    assert_eq!(
        ConvAlgo::Auto.resolve(&c256, ConvPass::Forward, A512).unwrap(),
        ConvAlgo::Winograd(WinogradTile::F2x2K3x3)
    );
    assert_eq!(ConvAlgo::Auto.resolve(&strided, ConvPass::BackwardFilter, A512).unwrap(), ConvAlgo::Im2col);
    // With AVX2 Winograd pays from 64 channels on small maps, and forward from 32 on 28×28.
    let avx2 = Isa::Avx2Fma;
    let f4 = ConvAlgo::Winograd(WinogradTile::F4x4K3x3);
    assert_eq!(ConvAlgo::Auto.resolve(&c64(14), ConvPass::BackwardData, avx2).unwrap(), f4);
    let c32 = Conv2dGeometry::spec(1, [28, 28, 32], [3, 3], 32).padding(Padding::Same).build().unwrap();
    assert_eq!(ConvAlgo::Auto.resolve(&c32, ConvPass::Forward, avx2).unwrap(), f4);
    assert_eq!(ConvAlgo::Auto.resolve(&c32, ConvPass::BackwardData, avx2).unwrap(), ConvAlgo::Im2col);
    assert_eq!(ConvAlgo::Auto.resolve(&c32, ConvPass::Forward, A512).unwrap(), ConvAlgo::Im2col);
    // A one-channel input (a reduction of 9 terms) takes im2col on every ISA, not implicit GEMM.
    let first = Conv2dGeometry::spec(1, [28, 28, 1], [3, 3], 32).padding(Padding::Same).build().unwrap();
    for isa in [A512, avx2, Isa::Portable] {
        assert_eq!(ConvAlgo::Auto.resolve(&first, ConvPass::Forward, isa).unwrap(), ConvAlgo::Im2col);
    }
    // Wrong slice lengths are typed errors too.
    let err = k.conv2d_forward(&wide, ConvOptions::default(), &x, &w, None, &mut y).unwrap_err();
    assert!(matches!(err, KernelError::SliceLen { .. }), "{err}");
    // A compute format without kernels is refused up front, by the one-shot entries and by plans alike.
    let g = Conv2dGeometry::spec(1, [9, 9, 16], [3, 3], 16).build().unwrap();
    let (x, w) = (vec![0.0; g.input_len()], vec![0.0; g.weight_len()]);
    let mut y = vec![0.0; g.output_len()];
    let bf16 = ConvOptions::default().compute(DType::BF16);
    let err = k.conv2d_forward(&g, bf16, &x, &w, None, &mut y).unwrap_err();
    assert!(matches!(err, KernelError::UnsupportedDType { dtype: DType::BF16, .. }), "{err}");
    assert!(matches!(k.conv_plan(&g, bf16), Err(KernelError::UnsupportedDType { .. })));
    assert!(k.conv_plan(&g, ConvOptions::default()).is_ok());
}

/// Winograd weights transformed once and reused give the same bits as the per-call path, and are rejected for
/// another geometry.
#[test]
fn cached_winograd_weights_match_the_per_call_transform() {
    let k = Kernels::best();
    let g = Conv2dGeometry::spec(2, [10, 9, 17], [3, 3], 16).padding(Padding::Same).build().unwrap();
    let case = ConvCase { g, dist: 0, seed: 3 };
    let algo = ConvAlgo::Winograd(WinogradTile::F4x4K3x3);
    let per_call = check_conv(k, algo, ConvPass::Forward, &case, Threads::Single).unwrap();
    let x = common::gemm::values(g.input_len(), 0, 3);
    let w = common::gemm::values(g.weight_len(), 0, 3 ^ 0x51);
    let bias = common::gemm::values(g.bias_len(), 0, 3 ^ 0x3c);
    let cached = k.winograd_weights(&g, WinogradTile::F4x4K3x3, &w).unwrap();
    let mut y = vec![f32::NAN; g.output_len()];
    k.conv2d_forward_winograd(&g, Threads::Single, &x, &cached, Some(&bias), &mut y).unwrap();
    assert!(y.iter().zip(&per_call).all(|(a, b)| a.to_bits() == b.to_bits()));
    let other = Conv2dGeometry::spec(2, [10, 9, 16], [3, 3], 16).padding(Padding::Same).build().unwrap();
    let mut y2 = vec![0.0; other.output_len()];
    let x2 = vec![0.0; other.input_len()];
    let err = k.conv2d_forward_winograd(&other, Threads::Single, &x2, &cached, None, &mut y2).unwrap_err();
    assert!(matches!(err, KernelError::Unsupported { .. }), "{err}");
}

/// Winograd on images that some kernel taps or dy pixels never meet (found by the property at 200–500 cases): a
/// 1×1 image under `same` padding meets only the centre tap, and padding wider than `r − 1` leaves outer dy pixels
/// that meet no input. Those terms are exactly absent from every result, so with a zero centre weight (or dy zero
/// where it meets data) the results are exact zeros, and otherwise within the bound — not the rounding of weights
/// or dy values that take no part. Unmasked, each case below is off by far more than K·eps·B (B = 0 in three).
#[test]
fn winograd_ignores_taps_and_dy_pixels_that_meet_no_data() {
    for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
        let k = Kernels::for_isa(isa).unwrap();
        for tile in [WinogradTile::F2x2K3x3, WinogradTile::F4x4K3x3, WinogradTile::F2x2K5x5] {
            let r = if tile == WinogradTile::F2x2K5x5 { 5 } else { 3 };
            let algo = ConvAlgo::Winograd(tile);
            let opts = ConvOptions::algo(algo).threads(Threads::Single);
            // Large weights everywhere except the centre tap.
            let (c, (ci, co)) = (r / 2, (3, 2));
            let w: Vec<f32> =
                (0..r * r * ci * co).map(|i| if i / (ci * co) == c * r + c { 0.0 } else { 100.0 + i as f32 }).collect();
            let same = Conv2dGeometry::spec(2, [1, 1, ci], [r, r], co).padding(Padding::Same).build().unwrap();
            let x: Vec<f32> = (0..same.input_len()).map(|i| 1.0 + i as f32).collect();
            let mut y = vec![f32::NAN; same.output_len()];
            k.conv2d_forward(&same, opts, &x, &w, None, &mut y).unwrap();
            assert!(y.iter().all(|&v| v == 0.0), "{isa} {algo} fwd: {y:?}");
            let dy: Vec<f32> = (0..same.output_len()).map(|i| 0.5 + i as f32).collect();
            let mut dx = vec![f32::NAN; same.input_len()];
            k.conv2d_backward_data(&same, opts, &dy, &w, &mut dx).unwrap();
            assert!(dx.iter().all(|&v| v == 0.0), "{isa} {algo} bwd_data: {dx:?}");
            // Only the centre tap has a gradient; the others are exactly zero.
            let mut dw = vec![f32::NAN; same.weight_len()];
            k.conv2d_backward_filter(&same, opts, &x, &dy, &mut dw).unwrap();
            let centre = |i: &usize| i / (ci * co) == c * r + c;
            assert!(dw.iter().enumerate().all(|(i, &v)| (v == 0.0) != centre(&i)), "{isa} {algo} bwd_filter: {dw:?}");
            // Padding r on every side: dy row a meets input rows a − r + u (u < r), so rows 1 ..= r + 1 meet the
            // 2-row image and the border (row 0, row r + 2, columns alike) meets none. Make the border large and
            // the dy that does meet data zero: both backward results are exactly zero.
            let wide = Conv2dGeometry::spec(1, [2, 2, ci], [r, r], co).padding(Padding::uniform(r)).build().unwrap();
            let (oh, ow) = (wide.out_h(), wide.out_w());
            let live = |a: usize, n: usize| (1..r + n).contains(&a);
            let dy: Vec<f32> = (0..wide.output_len())
                .map(|i| {
                    let (a, b) = (i / co / ow % oh, i / co % ow);
                    if live(a, 2) && live(b, 2) { 0.0 } else { 1e3 }
                })
                .collect();
            let mut dx = vec![f32::NAN; wide.input_len()];
            k.conv2d_backward_data(&wide, opts, &dy, &w, &mut dx).unwrap();
            assert!(dx.iter().all(|&v| v == 0.0), "{isa} {algo} bwd_data, wide padding: {dx:?}");
            let x: Vec<f32> = (0..wide.input_len()).map(|i| 1.0 + i as f32).collect();
            let mut dw = vec![f32::NAN; wide.weight_len()];
            k.conv2d_backward_filter(&wide, opts, &x, &dy, &mut dw).unwrap();
            assert!(dw.iter().all(|&v| v == 0.0), "{isa} {algo} bwd_filter, wide padding: {dw:?}");
        }
    }
}

/// The direct kernel skips kernel rows whose inputs are all zero padding (backward-data's full padding, `same`
/// forward). Skipped products are exact zeros, so the results must equal, bit for bit, the same correlation on an
/// input padded explicitly (a valid geometry, where nothing is skipped) — forward with explicit padding, and
/// backward-data against the forward pass on the fully padded `dy` with the rotated, transposed filter.
#[test]
fn direct_padding_row_skips_change_no_bits() {
    use proptest::prelude::*;
    // Both channel counts ≤ 8: the backward-data comparison runs the direct forward pass with them swapped.
    let strategy =
        (1usize..3, 1usize..13, 1usize..13, 1usize..9, 1usize..9, 1usize..7, 1usize..7, 0usize..7, 0usize..7)
            .prop_flat_map(|(n, h, w, ci, co, kh, kw, pt, pb)| {
                (Just((n, h, w, ci, co, kh, kw)), Just((pt.min(kh - 1), pb.min(kh - 1))), 0..kw, 0..kw, any::<u64>())
            });
    let pad_image = |x: &[f32], n: usize, [h, w, c]: [usize; 3], [t, b, l, r]: [usize; 4]| {
        let (hp, wp) = (h + t + b, w + l + r);
        let mut out = vec![0.0f32; n * hp * wp * c];
        for (i, px) in x.chunks_exact(c).enumerate() {
            let (img, y, xx) = (i / (h * w), i / w % h, i % w);
            out[((img * hp + y + t) * wp + xx + l) * c..][..c].copy_from_slice(px);
        }
        out
    };
    for isa in Isa::ALL {
        let Some(k) = testable_kernels(isa) else { continue };
        let direct = ConvOptions::algo(ConvAlgo::Direct).threads(Threads::Single);
        runner(cases(64))
            .run(&strategy, |((n, h, w, ci, co, kh, kw), (pt, pb), pl, pr, seed)| {
                let (pl, pr) = (pl.min(kw - 1), pr.min(kw - 1));
                let vals = |len: usize, salt: u64| common::gemm::values(len, 0, seed ^ salt);
                let pad = Padding::Explicit { top: pt, bottom: pb, left: pl, right: pr };
                let padded = Conv2dGeometry::spec(n, [h, w, ci], [kh, kw], co).padding(pad).build();
                let Ok(g) = padded else { return Ok(()) };
                let (x, wt, b) = (vals(g.input_len(), 1), vals(g.weight_len(), 2), vals(co, 3));
                // Forward with explicit padding vs valid on the explicitly padded input.
                let mut y1 = vec![0.0; g.output_len()];
                k.conv2d_forward(&g, direct, &x, &wt, Some(&b), &mut y1).unwrap();
                let xp = pad_image(&x, n, [h, w, ci], [pt, pb, pl, pr]);
                let gv = Conv2dGeometry::spec(n, [h + pt + pb, w + pl + pr, ci], [kh, kw], co).build().unwrap();
                let mut y2 = vec![0.0; gv.output_len()];
                k.conv2d_forward(&gv, direct, &xp, &wt, Some(&b), &mut y2).unwrap();
                prop_assert!(y1.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()), "{isa} forward {g:?}");
                // Backward-data vs forward on dy padded by the kernel minus one minus the padding.
                let dy = vals(g.output_len(), 4);
                let mut dx1 = vec![0.0; g.input_len()];
                k.conv2d_backward_data(&g, direct, &dy, &wt, &mut dx1).unwrap();
                let (oh, ow) = (g.out_h(), g.out_w());
                let full = [kh - 1 - pt, kh - 1 - pb, kw - 1 - pl, kw - 1 - pr];
                let dyp = pad_image(&dy, n, [oh, ow, co], full);
                let nt = kh * kw;
                // Rotated by 180° and transposed: w'[t][o][i] = w[nt − 1 − t][i][o].
                let wr: Vec<f32> = (0..nt * co * ci)
                    .map(|j| {
                        let (t, o, i) = (j / (co * ci), j / ci % co, j % ci);
                        wt[((nt - 1 - t) * ci + i) * co + o]
                    })
                    .collect();
                let gb = Conv2dGeometry::spec(n, [oh + full[0] + full[1], ow + full[2] + full[3], co], [kh, kw], ci)
                    .build()
                    .unwrap();
                let mut dx2 = vec![0.0; gb.output_len()];
                k.conv2d_forward(&gb, direct, &dyp, &wr, None, &mut dx2).unwrap();
                prop_assert_eq!(dx1.len(), dx2.len());
                prop_assert!(
                    dx1.iter().zip(&dx2).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{isa} backward-data {g:?}"
                );
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{isa}: {e}"));
    }
}
