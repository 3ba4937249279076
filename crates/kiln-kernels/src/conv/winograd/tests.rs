//! The transforms alone, on single tiles: the matrices against the exact 1-D identity (f64), and each f32
//! transform of every testable ISA against the same matrix product in f64.

use super::*;
use crate::isa::Isa;

fn sets() -> [&'static WinogradSet; 3] {
    [&F2X3, &F4X3, &F2X5]
}

/// Deterministic values in [-1, 1).
fn vals(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

/// `Aᵀ[(G g) ⊙ (Bᵀ d)]` equals the direct correlation `y_i = Σ_k d_{i+k} g_k` (1-D, f64).
#[test]
fn matrices_compute_the_correlation() {
    for set in sets() {
        check_identity(set);
    }
}

fn check_identity(set: &WinogradSet) {
    {
        let (m, r, al) = (set.m, set.r, set.alpha);
        for seed in 0..50 {
            let (d, g) = (vals(al, seed), vals(r, seed + 1000));
            let gg: Vec<f64> = (0..al).map(|x| (0..r).map(|k| set.g[x * r + k] * g[k]).sum()).collect();
            let bd: Vec<f64> = (0..al).map(|x| (0..al).map(|k| set.bt[x * al + k] * d[k]).sum()).collect();
            for i in 0..m {
                let wino: f64 = (0..al).map(|x| set.at[i * al + x] * gg[x] * bd[x]).sum();
                let direct: f64 = (0..r).map(|k| d[i + k] * g[k]).sum();
                assert!((wino - direct).abs() < 1e-13, "F({m},{r}) seed {seed}: {wino} vs {direct}");
            }
        }
    }
}

#[test]
fn construction_reproduces_the_published_sqrt2_matrices_and_wgrad_sets_are_exact() {
    let b = construct(&[0.0, S2 / 2.0, -S2 / 2.0, S2, -S2], 4, 3);
    for (x, y) in b.bt.iter().zip(F4X3.bt).chain(b.g.iter().zip(F4X3.g)).chain(b.at.iter().zip(F4X3.at)) {
        assert!((x - y).abs() < 1e-12, "{x} vs {y}");
    }
    for tile in [WinogradTile::F2x2K3x3, WinogradTile::F4x4K3x3, WinogradTile::F2x2K5x5] {
        let w = wgrad_set(tile);
        let set = WinogradSet { m: w.m, r: w.r, alpha: w.alpha, bt: w.bt.leak(), g: w.g.leak(), at: w.at.leak() };
        check_identity(&set);
    }
}

/// `out = M x Mᵀ` in f64 for an `rows × cols` matrix `mat` and a `cols × cols` tile.
fn sandwich(mat: &[f64], rows: usize, cols: usize, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; rows * rows];
    let mut bound = vec![0.0; rows * rows];
    for i in 0..rows {
        for j in 0..rows {
            for a in 0..cols {
                for b in 0..cols {
                    let t = mat[i * cols + a] * x[a * cols + b] * mat[j * cols + b];
                    out[i * rows + j] += t;
                    bound[i * rows + j] += t.abs();
                }
            }
        }
    }
    (out, bound)
}

#[test]
fn transforms_match_the_exact_matrices_on_single_tiles() {
    for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
        let k = crate::Kernels::for_isa(isa).expect("supported");
        for set in sets() {
            let c = Coeffs::of(set);
            let (m, al) = (set.m, set.alpha);
            // 19 channels: one AVX-512 vector plus a scalar tail (two AVX2 vectors plus a tail).
            let ch = 19;
            for seed in 0..20 {
                // Input transform: V = Bᵀ d B for each channel.
                let d = vals(al * al * ch, seed);
                let d32: Vec<f32> = d.iter().map(|&v| v as f32).collect();
                let (mut tmp, mut v) = (vec![0.0f32; al * al * ch], vec![f32::NAN; al * al * ch]);
                let job = Transform::Input {
                    bt: c.bt(),
                    d: &d32,
                    d_row: al * ch,
                    tmp: &mut tmp,
                    v: &mut v,
                    v_stride: ch,
                    ch,
                };
                // SAFETY: the table exists only for a supported ISA.
                unsafe { (k.conv.winograd_transform)(job) };
                for cc in 0..ch {
                    let tile: Vec<f64> = (0..al * al).map(|p| f64::from(d32[p * ch + cc])).collect();
                    let (want, bound) = sandwich(set.bt, al, al, &tile);
                    for (p, (&w, &b)) in want.iter().zip(&bound).enumerate() {
                        let got = f64::from(v[p * ch + cc]);
                        assert!(
                            (got - w).abs() <= 8.0 * f64::from(f32::EPSILON) * b.max(f64::MIN_POSITIVE),
                            "{isa} F({m},{}) input transform: {got} vs {w}",
                            set.r
                        );
                    }
                }
                // Output transform: Y = Aᵀ M A.
                let mm = vals(al * al * ch, seed + 77);
                let m32: Vec<f32> = mm.iter().map(|&v| v as f32).collect();
                let mut y = vec![f32::NAN; m * m * ch];
                let job = Transform::Output {
                    at: c.at(),
                    mt: &m32,
                    m_stride: ch,
                    tmp: &mut tmp,
                    y: &mut rows_of(&mut y, m, m * ch),
                    y_stride: ch,
                    bias: None,
                    ch,
                };
                // SAFETY: as above.
                unsafe { (k.conv.winograd_transform)(job) };
                for cc in 0..ch {
                    let tile: Vec<f64> = (0..al * al).map(|p| f64::from(m32[p * ch + cc])).collect();
                    let (want, bound) = sandwich(set.at, m, al, &tile);
                    for (p, (&w, &b)) in want.iter().zip(&bound).enumerate() {
                        let got = f64::from(y[p * ch + cc]);
                        assert!(
                            (got - w).abs() <= 8.0 * f64::from(f32::EPSILON) * b,
                            "{isa} F({m},{}) output transform: {got} vs {w}",
                            set.r
                        );
                    }
                }
            }
        }
    }
}

/// The transforms the kernels run are the factored forms (so the single-tile test above checks them), and a
/// matrix that differs from a known one in one entry stays dense.
#[test]
fn known_matrices_take_their_factored_forms() {
    for (set, want) in
        [(&F2X3, (Mat1d::Bt4, Mat1d::At2x4)), (&F4X3, (Mat1d::Bt6, Mat1d::At4x6)), (&F2X5, (Mat1d::Bt6, Mat1d::At2x6))]
    {
        let c = Coeffs::of(set);
        assert_eq!((c.bt(), c.at()), want);
    }
    // The √2 backward-filter sets share the forward input transform (the {0, ±1} one has other signs: dense).
    for tile in [WinogradTile::F4x4K3x3, WinogradTile::F2x2K5x5] {
        let (set, [bt, _, _]) = wgrad_coeffs(tile);
        assert_eq!(Mat1d::of(bt, set.alpha, set.alpha), Mat1d::Bt6, "{tile:?}");
    }
    let mut off = Coeffs::of(&F4X3).bt;
    off[7] += 1e-3;
    assert!(matches!(Mat1d::of(&off, 6, 6), Mat1d::Dense { rows: 6, cols: 6, .. }));
}

#[test]
fn filter_transform_matches_the_exact_matrices() {
    for set in sets() {
        let r = set.r;
        let g = vals(r * r, 5);
        let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
        let mut u = vec![f32::NAN; set.alpha * set.alpha];
        filter_transform(set, 1, 1, &g32, false, &[0..r, 0..r], &mut u, &mut Vec::new());
        let g64: Vec<f64> = g.iter().map(|&v| f64::from(v as f32)).collect();
        // U = G g Gᵀ with G (α × r).
        let al = set.alpha;
        for x in 0..al {
            for y in 0..al {
                let want: f64 = (0..r)
                    .flat_map(|a| (0..r).map(move |b| (a, b)))
                    .map(|(a, b)| set.g[x * r + a] * g64[a * r + b] * set.g[y * r + b])
                    .sum();
                let got = f64::from(u[x * al + y]);
                assert!((got - want).abs() <= f64::from(f32::EPSILON) * want.abs().max(1e-30), "{got} vs {want}");
            }
        }
    }
}
