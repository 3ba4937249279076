//! `per_isa!`: the one place that knows each ISA's `#[target_feature]` attribute and `Simd` token. A kernel family
//! writes its entry points once, in a macro taking those two, and `per_isa!` stamps them into one module per ISA
//! (`portable`, `avx2`, `avx512` on x86_64, `neon` on aarch64), each ending in the family's `static TABLE`.

/// Invokes the family macro `$entries!` once per ISA inside a module named after it, as
/// `$entries!(#[target_feature(…)] Token = <token type>, token = <unsafe constructor>)` (no attribute for the
/// portable path).
macro_rules! per_isa {
    ($entries:ident) => {
        /// Portable entries (`wide`; no CPU feature needed).
        pub(crate) mod portable {
            $entries!(Token = $crate::simd::Portable, token = $crate::simd::Portable::new());
        }
        /// AVX2+FMA entries.
        #[cfg(target_arch = "x86_64")]
        pub(crate) mod avx2 {
            $entries!(
                #[target_feature(enable = "avx2,fma")]
                Token = $crate::simd::x86_64::Avx2,
                token = $crate::simd::x86_64::Avx2::new()
            );
        }
        /// AVX-512 (F, BW, DQ, VL) entries.
        #[cfg(target_arch = "x86_64")]
        pub(crate) mod avx512 {
            $entries!(
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                Token = $crate::simd::x86_64::Avx512,
                token = $crate::simd::x86_64::Avx512::new()
            );
        }
        /// NEON entries.
        #[cfg(target_arch = "aarch64")]
        pub(crate) mod neon {
            $entries!(
                #[target_feature(enable = "neon")]
                Token = $crate::simd::aarch64::Neon,
                token = $crate::simd::aarch64::Neon::new()
            );
        }
    };
}
