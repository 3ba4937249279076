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
