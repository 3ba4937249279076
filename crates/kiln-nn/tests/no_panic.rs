//! Corrupt model files never panic: random bytes, and valid `model.json` / safetensors files with random byte
//! changes, truncations and splices, go through the same body as the `model_files` fuzz target.

#[allow(dead_code)]
mod fuzz_bodies;

use kiln_nn::layers::{
    Add, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Dense, DepthwiseConv2D, Flatten, FlipMode,
    GlobalMaxPooling2D, MaxPooling2D, RandomFlip, RandomRotation, RandomTranslation, RandomZoom, Rescaling,
};
use kiln_nn::prelude::PoolPadding;
use kiln_nn::schedules::CosineDecay;
use kiln_nn::{Activation as ActivationFn, Call, Input, Model};
use proptest::prelude::*;

/// A model using every layer class, a merge of branches and a learning-rate schedule, so mutations reach every
/// config parser and the graph's wiring.
fn valid_files() -> (Vec<u8>, Vec<u8>) {
    let graph = || -> kiln_nn::Result<Model> {
        let inp = Input::new(&[8, 8, 1]);
        let x = Rescaling::new(1.0 / 255.0).offset(-0.5).call(&inp)?;
        let x = RandomFlip::new(FlipMode::Horizontal).call(&x)?;
        let x = RandomTranslation::new(0.1, (-0.2, 0.1)).call(&x)?;
        let x = RandomRotation::new(0.05).call(&x)?;
        let x = RandomZoom::new(0.1).width_factor((-0.2, 0.0)).call(&x)?;
        let x = Conv2D::new(2, 3).activation(ActivationFn::Swish).call(&x)?;
        let b = BatchNormalization::new().call(&x)?;
        let d = DepthwiseConv2D::new(3).padding(kiln_kernels::Padding::Same).depth_multiplier(2).call(&b)?;
        let c = Concatenate::new().call_on(&[&b, &x])?;
        let x = Add::new().call_on(&[&d, &c])?;
        let x = AveragePooling2D::new(2).padding(PoolPadding::Same).call(&x)?;
        let x = MaxPooling2D::new(2).call(&x)?;
        let x = GlobalMaxPooling2D::new().keepdims(true).call(&x)?;
        let x = Flatten::new().call(&x)?;
        let out = Dense::new(3).activation(ActivationFn::Softmax).call(&x)?;
        Model::new(&inp, &out)
    };
    let mut m = graph().unwrap();
    m.compile("categorical_crossentropy", kiln_nn::Optimizer::adamw(), &["accuracy"]).unwrap();
    m.set_learning_rate_schedule(Some(CosineDecay::new(1e-3, 100).unwrap().warmup(2e-3, 10).into()));
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path()).unwrap();
    (
        std::fs::read(dir.path().join("model.json")).unwrap(),
        std::fs::read(dir.path().join("model.safetensors")).unwrap(),
    )
}

fn mutate(mut v: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    for &(i, b) in edits {
        if !v.is_empty() {
            let n = v.len();
            v[i % n] = b;
        }
    }
    if let Some(c) = cut {
        v.truncate(c % (v.len() + 1));
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: kiln_kernels::testing::cases(256), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_bodies::model_files(&data);
    }

    #[test]
    fn mutated_valid_files(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6), cut in proptest::option::of(any::<usize>()), which in 0u8..3) {
        let (json, weights) = valid_files();
        let (json, weights) = match which {
            0 => (mutate(json, &edits, cut), weights),
            1 => (json, mutate(weights, &edits, cut)),
            _ => (mutate(json, &edits, None), mutate(weights, &edits, cut)),
        };
        // The split byte: place the boundary exactly between the two files.
        let mut data = json.clone();
        data.extend_from_slice(&weights);
        let model = kiln_nn::Model::from_json_slice(&json);
        if let Ok(mut m) = model {
            let _ = m.load_weights_from_slice(&weights);
        }
        fuzz_bodies::model_files(&data);
    }
}

/// Descriptions asking for absurd sizes are errors, not aborts.
#[test]
fn huge_models_are_errors() {
    let json = br#"{"format": "kiln-model", "format_version": 1, "input_shape": [4000000000, 4000000000, 1],
        "layers": [{"class_name": "Flatten", "config": {"name": null}},
                   {"class_name": "Dense", "config": {"name": null, "units": 4000000000, "activation": "linear", "use_bias": true}}]}"#;
    assert!(kiln_nn::Model::from_json_slice(json).is_err());
    let json = br#"{"format": "kiln-model", "format_version": 1, "input_shape": [3],
        "layers": [{"class_name": "Dense", "config": {"name": null, "units": 4000000000000, "activation": "linear", "use_bias": true}}]}"#;
    assert!(kiln_nn::Model::from_json_slice(json).is_err());
    let json = br#"{"format": "kiln-model", "format_version": 1, "input_shape": [18446744073709551615, 3, 1],
        "layers": [{"class_name": "Flatten", "config": {"name": null}}]}"#;
    assert!(kiln_nn::Model::from_json_slice(json).is_err());
}
