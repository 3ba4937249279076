//! Fuzz bodies for the kernel crate's safe entry points that take user shapes. Shared, via `#[path]`, by the
//! cargo-fuzz targets under `fuzz/` and by the stable test `tests/no_panic.rs`: any input must give `Ok` or
//! `Err`, never a panic, and a geometry that validates must be internally consistent.

use kiln_kernels::reference::{
    conv2d_backward_data, conv2d_backward_filter, conv2d_bias_gradient, conv2d_forward, gemm,
};
use kiln_kernels::{Conv2dGeometry, GemmGeometry, Padding, Transpose};

/// Reads dimension-like numbers from fuzz bytes: mostly small, sometimes enormous.
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// A size: tag < 240 gives `tag % 13`; otherwise the next 8 bytes as a (possibly huge) little-endian u64.
    pub fn size(&mut self) -> usize {
        let tag = self.byte();
        if tag < 240 {
            usize::from(tag % 13)
        } else {
            let mut raw = [0u8; 8];
            for b in raw.iter_mut() {
                *b = self.byte();
            }
            u64::from_le_bytes(raw) as usize
        }
    }

    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }
}

/// How far a fuzz input got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Validation returned an error.
    Rejected,
    /// Validated, but too large to run through the references.
    Validated,
    /// Validated and run through the references.
    Ran,
}

/// Work limit under which a validated problem is actually run through the references.
const SMALL: u64 = 200_000;

fn data(len: usize, salt: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 31 + salt * 17) % 23) as f32 / 7.0 - 1.5).collect()
}

pub fn conv2d_geometry(input: &[u8]) -> Outcome {
    let mut b = Bytes(input);
    let (n, h, w, ci, co) = (b.size(), b.size(), b.size(), b.size(), b.size());
    let (kh, kw, sh, sw, dh, dw) = (b.size(), b.size(), b.size(), b.size(), b.size(), b.size());
    let padding = match b.byte() % 3 {
        0 => Padding::Valid,
        1 => Padding::Same,
        _ => Padding::Explicit { top: b.size(), bottom: b.size(), left: b.size(), right: b.size() },
    };
    let spec = Conv2dGeometry::spec(n, [h, w, ci], [kh, kw], co).strides(sh, sw).dilations(dh, dw).padding(padding);
    let Ok(g) = spec.build() else { return Outcome::Rejected };
    // Invariants of a validated geometry.
    assert!(g.out_h() >= 1 && g.out_w() >= 1);
    assert_eq!(g.output_len(), g.batch() * g.out_h() * g.out_w() * g.out_c());
    assert_eq!(g.input_len(), g.batch() * g.in_h() * g.in_w() * g.in_c());
    assert_eq!(g.weight_len(), g.kernel_h() * g.kernel_w() * g.in_c() * g.out_c());
    if g.padding() == Padding::Same {
        assert_eq!(g.out_h(), g.in_h().div_ceil(g.stride_h()));
        assert_eq!(g.out_w(), g.in_w().div_ceil(g.stride_w()));
    }
    // Wrong slice lengths are errors.
    assert!(g.check_forward(g.input_len() + 1, g.weight_len(), None, g.output_len()).is_err());
    assert!(g.check_backward_data(g.output_len(), g.weight_len() + 1, g.input_len()).is_err());
    // Batch 0 makes the work 0 while the weights (and their gradient) can still be huge: bound all three.
    if g.flops() > SMALL || g.input_len() > 20_000 || g.output_len() > 20_000 || g.weight_len() > 20_000 {
        return Outcome::Validated;
    }
    for oh in [0, g.out_h() - 1] {
        for kh in 0..g.kernel_h().min(8) {
            if let Some(ih) = g.input_row(oh, kh) {
                assert!(ih < g.in_h());
            }
        }
    }
    let (x, wt, dy) = (data(g.input_len(), 1), data(g.weight_len(), 2), data(g.output_len(), 3));
    let bias = data(g.bias_len(), 4);
    assert_eq!(conv2d_forward(&g, &x, &wt, Some(&bias)).unwrap().values.len(), g.output_len());
    assert_eq!(conv2d_backward_data(&g, &dy, &wt).unwrap().values.len(), g.input_len());
    assert_eq!(conv2d_backward_filter(&g, &x, &dy).unwrap().values.len(), g.weight_len());
    assert_eq!(conv2d_bias_gradient(&g, &dy).unwrap().values.len(), g.out_c());
    // Short slices are errors, not panics.
    assert!(conv2d_forward(&g, &x[..x.len().saturating_sub(1)], &wt, None).is_err() || x.is_empty());
    Outcome::Ran
}

pub fn gemm_geometry(input: &[u8]) -> Outcome {
    let mut b = Bytes(input);
    let (m, n, k) = (b.size(), b.size(), b.size());
    let mut spec =
        GemmGeometry::spec(m, n, k).trans_a(Transpose::from_bool(b.flag())).trans_b(Transpose::from_bool(b.flag()));
    if b.flag() {
        spec = spec.lda(b.size());
    }
    if b.flag() {
        spec = spec.ldb(b.size());
    }
    if b.flag() {
        spec = spec.ldc(b.size());
    }
    let Ok(g) = spec.build() else { return Outcome::Rejected };
    assert!(g.lda() >= 1 && g.ldb() >= 1 && g.ldc() >= 1);
    if g.flops() > SMALL || g.a_len() > 50_000 || g.b_len() > 50_000 || g.c_len() > 50_000 {
        return Outcome::Validated;
    }
    // Lengths around the required ones (bounded, so the harness itself never allocates absurdly).
    let (la, lb, lc) = (b.size() % (g.a_len() + 3), b.size() % (g.b_len() + 3), b.size() % (g.c_len() + 3));
    // Arbitrary slice lengths: Ok iff long enough.
    let (a, bm, c) = (data(la, 1), data(lb, 2), data(lc, 3));
    let long_enough = la >= g.a_len() && lb >= g.b_len() && lc >= g.c_len();
    assert_eq!(gemm(&g, 1.0, &a, &bm, 0.5, &c).is_ok(), long_enough);
    let (a, bm, c) = (data(g.a_len(), 1), data(g.b_len(), 2), data(g.c_len(), 3));
    assert_eq!(gemm(&g, 1.0, &a, &bm, 0.0, &c).unwrap().values.len(), g.m() * g.n());
    Outcome::Ran
}

/// Arbitrary geometry, algorithm, pass, ISA, thread policy and slice lengths through the convolution kernels' safe
/// entry points: always `Ok` or `Err` (a forced algorithm that does not apply, a wrong length), never a panic; when
/// it runs, the result agrees with the f64 reference to the tolerance of KERNELS.md §1.6.
pub fn conv2d_kernels(input: &[u8]) -> Outcome {
    use kiln_kernels::reference::{K_DIRECT, K_WINOGRAD_SQRT2_6X6};
    use kiln_kernels::{ConvAlgo, ConvOptions, Isa, Kernels, Threads, WinogradTile};
    let mut b = Bytes(input);
    // Zero and huge dimensions are the geometry body's job; here dimensions are mostly valid (0 stays possible
    // through the batch, and through `size`'s huge values, which the geometry rejects).
    let dim = |b: &mut Bytes| b.size().max(1);
    let n = b.size() % 4;
    let (h, w, ci, co) = (dim(&mut b), dim(&mut b), dim(&mut b), dim(&mut b));
    let (kh, kw) = (dim(&mut b) % 8, dim(&mut b) % 8);
    let (sh, sw, dh, dw) = (dim(&mut b) % 4, dim(&mut b) % 4, dim(&mut b) % 3, dim(&mut b) % 3);
    let padding = match b.byte() % 3 {
        0 => Padding::Valid,
        1 => Padding::Same,
        _ => Padding::Explicit { top: b.size() % 5, bottom: b.size() % 5, left: b.size() % 5, right: b.size() % 5 },
    };
    let algo = match b.byte() % 12 {
        0 | 8..=11 => ConvAlgo::Auto,
        1 => ConvAlgo::Direct,
        2 => ConvAlgo::ImplicitGemm,
        3 => ConvAlgo::Im2col,
        4 => ConvAlgo::Winograd(WinogradTile::Auto),
        5 => ConvAlgo::Winograd(WinogradTile::F2x2K3x3),
        6 => ConvAlgo::Winograd(WinogradTile::F4x4K3x3),
        _ => ConvAlgo::Winograd(WinogradTile::F2x2K5x5),
    };
    let pass = b.byte() % 4;
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.is_supported()).collect();
    let isa = isas[usize::from(b.byte()) % isas.len()];
    let Some(k) = Kernels::for_isa(isa) else { return Outcome::Rejected };
    let threads = if b.flag() { Threads::Rayon } else { Threads::Single };
    let short_flag = b.flag();
    let spec = Conv2dGeometry::spec(n, [h, w, ci], [kh, kw], co).strides(sh, sw).dilations(dh, dw).padding(padding);
    let Ok(g) = spec.build() else { return Outcome::Rejected };
    if g.flops() > SMALL || g.input_len() > 20_000 || g.output_len() > 20_000 || g.weight_len() > 20_000 {
        return Outcome::Validated;
    }
    // A short input (or input-gradient) slice, when there is anything to cut.
    let short = short_flag && g.input_len() > 0;
    let cut = |len: usize| if short { len - 1 } else { len };
    let (x, wt, dy) = (data(cut(g.input_len()), 1), data(g.weight_len(), 2), data(g.output_len(), 3));
    let bias = data(g.bias_len(), 4);
    let opts = ConvOptions::algo(algo).threads(threads);
    let (result, want) = match pass {
        0 => {
            let mut y = vec![f32::NAN; g.output_len()];
            let r = k.conv2d_forward(&g, opts, &x, &wt, Some(&bias), &mut y);
            (r.map(|a| (a, y)), conv2d_forward(&g, &x, &wt, Some(&bias)))
        }
        1 => {
            let mut dx = vec![f32::NAN; cut(g.input_len())];
            let r = k.conv2d_backward_data(&g, opts, &dy, &wt, &mut dx);
            (r.map(|a| (a, dx)), conv2d_backward_data(&g, &dy, &wt))
        }
        2 => {
            let mut dw = vec![f32::NAN; g.weight_len()];
            let r = k.conv2d_backward_filter(&g, opts, &x, &dy, &mut dw);
            (r.map(|a| (a, dw)), conv2d_backward_filter(&g, &x, &dy))
        }
        _ => {
            let mut db = vec![f32::NAN; g.bias_len()];
            let r = k.conv2d_bias_gradient(&g, &dy, &mut db);
            (r.map(|()| (ConvAlgo::Auto, db)), conv2d_bias_gradient(&g, &dy))
        }
    };
    let Ok((ran, out)) = result else {
        // Rejected: only for a short slice or a forced algorithm that does not apply.
        assert!(short || algo != ConvAlgo::Auto, "Auto with correct lengths must run");
        assert!(!short || pass != 3, "the bias gradient does not read x");
        return Outcome::Validated;
    };
    assert!(!short || pass == 3, "a short slice was accepted");
    let want = want.expect("the reference accepts what the kernel accepted");
    let k_alg = if matches!(ran, ConvAlgo::Winograd(_)) { K_WINOGRAD_SQRT2_6X6 } else { K_DIRECT };
    if let Err(e) = want.check(out, k_alg) {
        panic!("{ran} on {isa}: {e}");
    }
    Outcome::Ran
}
