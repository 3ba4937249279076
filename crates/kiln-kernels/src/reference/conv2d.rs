//! Reference 2-D convolution: forward (a gather over each output's receptive field), backward-data and
//! backward-filter (scatters over each output, written independently of the forward), and bias gradients.

use super::Reference;
use crate::error::{KernelError, Result};
use crate::geometry::{Conv2dGeometry, checked_elements};

/// Forward pass `y[n,oh,ow,co] = bias[co] + Σ_{kh,kw,ci} x[n, ih, iw, ci] · w[kh,kw,ci,co]` (Keras `Conv2D`:
/// cross-correlation, NHWC input, HWIO weights), with `ih = oh·stride_h + kh·dilation_h − pad_top` and padding
/// taps contributing zero.
///
/// Scale: `b = Σ |x|·|w| + |bias|` over the receptive field.
pub fn conv2d_forward<T: Copy + Into<f64>>(
    g: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
) -> Result<Reference> {
    g.check_forward(x.len(), w.len(), bias.map(<[T]>::len), g.output_len())?;
    let mut values = Vec::with_capacity(g.output_len());
    let mut bounds = Vec::with_capacity(g.output_len());
    for n in 0..g.batch() {
        for oh in 0..g.out_h() {
            for ow in 0..g.out_w() {
                for co in 0..g.out_c() {
                    let (mut acc, mut abs) = match bias {
                        Some(b) => {
                            let b: f64 = b[co].into();
                            (b, b.abs())
                        }
                        None => (0.0, 0.0),
                    };
                    for kh in 0..g.kernel_h() {
                        let Some(ih) = g.input_row(oh, kh) else { continue };
                        for kw in 0..g.kernel_w() {
                            let Some(iw) = g.input_col(ow, kw) else { continue };
                            for ci in 0..g.in_c() {
                                let xv: f64 = x[g.input_index(n, ih, iw, ci)].into();
                                let wv: f64 = w[g.weight_index(kh, kw, ci, co)].into();
                                acc += xv * wv;
                                abs += (xv * wv).abs();
                            }
                        }
                    }
                    values.push(acc);
                    bounds.push(abs);
                }
            }
        }
    }
    Ok(Reference::new(values, bounds))
}

/// The tap positions of one output pixel: `(kh, kw, ih, iw)` for every kernel tap that lands inside the input.
/// Written from the stride/dilation/padding definition directly, not through the geometry's gather helpers.
fn taps(g: &Conv2dGeometry, oh: usize, ow: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
    let top = g.pad_top() as isize;
    let left = g.pad_left() as isize;
    (0..g.kernel_h()).flat_map(move |kh| {
        (0..g.kernel_w()).filter_map(move |kw| {
            let ih = (oh * g.stride_h() + kh * g.dilation_h()) as isize - top;
            let iw = (ow * g.stride_w() + kw * g.dilation_w()) as isize - left;
            let inside = ih >= 0 && iw >= 0 && (ih as usize) < g.in_h() && (iw as usize) < g.in_w();
            inside.then_some((kh, kw, ih as usize, iw as usize))
        })
    })
}

/// Backward-data pass: the gradient of `Σ y·dy` with respect to `x`,
/// `dx[n,ih,iw,ci] = Σ dy[n,oh,ow,co] · w[kh,kw,ci,co]` over every (output, tap) pair that read `x[n,ih,iw,ci]`.
/// Computed by scattering each output gradient into the input positions it came from.
///
/// Scale: `b = Σ |dy|·|w|` over the same terms.
pub fn conv2d_backward_data<T: Copy + Into<f64>>(g: &Conv2dGeometry, dy: &[T], w: &[T]) -> Result<Reference> {
    g.check_backward_data(dy.len(), w.len(), g.input_len())?;
    let (in_h, in_w, ci_n, co_n) = (g.in_h(), g.in_w(), g.in_c(), g.out_c());
    let (kw_n, oh_n, ow_n) = (g.kernel_w(), g.out_h(), g.out_w());
    let mut values = vec![0.0f64; g.input_len()];
    let mut bounds = vec![0.0f64; g.input_len()];
    for n in 0..g.batch() {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let dy_row = ((n * oh_n + oh) * ow_n + ow) * co_n;
                for (kh, kw, ih, iw) in taps(g, oh, ow) {
                    let dx_row = ((n * in_h + ih) * in_w + iw) * ci_n;
                    let w_tap = (kh * kw_n + kw) * ci_n * co_n;
                    for co in 0..co_n {
                        let d: f64 = dy[dy_row + co].into();
                        for ci in 0..ci_n {
                            let wv: f64 = w[w_tap + ci * co_n + co].into();
                            values[dx_row + ci] += d * wv;
                            bounds[dx_row + ci] += (d * wv).abs();
                        }
                    }
                }
            }
        }
    }
    Ok(Reference::new(values, bounds))
}

/// Backward-filter pass: the gradient of `Σ y·dy` with respect to `w`,
/// `dw[kh,kw,ci,co] = Σ_{n,oh,ow} x[n, ih, iw, ci] · dy[n,oh,ow,co]`, scattered output by output.
///
/// Scale: `b = Σ |x|·|dy|` over the same terms.
pub fn conv2d_backward_filter<T: Copy + Into<f64>>(g: &Conv2dGeometry, x: &[T], dy: &[T]) -> Result<Reference> {
    g.check_backward_filter(x.len(), dy.len(), g.weight_len())?;
    let (in_h, in_w, ci_n, co_n) = (g.in_h(), g.in_w(), g.in_c(), g.out_c());
    let (kw_n, oh_n, ow_n) = (g.kernel_w(), g.out_h(), g.out_w());
    let mut values = vec![0.0f64; g.weight_len()];
    let mut bounds = vec![0.0f64; g.weight_len()];
    for n in 0..g.batch() {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let dy_row = ((n * oh_n + oh) * ow_n + ow) * co_n;
                for (kh, kw, ih, iw) in taps(g, oh, ow) {
                    let x_row = ((n * in_h + ih) * in_w + iw) * ci_n;
                    let w_tap = (kh * kw_n + kw) * ci_n * co_n;
                    for ci in 0..ci_n {
                        let xv: f64 = x[x_row + ci].into();
                        for co in 0..co_n {
                            let d: f64 = dy[dy_row + co].into();
                            values[w_tap + ci * co_n + co] += xv * d;
                            bounds[w_tap + ci * co_n + co] += (xv * d).abs();
                        }
                    }
                }
            }
        }
    }
    Ok(Reference::new(values, bounds))
}

/// Bias gradient of a `rows × channels` row-major gradient (a Dense layer's `dy`, or a convolution's NHWC `dy`
/// seen as `(N·H·W) × C`): `db[c] = Σ_r dy[r, c]`. Scale: `b = Σ_r |dy[r, c]|`.
pub fn bias_gradient<T: Copy + Into<f64>>(rows: usize, channels: usize, dy: &[T]) -> Result<Reference> {
    const OP: &str = "bias_gradient";
    if channels == 0 {
        return Err(KernelError::ZeroDim { op: OP, dim: "channels", got: 0 });
    }
    let len = checked_elements(OP, "output gradient", &[rows, channels])?;
    if dy.len() != len {
        return Err(KernelError::SliceLen { op: OP, name: "output gradient", expected: len, got: dy.len() });
    }
    let mut values = vec![0.0f64; channels];
    let mut bounds = vec![0.0f64; channels];
    for row in dy.chunks_exact(channels) {
        for (c, &v) in row.iter().enumerate() {
            let v: f64 = v.into();
            values[c] += v;
            bounds[c] += v.abs();
        }
    }
    Ok(Reference::new(values, bounds))
}

/// Bias gradient of a convolution: `db[co] = Σ_{n,oh,ow} dy[n,oh,ow,co]`.
pub fn conv2d_bias_gradient<T: Copy + Into<f64>>(g: &Conv2dGeometry, dy: &[T]) -> Result<Reference> {
    g.check_bias_gradient(dy.len(), g.bias_len())?;
    bias_gradient(g.batch() * g.out_h() * g.out_w(), g.out_c(), dy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Padding;

    #[test]
    fn hand_computed_forward() {
        // 1×3×3×1 input 1..9, 2×2 kernel [[1,0],[0,-1]] (HWIO with I = O = 1), bias 0.5.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let w = [1.0f32, 0.0, 0.0, -1.0];
        let g = Conv2dGeometry::spec(1, [3, 3, 1], [2, 2], 1).build().unwrap();
        let r = conv2d_forward(&g, &x, &w, Some(&[0.5f32][..])).unwrap();
        // y[i,j] = x[i,j] − x[i+1,j+1] + 0.5 = −4 + 0.5.
        assert_eq!(r.values, vec![-3.5; 4]);
        assert_eq!(r.bounds[0], 1.0 + 5.0 + 0.5);
        // `same` padding: 3×3 output, the last row/column reads zero padding (TF puts it bottom/right).
        let g = Conv2dGeometry::spec(1, [3, 3, 1], [2, 2], 1).padding(Padding::Same).build().unwrap();
        let r = conv2d_forward(&g, &x, &w, None).unwrap();
        assert_eq!(r.values, vec![-4.0, -4.0, 3.0, -4.0, -4.0, 6.0, 7.0, 8.0, 9.0]);
    }

    #[test]
    fn hand_computed_backward() {
        // 1×2×2×1 input, 1×1 kernel w = 3, two output channels: dx = Σ_co dy·w_co, dw = Σ x·dy.
        let g = Conv2dGeometry::spec(1, [2, 2, 1], [1, 1], 2).build().unwrap();
        let w = [3.0f32, -1.0];
        let dy = [1.0f32, 1.0, 2.0, 0.0, 0.0, 2.0, -1.0, -1.0];
        let dx = conv2d_backward_data(&g, &dy, &w).unwrap();
        assert_eq!(dx.values, vec![2.0, 6.0, -2.0, -2.0]);
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let dw = conv2d_backward_filter(&g, &x, &dy).unwrap();
        assert_eq!(dw.values, vec![1.0 + 4.0 + 0.0 - 4.0, 1.0 + 0.0 + 6.0 - 4.0]);
        let db = conv2d_bias_gradient(&g, &dy).unwrap();
        assert_eq!(db.values, vec![2.0, 2.0]);
        assert_eq!(db.bounds, vec![4.0, 4.0]);
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let g = Conv2dGeometry::spec(1, [3, 3, 2], [2, 2], 1).build().unwrap();
        assert!(conv2d_forward(&g, &[0.0f32; 17], &[0.0; 8], None).is_err());
        assert!(conv2d_forward(&g, &[0.0f32; 18], &[0.0; 8], Some(&[0.0; 2][..])).is_err());
        assert!(conv2d_backward_data(&g, &[0.0f32; 3], &[0.0; 8]).is_err());
        assert!(conv2d_backward_filter(&g, &[0.0f32; 18], &[0.0; 5]).is_err());
        assert!(bias_gradient(2, 0, &[0.0f32; 0]).is_err());
        assert!(bias_gradient(2, 3, &[0.0f32; 5]).is_err());
        assert!(bias_gradient(usize::MAX, 3, &[0.0f32; 5]).is_err());
    }
}
