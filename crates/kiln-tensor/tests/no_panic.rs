//! The tensor fuzz body on stable: arbitrary bytes never make the tensor API panic.

mod fuzz_bodies;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(kiln_kernels::testing::cases(4096)))]
    #[test]
    fn tensor_ops_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        fuzz_bodies::tensor_ops(&bytes);
    }
}

#[test]
fn adversarial_inputs() {
    assert!(!fuzz_bodies::tensor_ops(&[4, 255, 255, 255, 255]));
    assert!(fuzz_bodies::tensor_ops(&[2, 2, 3, 0, 1, 3]));
    assert!(fuzz_bodies::tensor_ops(&[]));
}
