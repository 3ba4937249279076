//! `cargo xtask keras-export --out DIR MODEL…`: for `benches/reference/keras_files.py check DIR`, which shows that
//! Keras opens what Kiln writes. Each model (a Keras file or a Kiln model directory) takes one training step in
//! Kiln on a fixed batch (so its optimizer state is Kiln's own), is saved as `DIR/<name>.keras`, and
//! `DIR/<name>.json` records fixed inputs with Kiln's predictions and — for models without random training
//! layers — the next batch with the loss of Kiln's step on it, which Keras must reproduce from the file.

use std::path::{Path, PathBuf};

use kiln::prelude::*;
use kiln::tensor::Tensor;
use serde_json::json;

/// Deterministic values in `[0, scale)` (the reference script's `data`).
fn values(n: usize, k: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919 + 104_729 * (k + 1)) % 997) as f32 / 997.0 * scale).collect()
}

fn batch(model: &Model, n: usize, k: usize) -> Result<(Tensor, Tensor), String> {
    let per: usize = model.input_shape().iter().product();
    // 28×28×1 models read raw pixels (0..255), as the notebook and the Fashion flagship do.
    let scale = if model.input_shape() == [28, 28, 1] { 255.0 } else { 1.0 };
    let mut dims = vec![n];
    dims.extend_from_slice(model.input_shape());
    let x = Tensor::from_slice(&dims, &values(n * per, k, scale)).map_err(|e| e.to_string())?;
    let classes = model.output_shape().iter().product::<usize>();
    let labels: Vec<usize> = (0..n).map(|i| (i * 3 + k) % classes).collect();
    let one_hot = model.compiled().is_some_and(|c| c.loss == kiln::nn::Loss::CategoricalCrossentropy);
    let y = if one_hot {
        let mut v = vec![0.0; n * classes];
        labels.iter().enumerate().for_each(|(i, &l)| v[i * classes + l] = 1.0);
        Tensor::from_slice(&[n, classes], &v)
    } else {
        Tensor::from_slice(&[n], &labels.iter().map(|&l| l as f32).collect::<Vec<_>>())
    }
    .map_err(|e| e.to_string())?;
    Ok((x, y))
}

fn export(path: &Path, out: &Path) -> Result<(), String> {
    let what = |e: kiln::nn::NnError| format!("{}: {e}", path.display());
    let mut model = crate::load_model(path).map_err(what)?;
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model").to_owned();
    model.compiled().ok_or_else(|| format!("{}: the model is not compiled", path.display()))?;
    let (x, y) = batch(&model, 16, 300)?;
    model.train_on_batch(&x, &y).map_err(what)?;
    let file = out.join(format!("{name}.keras"));
    model.save_keras(&file).map_err(what)?;
    let (x, _) = batch(&model, 4, 301)?;
    let p = model.predict(&x, 4).map_err(what)?;
    let mut record = json!({"shape": model.input_shape(), "x": x.as_slice(), "predictions": p.as_slice()});
    let random = model
        .layers()
        .iter()
        .any(|l| matches!(l.1, "Dropout" | "RandomFlip" | "RandomTranslation" | "RandomRotation" | "RandomZoom"));
    if !random {
        let (xs, ys) = batch(&model, 8, 302)?;
        let labels: Vec<usize> =
            (0..8).map(|i| (i * 3 + 302) % model.output_shape().iter().product::<usize>()).collect();
        let loss = model.train_on_batch(&xs, &ys).map_err(what)?.loss;
        record["step_x"] = json!(xs.as_slice());
        record["step_y"] = json!(labels);
        record["step_loss"] = json!(loss);
    }
    let json_path = out.join(format!("{name}.json"));
    std::fs::write(&json_path, record.to_string()).map_err(|e| format!("{}: {e}", json_path.display()))?;
    println!(
        "{}: {} layers, {} iterations → {}",
        path.display(),
        model.layers().len(),
        model.iterations(),
        file.display()
    );
    Ok(())
}

/// Runs the export for every model into `out`.
pub fn run(out: PathBuf, models: Vec<PathBuf>) -> Result<(), String> {
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for m in &models {
        export(m, &out)?;
    }
    Ok(())
}
