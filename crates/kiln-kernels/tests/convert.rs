//! f32 ↔ bf16 conversion on every ISA this host runs, against `half` (the reference: round to nearest even, NaN
//! quieted): every 257th f32 bit pattern and the specials, every bf16 pattern back (the exact bit shift), and random lengths so the
//! vector bodies and their tails are both covered. Exact equality — conversion has one right answer.

mod common;

use common::{cases, runner, testable_kernels};
use half::bf16;
use kiln_kernels::Isa;
use proptest::prelude::*;

fn check(isa: Isa) {
    let Some(k) = testable_kernels(isa) else { return };
    let mut x: Vec<f32> = (0..=u32::MAX).step_by(257).map(f32::from_bits).collect();
    x.extend([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, f32::MIN_POSITIVE, 1e-45]);
    x.extend((0..=u16::MAX).map(|h| f32::from_bits(u32::from(h) << 16 | 0x8000)));
    let mut y = vec![bf16::ZERO; x.len()];
    k.f32_to_bf16(&x, &mut y).unwrap();
    for (&xi, yi) in x.iter().zip(&y) {
        assert_eq!(yi.to_bits(), bf16::from_f32(xi).to_bits(), "{isa}: {xi:e} ({:#010x})", xi.to_bits());
    }
    let mut round = vec![0.0f32; x.len()];
    k.round_to_bf16(&x, &mut round).unwrap();
    for (r, yi) in round.iter().zip(&y) {
        assert_eq!(r.to_bits(), yi.to_f32().to_bits(), "{isa}");
    }
    let all: Vec<bf16> = (0..=u16::MAX).map(bf16::from_bits).collect();
    let mut wide = vec![0.0f32; all.len()];
    k.bf16_to_f32(&all, &mut wide).unwrap();
    for (h, w) in all.iter().zip(&wide) {
        // The widening is the bit shift (as `vpslld` and Arm's `shll` do it): a signalling NaN stays signalling,
        // where `half` quiets it.
        assert_eq!(w.to_bits(), u32::from(h.to_bits()) << 16, "{isa}");
        if !h.is_nan() {
            assert_eq!(w.to_bits(), h.to_f32().to_bits(), "{isa}");
        }
    }
    runner(cases(64))
        .run(&proptest::collection::vec(any::<u32>(), 0..200), |bits| {
            let x: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            let mut y = vec![bf16::ZERO; x.len()];
            k.f32_to_bf16(&x, &mut y).unwrap();
            for (xi, yi) in x.iter().zip(&y) {
                prop_assert_eq!(yi.to_bits(), bf16::from_f32(*xi).to_bits());
            }
            Ok(())
        })
        .unwrap();
    assert!(k.f32_to_bf16(&[1.0; 3], &mut [bf16::ZERO; 2]).is_err());
    assert!(k.bf16_to_f32(&[bf16::ONE; 3], &mut [0.0; 4]).is_err());
    assert!(k.round_to_bf16(&[1.0; 3], &mut [0.0; 4]).is_err());
}

#[test]
fn convert_portable() {
    check(Isa::Portable);
}

#[test]
fn convert_avx2() {
    check(Isa::Avx2Fma);
}

#[test]
fn convert_avx512() {
    check(Isa::Avx512);
}
