//! The FMA probe's dispatch table, one `static TABLE` per ISA (stamped by `per_isa!` in `stamp.rs`).

/// The probe of one ISA: `iters` rounds of every chain, returning the chains' sum (so nothing is optimised
/// away); its chain count and vector lanes.
pub(crate) struct PeakTable {
    pub(crate) run: unsafe fn(iters: u64) -> f32,
    pub(crate) chains: usize,
    pub(crate) lanes: usize,
}

/// One ISA's `#[target_feature]` entry around the generic probe, and its table.
macro_rules! peak_entries {
    ($(#[$attr:meta])* Token = $t:ty, token = $token:expr) => {
        /// # Safety
        /// The CPU supports this ISA.
        $(#[$attr])*
        unsafe fn run(iters: u64) -> f32 {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::peak::chains_for::<$t>(s, iters)
        }

        /// This ISA's probe.
        pub(crate) static TABLE: $crate::peak::table::PeakTable = $crate::peak::table::PeakTable {
            run,
            chains: $crate::peak::chain_count(<$t as $crate::simd::Simd>::REGISTERS),
            lanes: <$t as $crate::simd::Simd>::LANES,
        };
    };
}

per_isa!(peak_entries);
