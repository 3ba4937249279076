//! The Fashion-MNIST CNN as a Kiln user writes it: the model ([`kiln::flagships::fashion_cnn`]: BatchNormalization,
//! a training-only RandomFlip, Dropout), Adam, batch 64, a 10 % validation split evaluated every epoch, early
//! stopping with the best weights restored and a learning rate that drops on plateaus.
//!
//! `cargo run --release -p kiln --example fashion_cnn` (Fashion-MNIST from `FASHION_MNIST_DIR`, Debian's
//! `dataset-fashion-mnist`, the user cache, else a verified download; `EPOCHS=2` for a short run).

use kiln::mnist::Dataset;
use kiln::nn::callbacks::{EarlyStopping, ReduceLROnPlateau};
use kiln::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let epochs = std::env::var("EPOCHS").ok().and_then(|e| e.parse().ok()).unwrap_or(15);
    let data = Dataset::FashionMnist.locate(None)?;
    // Raw 0..255 pixels: the model's Rescaling layer scales them. Class indices as labels.
    let (x_train, y_train) = (data.train.images(Scale::Raw)?, data.train.class_indices());
    let (x_test, y_test) = (data.test.images(Scale::Raw)?, data.test.class_indices());

    let mut model = kiln::flagships::fashion_cnn()?;
    model.compile("sparse_categorical_crossentropy", Optimizer::adam(), &["accuracy"])?;
    model.set_data_parallel(true);
    model.print_summary();

    let mut early = EarlyStopping::new().patience(3).restore_best_weights(true).verbose(true);
    let mut plateau = ReduceLROnPlateau::new().patience(2).verbose(true);
    let opts = FitOptions::default()
        .epochs(epochs)
        .batch_size(64)
        .validation(Validation::Split(0.1))
        .callback(&mut early)
        .callback(&mut plateau);
    let history = model.fit(&x_train, &y_train, &opts)?;
    println!("val_accuracy per epoch: {:?}", history.val_accuracy());

    let test = model.evaluate(&x_test, &y_test, 64)?;
    println!("test loss {:.4}, test accuracy {:.4}", test.loss, test.accuracy.unwrap_or(f32::NAN));
    Ok(())
}
