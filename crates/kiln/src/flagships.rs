//! The two flagship models, as a Keras user writes them (shared by `cargo xtask train-mnist` /
//! `train-fashion` and the examples).

use kiln_kernels::Padding;
use kiln_nn::layers::{
    Activation, BatchNormalization, Conv2D, Dense, Dropout, Flatten, FlipMode, MaxPooling2D, RandomFlip, Rescaling,
};
use kiln_nn::{Activation as ActivationFn, Call, Input, Model, Result};

/// The seed notebook's model: `Input(28,28,1) → Conv2D(3,5,swish) → Conv2D(6,5,swish) → Flatten →
/// Dense(84,swish) → Dense(10,softmax)` (trained on raw 0..255 pixels with RMSprop, batch 32).
pub fn mnist_notebook() -> Result<Model> {
    let inputs = Input::new(&[28, 28, 1]);
    let x = Conv2D::new(3, 5).activation(ActivationFn::Swish).call(&inputs)?;
    let x = Conv2D::new(6, 5).activation(ActivationFn::Swish).call(&x)?;
    let x = Flatten::new().call(&x)?;
    let x = Dense::new(84).activation(ActivationFn::Swish).call(&x)?;
    let outputs = Dense::new(10).activation(ActivationFn::Softmax).call(&x)?;
    Model::new(&inputs, &outputs)
}

/// The Keras tutorial-style CNN for Fashion-MNIST: `Input(28,28,1) → Rescaling(1/255) → RandomFlip("horizontal")
/// → [Conv2D(32,3,same) → BatchNormalization → ReLU] ×2 → MaxPooling2D(2) → Dropout(0.25) → [Conv2D(64,3,same)
/// → BatchNormalization → ReLU] ×2 → MaxPooling2D(2) → Dropout(0.25) → Flatten → Dense(128) →
/// BatchNormalization → ReLU → Dropout(0.5) → Dense(10,softmax)` (trained with Adam 1e-3, batch 64).
pub fn fashion_cnn() -> Result<Model> {
    let inputs = Input::new(&[28, 28, 1]);
    let mut x = Rescaling::new(1.0 / 255.0).call(&inputs)?;
    x = RandomFlip::new(FlipMode::Horizontal).call(&x)?;
    for filters in [32, 64] {
        for _ in 0..2 {
            x = Conv2D::new(filters, 3).padding(Padding::Same).call(&x)?;
            x = BatchNormalization::new().call(&x)?;
            x = Activation::new(ActivationFn::Relu).call(&x)?;
        }
        x = MaxPooling2D::new(2).call(&x)?;
        x = Dropout::new(0.25).call(&x)?;
    }
    x = Flatten::new().call(&x)?;
    x = Dense::new(128).call(&x)?;
    x = BatchNormalization::new().call(&x)?;
    x = Activation::new(ActivationFn::Relu).call(&x)?;
    x = Dropout::new(0.5).call(&x)?;
    let outputs = Dense::new(10).activation(ActivationFn::Softmax).call(&x)?;
    Model::new(&inputs, &outputs)
}
