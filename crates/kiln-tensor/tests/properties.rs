//! Property tests of the tensor core: shape arithmetic, reshape/batch views, broadcasting against a naive
//! implementation, argmax, and f16/bf16 round-trips within their documented precision (see `dtype.rs`).

use kiln_tensor::{Shape, Tensor, bf16, f16};
use proptest::prelude::*;

fn dims() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..6usize, 0..5)
}

fn finite_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        -1.0f32..1.0,
        -70000.0f32..70000.0,
        any::<f32>().prop_filter("finite", |v| v.is_finite()),
        (-30i32..30, 1.0f32..2.0).prop_map(|(e, m)| m * 2f32.powi(e)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(kiln_kernels::testing::cases(512)))]

    #[test]
    fn strides_and_offsets_agree(d in dims()) {
        let s = Shape::new(&d).unwrap();
        prop_assert_eq!(s.numel(), d.iter().product::<usize>());
        let strides = s.strides();
        // Walk every multi-index in row-major order: offsets are 0, 1, 2, ...
        let mut idx = vec![0usize; d.len()];
        for expected in 0..s.numel() {
            prop_assert_eq!(s.offset(&idx), Some(expected));
            prop_assert_eq!(idx.iter().zip(&strides).map(|(i, st)| i * st).sum::<usize>(), expected);
            for axis in (0..d.len()).rev() {
                idx[axis] += 1;
                if idx[axis] < d[axis] { break; }
                idx[axis] = 0;
            }
        }
    }

    #[test]
    fn reshape_round_trips(d in dims(), split in 0..5usize) {
        let t = Tensor::from_fn(&d, |i| i as f32).unwrap();
        let n = t.len();
        // Any factorisation of n is a valid reshape; a different count is not.
        let a = (1..=n.max(1)).filter(|f| n.is_multiple_of(*f)).nth(split % 3).unwrap_or(1);
        let target = if n == 0 { vec![0, 3] } else { vec![a, n / a] };
        let r = t.clone().reshape(&target).unwrap();
        prop_assert_eq!(r.as_slice(), t.as_slice());
        prop_assert_eq!(r.reshape(&d).unwrap(), t.clone());
        prop_assert!(t.reshape(&[n + 1]).is_err());
    }

    #[test]
    fn batch_views_concatenate(d in proptest::collection::vec(1..5usize, 1..4), cut in 0..10usize) {
        let t = Tensor::from_fn(&d, |i| i as f32).unwrap();
        let b = d[0];
        let cut = cut % (b + 1);
        let head = t.batch(0..cut).unwrap();
        let tail = t.batch(cut..b).unwrap();
        prop_assert_eq!(head.shape().dims()[0] + tail.shape().dims()[0], b);
        let joined: Vec<f32> = head.as_slice().iter().chain(tail.as_slice()).copied().collect();
        prop_assert_eq!(&joined[..], t.as_slice());
        prop_assert!(t.batch(0..b + 1).is_err());
    }

    #[test]
    fn broadcasting_matches_naive(
        a in proptest::collection::vec(1..4usize, 0..4),
        mask in proptest::collection::vec(any::<bool>(), 4),
        drop in 0..4usize,
    ) {
        // b: a suffix of a's dims with some set to 1 — always broadcastable to a.
        let suffix = &a[drop % (a.len() + 1)..];
        let bd: Vec<usize> = suffix.iter().zip(&mask).map(|(&d, &m)| if m { 1 } else { d }).collect();
        let x = Tensor::from_fn(&a, |i| i as f32 + 0.5).unwrap();
        let y = Tensor::from_fn(&bd, |i| (i as f32) * 10.0).unwrap();
        let out = x.add(&y).unwrap();
        let rev = y.add(&x).unwrap();
        prop_assert_eq!(out.dims(), &a[..]);
        prop_assert_eq!(&out, &rev);
        let shape = Shape::new(&a).unwrap();
        let pad = a.len() - bd.len();
        let mut idx = vec![0usize; a.len()];
        for i in 0..shape.numel() {
            let yi: Vec<usize> = (0..bd.len()).map(|k| if bd[k] == 1 { 0 } else { idx[pad + k] }).collect();
            let expected = x.as_slice()[i] + y.get(&yi).unwrap();
            prop_assert_eq!(out.as_slice()[i], expected);
            for axis in (0..a.len()).rev() {
                idx[axis] += 1;
                if idx[axis] < a[axis] { break; }
                idx[axis] = 0;
            }
        }
        let mut inplace = x.clone();
        inplace.add_assign(&y).unwrap();
        prop_assert_eq!(inplace, out);
    }

    #[test]
    fn argmax_is_first_maximum(rows in 1..6usize, cols in 1..7usize, seed in any::<u64>()) {
        let t = Tensor::from_fn(&[rows, cols], |i| ((seed.wrapping_mul(i as u64 + 1) >> 33) % 5) as f32).unwrap();
        let am = t.argmax(1).unwrap();
        for (row, &got) in t.as_slice().chunks(cols).zip(&am) {
            let max = row.iter().copied().fold(f32::MIN, f32::max);
            prop_assert_eq!(got, row.iter().position(|&v| v == max).unwrap());
        }
    }

    /// f16: relative error ≤ 2⁻¹¹ for normal magnitudes ≤ 65504; absolute ≤ 2⁻²⁵ below the normal range; above
    /// 65520 the result is ±inf.
    #[test]
    fn f16_round_trip_precision(values in proptest::collection::vec(finite_f32(), 1..64)) {
        let t = Tensor::from_slice(&[values.len()], &values).unwrap();
        let back = t.to_f16().to_f32().unwrap();
        let min_normal = 2f32.powi(-14);
        for (&v, &r) in values.iter().zip(back.as_slice()) {
            let a = v.abs();
            if a >= 65520.0 {
                prop_assert!(r.is_infinite() && r.signum() == v.signum(), "{v} -> {r}");
            } else if a >= min_normal {
                prop_assert!(((r - v) / v).abs() <= 2f32.powi(-11), "{v} -> {r}");
            } else {
                prop_assert!((r - v).abs() <= 2f32.powi(-25), "{v} -> {r}");
            }
            // Matches a scalar conversion exactly (bulk path = element path).
            prop_assert_eq!(r.to_bits(), f16::from_f32(v).to_f32().to_bits());
        }
    }

    /// bf16: relative error ≤ 2⁻⁸ for normal f32 magnitudes (rounding near f32::MAX may give ±inf).
    #[test]
    fn bf16_round_trip_precision(values in proptest::collection::vec(finite_f32(), 1..64)) {
        let t = Tensor::from_slice(&[values.len()], &values).unwrap();
        let back = t.to_bf16().to_f32().unwrap();
        for (&v, &r) in values.iter().zip(back.as_slice()) {
            if v.abs() >= f32::MIN_POSITIVE && r.is_finite() {
                prop_assert!(((r - v) / v).abs() <= 2f32.powi(-8), "{v} -> {r}");
            } else if v.abs() < f32::MIN_POSITIVE {
                prop_assert!((r - v).abs() <= f32::MIN_POSITIVE * 2f32.powi(-7), "{v} -> {r}");
            } else {
                prop_assert!(v.abs() > f32::MAX * (1.0 - 2f32.powi(-9)), "{v} -> {r}");
            }
            prop_assert_eq!(r.to_bits(), bf16::from_f32(v).to_f32().to_bits());
        }
        // Converting twice changes nothing: values already representable round-trip exactly.
        let again = back.to_bf16().to_f32().unwrap();
        prop_assert_eq!(again.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        back.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }
}
