//! Denormal handling of the calling thread's floating-point unit.
//!
//! Operations that produce or consume subnormal floats (|x| < 2⁻¹²⁶) run tens of times slower on many CPUs,
//! this Zen 5 included. They appear in training on raw 0..255 pixels: `swish(x)` for x ≈ −90 is subnormal, and
//! so are the gradients that flow through it. TensorFlow runs its kernels with subnormals flushed to zero
//! (x86 MXCSR FTZ + DAZ, Arm FPCR.FZ), which is what Keras' numbers are measured with; Kiln's training does the
//! same on its own threads through [`set_flush_denormals`]. With flushing on, a subnormal result becomes ±0 and
//! a subnormal input is read as ±0; nothing else changes (normal results are bitwise identical).

/// MXCSR bits: FTZ (bit 15) and DAZ (bit 6).
#[cfg(target_arch = "x86_64")]
const MXCSR_FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

/// FPCR.FZ (bit 24).
#[cfg(target_arch = "aarch64")]
const FPCR_FZ: u64 = 1 << 24;

/// Turns flushing of subnormals to zero on or off for the calling thread; returns whether it was on. On
/// targets without such a mode it does nothing and returns `false`.
pub fn set_flush_denormals(on: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: `stmxcsr` stores the 4-byte MXCSR register into `csr`, a valid, aligned, writable u32; SSE is
        // part of the x86_64 baseline.
        unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags)) };
        let prev = csr & MXCSR_FTZ_DAZ == MXCSR_FTZ_DAZ;
        let new = if on { csr | MXCSR_FTZ_DAZ } else { csr & !MXCSR_FTZ_DAZ };
        // SAFETY: `ldmxcsr` loads MXCSR from `new`, a valid u32 that differs from the current value only in the
        // FTZ and DAZ bits (no reserved bit is set, so it cannot fault).
        unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &new, options(nostack, preserves_flags, readonly)) };
        prev
    }
    #[cfg(target_arch = "aarch64")]
    {
        let fpcr: u64;
        // SAFETY: reading FPCR has no side effect and is allowed at EL0.
        unsafe { core::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags)) };
        let prev = fpcr & FPCR_FZ != 0;
        let new = if on { fpcr | FPCR_FZ } else { fpcr & !FPCR_FZ };
        // SAFETY: writing FPCR is allowed at EL0; only the FZ bit changes.
        unsafe { core::arch::asm!("msr fpcr, {}", in(reg) new, options(nomem, nostack, preserves_flags)) };
        prev
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = on;
        false
    }
}

/// Whether the calling thread flushes subnormals to zero.
pub fn flush_denormals() -> bool {
    let prev = set_flush_denormals(true);
    set_flush_denormals(prev);
    prev
}

/// Flushes subnormals on the calling thread until dropped, then restores the previous mode.
#[derive(Debug)]
pub struct FlushDenormals {
    prev: bool,
}

impl FlushDenormals {
    /// Turns flushing on for the calling thread.
    pub fn new() -> Self {
        FlushDenormals { prev: set_flush_denormals(true) }
    }
}

impl Default for FlushDenormals {
    fn default() -> Self {
        FlushDenormals::new()
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        set_flush_denormals(self.prev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnormals_flush_only_while_on() {
        let tiny = std::hint::black_box(f32::MIN_POSITIVE);
        let half = std::hint::black_box(0.5f32);
        assert!(!flush_denormals());
        assert!((tiny * half).is_subnormal());
        {
            let _g = FlushDenormals::new();
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            {
                assert!(flush_denormals());
                assert_eq!(std::hint::black_box(tiny * half), 0.0, "result flushed");
                let sub = std::hint::black_box(f32::from_bits(1));
                assert_eq!(std::hint::black_box(sub * 2.0), 0.0, "input read as zero (DAZ)");
                assert_eq!(std::hint::black_box(1.5f32 * 3.0), 4.5, "normal arithmetic unchanged");
            }
        }
        assert!(!flush_denormals(), "restored");
        assert!((tiny * half).is_subnormal());
    }
}
