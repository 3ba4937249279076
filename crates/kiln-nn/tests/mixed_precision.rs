//! The `mixed_bfloat16` dtype policy on a model: Keras' names, training that is bitwise the same for any thread
//! count and replica split, and that actually computes in bf16 (its results differ from float32 by about bf16's
//! precision, not more).

mod common;

use common::{flagship_sized, synthetic};
use kiln_nn::NnError;
use kiln_nn::prelude::*;

#[test]
fn policy_names_are_keras_names() {
    assert_eq!(DTypePolicy::from_name("mixed_bfloat16").unwrap(), DTypePolicy::MixedBfloat16);
    assert_eq!("float32".parse::<DTypePolicy>().unwrap(), DTypePolicy::Float32);
    assert_eq!(DTypePolicy::MixedBfloat16.compute_dtype(), "bfloat16");
    assert_eq!(DTypePolicy::MixedBfloat16.variable_dtype(), "float32");
    let mut m = flagship_sized(12, 16);
    assert_eq!(m.dtype_policy(), DTypePolicy::Float32);
    for bad in ["mixed_float16", "bfloat16", "float64", ""] {
        assert!(matches!(m.set_dtype_policy(bad), Err(NnError::Unknown { kind: "dtype policy", .. })), "{bad}");
    }
    assert_eq!(m.dtype_policy(), DTypePolicy::Float32, "a refused name leaves the policy as it was");
    m.set_dtype_policy("mixed_bfloat16").unwrap();
    assert_eq!(m.dtype_policy().to_string(), "mixed_bfloat16");
    // The products' GEMM: the bf16 kernel where the CPU has bf16 arithmetic, else the f32 one on bf16 values.
    let k = m.kernels();
    assert_eq!(DTypePolicy::Float32.product_gemm(k), k.gemm_name());
    let mixed = DTypePolicy::MixedBfloat16.product_gemm(k);
    assert!(mixed.contains("bf16"), "{mixed}");
    let widening = k.bf16_by_widening();
    assert_eq!(DTypePolicy::MixedBfloat16.product_gemm(widening), format!("{} on bf16 values", widening.gemm_name()));
}

/// Trains the small flagship for two epochs under `policy`; returns the epoch losses and the weights.
fn train(policy: &str, threads: usize, data_parallel: bool) -> (Vec<f32>, Vec<(String, kiln_tensor::Tensor)>) {
    let (x, y) = synthetic(200, 12, 7);
    let mut m = flagship_sized(12, 16);
    m.set_seed(5).unwrap();
    m.set_threads(Some(threads)).unwrap();
    m.set_data_parallel(data_parallel);
    m.set_dtype_policy(policy).unwrap();
    let h = m.fit(&x, &y, &FitOptions::default().epochs(2).batch_size(20).verbose(Verbose::Silent)).unwrap();
    (h.loss(), m.weights().unwrap())
}

fn same_bits(a: &[(String, kiln_tensor::Tensor)], b: &[(String, kiln_tensor::Tensor)]) {
    for ((n, p), (_, q)) in a.iter().zip(b) {
        assert!(p.as_slice().iter().zip(q.as_slice()).all(|(u, v)| u.to_bits() == v.to_bits()), "{n} differs");
    }
}

#[test]
fn mixed_training_is_deterministic_and_close_to_float32() {
    let (l1, w1) = train("mixed_bfloat16", 1, true);
    let (l2, w2) = train("mixed_bfloat16", 2, true);
    assert_eq!(l1, l2);
    same_bits(&w1, &w2);
    let (_, w_single) = train("mixed_bfloat16", 2, false);
    let (lf, wf) = train("float32", 2, true);
    // bf16 keeps 8 significant bits: the runs part at ~2⁻⁹ relative per product and drift apart a little
    // over 20 steps — measurably, but far less than training moves the weights.
    let mut differs = false;
    for (((n, m), (_, f)), (_, s)) in w1.iter().zip(&wf).zip(&w_single) {
        let scale = f.as_slice().iter().fold(0.0f32, |a, v| a.max(v.abs())).max(1e-3);
        let worst = m.as_slice().iter().zip(f.as_slice()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst <= 0.05 * scale, "{n}: mixed vs float32 differ by {worst} (scale {scale})");
        differs |= worst > 0.0;
        let worst = m.as_slice().iter().zip(s.as_slice()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst <= 0.05 * scale, "{n}: two replicas vs one differ by {worst}");
    }
    assert!(differs, "the policy changed nothing: the products did not run in bf16");
    for (m, f) in l1.iter().zip(&lf) {
        assert!((m - f).abs() <= 0.05 * f.abs().max(0.1), "epoch loss {m} (mixed) vs {f} (float32)");
    }
    assert!(l1[1] < l1[0], "training under mixed_bfloat16 lowers the loss: {l1:?}");
}

/// Predictions under the policy: each product's output is a bf16 value, softmax in f32 — so the probabilities are
/// close to float32's but not equal, and each row still sums to 1 in f32.
#[test]
fn mixed_predictions_are_f32_softmax_of_bf16_logits() {
    let (x, _) = synthetic(16, 12, 3);
    let mut m = flagship_sized(12, 16);
    let f = m.predict(&x, 8).unwrap();
    m.set_dtype_policy("mixed_bfloat16").unwrap();
    let b = m.predict(&x, 8).unwrap();
    let worst = f.as_slice().iter().zip(b.as_slice()).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
    assert!(worst > 0.0 && worst < 0.05, "mixed vs float32 probabilities differ by {worst}");
    for row in b.as_slice().chunks(10) {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "row sums to {s}");
    }
    m.set_dtype_policy("float32").unwrap();
    assert_eq!(m.predict(&x, 8).unwrap(), f, "back to float32, the same bits as before");
}
