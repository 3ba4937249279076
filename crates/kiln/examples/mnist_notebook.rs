//! The seed Keras notebook as a Kiln user writes it: raw MNIST pixels, the notebook's CNN
//! ([`kiln::flagships::mnist_notebook`]), RMSprop, batch 32, 10 epochs, then the test accuracy.
//!
//! `cargo run --release -p kiln --example mnist_notebook` (MNIST from `MNIST_DIR`, the user cache, else a verified
//! download; `EPOCHS=1` for a short run).

use kiln::mnist::Dataset;
use kiln::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let epochs = std::env::var("EPOCHS").ok().and_then(|e| e.parse().ok()).unwrap_or(10);
    let data = Dataset::Mnist.locate(None)?;
    let (x_train, y_train) = (data.train.images(Scale::Raw)?, data.train.one_hot()?);
    let (x_test, y_test) = (data.test.images(Scale::Raw)?, data.test.one_hot()?);

    let mut model = kiln::flagships::mnist_notebook()?;
    model.compile("categorical_crossentropy", Optimizer::rmsprop(), &["accuracy"])?;
    model.set_data_parallel(true);
    model.print_summary();
    model.fit(&x_train, &y_train, &FitOptions::default().epochs(epochs).batch_size(32))?;

    let test = model.evaluate(&x_test, &y_test, 32)?;
    println!("test loss {:.4}, test accuracy {:.4}", test.loss, test.accuracy.unwrap_or(f32::NAN));
    println!("{:.2}", model.predict_on_batch(&x_test.take(3))?);
    Ok(())
}
