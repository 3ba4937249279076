//! Augmentation against real Keras: TensorFlow's projective transform (what `RandomTranslation`,
//! `RandomRotation` and `RandomZoom` run) of a fixed batch by fixed transforms — a rotation, a zoom, a translation
//! past the border with a projective part — under every fill mode, bilinear, pinned from
//! `benches/reference/keras_augmentation.py` (Keras 3.15.1, TensorFlow 2.21) in `fixtures/keras_augmentation.json`.
//!
//! Tolerance 2e-5: each output blends four inputs of magnitude ≤ 3 with weights computed in f32 in a different
//! order than TensorFlow's; a wrong fill rule or an off-by-one neighbour moves outputs by 1e-1.

use kiln_autograd::{FillMode, Params, Tape};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/keras_augmentation.json")).expect("valid JSON")
}

fn floats(v: &Value, key: &str) -> Vec<f32> {
    v[key].as_array().unwrap_or_else(|| panic!("{key}")).iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn projective_transforms_match_tensorflow_for_every_fill_mode() {
    let f = fixture();
    let x = floats(&f, "x");
    let shift = floats(&f, "shift");
    let both_shift: Vec<f32> = shift.iter().chain(&shift).copied().collect();
    let params = Params::new();
    let mut tape = Tape::new();
    for mode in [FillMode::Reflect, FillMode::Wrap, FillMode::Nearest, FillMode::Constant] {
        for (name, t) in [("rot_zoom", floats(&f, "transforms")), ("shift", both_shift.clone())] {
            let mut rec = tape.record(&params);
            let xv = rec.input(&[2, 5, 6, 2], &x).unwrap();
            let tv = rec.input(&[2, 8], &t).unwrap();
            let y = rec.affine_transform(xv, tv, mode, 0.5).unwrap();
            let got = rec.value(y).unwrap();
            let want = floats(&f, &format!("{}_{name}", mode.name()));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 2e-5, "{} {name} [{i}]: kiln {g} vs keras {w}", mode.name());
            }
        }
    }
}

/// The layers with degenerate factor ranges (lower = upper, so the draw is fixed) give Keras' outputs in training
/// — the transform each builds is Keras' — and pass the input through unchanged in inference.
#[test]
fn geometric_layers_build_keras_transforms() {
    use kiln_nn::Layer;
    use kiln_nn::layers::{FillMode, RandomRotation, RandomTranslation, RandomZoom};
    let f = fixture();
    let x = floats(&f, "x");
    let layers: [(&str, Box<dyn Layer>); 4] = [
        ("layer_rotation", Box::new(RandomRotation::new((0.1, 0.1)))),
        ("layer_zoom", Box::new(RandomZoom::new((0.2, 0.2)).width_factor((-0.1, -0.1)))),
        ("layer_zoom_same", Box::new(RandomZoom::new((-0.25, -0.25)))),
        (
            "layer_translation",
            Box::new(RandomTranslation::new((0.1, 0.1), (-0.2, -0.2)).fill_mode(FillMode::Constant).fill_value(0.5)),
        ),
    ];
    let params = Params::new();
    let mut tape = Tape::new();
    for (name, layer) in layers {
        layer.output_shape(&[5, 6, 2]).unwrap();
        for training in [true, false] {
            let mut rec = tape.record(&params);
            let xv = rec.input(&[2, 5, 6, 2], &x).unwrap();
            let y = layer.forward(&mut rec, xv, training).unwrap();
            let got = rec.value(y).unwrap();
            let key = if training { name.to_owned() } else { format!("{name}_inference") };
            let want = floats(&f, &key);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 2e-5, "{key} [{i}]: kiln {g} vs keras {w}");
            }
        }
    }
}

/// Random transforms follow the model's seed, step and replica: a data-parallel run is bitwise the same on 1 and 2
/// threads.
#[test]
fn geometric_augmentation_is_seeded_and_thread_count_independent() {
    use kiln_nn::layers::{RandomRotation, RandomTranslation, RandomZoom};
    use kiln_nn::prelude::*;
    let x = kiln_tensor::Tensor::from_fn(&[24, 6, 6, 1], |i| ((i * 37) % 19) as f32 * 0.1).unwrap();
    let y = kiln_tensor::Tensor::from_fn(&[24, 2], |i| (i % 2) as f32).unwrap();
    let run = |threads: usize, seed: u64| {
        let mut m = Sequential::new(&[6, 6, 1])
            .add(RandomTranslation::new(0.2, 0.2))
            .add(RandomRotation::new(0.1))
            .add(RandomZoom::new(0.2))
            .add(Flatten::new())
            .add(Dense::new(2))
            .build()
            .unwrap();
        m.compile("mse", Optimizer::sgd(), &[]).unwrap();
        m.set_seed(seed).unwrap();
        m.set_weight("dense/kernel", &kiln_tensor::Tensor::full(&[36, 2], 0.05).unwrap()).unwrap();
        m.set_data_parallel(true);
        m.set_threads(Some(threads)).unwrap();
        m.fit(&x, &y, &FitOptions::default().epochs(2).batch_size(8).verbose(Verbose::Silent)).unwrap();
        m.weights().unwrap()
    };
    assert_eq!(run(1, 5), run(2, 5));
    assert_ne!(run(1, 5), run(1, 6), "another seed: other shuffles and transforms");
}
