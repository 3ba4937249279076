//! Fuzz body for the tensor API's shape-taking entry points, shared (via `#[path]`) by `fuzz/` and
//! `tests/no_panic.rs`: arbitrary shapes, lengths, axes and ranges give `Ok` or `Err`, never a panic.

use kiln_tensor::{Shape, Tensor};

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    /// Small sizes mostly; tag ≥ 250 gives a huge one.
    fn size(&mut self) -> usize {
        let tag = self.byte();
        if tag < 250 { usize::from(tag % 6) } else { usize::MAX >> (tag - 250) }
    }
    fn dims(&mut self) -> Vec<usize> {
        let rank = usize::from(self.byte() % 5);
        (0..rank).map(|_| self.size()).collect()
    }
}

/// Returns whether the input produced at least one valid tensor.
pub fn tensor_ops(input: &[u8]) -> bool {
    let mut b = Bytes(input);
    let dims = b.dims();
    let len = b.size();
    // A mismatching length must be an error; a huge shape an error, not an abort.
    let Ok(shape) = Shape::new(&dims) else { return false };
    if shape.numel() > 4096 {
        assert!(Tensor::from_slice(&dims, &vec![0.0; len.min(16)]).is_err() || len.min(16) == shape.numel());
        return false;
    }
    let data: Vec<f32> = (0..shape.numel()).map(|i| (i as f32 * 0.37).sin() * 10.0).collect();
    assert_eq!(Tensor::from_slice(&dims, &data[..data.len().min(len)]).is_ok(), len >= data.len());
    let t = Tensor::from_slice(&dims, &data).expect("exact length");
    let other_dims = b.dims();
    if let Ok(other_shape) = Shape::new(&other_dims)
        && other_shape.numel() <= 4096
    {
        let o = Tensor::zeros(&other_dims).expect("small");
        let sum = t.add(&o);
        assert_eq!(sum.is_ok(), t.shape().broadcast(o.shape()).is_ok());
        let _ = t.clone().reshape(&other_dims);
        let mut m = t.clone();
        let _ = m.mul_assign(&o);
    }
    let _ = t.argmax(usize::from(b.byte() % 6));
    let (start, end) = (b.size(), b.size());
    if let Ok(batch) = t.batch(start..end) {
        assert_eq!(batch.as_slice().len(), batch.shape().numel());
    }
    if let Ok(table) = t.table(usize::from(b.byte() % 4)) {
        let _ = table.to_string();
    }
    let _ = format!("{t} {t:?}");
    let back = t.to_f16().to_f32().expect("same shape");
    assert_eq!(back.shape(), t.shape());
    true
}
