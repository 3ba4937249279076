//! The optimizer family's dispatch table, one `static TABLE` per ISA (stamped by `per_isa!` in `stamp.rs`).

use super::Step;

/// The optimizer step of one ISA.
pub(crate) struct OptimTable {
    pub(crate) step: unsafe fn(Step<'_>),
}

/// One ISA's `#[target_feature]` entry around the generic step, and its table.
macro_rules! optim_entries {
    ($(#[$attr:meta])* Token = $t:ty, token = $token:expr) => {
        /// # Safety
        /// The CPU supports this ISA; the slices have equal lengths (validated by the safe entry).
        $(#[$attr])*
        unsafe fn step(step: $crate::optim::Step<'_>) {
            // SAFETY: the caller guarantees the ISA.
            let s = unsafe { $token };
            $crate::optim::run(s, step)
        }

        /// This ISA's optimizer step.
        pub(crate) static TABLE: $crate::optim::table::OptimTable = $crate::optim::table::OptimTable { step };
    };
}

per_isa!(optim_entries);
