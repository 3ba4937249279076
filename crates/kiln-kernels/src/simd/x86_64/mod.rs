//! AVX-512 and AVX2+FMA tokens for the [`Simd`] vocabulary.
//!
//! Every method calls `std::arch` intrinsics in an `unsafe` block justified by the token: a token is created only
//! by `unsafe fn new`, whose callers (the `#[target_feature]` entry points reached through the dispatch table)
//! guarantee the CPU has the ISA. Loads and stores go through slices indexed first (`s[..LANES]`), so they are
//! bounds-checked.

mod avx2;
mod avx512;

pub(crate) use avx2::Avx2;
pub(crate) use avx512::Avx512;

#[cfg(test)]
mod tests;
