//! Validated, overflow-checked geometry for GEMM and 2-D convolution.
//!
//! Every size computation of the kernels happens here, once, in checked arithmetic. A geometry value can only be
//! obtained through a `build()` that returns [`Result`], so a kernel handed a `&GemmGeometry` or a
//! `&Conv2dGeometry` may index without further checks beyond comparing slice lengths ([`GemmGeometry::check`],
//! [`Conv2dGeometry::check_forward`] and friends).
//!
//! Conventions (Keras / TensorFlow): activations are NHWC, convolution weights are HWIO
//! (`kernel_h, kernel_w, in_c, out_c`), convolution is a cross-correlation, and `same` padding follows
//! TensorFlow's rule (output = ⌈input / stride⌉, total padding split with the extra row/column at the
//! bottom/right).

use crate::error::{KernelError, Result};

/// Largest number of elements any buffer may have: keeps every byte offset of an `f64` buffer within `isize`.
pub const MAX_ELEMENTS: usize = isize::MAX as usize / 8;

/// Multiplies `dims` in checked arithmetic and bounds the result by [`MAX_ELEMENTS`].
pub fn checked_elements(op: &'static str, what: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or(KernelError::Overflow { op, what })
}

fn nonzero(op: &'static str, dim: &'static str, got: usize) -> Result<usize> {
    if got == 0 { Err(KernelError::ZeroDim { op, dim, got }) } else { Ok(got) }
}

pub(crate) fn expect_len(op: &'static str, name: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got { Ok(()) } else { Err(KernelError::SliceLen { op, name, expected, got }) }
}

fn expect_at_least(op: &'static str, name: &'static str, expected: usize, got: usize) -> Result<()> {
    if got >= expected { Ok(()) } else { Err(KernelError::SliceLen { op, name, expected, got }) }
}

// ---------------------------------------------------------------------------------------------------------------
// GEMM
// ---------------------------------------------------------------------------------------------------------------

/// Whether a GEMM operand is used as stored or transposed (`op(X) = X` or `Xᵀ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transpose {
    /// `op(X) = X`.
    #[default]
    No,
    /// `op(X) = Xᵀ`.
    Yes,
}

impl Transpose {
    /// `Transpose::Yes` when `t` is true.
    pub const fn from_bool(t: bool) -> Self {
        if t { Transpose::Yes } else { Transpose::No }
    }

    /// Whether this is `Transpose::Yes`.
    pub const fn is_transposed(self) -> bool {
        matches!(self, Transpose::Yes)
    }
}

/// The unvalidated description of `C (m×n) = alpha·op(A) (m×k) · op(B) (k×n) + beta·C`, row-major with leading
/// dimensions (distance in elements between consecutive stored rows). Build it with [`GemmGeometry::spec`], then
/// [`GemmSpec::build`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmSpec {
    /// Rows of `op(A)` and `C`.
    pub m: usize,
    /// Columns of `op(B)` and `C`.
    pub n: usize,
    /// Columns of `op(A)`, rows of `op(B)` (the reduction length; may be 0, then `C = beta·C`).
    pub k: usize,
    /// Whether `A` is stored transposed (`k×m`).
    pub trans_a: Transpose,
    /// Whether `B` is stored transposed (`n×k`).
    pub trans_b: Transpose,
    /// Leading dimension of the stored `A`; `None` = its row length (contiguous).
    pub lda: Option<usize>,
    /// Leading dimension of the stored `B`; `None` = its row length.
    pub ldb: Option<usize>,
    /// Leading dimension of `C`; `None` = `n`.
    pub ldc: Option<usize>,
}

impl GemmSpec {
    /// Sets whether `A` is stored transposed.
    pub fn trans_a(mut self, t: Transpose) -> Self {
        self.trans_a = t;
        self
    }
    /// Sets whether `B` is stored transposed.
    pub fn trans_b(mut self, t: Transpose) -> Self {
        self.trans_b = t;
        self
    }
    /// Sets the leading dimension of `A`.
    pub fn lda(mut self, ld: usize) -> Self {
        self.lda = Some(ld);
        self
    }
    /// Sets the leading dimension of `B`.
    pub fn ldb(mut self, ld: usize) -> Self {
        self.ldb = Some(ld);
        self
    }
    /// Sets the leading dimension of `C`.
    pub fn ldc(mut self, ld: usize) -> Self {
        self.ldc = Some(ld);
        self
    }

    /// Validates the description: leading dimensions at least the stored row length (and at least 1), and every
    /// buffer length representable.
    pub fn build(self) -> Result<GemmGeometry> {
        const OP: &str = "gemm";
        let (a_rows, a_cols) = if self.trans_a.is_transposed() { (self.k, self.m) } else { (self.m, self.k) };
        let (b_rows, b_cols) = if self.trans_b.is_transposed() { (self.n, self.k) } else { (self.k, self.n) };
        let matrix = |name: &'static str, rows: usize, cols: usize, ld: Option<usize>| -> Result<(usize, usize)> {
            let min = cols.max(1);
            let ld = ld.unwrap_or(min);
            if ld < min {
                return Err(KernelError::LeadingDim { op: OP, name, got: ld, min });
            }
            let len = if rows == 0 || cols == 0 {
                0
            } else {
                (rows - 1)
                    .checked_mul(ld)
                    .and_then(|x| x.checked_add(cols))
                    .filter(|&n| n <= MAX_ELEMENTS)
                    .ok_or(KernelError::Overflow { op: OP, what: name })?
            };
            Ok((ld, len))
        };
        let (lda, a_len) = matrix("lda", a_rows, a_cols, self.lda)?;
        let (ldb, b_len) = matrix("ldb", b_rows, b_cols, self.ldb)?;
        let (ldc, c_len) = matrix("ldc", self.m, self.n, self.ldc)?;
        Ok(GemmGeometry {
            m: self.m,
            n: self.n,
            k: self.k,
            trans_a: self.trans_a,
            trans_b: self.trans_b,
            lda,
            ldb,
            ldc,
            a_len,
            b_len,
            c_len,
        })
    }
}

/// A validated GEMM geometry (see [`GemmSpec`]). All index arithmetic on it is in range for slices that passed
/// [`GemmGeometry::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmGeometry {
    m: usize,
    n: usize,
    k: usize,
    trans_a: Transpose,
    trans_b: Transpose,
    lda: usize,
    ldb: usize,
    ldc: usize,
    a_len: usize,
    b_len: usize,
    c_len: usize,
}

impl GemmGeometry {
    /// Starts a description of an `m×k · k×n` product with contiguous, untransposed operands.
    pub fn spec(m: usize, n: usize, k: usize) -> GemmSpec {
        GemmSpec { m, n, k, trans_a: Transpose::No, trans_b: Transpose::No, lda: None, ldb: None, ldc: None }
    }

    /// A contiguous, untransposed `m×k · k×n` geometry.
    pub fn new(m: usize, n: usize, k: usize) -> Result<Self> {
        Self::spec(m, n, k).build()
    }

    /// Rows of `C`.
    pub fn m(&self) -> usize {
        self.m
    }
    /// Columns of `C`.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Reduction length.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Whether `A` is stored transposed.
    pub fn trans_a(&self) -> Transpose {
        self.trans_a
    }
    /// Whether `B` is stored transposed.
    pub fn trans_b(&self) -> Transpose {
        self.trans_b
    }
    /// Leading dimension of `A`.
    pub fn lda(&self) -> usize {
        self.lda
    }
    /// Leading dimension of `B`.
    pub fn ldb(&self) -> usize {
        self.ldb
    }
    /// Leading dimension of `C`.
    pub fn ldc(&self) -> usize {
        self.ldc
    }
    /// Minimum length of the `A` slice.
    pub fn a_len(&self) -> usize {
        self.a_len
    }
    /// Minimum length of the `B` slice.
    pub fn b_len(&self) -> usize {
        self.b_len
    }
    /// Minimum length of the `C` slice.
    pub fn c_len(&self) -> usize {
        self.c_len
    }

    /// Index in the `A` slice of `op(A)[i][p]` (`i < m`, `p < k`).
    #[inline]
    pub fn a_index(&self, i: usize, p: usize) -> usize {
        debug_assert!(i < self.m && p < self.k);
        if self.trans_a.is_transposed() { p * self.lda + i } else { i * self.lda + p }
    }

    /// Index in the `B` slice of `op(B)[p][j]` (`p < k`, `j < n`).
    #[inline]
    pub fn b_index(&self, p: usize, j: usize) -> usize {
        debug_assert!(p < self.k && j < self.n);
        if self.trans_b.is_transposed() { j * self.ldb + p } else { p * self.ldb + j }
    }

    /// Index in the `C` slice of `C[i][j]`.
    #[inline]
    pub fn c_index(&self, i: usize, j: usize) -> usize {
        debug_assert!(i < self.m && j < self.n);
        i * self.ldc + j
    }

    /// Checks that the three slices are long enough (they may be longer: leading dimensions leave gaps).
    pub fn check(&self, a_len: usize, b_len: usize, c_len: usize) -> Result<()> {
        expect_at_least("gemm", "a", self.a_len, a_len)?;
        expect_at_least("gemm", "b", self.b_len, b_len)?;
        expect_at_least("gemm", "c", self.c_len, c_len)
    }

    /// Floating-point operations of the product, `2·m·n·k` (saturating).
    pub fn flops(&self) -> u64 {
        let f = 2u128 * self.m as u128 * self.n as u128 * self.k as u128;
        u64::try_from(f).unwrap_or(u64::MAX)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 2-D convolution
// ---------------------------------------------------------------------------------------------------------------

/// Spatial padding of a 2-D convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Padding {
    /// No padding; output = ⌊(input − dilated kernel) / stride⌋ + 1 (Keras `padding="valid"`).
    #[default]
    Valid,
    /// TensorFlow/Keras `padding="same"`: output = ⌈input / stride⌉; the total padding
    /// `max((output − 1)·stride + dilated kernel − input, 0)` is split with the odd element at the bottom/right.
    Same,
    /// Explicit zero padding on each side (PyTorch-style, but possibly asymmetric).
    Explicit {
        /// Rows added above.
        top: usize,
        /// Rows added below.
        bottom: usize,
        /// Columns added on the left.
        left: usize,
        /// Columns added on the right.
        right: usize,
    },
}

impl Padding {
    /// The same explicit padding `p` on all four sides.
    pub const fn uniform(p: usize) -> Self {
        Padding::Explicit { top: p, bottom: p, left: p, right: p }
    }
}

/// The unvalidated description of a 2-D convolution; start with [`Conv2dGeometry::spec`], refine with the
/// builder methods, finish with [`Conv2dSpec::build`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dSpec {
    /// Images in the batch (may be 0: every buffer is then empty).
    pub batch: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Input channels.
    pub in_c: usize,
    /// Output channels (filters).
    pub out_c: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Vertical dilation (1 = dense kernel).
    pub dilation_h: usize,
    /// Horizontal dilation.
    pub dilation_w: usize,
    /// Padding rule.
    pub padding: Padding,
}

impl Conv2dSpec {
    /// Sets both strides.
    pub fn stride(self, s: usize) -> Self {
        self.strides(s, s)
    }
    /// Sets the vertical and horizontal strides.
    pub fn strides(mut self, sh: usize, sw: usize) -> Self {
        self.stride_h = sh;
        self.stride_w = sw;
        self
    }
    /// Sets both dilations.
    pub fn dilation(self, d: usize) -> Self {
        self.dilations(d, d)
    }
    /// Sets the vertical and horizontal dilations.
    pub fn dilations(mut self, dh: usize, dw: usize) -> Self {
        self.dilation_h = dh;
        self.dilation_w = dw;
        self
    }
    /// Sets the padding rule.
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// Validates the description and resolves padding and output size.
    ///
    /// Errors: any of height, width, channels, kernel, stride or dilation is 0; the dilated kernel exceeds the
    /// padded input; any buffer length overflows.
    pub fn build(self) -> Result<Conv2dGeometry> {
        const OP: &str = "conv2d";
        nonzero(OP, "in_h", self.in_h)?;
        nonzero(OP, "in_w", self.in_w)?;
        nonzero(OP, "in_c", self.in_c)?;
        nonzero(OP, "out_c", self.out_c)?;
        nonzero(OP, "kernel_h", self.kernel_h)?;
        nonzero(OP, "kernel_w", self.kernel_w)?;
        nonzero(OP, "stride_h", self.stride_h)?;
        nonzero(OP, "stride_w", self.stride_w)?;
        nonzero(OP, "dilation_h", self.dilation_h)?;
        nonzero(OP, "dilation_w", self.dilation_w)?;
        let eff_h = dilated(OP, self.kernel_h, self.dilation_h)?;
        let eff_w = dilated(OP, self.kernel_w, self.dilation_w)?;
        let (pads_h, pads_w) = match self.padding {
            Padding::Valid => ((0, 0), (0, 0)),
            Padding::Same => {
                (same_padding(self.in_h, self.stride_h, eff_h), same_padding(self.in_w, self.stride_w, eff_w))
            }
            Padding::Explicit { top, bottom, left, right } => ((top, bottom), (left, right)),
        };
        let out_h = output_extent(OP, "height", self.in_h, pads_h, eff_h, self.stride_h)?;
        let out_w = output_extent(OP, "width", self.in_w, pads_w, eff_w, self.stride_w)?;
        let input_len = checked_elements(OP, "input", &[self.batch, self.in_h, self.in_w, self.in_c])?;
        let weight_len = checked_elements(OP, "weights", &[self.kernel_h, self.kernel_w, self.in_c, self.out_c])?;
        let output_len = checked_elements(OP, "output", &[self.batch, out_h, out_w, self.out_c])?;
        Ok(Conv2dGeometry {
            spec: self,
            pad_top: pads_h.0,
            pad_bottom: pads_h.1,
            pad_left: pads_w.0,
            pad_right: pads_w.1,
            out_h,
            out_w,
            input_len,
            weight_len,
            output_len,
        })
    }
}

fn dilated(op: &'static str, k: usize, d: usize) -> Result<usize> {
    (k - 1).checked_mul(d).and_then(|x| x.checked_add(1)).ok_or(KernelError::Overflow { op, what: "dilated kernel" })
}

/// TensorFlow's `same` padding for one axis: (before, after).
fn same_padding(input: usize, stride: usize, eff_k: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    // (out − 1)·stride < input, so this cannot overflow once eff_k fits.
    let needed = ((out - 1) * stride).saturating_add(eff_k);
    let total = needed.saturating_sub(input);
    (total / 2, total - total / 2)
}

fn output_extent(
    op: &'static str,
    axis: &'static str,
    input: usize,
    (before, after): (usize, usize),
    eff_k: usize,
    stride: usize,
) -> Result<usize> {
    // Bounding the padded extent bounds every coordinate `o·stride + k·dilation` a kernel computes, so signed
    // offset arithmetic downstream (`as isize − pad`) cannot overflow.
    let padded = input
        .checked_add(before)
        .and_then(|x| x.checked_add(after))
        .filter(|&p| p <= MAX_ELEMENTS)
        .ok_or(KernelError::Overflow { op, what: "padded input" })?;
    if padded < eff_k {
        return Err(KernelError::KernelLargerThanInput { op, axis, kernel: eff_k, input: padded });
    }
    Ok((padded - eff_k) / stride + 1)
}

/// A validated 2-D convolution geometry: NHWC input `(batch, in_h, in_w, in_c)`, HWIO weights
/// `(kernel_h, kernel_w, in_c, out_c)`, NHWC output `(batch, out_h, out_w, out_c)`, bias `(out_c)`.
///
/// Output pixel `(oh, ow)` tap `(kh, kw)` reads input row `oh·stride_h + kh·dilation_h − pad_top` and column
/// `ow·stride_w + kw·dilation_w − pad_left`, or zero where that falls into the padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dGeometry {
    spec: Conv2dSpec,
    pad_top: usize,
    pad_bottom: usize,
    pad_left: usize,
    pad_right: usize,
    out_h: usize,
    out_w: usize,
    input_len: usize,
    weight_len: usize,
    output_len: usize,
}

impl Conv2dGeometry {
    /// Starts a description: `batch` images of `in_h × in_w × in_c`, `kernel_h × kernel_w` kernels, `out_c`
    /// filters; stride 1, dilation 1, `valid` padding until changed.
    pub fn spec(
        batch: usize,
        [in_h, in_w, in_c]: [usize; 3],
        [kernel_h, kernel_w]: [usize; 2],
        out_c: usize,
    ) -> Conv2dSpec {
        Conv2dSpec {
            batch,
            in_h,
            in_w,
            in_c,
            out_c,
            kernel_h,
            kernel_w,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            padding: Padding::Valid,
        }
    }

    /// The description this geometry was built from.
    pub fn to_spec(&self) -> Conv2dSpec {
        self.spec
    }
    /// Images in the batch.
    pub fn batch(&self) -> usize {
        self.spec.batch
    }
    /// Input height.
    pub fn in_h(&self) -> usize {
        self.spec.in_h
    }
    /// Input width.
    pub fn in_w(&self) -> usize {
        self.spec.in_w
    }
    /// Input channels.
    pub fn in_c(&self) -> usize {
        self.spec.in_c
    }
    /// Output channels.
    pub fn out_c(&self) -> usize {
        self.spec.out_c
    }
    /// Kernel height.
    pub fn kernel_h(&self) -> usize {
        self.spec.kernel_h
    }
    /// Kernel width.
    pub fn kernel_w(&self) -> usize {
        self.spec.kernel_w
    }
    /// Vertical stride.
    pub fn stride_h(&self) -> usize {
        self.spec.stride_h
    }
    /// Horizontal stride.
    pub fn stride_w(&self) -> usize {
        self.spec.stride_w
    }
    /// Vertical dilation.
    pub fn dilation_h(&self) -> usize {
        self.spec.dilation_h
    }
    /// Horizontal dilation.
    pub fn dilation_w(&self) -> usize {
        self.spec.dilation_w
    }
    /// The padding rule as given.
    pub fn padding(&self) -> Padding {
        self.spec.padding
    }
    /// The resolved padding (what `same` turned into), as [`Padding::Explicit`].
    pub fn resolved_padding(&self) -> Padding {
        Padding::Explicit { top: self.pad_top, bottom: self.pad_bottom, left: self.pad_left, right: self.pad_right }
    }
    /// Rows of zero padding above the input.
    pub fn pad_top(&self) -> usize {
        self.pad_top
    }
    /// Rows of zero padding below the input.
    pub fn pad_bottom(&self) -> usize {
        self.pad_bottom
    }
    /// Columns of zero padding left of the input.
    pub fn pad_left(&self) -> usize {
        self.pad_left
    }
    /// Columns of zero padding right of the input.
    pub fn pad_right(&self) -> usize {
        self.pad_right
    }
    /// Output height.
    pub fn out_h(&self) -> usize {
        self.out_h
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        self.out_w
    }
    /// Elements of the NHWC input.
    pub fn input_len(&self) -> usize {
        self.input_len
    }
    /// Elements of the HWIO weights.
    pub fn weight_len(&self) -> usize {
        self.weight_len
    }
    /// Elements of the NHWC output.
    pub fn output_len(&self) -> usize {
        self.output_len
    }
    /// Elements of the bias (`out_c`).
    pub fn bias_len(&self) -> usize {
        self.spec.out_c
    }
    /// Input shape `[batch, in_h, in_w, in_c]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.spec.batch, self.spec.in_h, self.spec.in_w, self.spec.in_c]
    }
    /// Weight shape `[kernel_h, kernel_w, in_c, out_c]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [self.spec.kernel_h, self.spec.kernel_w, self.spec.in_c, self.spec.out_c]
    }
    /// Output shape `[batch, out_h, out_w, out_c]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.spec.batch, self.out_h, self.out_w, self.spec.out_c]
    }

    /// Index of input element `(n, h, w, c)` in the NHWC input slice.
    #[inline]
    pub fn input_index(&self, n: usize, h: usize, w: usize, c: usize) -> usize {
        ((n * self.spec.in_h + h) * self.spec.in_w + w) * self.spec.in_c + c
    }
    /// Index of weight `(kh, kw, ci, co)` in the HWIO weight slice.
    #[inline]
    pub fn weight_index(&self, kh: usize, kw: usize, ci: usize, co: usize) -> usize {
        ((kh * self.spec.kernel_w + kw) * self.spec.in_c + ci) * self.spec.out_c + co
    }
    /// Index of output element `(n, oh, ow, co)` in the NHWC output slice.
    #[inline]
    pub fn output_index(&self, n: usize, oh: usize, ow: usize, co: usize) -> usize {
        ((n * self.out_h + oh) * self.out_w + ow) * self.spec.out_c + co
    }

    /// Input row read by output row `oh` at kernel row `kh`, or `None` if it lies in the padding.
    #[inline]
    pub fn input_row(&self, oh: usize, kh: usize) -> Option<usize> {
        (oh * self.spec.stride_h + kh * self.spec.dilation_h).checked_sub(self.pad_top).filter(|&h| h < self.spec.in_h)
    }
    /// Input column read by output column `ow` at kernel column `kw`, or `None` if it lies in the padding.
    #[inline]
    pub fn input_col(&self, ow: usize, kw: usize) -> Option<usize> {
        (ow * self.spec.stride_w + kw * self.spec.dilation_w).checked_sub(self.pad_left).filter(|&w| w < self.spec.in_w)
    }

    /// Floating-point operations of the forward pass counted as direct convolution:
    /// `2 · batch · out_h · out_w · out_c · kernel_h · kernel_w · in_c` (saturating). Backward-data and
    /// backward-filter have the same count.
    pub fn flops(&self) -> u64 {
        let f = [
            self.spec.batch,
            self.out_h,
            self.out_w,
            self.spec.out_c,
            self.spec.kernel_h,
            self.spec.kernel_w,
            self.spec.in_c,
        ]
        .iter()
        .fold(2u128, |acc, &d| acc.saturating_mul(d as u128));
        u64::try_from(f).unwrap_or(u64::MAX)
    }

    /// Checks the slice lengths of a forward pass `y = conv(x, w) + bias`.
    pub fn check_forward(&self, x: usize, w: usize, bias: Option<usize>, y: usize) -> Result<()> {
        expect_len("conv2d_forward", "input", self.input_len, x)?;
        expect_len("conv2d_forward", "weights", self.weight_len, w)?;
        if let Some(b) = bias {
            expect_len("conv2d_forward", "bias", self.bias_len(), b)?;
        }
        expect_len("conv2d_forward", "output", self.output_len, y)
    }

    /// Checks the slice lengths of a backward-data pass `dx = conv_bwd_data(dy, w)`.
    pub fn check_backward_data(&self, dy: usize, w: usize, dx: usize) -> Result<()> {
        expect_len("conv2d_backward_data", "output gradient", self.output_len, dy)?;
        expect_len("conv2d_backward_data", "weights", self.weight_len, w)?;
        expect_len("conv2d_backward_data", "input gradient", self.input_len, dx)
    }

    /// Checks the slice lengths of a backward-filter pass `dw = conv_bwd_filter(x, dy)`.
    pub fn check_backward_filter(&self, x: usize, dy: usize, dw: usize) -> Result<()> {
        expect_len("conv2d_backward_filter", "input", self.input_len, x)?;
        expect_len("conv2d_backward_filter", "output gradient", self.output_len, dy)?;
        expect_len("conv2d_backward_filter", "weight gradient", self.weight_len, dw)
    }

    /// Checks the slice lengths of a bias-gradient pass `db = Σ_{n,h,w} dy`.
    pub fn check_bias_gradient(&self, dy: usize, db: usize) -> Result<()> {
        expect_len("conv2d_bias_gradient", "output gradient", self.output_len, dy)?;
        expect_len("conv2d_bias_gradient", "bias gradient", self.bias_len(), db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(in_hw: usize, k: usize, stride: usize, padding: Padding) -> Conv2dGeometry {
        Conv2dGeometry::spec(2, [in_hw, in_hw, 3], [k, k], 4).stride(stride).padding(padding).build().unwrap()
    }

    #[test]
    fn flagship_shapes() {
        let c1 = Conv2dGeometry::spec(32, [28, 28, 1], [5, 5], 3).build().unwrap();
        assert_eq!(c1.output_shape(), [32, 24, 24, 3]);
        assert_eq!(c1.weight_len() + c1.bias_len(), 78);
        let c2 = Conv2dGeometry::spec(32, [24, 24, 3], [5, 5], 6).build().unwrap();
        assert_eq!(c2.output_shape(), [32, 20, 20, 6]);
        assert_eq!(c2.weight_len() + c2.bias_len(), 456);
        // 2 · 32 · 24 · 24 · 3 · 25 = 2.76 MFLOP (KERNELS.md §3 budget).
        assert_eq!(c1.flops(), 2_764_800);
    }

    #[test]
    fn same_padding_matches_tensorflow() {
        // Stride 1, odd kernel: symmetric.
        let g = geo(7, 3, 1, Padding::Same);
        assert_eq!((g.out_h(), g.pad_top(), g.pad_bottom()), (7, 1, 1));
        // Even kernel: the extra row goes to the bottom/right.
        let g = geo(7, 4, 1, Padding::Same);
        assert_eq!((g.out_h(), g.pad_top(), g.pad_bottom(), g.pad_left(), g.pad_right()), (7, 1, 2, 1, 2));
        // Stride 2 on an even input: out = 3, total = (3−1)·2 + 3 − 6 = 1 → (0, 1).
        let g = geo(6, 3, 2, Padding::Same);
        assert_eq!((g.out_h(), g.pad_top(), g.pad_bottom()), (3, 0, 1));
        // Stride 2 on an odd input: out = 3, total = 2 → (1, 1).
        let g = geo(5, 3, 2, Padding::Same);
        assert_eq!((g.out_h(), g.pad_top(), g.pad_bottom()), (3, 1, 1));
        // Stride larger than the kernel: no padding needed.
        let g = geo(6, 1, 3, Padding::Same);
        assert_eq!((g.out_h(), g.pad_top(), g.pad_bottom()), (2, 0, 0));
        // 1×1 image with a 5×5 kernel.
        let g = geo(1, 5, 1, Padding::Same);
        assert_eq!((g.out_h(), g.pad_top(), g.pad_bottom()), (1, 2, 2));
    }

    #[test]
    fn valid_and_explicit_extents() {
        assert_eq!(geo(28, 5, 1, Padding::Valid).out_h(), 24);
        assert_eq!(geo(28, 5, 2, Padding::Valid).out_h(), 12);
        assert_eq!(geo(5, 5, 3, Padding::Valid).out_h(), 1);
        assert_eq!(geo(5, 3, 2, Padding::uniform(1)).out_h(), 3);
        let g = Conv2dGeometry::spec(1, [9, 9, 1], [3, 3], 1).dilation(2).build().unwrap();
        assert_eq!(g.out_h(), 5);
        assert_eq!(g.input_row(4, 2), Some(8));
    }

    #[test]
    fn invalid_geometry_is_an_error() {
        let base = Conv2dGeometry::spec(1, [5, 5, 1], [3, 3], 1);
        assert!(matches!(
            Conv2dGeometry::spec(1, [2, 5, 1], [3, 3], 1).build(),
            Err(KernelError::KernelLargerThanInput { axis: "height", kernel: 3, input: 2, .. })
        ));
        assert!(matches!(base.stride(0).build(), Err(KernelError::ZeroDim { dim: "stride_h", .. })));
        assert!(matches!(base.dilation(0).build(), Err(KernelError::ZeroDim { dim: "dilation_h", .. })));
        assert!(matches!(base.dilation(3).build(), Err(KernelError::KernelLargerThanInput { .. })));
        let huge = Conv2dGeometry::spec(usize::MAX, [5, 5, 1], [3, 3], 1).build();
        assert!(matches!(huge, Err(KernelError::Overflow { what: "input", .. })));
        let huge_k = Conv2dGeometry::spec(1, [5, 5, 1], [usize::MAX, 1], 1).dilation(2).build();
        assert!(matches!(huge_k, Err(KernelError::Overflow { .. })));
        let huge_pad = base.padding(Padding::uniform(usize::MAX)).build();
        assert!(matches!(huge_pad, Err(KernelError::Overflow { .. })));
        // Found by the conv2d_geometry fuzz target: a padding beyond isize::MAX with a stride as large, so that the
        // output stays 1×1. It must be rejected, not wrap in signed arithmetic later.
        let wrap = Padding::Explicit { top: 1 << 63, bottom: 0, left: 0, right: 0 };
        assert!(matches!(
            base.padding(wrap).strides(1 << 63, 1).build(),
            Err(KernelError::Overflow { what: "padded input", .. })
        ));
        // Batch 0 is a valid, empty problem.
        let empty = Conv2dGeometry::spec(0, [5, 5, 1], [3, 3], 2).build().unwrap();
        assert_eq!((empty.input_len(), empty.output_len(), empty.weight_len()), (0, 0, 18));
    }

    #[test]
    fn slice_checks() {
        let g = Conv2dGeometry::spec(2, [5, 5, 3], [3, 3], 4).build().unwrap();
        assert!(g.check_forward(150, 108, Some(4), 72).is_ok());
        assert!(g.check_forward(150, 108, None, 72).is_ok());
        assert_eq!(
            g.check_forward(149, 108, None, 72),
            Err(KernelError::SliceLen { op: "conv2d_forward", name: "input", expected: 150, got: 149 })
        );
        assert!(g.check_forward(150, 108, Some(3), 72).is_err());
        assert!(g.check_backward_data(72, 108, 150).is_ok());
        assert!(g.check_backward_filter(150, 72, 108).is_ok());
        assert!(g.check_backward_filter(150, 72, 109).is_err());
        assert!(g.check_bias_gradient(72, 4).is_ok());
    }

    #[test]
    fn gemm_layouts() {
        let g = GemmGeometry::new(3, 4, 5).unwrap();
        assert_eq!((g.lda(), g.ldb(), g.ldc(), g.a_len(), g.b_len(), g.c_len()), (5, 4, 4, 15, 20, 12));
        assert_eq!(g.flops(), 120);
        let t = GemmGeometry::spec(3, 4, 5).trans_a(Transpose::Yes).trans_b(Transpose::Yes).ldc(7).build().unwrap();
        // Aᵀ stored 5×3, Bᵀ stored 4×5.
        assert_eq!((t.lda(), t.ldb(), t.a_len(), t.b_len(), t.c_len()), (3, 5, 15, 20, 18));
        assert_eq!(t.a_index(2, 4), 4 * 3 + 2);
        assert_eq!(t.b_index(4, 3), 3 * 5 + 4);
        assert_eq!(t.c_index(2, 3), 2 * 7 + 3);
        assert!(matches!(
            GemmGeometry::spec(3, 4, 5).lda(4).build(),
            Err(KernelError::LeadingDim { name: "lda", got: 4, min: 5, .. })
        ));
        // Degenerate sizes are valid and need no storage.
        let z = GemmGeometry::new(0, 4, 0).unwrap();
        assert_eq!((z.a_len(), z.b_len(), z.c_len()), (0, 0, 0));
        assert!(GemmGeometry::new(usize::MAX, 2, 2).is_err());
        assert!(g.check(15, 20, 11).is_err());
        assert!(g.check(16, 20, 12).is_ok());
    }
}
