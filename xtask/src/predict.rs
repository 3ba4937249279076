//! `cargo xtask predict --model DIR|FILE.keras|FILE.h5 (--index N | IMAGE.png)`: loads a saved model (Kiln's
//! directory or a Keras file) and prints the 10 class probabilities and the predicted class for one test image or
//! a PNG.
//!
//! PNGs of any size and colour type are converted to 8-bit grayscale, resized to 28×28 (triangle filter) and,
//! when their background is light (mean above 127, like dark ink on paper), inverted to MNIST's white-on-black.
//! Pixels are scaled as the model was trained (`input_scale` in `model.json`).

use std::path::PathBuf;

use clap::Args;
use kiln::mnist::Dataset;
use kiln::prelude::*;

/// Flags of `cargo xtask predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A model: the directory written by `train-mnist` / `train-fashion` (model.json + model.safetensors), or a
    /// Keras file (`.keras`, legacy `.h5`) — theirs, or the `model.keras` they write.
    #[arg(long)]
    pub model: PathBuf,
    /// Index of a test-set image to classify.
    #[arg(long, conflicts_with = "image")]
    pub index: Option<usize>,
    /// A PNG image to classify (any size; converted to 28×28 grayscale).
    #[arg(required_unless_present = "index")]
    pub image: Option<PathBuf>,
    /// Directory of the dataset (for --index; default: MNIST_DIR, the cache, else the verified download).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// A PNG as 784 MNIST-like pixels (0..255, white digit on black).
pub fn png_pixels(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let img = image::open(path).map_err(|e| format!("{}: cannot read the image: {e}", path.display()))?;
    let gray = image::imageops::resize(&img.to_luma8(), 28, 28, image::imageops::FilterType::Triangle);
    let mut px = gray.into_raw();
    let mean = px.iter().map(|&p| u32::from(p)).sum::<u32>() / px.len().max(1) as u32;
    if mean > 127 {
        px.iter_mut().for_each(|p| *p = 255 - *p);
    }
    Ok(px)
}

pub fn run(args: PredictArgs) -> Result<(), String> {
    let mut model = crate::load_model(&args.model).map_err(|e| format!("--model: {e}"))?;
    if model.input_shape() != [28, 28, 1] || model.output_shape() != [10] {
        return Err(format!(
            "--model {}: expects inputs {:?} and outputs {:?}, not a 28×28×1 → 10-class model",
            args.model.display(),
            model.input_shape(),
            model.output_shape()
        ));
    }
    let scale: f32 = match model.metadata().get("input_scale") {
        Some(s) => s.parse().map_err(|_| format!("--model: model.json has an invalid input_scale `{s}`"))?,
        None => 1.0,
    };
    let (pixels, what, label) = match (args.index, &args.image) {
        (Some(i), _) => {
            let dataset = match model.metadata().get("dataset").map(String::as_str) {
                Some("Fashion-MNIST") => Dataset::FashionMnist,
                _ => Dataset::Mnist,
            };
            let data = dataset.locate(args.data_dir.as_deref()).map_err(|e| e.to_string())?;
            let img = data
                .test
                .image(i)
                .ok_or_else(|| format!("--index {i}: the test set has {} images", data.test.len()))?
                .to_vec();
            (img, format!("test image {i}"), data.test.label(i))
        }
        (None, Some(path)) => (png_pixels(path)?, path.display().to_string(), None),
        (None, None) => return Err("give --index N or an IMAGE.png".into()),
    };
    let x = ImagesU8::new(&pixels, [28, 28, 1], scale).map_err(|e| e.to_string())?;
    model.set_threads(None).map_err(|e| e.to_string())?;
    let p = model.predict_on_batch(&x).map_err(|e| e.to_string())?;
    println!("{what}");
    for c in 0..10 {
        println!("  class {c}: {:.4}", p[[0, c]]);
    }
    let best = p.argmax(1).map_err(|e| e.to_string())?[0];
    match label {
        Some(l) => println!("predicted class: {best} (label {l})"),
        None => println!("predicted class: {best}"),
    }
    Ok(())
}
