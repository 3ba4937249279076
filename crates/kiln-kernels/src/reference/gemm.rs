//! Reference GEMM.

use super::Reference;
use crate::error::Result;
use crate::geometry::GemmGeometry;

/// `C = alpha·op(A)·op(B) + beta·C` for the geometry `g`, accumulated in `f64`.
///
/// Returns the `m×n` result densely (row `i` at `values[i·n..]`, whatever `ldc` is). As in BLAS, when
/// `beta == 0` the contents of `c` are not read (they may be NaN); `c` must still have `g.c_len()` elements.
/// Scale: `b_ij = |alpha|·Σ_p |op(A)_ip|·|op(B)_pj| + |beta·C_ij|`.
pub fn gemm<T: Copy + Into<f64>>(
    g: &GemmGeometry,
    alpha: f32,
    a: &[T],
    b: &[T],
    beta: f32,
    c: &[T],
) -> Result<Reference> {
    g.check(a.len(), b.len(), c.len())?;
    let (m, n, k) = (g.m(), g.n(), g.k());
    let (alpha, beta) = (f64::from(alpha), f64::from(beta));
    let mut values = Vec::with_capacity(m * n);
    let mut bounds = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            let mut abs = 0.0f64;
            for p in 0..k {
                let x: f64 = a[g.a_index(i, p)].into();
                let y: f64 = b[g.b_index(p, j)].into();
                acc += x * y;
                abs += (x * y).abs();
            }
            let (mut v, mut s) = (alpha * acc, alpha.abs() * abs);
            if beta != 0.0 {
                let old: f64 = c[g.c_index(i, j)].into();
                v += beta * old;
                s += (beta * old).abs();
            }
            values.push(v);
            bounds.push(s);
        }
    }
    Ok(Reference::new(values, bounds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Transpose;

    #[test]
    fn small_product_with_transposes_and_strides() {
        // A = [[1,2,3],[4,5,6]] (2×3), B = [[1,0],[0,1],[1,1]] (3×2): A·B = [[4,5],[10,11]].
        let a = [1.0f32, 2., 3., 4., 5., 6.];
        let b = [1.0f32, 0., 0., 1., 1., 1.];
        let c = [0.0f32; 4];
        let g = GemmGeometry::new(2, 2, 3).unwrap();
        let r = gemm(&g, 1.0, &a, &b, 0.0, &c).unwrap();
        assert_eq!(r.values, vec![4.0, 5.0, 10.0, 11.0]);
        assert_eq!(r.bounds, vec![4.0, 5.0, 10.0, 11.0]);
        // Same product from Aᵀ stored 3×2 with lda 3 (one padding column) and Bᵀ stored 2×3.
        let at = [1.0f32, 4., -99., 2., 5., -99., 3., 6.];
        let bt = [1.0f32, 0., 1., 0., 1., 1.];
        let g = GemmGeometry::spec(2, 2, 3).trans_a(Transpose::Yes).lda(3).trans_b(Transpose::Yes).build().unwrap();
        let c = [1.0f32, 1., 1., 1.];
        let r = gemm(&g, 2.0, &at, &bt, -1.0, &c).unwrap();
        assert_eq!(r.values, vec![7.0, 9.0, 19.0, 21.0]);
        assert_eq!(r.bounds, vec![9.0, 11.0, 21.0, 23.0]);
    }

    #[test]
    fn beta_zero_does_not_read_c() {
        let g = GemmGeometry::new(1, 1, 2).unwrap();
        let r = gemm(&g, 1.0, &[1.0f32, 2.0], &[3.0f32, 4.0], 0.0, &[f32::NAN]).unwrap();
        assert_eq!(r.values, vec![11.0]);
        // k = 0: C = beta·C.
        let g = GemmGeometry::new(1, 1, 0).unwrap();
        let r = gemm::<f32>(&g, 1.0, &[], &[], 0.5, &[4.0]).unwrap();
        assert_eq!(r.values, vec![2.0]);
    }

    #[test]
    fn short_slices_are_errors() {
        let g = GemmGeometry::new(2, 2, 2).unwrap();
        assert!(gemm(&g, 1.0, &[0.0f32; 3], &[0.0; 4], 0.0, &[0.0; 4]).is_err());
    }
}
