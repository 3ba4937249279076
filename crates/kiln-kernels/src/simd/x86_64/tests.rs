//! The tokens' layout routines and transposes against their scalar definitions.

use super::{Avx2, Avx512};
use crate::simd::Simd;
use crate::simd::{deinterleave_scalar, interleave_scalar};

/// Every pixel count from 0 to 40 (whole blocks, partial blocks, tails only), several strides, channel counts
/// with and without a vector route, against the scalar definition; floats outside the written range must stay
/// untouched (NaN sentinels).
fn check<S: Simd, const C: usize>(s: S) {
    for n in 0..=40 {
        for extra in [0, 3, 17] {
            let stride = n + extra;
            let src: Vec<f32> = (0..n * C).map(|i| i as f32 * 0.5 - 7.0).collect();
            let mut want = vec![f32::NAN; C * stride + 5];
            let mut got = want.clone();
            deinterleave_scalar::<C>(&src, &mut want, stride);
            s.deinterleave::<C>(&src, &mut got, stride);
            assert_eq!(
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "deinterleave C={C} n={n} stride={stride}"
            );
            let add: [f32; C] = std::array::from_fn(|c| c as f32 * 100.0);
            let planes: Vec<f32> = (0..C * stride).map(|i| i as f32 * 0.25 + 1.0).collect();
            let mut want = vec![f32::NAN; n * C];
            let mut got = want.clone();
            interleave_scalar::<C>(&planes, stride, add, &mut want);
            s.interleave::<C>(&planes, stride, add, &mut got);
            assert_eq!(want, got, "interleave C={C} n={n} stride={stride}");
        }
    }
}

/// The multi-row forms against row-by-row scalar conversion: widths below, at and above one block, row
/// strides with and without gaps, NaN sentinels in the gaps.
fn check_rows<S: Simd, const C: usize>(s: S) {
    for width in [1, 5, 15, 16, 17, 20, 24, 31, 33, 40] {
        for rows in 0..=4 {
            for gap in [0, 4, 9] {
                let rs = width + gap;
                let stride = rows * rs + 3;
                let src: Vec<f32> = (0..rows * width * C).map(|i| i as f32 - 3.5).collect();
                let mut want = vec![f32::NAN; C * stride + 2];
                let mut got = want.clone();
                for r in 0..rows {
                    deinterleave_scalar::<C>(&src[r * width * C..][..width * C], &mut want[r * rs..], stride);
                }
                s.deinterleave_rows::<C>(&src, width, &mut got, rs, stride);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&want), bits(&got), "deinterleave_rows C={C} w={width} rows={rows} rs={rs}");
                let add: [f32; C] = std::array::from_fn(|c| c as f32 * 10.0);
                let planes: Vec<f32> = (0..C * stride).map(|i| i as f32 * 0.5).collect();
                let mut want = vec![f32::NAN; rows * width * C];
                let mut got = want.clone();
                for r in 0..rows {
                    let out = &mut want[r * width * C..][..width * C];
                    interleave_scalar::<C>(&planes[r * rs..], stride, add, out);
                }
                s.interleave_rows::<C>(&planes, rs, stride, add, width, &mut got);
                assert_eq!(want, got, "interleave_rows C={C} w={width} rows={rows} rs={rs}");
            }
        }
    }
}

/// The shuffle transposes against the definition (lane i of vector j = lane j of row i); vectors past
/// `LANES` are left alone.
fn check_transpose<S: Simd>(s: S) {
    let l = S::LANES;
    let rows: Vec<[f32; 16]> = (0..16).map(|i| std::array::from_fn(|j| (i * 16 + j) as f32)).collect();
    let mut v: [S::V; 16] = std::array::from_fn(|i| s.load(&rows[i]));
    s.transpose(&mut v);
    for (j, vj) in v.iter().enumerate() {
        let mut got = [0.0f32; 16];
        s.store(&mut got, *vj);
        let want: Vec<f32> = (0..l).map(|i| if j < l { rows[i][j] } else { rows[j][i] }).collect();
        assert_eq!(&got[..l], &want[..], "vector {j}");
    }
    // The same block loaded from rows 37 floats apart (unaligned, not contiguous) by load_transposed, whose
    // σ row order and half-vector inserts must give the same vectors; vectors past LANES are left alone.
    let flat: Vec<f32> = (0..16 * 37).map(|k| if k % 37 < 16 { rows[k / 37][k % 37] } else { f32::NAN }).collect();
    let mut w: [S::V; 16] = std::array::from_fn(|i| s.load(&rows[i]));
    // SAFETY: row i reads floats 37·i .. 37·i + LANES of `flat` (16 · 37 floats).
    unsafe { s.load_transposed(|i| flat.as_ptr().add(37 * i), &mut w) };
    for (j, (wj, vj)) in w.iter().zip(&v).enumerate() {
        let (mut got, mut want) = ([0.0f32; 16], [0.0f32; 16]);
        s.store(&mut got, *wj);
        s.store(&mut want, *vj);
        assert_eq!(got, want, "load_transposed vector {j}");
    }
}

fn all<S: Simd>(s: S) {
    check_transpose(s);
    check_rows::<S, 1>(s);
    check_rows::<S, 3>(s);
    check_rows::<S, 6>(s);
    check_rows::<S, 8>(s);
    check_rows::<S, 9>(s);
    check::<S, 1>(s);
    check::<S, 2>(s);
    check::<S, 3>(s);
    check::<S, 4>(s);
    check::<S, 5>(s);
    check::<S, 6>(s);
    check::<S, 7>(s);
    check::<S, 8>(s);
    check::<S, 9>(s);
    check::<S, 16>(s);
}

#[test]
fn avx512_interleave_matches_scalar() {
    if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: AVX-512F detected just above.
        all(unsafe { Avx512::new() });
    }
}

#[test]
fn avx2_interleave_matches_scalar() {
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA detected just above.
        all(unsafe { Avx2::new() });
    }
}
