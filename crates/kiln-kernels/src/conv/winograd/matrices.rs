//! The Winograd sets' matrices (KERNELS.md §1.2): the fixed F(2×2,3×3), F(4×4,3×3) and F(2×2,5×5) with their
//! provenance, and the general construction from a point set that gives the backward-filter sets.

use super::WinogradTile;

pub(crate) const S2: f64 = std::f64::consts::SQRT_2;

/// One Winograd algorithm F(m×m, r×r): `Bᵀ` (α×α), `G` (α×r), `Aᵀ` (m×α), α = m + r − 1.
#[derive(Debug)]
pub struct WinogradSet {
    /// Output tile side.
    pub m: usize,
    /// Kernel side.
    pub r: usize,
    /// Input tile side α = m + r − 1.
    pub alpha: usize,
    /// Input transform, row-major α×α.
    pub bt: &'static [f64],
    /// Filter transform, row-major α×r.
    pub g: &'static [f64],
    /// Output transform, row-major m×α.
    pub at: &'static [f64],
}

/// F(2×2, 3×3), points {0, 1, −1, ∞} (the paper's matrices).
pub static F2X3: WinogradSet = WinogradSet {
    m: 2,
    r: 3,
    alpha: 4,
    bt: &BT4,
    g: &[1.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0.0, 0.0, 1.0],
    at: &AT2X4,
};

/// The 6×6 input transform of the √2 point set {0, √2/2, −√2/2, √2, −√2, ∞}.
pub(crate) const BT6: [f64; 36] = [
    1.0,
    0.0,
    -2.5,
    0.0,
    1.0,
    0.0, //
    0.0,
    -S2,
    -2.0,
    S2 / 2.0,
    1.0,
    0.0, //
    0.0,
    S2,
    -2.0,
    -S2 / 2.0,
    1.0,
    0.0, //
    0.0,
    -S2 / 2.0,
    -0.5,
    S2,
    1.0,
    0.0, //
    0.0,
    S2 / 2.0,
    -0.5,
    -S2,
    1.0,
    0.0, //
    0.0,
    1.0,
    0.0,
    -2.5,
    0.0,
    1.0,
];

/// F(4×4, 3×3) with the √2 points.
pub static F4X3: WinogradSet = WinogradSet {
    m: 4,
    r: 3,
    alpha: 6,
    bt: &BT6,
    g: &[
        1.0,
        0.0,
        0.0,
        -2.0 / 3.0,
        -S2 / 3.0,
        -1.0 / 3.0,
        -2.0 / 3.0,
        S2 / 3.0,
        -1.0 / 3.0,
        1.0 / 6.0,
        S2 / 6.0,
        1.0 / 3.0,
        1.0 / 6.0,
        -S2 / 6.0,
        1.0 / 3.0,
        0.0,
        0.0,
        1.0,
    ],
    at: &AT4X6,
};

/// F(2×2, 5×5) with the √2 points (same `Bᵀ` as [`F4X3`]).
pub static F2X5: WinogradSet = WinogradSet {
    m: 2,
    r: 5,
    alpha: 6,
    bt: &BT6,
    g: &[
        1.0,
        0.0,
        0.0,
        0.0,
        0.0,
        -2.0 / 3.0,
        -S2 / 3.0,
        -1.0 / 3.0,
        -S2 / 6.0,
        -1.0 / 6.0,
        -2.0 / 3.0,
        S2 / 3.0,
        -1.0 / 3.0,
        S2 / 6.0,
        -1.0 / 6.0,
        1.0 / 6.0,
        S2 / 6.0,
        1.0 / 3.0,
        S2 / 3.0,
        2.0 / 3.0,
        1.0 / 6.0,
        -S2 / 6.0,
        1.0 / 3.0,
        -S2 / 3.0,
        2.0 / 3.0,
        0.0,
        0.0,
        0.0,
        0.0,
        1.0,
    ],
    at: &AT2X6,
};

impl WinogradTile {
    /// The matrices of a concrete tile (`None` for `Auto`).
    pub fn set(self) -> Option<&'static WinogradSet> {
        match self {
            WinogradTile::Auto => None,
            WinogradTile::F2x2K3x3 => Some(&F2X3),
            WinogradTile::F4x4K3x3 => Some(&F4X3),
            WinogradTile::F2x2K5x5 => Some(&F2X5),
        }
    }
}

pub(crate) const AT4X6: [f64; 24] = [
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    0.0, //
    0.0,
    S2 / 2.0,
    -S2 / 2.0,
    S2,
    -S2,
    0.0, //
    0.0,
    0.5,
    0.5,
    2.0,
    2.0,
    0.0, //
    0.0,
    S2 / 4.0,
    -S2 / 4.0,
    2.0 * S2,
    -2.0 * S2,
    1.0,
];
pub(crate) const AT2X6: [f64; 12] = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, S2 / 2.0, -S2 / 2.0, S2, -S2, 1.0];
pub(crate) const BT4: [f64; 16] = [1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 1.0, 0.0, -1.0];
pub(crate) const AT2X4: [f64; 8] = [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, -1.0, -1.0];

/// A Winograd algorithm F(m, r) built from its finite points plus ∞ by the construction of KERNELS.md §1.1:
/// `Aᵀ[i][j] = a_j^i`; `G[j][k] = a_j^k / Π_{l≠j}(a_j − a_l)`; row j of `Bᵀ` = ascending coefficients of
/// `M(x)/(x − a_j)` with `M(x) = Π_l (x − a_l)`; the ∞ row of `Bᵀ` is `M(x)`, the ∞ row of `G` and column of `Aᵀ`
/// are unit vectors. With the √2 points this reproduces the `Bᵀ` of [`F4X3`] exactly.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    pub m: usize,
    #[cfg_attr(not(test), allow(dead_code))] // read by the identity test
    pub r: usize,
    pub alpha: usize,
    pub bt: Vec<f64>,
    pub g: Vec<f64>,
    pub at: Vec<f64>,
}

pub(crate) fn construct(points: &[f64], m: usize, r: usize) -> Built {
    let alpha = m + r - 1;
    debug_assert_eq!(points.len(), alpha - 1);
    // M(x), ascending coefficients (degree α − 1).
    let mut mp = vec![1.0f64];
    for &a in points {
        let mut next = vec![0.0; mp.len() + 1];
        for (i, &c) in mp.iter().enumerate() {
            next[i] -= a * c;
            next[i + 1] += c;
        }
        mp = next;
    }
    let deg = alpha - 1;
    let mut bt = vec![0.0; alpha * alpha];
    let mut g = vec![0.0; alpha * r];
    let mut at = vec![0.0; m * alpha];
    for (j, &a) in points.iter().enumerate() {
        // Synthetic division M(x) / (x − a): q[i−1] = c[i] + a·q[i].
        let mut q = vec![0.0; deg];
        q[deg - 1] = mp[deg];
        for i in (1..deg).rev() {
            q[i - 1] = mp[i] + a * q[i];
        }
        bt[j * alpha..j * alpha + deg].copy_from_slice(&q);
        let denom: f64 = points.iter().enumerate().filter(|&(l, _)| l != j).map(|(_, &b)| a - b).product();
        for k in 0..r {
            g[j * r + k] = a.powi(k as i32) / denom;
        }
        for i in 0..m {
            at[i * alpha + j] = a.powi(i as i32);
        }
    }
    bt[deg * alpha..].copy_from_slice(&mp);
    g[deg * r + r - 1] = 1.0;
    at[(m - 1) * alpha + deg] = 1.0;
    Built { m, r, alpha, bt, g, at }
}

/// The backward-filter algorithm for a forward tile: F(r×r, m×m) — dy tiles of the forward output tile `m` play
/// the filter, input patches of α = r + m − 1 the data, and the output is the r×r kernel (KERNELS.md §2.1):
/// F(3×3,2×2) with points {0, ±1}; F(3×3,4×4) and F(5×5,2×2) with the √2 points (the forward 6×6 input transform).
pub(crate) fn wgrad_set(tile: WinogradTile) -> Built {
    let sqrt2 = [0.0, S2 / 2.0, -S2 / 2.0, S2, -S2];
    match tile {
        WinogradTile::F4x4K3x3 => construct(&sqrt2, 3, 4),
        WinogradTile::F2x2K5x5 => construct(&sqrt2, 5, 2),
        _ => construct(&[0.0, 1.0, -1.0], 3, 2),
    }
}

/// The f32 matrices (`Bᵀ`, `G`, `Aᵀ`) of [`wgrad_set`], built once per process rather than on every call.
pub(crate) fn wgrad_coeffs(tile: WinogradTile) -> &'static (Built, [Vec<f32>; 3]) {
    use std::sync::OnceLock;
    static SETS: [OnceLock<(Built, [Vec<f32>; 3])>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match tile {
        WinogradTile::F4x4K3x3 => 1,
        WinogradTile::F2x2K5x5 => 2,
        _ => 0,
    };
    SETS[slot].get_or_init(|| {
        let set = wgrad_set(tile);
        let to32 = |v: &[f64]| v.iter().map(|&c| c as f32).collect::<Vec<f32>>();
        let coeffs = [to32(&set.bt), to32(&set.g), to32(&set.at)];
        (set, coeffs)
    })
}
