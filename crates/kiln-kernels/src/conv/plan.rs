//! [`ConvPlan`]: one convolution prepared for repeated use (oneDNN's and XNNPACK's "create once, execute many"):
//! the algorithm of each pass resolved once, the weights packed (or Winograd-transformed) for each pass once per
//! weight version, the scratch for that owned, and the forward's converted input kept for backward-filter.
//!
//! The one-shot entries (`Kernels::conv2d_forward` and the rest) run the same code with the weights prepared
//! into per-call scratch.

use super::{ConvAlgo, ConvOptions, ConvPass, direct, igemm, im2col, winograd};
use crate::buffer::AlignedVec;
use crate::dispatch::Kernels;
use crate::error::{KernelError, Result};
use crate::gemm::Threads;
use crate::geometry::Conv2dGeometry;

/// Which pass prepared weights serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeightsFor {
    Forward,
    BackwardData,
}

/// Floats of `algo`'s prepared weights for a pass of `g` on `k` (0: the algorithm reads the weights as given).
pub(crate) fn prepared_len(k: &Kernels, g: &Conv2dGeometry, algo: ConvAlgo, pass: WeightsFor) -> usize {
    match algo {
        ConvAlgo::Direct => g.weight_len(),
        ConvAlgo::ImplicitGemm => igemm::packed_len(g, k.conv.igemm_tile.1, pass == WeightsFor::BackwardData),
        ConvAlgo::Winograd(tile) => winograd::transformed_len(g, tile),
        ConvAlgo::Im2col | ConvAlgo::Auto => 0,
    }
}

/// Writes `algo`'s prepared weights for a pass into `out` ([`prepared_len`] floats); `f64s` is scratch for the
/// Winograd transforms.
pub(crate) fn prepare(
    k: &Kernels,
    g: &Conv2dGeometry,
    algo: ConvAlgo,
    pass: WeightsFor,
    w: &[f32],
    out: &mut [f32],
    f64s: &mut Vec<f64>,
) {
    let nr = k.conv.igemm_tile.1;
    match (algo, pass) {
        (ConvAlgo::Direct, WeightsFor::Forward) => direct::pack_forward(g, w, out),
        (ConvAlgo::Direct, WeightsFor::BackwardData) => direct::pack_backward_data(g, w, out),
        (ConvAlgo::ImplicitGemm, WeightsFor::Forward) => igemm::pack_forward(g, nr, w, out),
        (ConvAlgo::ImplicitGemm, WeightsFor::BackwardData) => igemm::pack_backward_data(g, nr, w, out),
        (ConvAlgo::Winograd(tile), WeightsFor::Forward) => winograd::transform_forward(g, tile, w, out, f64s),
        (ConvAlgo::Winograd(tile), WeightsFor::BackwardData) => {
            winograd::transform_backward_data(g, tile, w, out, f64s)
        }
        (ConvAlgo::Im2col | ConvAlgo::Auto, _) => {}
    }
}

/// The forward of a concrete `algo` with its prepared weights `pw` (or `w` as given for im2col); with `keep`
/// (direct only), the input planes are left there for backward-filter.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    k: &Kernels,
    g: &Conv2dGeometry,
    algo: ConvAlgo,
    threads: Threads,
    x: &[f32],
    w: &[f32],
    pw: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    keep: Option<&mut [f32]>,
) -> Result<()> {
    match algo {
        ConvAlgo::Direct => direct::forward(k, g, threads, x, pw, bias, y, keep),
        ConvAlgo::ImplicitGemm => igemm::forward(k, g, threads, x, pw, bias, y),
        ConvAlgo::Im2col => im2col::forward(k, g, threads, x, w, bias, y)?,
        ConvAlgo::Winograd(tile) => winograd::forward(k, g, tile, threads, x, pw, bias, y)?,
        ConvAlgo::Auto => unreachable!("plans and entries resolve the algorithm first"),
    }
    Ok(())
}

/// Backward-data of a concrete `algo` with its prepared weights `pw` (or `w` as given for im2col).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_data(
    k: &Kernels,
    g: &Conv2dGeometry,
    algo: ConvAlgo,
    threads: Threads,
    dy: &[f32],
    w: &[f32],
    pw: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    match algo {
        ConvAlgo::Direct => direct::backward_data(k, g, threads, dy, pw, dx),
        ConvAlgo::ImplicitGemm => igemm::backward_data(k, g, threads, dy, pw, dx),
        ConvAlgo::Im2col => im2col::backward_data(k, g, threads, dy, w, dx)?,
        ConvAlgo::Winograd(tile) => winograd::backward_data(k, g, tile, threads, dy, pw, dx)?,
        ConvAlgo::Auto => unreachable!("plans and entries resolve the algorithm first"),
    }
    Ok(())
}

/// Backward-filter of a concrete `algo`; with `kept` (direct only), the input planes a forward of the same `x`
/// left.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_filter(
    k: &Kernels,
    g: &Conv2dGeometry,
    algo: ConvAlgo,
    threads: Threads,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    kept: Option<&mut [f32]>,
) -> Result<()> {
    match algo {
        ConvAlgo::Direct => direct::backward_filter(k, g, threads, x, dy, dw, kept),
        ConvAlgo::ImplicitGemm => igemm::backward_filter(k, g, threads, x, dy, dw)?,
        ConvAlgo::Im2col => im2col::backward_filter(k, g, threads, x, dy, dw)?,
        ConvAlgo::Winograd(tile) => winograd::backward_filter(k, g, tile, threads, x, dy, dw)?,
        ConvAlgo::Auto => unreachable!("plans and entries resolve the algorithm first"),
    }
    Ok(())
}

/// Prepared weights and the version of the weights they were made from.
#[derive(Debug, Default)]
struct Prepared {
    version: Option<u64>,
    data: AlignedVec,
}

/// Proof that a [`ConvPlan::forward`] kept its converted input: [`ConvPlan::backward_filter`] with the same `x`
/// then reads that instead of converting `x` again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptInput(u64);

/// A convolution prepared for one geometry, for repeated use ("create once, execute many", as in oneDNN and
/// XNNPACK): each pass's algorithm resolved once, the weights packed (or Winograd-transformed) for each pass once per
/// weight version into scratch the plan owns, and the forward's converted input kept for backward-filter.
#[derive(Debug)]
pub struct ConvPlan {
    kernels: &'static Kernels,
    geometry: Conv2dGeometry,
    options: ConvOptions,
    /// The concrete algorithm of the forward, backward-data and backward-filter passes.
    algos: [ConvAlgo; 3],
    weights: [Prepared; 2],
    /// The forward's input planes (direct forward and backward-filter only), padding zero.
    kept: AlignedVec,
    /// The forward whose input is in `kept` (0: none), and the number of the next forward.
    kept_by: u64,
    forwards: u64,
    f64s: Vec<f64>,
}

impl Kernels {
    /// A plan for convolutions of geometry `g` with `opts` (the algorithm of each pass resolved now: an error if a
    /// forced algorithm cannot run one of them).
    pub fn conv_plan(&'static self, g: &Conv2dGeometry, opts: ConvOptions) -> Result<ConvPlan> {
        opts.check_compute(self, "conv_plan")?;
        let algos = [ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter]
            .map(|pass| opts.algo.resolve(g, pass, self.isa()));
        let [f, d, w] = algos;
        Ok(ConvPlan {
            kernels: self,
            geometry: *g,
            options: opts,
            algos: [f?, d?, w?],
            weights: Default::default(),
            kept: AlignedVec::new(),
            kept_by: 0,
            forwards: 0,
            f64s: Vec::new(),
        })
    }
}

impl ConvPlan {
    /// The geometry this plan is for.
    pub fn geometry(&self) -> &Conv2dGeometry {
        &self.geometry
    }

    /// The options it was made with (its threading follows [`ConvPlan::set_threads`]).
    pub fn options(&self) -> ConvOptions {
        self.options
    }

    /// The kernel table it runs on.
    pub fn kernels(&self) -> &'static Kernels {
        self.kernels
    }

    /// The concrete algorithm of `pass`.
    pub fn algorithm(&self, pass: ConvPass) -> ConvAlgo {
        match pass {
            ConvPass::Forward => self.algos[0],
            ConvPass::BackwardData => self.algos[1],
            ConvPass::BackwardFilter => self.algos[2],
        }
    }

    /// Sets the threading of the next passes (results are bitwise the same either way).
    pub fn set_threads(&mut self, threads: Threads) {
        self.options.threads = threads;
    }

    /// Whether a forward can keep its converted input for backward-filter (both passes direct).
    fn can_keep(&self) -> bool {
        self.algos[0] == ConvAlgo::Direct && self.algos[2] == ConvAlgo::Direct
    }

    /// Prepares the weights of `pass` for `w` of `version` unless they are (`None`: unknown, prepared every time).
    fn weights_for(&mut self, pass: WeightsFor, w: &[f32], version: Option<u64>) -> Result<()> {
        let (slot, algo) = match pass {
            WeightsFor::Forward => (0, self.algos[0]),
            WeightsFor::BackwardData => (1, self.algos[1]),
        };
        let len = prepared_len(self.kernels, &self.geometry, algo, pass);
        let p = &mut self.weights[slot];
        if version.is_none() || p.version != version || p.data.len() != len {
            if p.data.len() != len {
                let err = |_| KernelError::Alloc { op: "conv plan", what: "prepared weights", elements: len };
                p.data.try_resize(len, 0.0).map_err(err)?;
            }
            prepare(self.kernels, &self.geometry, algo, pass, w, p.data.as_mut_slice(), &mut self.f64s);
            p.version = version;
        }
        Ok(())
    }

    /// Forward `y = conv(x, w) + bias` with the weights prepared once per `version` (the caller's promise: the same
    /// version, the same values of `w`). With `keep`, the converted input is kept when the algorithms allow it
    /// (both passes direct): the returned [`KeptInput`] then lets backward-filter skip converting `x` again.
    pub fn forward(
        &mut self,
        x: &[f32],
        w: &[f32],
        version: Option<u64>,
        bias: Option<&[f32]>,
        y: &mut [f32],
        keep: bool,
    ) -> Result<Option<KeptInput>> {
        let g = self.geometry;
        g.check_forward(x.len(), w.len(), bias.map(<[f32]>::len), y.len())?;
        self.forwards += 1;
        self.kept_by = 0;
        if g.batch() == 0 {
            return Ok(None);
        }
        let keep = keep && self.can_keep();
        if keep {
            let len = direct::KeptPlanes::of(self.kernels, &g).len;
            if self.kept.len() != len {
                // Zeroed once: the images' fills never write the padding.
                let err = |_| KernelError::Alloc { op: "conv plan", what: "kept input planes", elements: len };
                self.kept = AlignedVec::try_zeros(len).map_err(err)?;
            }
        }
        let (k, algo, threads) = (self.kernels, self.algos[0], self.options.threads);
        self.weights_for(WeightsFor::Forward, w, version)?;
        let pw = self.weights[0].data.as_slice();
        forward(k, &g, algo, threads, x, w, pw, bias, y, keep.then_some(self.kept.as_mut_slice()))?;
        if keep {
            self.kept_by = self.forwards;
            return Ok(Some(KeptInput(self.forwards)));
        }
        Ok(None)
    }

    /// Backward-data `dx = ∂/∂x ⟨conv(x, w), dy⟩` with the weights prepared once per `version`.
    pub fn backward_data(&mut self, dy: &[f32], w: &[f32], version: Option<u64>, dx: &mut [f32]) -> Result<()> {
        let g = self.geometry;
        g.check_backward_data(dy.len(), w.len(), dx.len())?;
        if g.batch() == 0 {
            return Ok(());
        }
        let (k, algo, threads) = (self.kernels, self.algos[1], self.options.threads);
        self.weights_for(WeightsFor::BackwardData, w, version)?;
        backward_data(k, &g, algo, threads, dy, w, self.weights[1].data.as_slice(), dx)
    }

    /// Backward-filter `dw = ∂/∂w ⟨conv(x, w), dy⟩`. With `kept` from the last forward (of this same `x`), the
    /// input it converted is reused; a stale or absent one converts `x` again.
    pub fn backward_filter(&mut self, x: &[f32], dy: &[f32], dw: &mut [f32], kept: Option<KeptInput>) -> Result<()> {
        let g = self.geometry;
        g.check_backward_filter(x.len(), dy.len(), dw.len())?;
        if g.batch() == 0 {
            dw.fill(0.0);
            return Ok(());
        }
        let valid = kept.is_some_and(|t| t.0 == self.kept_by && self.kept_by != 0);
        let (k, algo, threads) = (self.kernels, self.algos[2], self.options.threads);
        let planes = valid.then_some(self.kept.as_mut_slice());
        backward_filter(k, &g, algo, threads, x, dy, dw, planes)
    }
}
