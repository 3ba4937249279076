//! Unit tests of the direct kernel's internals (the public passes are property-tested in `tests/conv.rs`).

use super::tiles::{Tiles, Window, tile};
use super::*;
use crate::geometry::Padding;
use crate::isa::Isa;
use crate::simd::Simd;
use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, TestRng};

/// Values from proptest's seeded generator, in [−1, 1) (raw pixels 0..255 when `pixels`).
fn values(len: usize, seed: u64, pixels: bool) -> Vec<f32> {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
    let unit = |rng: &mut TestRng| (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
    (0..len).map(|_| if pixels { (unit(&mut rng) * 256.0).floor() } else { 2.0 * unit(&mut rng) - 1.0 }).collect()
}

/// The ISAs this host runs that have a lane-batched direct kernel.
fn lane_kernels() -> Vec<&'static Kernels> {
    [Isa::Avx512, Isa::Avx2Fma, Isa::Neon, Isa::Portable]
        .into_iter()
        .filter_map(Kernels::for_isa)
        .filter(|k| k.conv.lanes > 1)
        .collect()
}

#[test]
fn lane_groups_follow_the_cost_rule() {
    let conv1 = Conv2dGeometry::spec(32, [28, 28, 1], [5, 5], 3).build().unwrap();
    let conv2 = Conv2dGeometry::spec(32, [24, 24, 3], [5, 5], 6).build().unwrap();
    for lanes in [4, 8, 16] {
        assert_eq!(lane_groups(&Plane::input(&conv1), 3, 32, lanes), 0, "conv1: one input channel");
        assert_eq!(lane_groups(&Plane::input(&conv2), 6, 32, lanes), 32 / lanes, "conv2");
        assert_eq!(lane_groups(&Plane::output_grad(&conv2), 3, 32, lanes), 32 / lanes, "conv2 backward-data");
        assert_eq!(lane_groups(&Plane::output_grad(&conv1), 1, 32, lanes), 0, "conv1 backward-data");
        // Backward-filter takes the forward's rule (the same planes and positions).
    }
    assert_eq!(lane_groups(&Plane::input(&conv2), 6, 32, 1), 0, "no lane-batched kernel");
    let small = Conv2dGeometry::spec(15, [24, 24, 3], [5, 5], 6).build().unwrap();
    assert_eq!(lane_groups(&Plane::input(&small), 6, 15, 16), 0, "fewer images than lanes");
}

/// One tile with one and with two chain sets (`D`), positions `xs` apart, every window of a `kh × kw` kernel
/// whose rows start at `a0` and columns at `b0`: the output bits (channels `len` apart, positions `ys`).
fn tile_bits<const C: usize, const V: usize, const D: usize>(
    cin: usize,
    (kh, kw): (usize, usize),
    win: Window,
    xs: usize,
    seed: u64,
) -> Vec<u32> {
    use crate::simd::Portable;
    let l = <Portable as Simd>::LANES;
    let wp = 16;
    let taps: Vec<usize> = (0..kh).flat_map(|a| (0..kw).map(move |b| (a * wp + b) * l)).collect();
    let in_plane = ((kh + V) * wp + kw) * l * (xs / l).max(1);
    let inp = values(cin * in_plane, seed, false);
    let w = values(cin * taps.len() * C, seed ^ 0x77, false);
    let (len, ys) = (V * 2 * l, 2 * l);
    let mut out = vec![f32::NAN; C * len];
    let at = Tiles { inp: &inp, in_plane, cin, taps: &taps, w: &w, len, xs, ys };
    tile::<Portable, C, V, D>(Portable, &at, win, &mut out, 0, 0);
    (0..C)
        .flat_map(|c| (0..V).flat_map(move |v| c * len + v * ys..c * len + v * ys + l))
        .map(|i| out[i].to_bits())
        .collect()
}

#[test]
fn two_chain_sets_keep_the_bits() {
    // 25 taps: groups of 3 channels (2–3 groups, the last one short or not); 9 taps: groups of 10.
    for (kh, kw, cins) in [(5usize, 5usize, 2..=8usize), (3, 3, 9..=23)] {
        for cin in cins {
            for (a0, a1, b0, b1) in [(0, kh, 0, kw), (1, kh, 0, kw), (0, kh - 1, 1, kw), (2, 3, 2, 3)] {
                let win = Window { a0, a1, b0, b1, kw };
                let seed = (cin * 100 + a0 * 10 + b0) as u64;
                let l = <crate::simd::Portable as Simd>::LANES;
                for xs in [l, 16 * l] {
                    let ctx = format!("{kh}×{kw}, cin {cin}, window {a0}..{a1} × {b0}..{b1}, xs {xs}");
                    assert_eq!(
                        tile_bits::<3, 2, 1>(cin, (kh, kw), win, xs, seed),
                        tile_bits::<3, 2, 2>(cin, (kh, kw), win, xs, seed),
                        "{ctx}"
                    );
                    assert_eq!(
                        tile_bits::<1, 1, 1>(cin, (kh, kw), win, xs, seed),
                        tile_bits::<1, 1, 2>(cin, (kh, kw), win, xs, seed),
                        "{ctx}"
                    );
                    assert_eq!(
                        tile_bits::<2, 1, 1>(cin, (kh, kw), win, xs, seed),
                        tile_bits::<2, 1, 2>(cin, (kh, kw), win, xs, seed),
                        "{ctx}"
                    );
                }
            }
        }
    }
}

fn case() -> impl Strategy<Value = (Conv2dGeometry, bool, bool, u64)> {
    let pad = prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        (0..=2usize, 0..=2usize, 0..=2usize, 0..=2usize).prop_map(|(top, bottom, left, right)| Padding::Explicit {
            top,
            bottom,
            left,
            right
        }),
    ];
    (
        (4..=37usize, proptest::sample::select(vec![2usize, 3, 6, 7, 8])),
        proptest::sample::select(vec![1usize, 3, 6, 7, 15, 16]),
        (proptest::sample::select(vec![1usize, 3, 5]), proptest::sample::select(vec![1usize, 3, 5])),
        (1..=12usize, 1..=12usize),
        pad,
        (any::<bool>(), any::<bool>(), any::<u64>()),
    )
        .prop_filter_map("valid geometry", |((n, ci), co, (kh, kw), (h, w), pad, (bias, pixels, seed))| {
            let g = Conv2dGeometry::spec(n, [h, w, ci], [kh, kw], co).padding(pad).build().ok()?;
            Some((g, bias, pixels, seed))
        })
}

/// `w` packed by `pack` (`pack_forward` or `pack_backward_data`).
fn packed(g: &Conv2dGeometry, w: &[f32], pack: fn(&Conv2dGeometry, &[f32], &mut [f32])) -> Vec<f32> {
    let mut out = vec![f32::NAN; g.weight_len()];
    pack(g, w, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::testing::cases(64), failure_persistence: None, ..ProptestConfig::default() })]

    /// Lane-batched groups (forced, whatever the cost rule says) give the wide-row kernel's bits, which the
    /// reference property (tests/conv.rs) checks: every batch size around the lane counts, padded and valid
    /// planes, with and without bias, one and two threads; forward and backward-data (whose tiles skip other
    /// zero-padding taps than the wide rows' do).
    #[test]
    fn lane_batched_forward_matches_wide_rows_bitwise((g, bias, pixels, seed) in case()) {
        for k in lane_kernels() {
            let x = values(g.input_len(), seed, pixels);
            let w = values(g.weight_len(), seed ^ 0x51, false);
            let b = bias.then(|| values(g.bias_len(), seed ^ 0x3c, false));
            let run = |groups: usize, threads: Threads| {
                let mut y = vec![f32::NAN; g.output_len()];
                forward_groups(k, &g, threads, &x, &packed(&g, &w, pack_forward), b.as_deref(), &mut y, groups, None);
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            let wide = run(0, Threads::Single);
            let groups = g.batch() / k.conv.lanes;
            prop_assert_eq!(&run(groups, Threads::Single), &wide, "{} {} groups", k.isa(), groups);
            prop_assert_eq!(&run(groups, Threads::Rayon), &wide, "{} {} groups, threads", k.isa(), groups);
        }
    }

    /// Lane-batched backward-filter chunks (forced) pass the f64 reference with K = 8 — the chunks of
    /// `LANES` images sum in another order than the wide rows' chunks of 8, so other bits — and give the
    /// same bits with one and two threads.
    #[test]
    fn lane_batched_backward_filter_matches_reference((g, _bias, pixels, seed) in case()) {
        for k in lane_kernels() {
            let x = values(g.input_len(), seed, pixels);
            let dy = values(g.output_len(), seed ^ 0xa7, false);
            let want = crate::reference::conv2d_backward_filter(&g, &x, &dy).unwrap();
            let groups = g.batch() / k.conv.lanes;
            let run = |threads: Threads| {
                let mut dw = vec![f32::NAN; g.weight_len()];
                backward_filter_groups(k, &g, threads, &x, &dy, &mut dw, groups, None);
                dw
            };
            let single = run(Threads::Single);
            if let Err(e) = want.check(single.iter().copied(), 8.0) {
                prop_assert!(false, "{} {} groups: {}", k.isa(), groups, e);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&run(Threads::Rayon)), bits(&single), "{} {} groups, threads", k.isa(), groups);
        }
    }

    #[test]
    fn lane_batched_backward_data_matches_wide_rows_bitwise((g, _bias, pixels, seed) in case()) {
        // Lane groups need every image whole in its plane: padding up to kernel − 1 on each side.
        prop_assume!(Plane::output_grad(&g).whole().is_some());
        for k in lane_kernels() {
            let dy = values(g.output_len(), seed, pixels);
            let w = values(g.weight_len(), seed ^ 0x51, false);
            let run = |groups: usize, threads: Threads| {
                let mut dx = vec![f32::NAN; g.input_len()];
                backward_data_groups(k, &g, threads, &dy, &packed(&g, &w, pack_backward_data), &mut dx, groups);
                dx.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            let wide = run(0, Threads::Single);
            let groups = g.batch() / k.conv.lanes;
            prop_assert_eq!(&run(groups, Threads::Single), &wide, "{} {} groups", k.isa(), groups);
            prop_assert_eq!(&run(groups, Threads::Rayon), &wide, "{} {} groups, threads", k.isa(), groups);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::testing::cases(48), failure_persistence: None, ..ProptestConfig::default() })]

    /// Backward-filter from the input planes a forward kept gives the bits of converting x again: lane groups
    /// (forced: all, or none) and single images, one and two threads; the forward's own output is unchanged by
    /// keeping its planes.
    #[test]
    fn kept_input_planes_give_the_same_backward_filter_bits((g, _bias, pixels, seed) in case()) {
        let kernels = Kernels::for_isa(Isa::Portable).into_iter().chain(lane_kernels());
        for k in kernels {
            let x = values(g.input_len(), seed, pixels);
            let w = packed(&g, &values(g.weight_len(), seed ^ 0x51, false), pack_forward);
            let dy = values(g.output_len(), seed ^ 0xa7, false);
            // Lane groups only where the ISA has a lane-batched kernel (the portable path keeps wide rows).
            let lane_groups = if k.conv.lanes > 1 { g.batch() / k.conv.lanes } else { 0 };
            for groups in [0, lane_groups] {
                for threads in [Threads::Single, Threads::Rayon] {
                    let layout = KeptPlanes::with_groups(k, &g, groups);
                    let mut kept = vec![0.0f32; layout.len];
                    let (mut y0, mut y1) = (vec![f32::NAN; g.output_len()], vec![f32::NAN; g.output_len()]);
                    forward_groups(k, &g, threads, &x, &w, None, &mut y0, groups, None);
                    forward_groups(k, &g, threads, &x, &w, None, &mut y1, groups, Some(&mut kept));
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    prop_assert_eq!(bits(&y1), bits(&y0), "{} {} groups: forward", k.isa(), groups);
                    let (mut d0, mut d1) = (vec![f32::NAN; g.weight_len()], vec![f32::NAN; g.weight_len()]);
                    backward_filter_groups(k, &g, threads, &x, &dy, &mut d0, groups, None);
                    backward_filter_groups(k, &g, threads, &x, &dy, &mut d1, groups, Some(&mut kept));
                    prop_assert_eq!(bits(&d1), bits(&d0), "{} {} groups: backward-filter", k.isa(), groups);
                }
            }
        }
    }
}
