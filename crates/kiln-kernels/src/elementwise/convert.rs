//! f32 ↔ bfloat16 conversion: rounding to nearest even with NaN kept NaN (quieted, sign and top payload bits
//! kept) — bit for bit what `half::bf16::from_f32` and Arm's `BFCVT` give — and the exact widening back.
//!
//! The body is plain integer arithmetic, written once and compiled inside each ISA's `#[target_feature]` entry
//! (`table.rs`), where LLVM vectorises it to the ISA's width. AVX-512 BF16's `vcvtneps2bf16` is not used: it
//! flushes subnormal inputs to zero, which would make the rounded bits depend on the CPU.

use half::bf16;

/// The bf16 bits nearest to `x` (ties to even); a NaN stays a NaN with its sign and high payload, made quiet.
#[inline(always)]
pub(crate) fn round_bits(x: u32) -> u16 {
    let rounded = x.wrapping_add(0x7fff + ((x >> 16) & 1)) >> 16;
    let quiet_nan = (x >> 16) | 0x40;
    (if x & 0x7fff_ffff > 0x7f80_0000 { quiet_nan } else { rounded }) as u16
}

/// `y[i] = bf16(x[i])`, rounding to nearest even. Lengths are equal (checked by the safe entry).
#[inline(always)]
pub(crate) fn to_bf16(x: &[f32], y: &mut [bf16]) {
    for (d, s) in y.iter_mut().zip(x) {
        *d = bf16::from_bits(round_bits(s.to_bits()));
    }
}

/// `y[i] = f32(x[i])`, exact. Lengths are equal (checked by the safe entry).
#[inline(always)]
pub(crate) fn from_bf16(x: &[bf16], y: &mut [f32]) {
    for (d, s) in y.iter_mut().zip(x) {
        *d = f32::from_bits(u32::from(s.to_bits()) << 16);
    }
}

/// `y[i] = f32(bf16(x[i]))`: `x` rounded to bfloat16 and kept in f32 storage, the value a bf16 operand of a GEMM
/// or convolution has. Lengths are equal (checked by the safe entry).
#[inline(always)]
pub(crate) fn round_to_bf16(x: &[f32], y: &mut [f32]) {
    for (d, s) in y.iter_mut().zip(x) {
        *d = f32::from_bits(u32::from(round_bits(s.to_bits())) << 16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_half_on_special_values() {
        let specials = [
            0.0f32,
            -0.0,
            1.0,
            f32::MAX,
            f32::MIN_POSITIVE,
            1e-40,
            -1e-45,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7f80_0001),
            f32::from_bits(0xffff_ffff),
            1.0 + 2f32.powi(-8),
            1.0 + 3.0 * 2f32.powi(-8),
        ];
        for x in specials {
            let want = bf16::from_f32(x);
            assert_eq!(round_bits(x.to_bits()), want.to_bits(), "{x:e} ({:#x})", x.to_bits());
        }
        // f32::MAX is above bf16's largest finite value plus half an ulp: it rounds to infinity.
        assert_eq!(round_bits(f32::MAX.to_bits()), 0x7f80);
        // A signalling NaN becomes quiet, sign kept.
        assert_eq!(round_bits(0xff80_0001), 0xffc0);
    }
}
