//! The convolution property, shared by `tests/conv.rs` (every x86_64 ISA) and the harness-free `tests/neon.rs`:
//! every algorithm × pass against the f64 references with `|y − ref| ≤ K·eps32·B` (KERNELS.md §1.6), outputs
//! prefilled with NaN (every element must be written) and followed by a NaN guard band (none may be written).

use kiln_kernels::reference::{self, K_DIRECT, K_WINOGRAD_F2_3, K_WINOGRAD_SQRT2_6X6};
use kiln_kernels::{Conv2dGeometry, ConvAlgo, ConvOptions, ConvPass, Kernels, Padding, Threads, WinogradTile};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::gemm::values;

/// One convolution problem.
#[derive(Debug, Clone)]
pub struct ConvCase {
    pub g: Conv2dGeometry,
    /// Value distribution (see [`values`]): 0 U(−1,1), 1 raw pixels, 2 all positive, 3 sparse.
    pub dist: u8,
    pub seed: u64,
}

/// Channel counts around every vector and tile edge (issue #3).
const CHANNELS: [usize; 10] = [1, 3, 6, 7, 15, 16, 17, 31, 32, 33];

/// Largest number of multiply-adds per case (keeps the f64 reference fast).
const MAX_MACS: usize = 1_500_000;

/// Cases an algorithm supports, biased to edges: batch 1–3, the channel list, images 1×1 … 40×40 with
/// kernel = image frequent, kernels 1/3/5/7, strides 1–3, explicit padding 0–3 or same, dilation 1–2.
pub fn conv_case(algo: ConvAlgo) -> impl Strategy<Value = ConvCase> {
    let unit = matches!(algo, ConvAlgo::Direct | ConvAlgo::Winograd(_));
    let kernels: Vec<usize> = match algo {
        ConvAlgo::Winograd(WinogradTile::F2x2K5x5) => vec![5],
        ConvAlgo::Winograd(_) => vec![3],
        _ => vec![1, 3, 5, 7],
    };
    let (cin, cout): (Vec<usize>, Vec<usize>) = match algo {
        ConvAlgo::Direct => (vec![1, 2, 3, 6, 7, 8], vec![1, 3, 6, 7, 15, 16]),
        _ => (CHANNELS.to_vec(), CHANNELS.to_vec()),
    };
    // Both sides follow one mode, so 1×1 images and kernel = image occur often.
    let sides = |kh: usize, kw: usize| {
        prop_oneof![
            1 => Just((1usize, 1usize)),
            1 => Just((kh, kw)),
            1 => Just((kh + 1, kw + 2)),
            4 => (1..=40usize, 1..=40usize),
        ]
    };
    let stride =
        move || if unit { Just(1usize).boxed() } else { prop_oneof![2 => Just(1usize), 1 => 2..=3usize].boxed() };
    let dil =
        move || if unit { Just(1usize).boxed() } else { prop_oneof![2 => Just(1usize), 1 => Just(2usize)].boxed() };
    let padding = prop_oneof![
        1 => Just(Padding::Valid),
        1 => Just(Padding::Same),
        2 => (0..=3usize, 0..=3usize, 0..=3usize, 0..=3usize)
            .prop_map(|(top, bottom, left, right)| Padding::Explicit { top, bottom, left, right }),
    ];
    (proptest::sample::select(kernels.clone()), proptest::sample::select(kernels))
        .prop_flat_map(move |(kh, kw)| {
            (
                1..=3usize,
                sides(kh, kw),
                (proptest::sample::select(cin.clone()), proptest::sample::select(cout.clone())),
                (Just(kh), Just(kw)),
                (stride(), stride(), dil(), dil()),
                padding.clone(),
                (0u8..4, any::<u64>()),
            )
        })
        .prop_filter_map(
            "valid geometry of bounded cost",
            |(n, (h, w), (ci, co), (kh, kw), (sh, sw, dh, dw), pad, (dist, seed))| {
                let g = Conv2dGeometry::spec(n, [h, w, ci], [kh, kw], co)
                    .strides(sh, sw)
                    .dilations(dh, dw)
                    .padding(pad)
                    .build()
                    .ok()?;
                let macs = g.flops() as usize / 2 + g.input_len() * 9;
                (macs <= MAX_MACS).then_some(ConvCase { g, dist, seed })
            },
        )
}

/// The tolerance constant of an algorithm (KERNELS.md §1.6).
pub fn k_alg(algo: ConvAlgo) -> f64 {
    match algo {
        ConvAlgo::Winograd(WinogradTile::F2x2K3x3) => K_WINOGRAD_F2_3,
        ConvAlgo::Winograd(_) => K_WINOGRAD_SQRT2_6X6,
        _ => K_DIRECT,
    }
}

const GUARD: usize = 7;

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Runs `pass` of `algo` on the case and returns the output (without the guard band), after checking it against
/// the reference and checking the guard band.
pub fn check_conv(
    k: &Kernels,
    algo: ConvAlgo,
    pass: ConvPass,
    case: &ConvCase,
    threads: Threads,
) -> Result<Vec<f32>, TestCaseError> {
    let g = &case.g;
    let x = values(g.input_len(), case.dist, case.seed);
    let w = values(g.weight_len(), if case.dist == 1 { 0 } else { case.dist }, case.seed ^ 0x51);
    let dy = values(g.output_len(), case.dist.min(2) ^ 2, case.seed ^ 0xa7);
    let bias = values(g.bias_len(), 0, case.seed ^ 0x3c);
    let opts = ConvOptions::algo(algo).threads(threads);
    let (want, out_len) = match pass {
        ConvPass::Forward => (reference::conv2d_forward(g, &x, &w, Some(&bias)), g.output_len()),
        ConvPass::BackwardData => (reference::conv2d_backward_data(g, &dy, &w), g.input_len()),
        ConvPass::BackwardFilter => (reference::conv2d_backward_filter(g, &x, &dy), g.weight_len()),
    };
    let want = want.map_err(fail)?;
    let mut out = vec![f32::NAN; out_len + GUARD];
    let ran = match pass {
        ConvPass::Forward => k.conv2d_forward(g, opts, &x, &w, Some(&bias), &mut out[..out_len]),
        ConvPass::BackwardData => k.conv2d_backward_data(g, opts, &dy, &w, &mut out[..out_len]),
        ConvPass::BackwardFilter => k.conv2d_backward_filter(g, opts, &x, &dy, &mut out[..out_len]),
    }
    .map_err(fail)?;
    let label = format!("conv/{ran}/{}/{pass}", k.isa());
    want.check(out[..out_len].iter().copied(), k_alg(ran)).map_err(|e| fail(format!("{label}: {e}")))?;
    prop_assert!(out[out_len..].iter().all(|v| v.is_nan()), "{}: the guard band was written", label);
    out.truncate(out_len);
    Ok(out)
}

/// The algorithms and passes the property covers.
pub fn algos() -> Vec<(ConvAlgo, ConvPass)> {
    let mut v = Vec::new();
    for algo in [ConvAlgo::Direct, ConvAlgo::ImplicitGemm, ConvAlgo::Im2col] {
        for pass in [ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter] {
            v.push((algo, pass));
        }
    }
    for tile in [WinogradTile::F2x2K3x3, WinogradTile::F4x4K3x3, WinogradTile::F2x2K5x5] {
        for pass in [ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter] {
            v.push((ConvAlgo::Winograd(tile), pass));
        }
    }
    v
}

/// Geometries whose direct forward runs lane-batched groups (several input channels, garbage columns in the wide
/// rows): the flagship conv2 at a batch that leaves single images after the groups (its backward-data runs them
/// too), a same-padded one with zeroed plane borders, and an explicitly padded one with more than six output
/// channels (two channel blocks).
pub fn lane_batched_geometries() -> Vec<Conv2dGeometry> {
    vec![
        Conv2dGeometry::spec(37, [24, 24, 3], [5, 5], 6).build().unwrap(),
        Conv2dGeometry::spec(21, [19, 17, 7], [3, 3], 15).padding(Padding::Same).build().unwrap(),
        Conv2dGeometry::spec(9, [13, 14, 2], [5, 3], 7).padding(Padding::uniform(1)).build().unwrap(),
    ]
}

/// The direct forward (with bias) and backward-data of `g`, batched, pass the reference check and equal, bit for
/// bit, the same images run one at a time (which never form a lane-batched group); its backward-filter passes the
/// reference check with the same bits for one thread and the pool.
pub fn check_batching(k: &Kernels, g: &Conv2dGeometry, threads: Threads) -> Result<(), TestCaseError> {
    let case = ConvCase { g: *g, dist: 1, seed: g.batch() as u64 };
    let one = Conv2dGeometry::spec(1, [g.in_h(), g.in_w(), g.in_c()], [g.kernel_h(), g.kernel_w()], g.out_c())
        .padding(g.padding())
        .build()
        .map_err(fail)?;
    let opts = ConvOptions::algo(ConvAlgo::Direct).threads(Threads::Single);
    let (xs, ys) = (one.input_len(), one.output_len());
    let w = values(g.weight_len(), 0, case.seed ^ 0x51);
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());

    let batched = check_conv(k, ConvAlgo::Direct, ConvPass::Forward, &case, threads)?;
    let x = values(g.input_len(), case.dist, case.seed);
    let bias = values(g.bias_len(), 0, case.seed ^ 0x3c);
    for n in 0..g.batch() {
        let mut y = vec![f32::NAN; ys];
        k.conv2d_forward(&one, opts, &x[n * xs..][..xs], &w, Some(&bias), &mut y).map_err(fail)?;
        prop_assert!(same(&y, &batched[n * ys..][..ys]), "{}: forward image {} of {:?} differs", k.isa(), n, g);
    }

    let batched = check_conv(k, ConvAlgo::Direct, ConvPass::BackwardData, &case, threads)?;
    let dy = values(g.output_len(), case.dist.min(2) ^ 2, case.seed ^ 0xa7);
    for n in 0..g.batch() {
        let mut dx = vec![f32::NAN; xs];
        k.conv2d_backward_data(&one, opts, &dy[n * ys..][..ys], &w, &mut dx).map_err(fail)?;
        prop_assert!(same(&dx, &batched[n * xs..][..xs]), "{}: backward-data image {} of {:?} differs", k.isa(), n, g);
    }

    // Backward-filter's lane-batched chunks sum in another order than single images: the reference check, and
    // the same bits with `threads` as with one thread (the NEON runner under qemu passes `Single`: spawned
    // threads hang there).
    let one_thread = check_conv(k, ConvAlgo::Direct, ConvPass::BackwardFilter, &case, Threads::Single)?;
    let with = check_conv(k, ConvAlgo::Direct, ConvPass::BackwardFilter, &case, threads)?;
    prop_assert!(same(&one_thread, &with), "{}: backward-filter of {:?} depends on the threads", k.isa(), g);
    Ok(())
}
