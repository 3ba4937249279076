//! Shared helpers: the notebook's model and small synthetic data.
#![allow(dead_code)]

use kiln_nn::prelude::*;
use kiln_tensor::Tensor;

/// `Input(28,28,1) → Conv2D(3,5,swish) → Conv2D(6,5,swish) → Flatten → Dense(84,swish) → Dense(10,softmax)`,
/// compiled with the notebook's settings.
pub fn flagship() -> Model {
    flagship_sized(28, 84)
}

/// The flagship architecture on `side × side` images with `hidden` dense units.
pub fn flagship_sized(side: usize, hidden: usize) -> Model {
    let inputs = Input::new(&[side, side, 1]);
    let x = Conv2D::new(3, 5).activation(ActivationFn::Swish).call(&inputs).unwrap();
    let x = Conv2D::new(6, 5).activation(ActivationFn::Swish).call(&x).unwrap();
    let x = Flatten::new().call(&x).unwrap();
    let x = Dense::new(hidden).activation(ActivationFn::Swish).call(&x).unwrap();
    let outputs = Dense::new(10).activation(ActivationFn::Softmax).call(&x).unwrap();
    let mut model = Model::new(&inputs, &outputs).unwrap();
    model.compile("categorical_crossentropy", Optimizer::rmsprop(), &["accuracy"]).unwrap();
    model
}

/// `n` synthetic "images" of `side × side` raw pixel values whose class is decided by which quadrant is
/// brightest (learnable), with one-hot targets.
pub fn synthetic(n: usize, side: usize, seed: u64) -> (Tensor, Tensor) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut x = Vec::with_capacity(n * side * side);
    let mut y = vec![0.0; n * 10];
    for i in 0..n {
        let class = i % 10;
        for r in 0..side {
            for c in 0..side {
                let cell = (r * 3 / side) * 3 + c * 3 / side;
                let bright = if cell == class % 9 { 200.0 } else { 30.0 };
                let extra = if class == 9 && r < side / 2 { 100.0 } else { 0.0 };
                x.push((bright + extra) * (0.6 + 0.4 * next()));
            }
        }
        y[i * 10 + class] = 1.0;
    }
    (Tensor::from_vec(&[n, side, side, 1], x).unwrap(), Tensor::from_vec(&[n, 10], y).unwrap())
}

/// `MNIST_DIR` when set; otherwise prints `skipped` and returns `None` — or fails when `KILN_REQUIRE_MNIST` is
/// set (CI sets it), so a test that needs the real data cannot silently skip there.
pub fn mnist_dir() -> Option<std::ffi::OsString> {
    let dir = std::env::var_os("MNIST_DIR");
    if dir.is_none() {
        assert!(std::env::var_os("KILN_REQUIRE_MNIST").is_none(), "KILN_REQUIRE_MNIST is set but MNIST_DIR is not");
        println!("skipped: MNIST_DIR is not set");
    }
    dir
}
