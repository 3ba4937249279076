//! Run-time instruction-set detection: the only file of Kiln that probes CPU features.
//!
//! Kernels are compiled for every ISA of the target architecture and one is chosen at run time, so a Kiln binary
//! runs on any CPU of its architecture (nothing is compiled for the build machine's CPU). Two environment variables
//! steer the choice:
//!
//! * `KILN_ISA=portable|avx2|avx512|neon` *caps* the choice made by [`Isa::best`]: the best ISA that is both
//!   supported by the host and not above the cap. It never raises the choice above what the hardware supports. A
//!   cap naming another architecture's ISA leaves only [`Isa::Portable`]. An unknown value is ignored with a
//!   warning on standard error.
//! * `KILN_REQUIRE_ISA=avx2,avx512` turns the loud *skip* of a test for an ISA the host lacks into a failure
//!   ([`Isa::testable`]), so that CI on a machine that should have AVX-512 cannot silently test less. The bf16
//!   extensions can be required the same way (`avx512bf16`, `neonbf16`; [`Isa::testable_bf16`]).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use crate::error::{KernelError, Result};
use crate::precision::DType;

/// Name of the environment variable that caps the ISA chosen by [`Isa::best`].
pub const ENV_ISA_CAP: &str = "KILN_ISA";
/// Name of the environment variable listing ISAs that tests must not skip.
pub const ENV_REQUIRE_ISA: &str = "KILN_REQUIRE_ISA";

/// An instruction-set tier for which Kiln has kernels.
///
/// Ordered from least to most capable *within* an architecture: `Portable < Avx2Fma < Avx512` on x86_64,
/// `Portable < Neon` on aarch64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable code (the `wide` crate's vectors, compiled for the architecture's baseline). Runs everywhere.
    Portable,
    /// x86_64 AVX2 with FMA3 (256-bit vectors).
    Avx2Fma,
    /// x86_64 AVX-512 F + BW + DQ + VL (512-bit vectors), with FMA.
    Avx512,
    /// aarch64 Advanced SIMD (NEON, 128-bit vectors).
    Neon,
}

/// The architecture an [`Isa`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// Any architecture (only [`Isa::Portable`]).
    Any,
    /// x86_64.
    X86_64,
    /// aarch64.
    Aarch64,
}

impl Isa {
    /// Every ISA Kiln knows, in the order used for reports.
    pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Avx2Fma, Isa::Avx512, Isa::Neon];

    /// The short name used in `KILN_ISA`, bench ids and logs: `portable`, `avx2`, `avx512`, `neon`.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2Fma => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// The architecture whose CPUs can run this ISA.
    pub const fn arch(self) -> Arch {
        match self {
            Isa::Portable => Arch::Any,
            Isa::Avx2Fma | Isa::Avx512 => Arch::X86_64,
            Isa::Neon => Arch::Aarch64,
        }
    }

    /// Rank within its architecture (0 = portable); used for capping.
    const fn level(self) -> u8 {
        match self {
            Isa::Portable => 0,
            Isa::Avx2Fma | Isa::Neon => 1,
            Isa::Avx512 => 2,
        }
    }

    /// Whether the CPU running this process supports the ISA (detected at run time, cached by the standard
    /// library). Ignores `KILN_ISA`.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            Isa::Avx2Fma => detect_avx2_fma(),
            Isa::Avx512 => detect_avx512(),
            Isa::Neon => detect_neon(),
        }
    }

    /// Whether this tier has native arithmetic for `dtype` on this CPU: `f32` wherever the tier runs; bfloat16 on
    /// AVX-512 with the BF16 extension (`vdpbf16ps`, Zen 4+, Cooper Lake+) and on NEON with FEAT_BF16 (`bfmmla`).
    /// Ignores `KILN_ISA`.
    pub fn supports(self, dtype: DType) -> bool {
        match dtype {
            DType::F32 => self.is_supported(),
            DType::BF16 => match self {
                Isa::Avx512 => detect_avx512() && detect_avx512_bf16(),
                Isa::Neon => detect_neon() && detect_neon_bf16(),
                Isa::Portable | Isa::Avx2Fma => false,
            },
        }
    }

    /// Every ISA this host can run, from least to most capable (always starts with [`Isa::Portable`]).
    ///
    /// Tests and benches iterate over this so that every tier the host has is exercised, not only the best one.
    /// Ignores `KILN_ISA`.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.is_supported()).collect()
    }

    /// The ISA kernels use by default: the most capable supported one, capped by `KILN_ISA` if set.
    ///
    /// Computed once per process (the environment is read on the first call).
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            let cap = match std::env::var(ENV_ISA_CAP) {
                Ok(value) if !value.trim().is_empty() => match value.parse::<Isa>() {
                    Ok(isa) => Some(isa),
                    Err(err) => {
                        eprintln!("kiln: ignoring {ENV_ISA_CAP}: {err}");
                        None
                    }
                },
                _ => None,
            };
            Isa::best_with_cap(&Isa::available(), cap)
        })
    }

    /// The pure rule behind [`Isa::best`]: the most capable ISA of `available` that does not exceed `cap`.
    ///
    /// An ISA exceeds the cap when it is of a higher level, or of another architecture than the cap (so a cap from
    /// another architecture leaves only [`Isa::Portable`]). `available` should contain `Portable`; if nothing
    /// qualifies, `Portable` is returned.
    pub fn best_with_cap(available: &[Isa], cap: Option<Isa>) -> Isa {
        available
            .iter()
            .copied()
            .filter(|isa| match cap {
                None => true,
                Some(cap) => *isa == Isa::Portable || (isa.arch() == cap.arch() && isa.level() <= cap.level()),
            })
            .max_by_key(|isa| isa.level())
            .unwrap_or(Isa::Portable)
    }

    /// Parses a comma-separated ISA list such as `"avx2,avx512"` (spaces allowed, empty items ignored). The names
    /// of bf16 extensions ([`Isa::bf16_name`]) may appear too and are not tiers: they are left out here and read
    /// by [`Isa::testable_bf16`].
    pub fn parse_list(list: &str) -> Result<Vec<Isa>> {
        list.split(',')
            .map(str::trim)
            .filter(|item| {
                !item.is_empty() && !Isa::ALL.iter().any(|i| i.bf16_name() == Some(&item.to_ascii_lowercase()))
            })
            .map(str::parse)
            .collect()
    }

    /// The name of this tier's bf16 arithmetic extension, as `KILN_REQUIRE_ISA` lists it: `avx512bf16`
    /// (`vdpbf16ps`) and `neonbf16` (FEAT_BF16); `None` for tiers without one.
    pub const fn bf16_name(self) -> Option<&'static str> {
        match self {
            Isa::Avx512 => Some("avx512bf16"),
            Isa::Neon => Some("neonbf16"),
            Isa::Portable | Isa::Avx2Fma => None,
        }
    }

    /// Gate for tests of this tier's native bf16 kernels, like [`Isa::testable`]: `Ok(false)` (print `skipped`)
    /// when the CPU lacks the extension, an error when `KILN_REQUIRE_ISA` lists [`Isa::bf16_name`] nonetheless.
    pub fn testable_bf16(self) -> Result<bool> {
        let list = std::env::var(ENV_REQUIRE_ISA).unwrap_or_default();
        Isa::gate_bf16(self, self.supports(DType::BF16), &list)
    }

    /// The pure rule behind [`Isa::testable_bf16`], given whether the CPU has the extension and the
    /// `KILN_REQUIRE_ISA` list.
    pub fn gate_bf16(isa: Isa, supported: bool, require_list: &str) -> Result<bool> {
        Isa::parse_list(require_list)?;
        let required = isa
            .bf16_name()
            .is_some_and(|name| require_list.split(',').any(|item| item.trim().eq_ignore_ascii_case(name)));
        match (supported, required) {
            (true, _) => Ok(true),
            (false, true) => Err(KernelError::IsaRequired { isa: isa.bf16_name().unwrap_or("bf16") }),
            (false, false) => Ok(false),
        }
    }

    /// The ISAs listed in `KILN_REQUIRE_ISA` (empty when unset).
    pub fn required() -> Result<Vec<Isa>> {
        match std::env::var(ENV_REQUIRE_ISA) {
            Ok(list) => Isa::parse_list(&list),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// Gate for per-ISA tests: `Ok(true)` when the host runs this ISA; `Ok(false)` when it does not (the caller
    /// prints `skipped`); an error when it does not but `KILN_REQUIRE_ISA` requires it (or that variable is
    /// malformed).
    pub fn testable(self) -> Result<bool> {
        Isa::gate(self, self.is_supported(), &Isa::required()?)
    }

    /// The pure rule behind [`Isa::testable`].
    pub fn gate(isa: Isa, supported: bool, required: &[Isa]) -> Result<bool> {
        if supported {
            Ok(true)
        } else if required.contains(&isa) {
            Err(KernelError::IsaRequired { isa: isa.name() })
        } else {
            Ok(false)
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isa {
    type Err = KernelError;

    /// Accepts the [`Isa::name`]s, case-insensitively, plus the aliases `scalar`/`wide` (portable),
    /// `avx2fma`/`fma` (AVX2) and `avx512f`/`avx-512` (AVX-512).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portable" | "scalar" | "wide" => Ok(Isa::Portable),
            "avx2" | "avx2fma" | "avx2+fma" | "fma" => Ok(Isa::Avx2Fma),
            "avx512" | "avx512f" | "avx-512" => Ok(Isa::Avx512),
            "neon" | "asimd" => Ok(Isa::Neon),
            _ => Err(KernelError::UnknownIsa(s.to_string())),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn detect_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_avx2_fma() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn detect_avx512() -> bool {
    detect_avx2_fma()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_avx512() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn detect_avx512_bf16() -> bool {
    std::arch::is_x86_feature_detected!("avx512bf16")
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_avx512_bf16() -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
fn detect_neon_bf16() -> bool {
    std::arch::is_aarch64_feature_detected!("bf16")
}

#[cfg(not(target_arch = "aarch64"))]
fn detect_neon_bf16() -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
fn detect_neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}

#[cfg(not(target_arch = "aarch64"))]
fn detect_neon() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86_ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2Fma, Isa::Avx512];

    #[test]
    fn cap_never_raises() {
        let avx2_host = [Isa::Portable, Isa::Avx2Fma];
        assert_eq!(Isa::best_with_cap(&avx2_host, Some(Isa::Avx512)), Isa::Avx2Fma);
        assert_eq!(Isa::best_with_cap(&avx2_host, None), Isa::Avx2Fma);
        assert_eq!(Isa::best_with_cap(&[Isa::Portable], Some(Isa::Avx512)), Isa::Portable);
    }

    #[test]
    fn cap_lowers() {
        assert_eq!(Isa::best_with_cap(&X86_ALL, None), Isa::Avx512);
        assert_eq!(Isa::best_with_cap(&X86_ALL, Some(Isa::Avx512)), Isa::Avx512);
        assert_eq!(Isa::best_with_cap(&X86_ALL, Some(Isa::Avx2Fma)), Isa::Avx2Fma);
        assert_eq!(Isa::best_with_cap(&X86_ALL, Some(Isa::Portable)), Isa::Portable);
        // A cap from another architecture leaves only the portable path.
        assert_eq!(Isa::best_with_cap(&X86_ALL, Some(Isa::Neon)), Isa::Portable);
        let arm = [Isa::Portable, Isa::Neon];
        assert_eq!(Isa::best_with_cap(&arm, None), Isa::Neon);
        assert_eq!(Isa::best_with_cap(&arm, Some(Isa::Avx2Fma)), Isa::Portable);
        assert_eq!(Isa::best_with_cap(&[], None), Isa::Portable);
    }

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(isa.name().parse::<Isa>().unwrap(), isa);
            assert_eq!(isa.to_string().to_uppercase().parse::<Isa>().unwrap(), isa);
        }
        assert_eq!("sse9".parse::<Isa>(), Err(KernelError::UnknownIsa("sse9".into())));
    }

    #[test]
    fn list_parsing() {
        assert_eq!(Isa::parse_list("avx2,avx512").unwrap(), vec![Isa::Avx2Fma, Isa::Avx512]);
        assert_eq!(Isa::parse_list(" avx2 , ,neon ").unwrap(), vec![Isa::Avx2Fma, Isa::Neon]);
        assert_eq!(Isa::parse_list("").unwrap(), vec![]);
        assert!(Isa::parse_list("avx2,bogus").is_err());
        // bf16 extensions are requirements, not tiers.
        assert_eq!(Isa::parse_list("avx2,avx512,AVX512BF16,neonbf16").unwrap(), vec![Isa::Avx2Fma, Isa::Avx512]);
    }

    #[test]
    fn gate_fails_only_when_required() {
        assert_eq!(Isa::gate(Isa::Avx512, true, &[]), Ok(true));
        assert_eq!(Isa::gate(Isa::Avx512, false, &[]), Ok(false));
        assert_eq!(Isa::gate(Isa::Avx512, false, &[Isa::Avx2Fma]), Ok(false));
        assert_eq!(Isa::gate(Isa::Avx512, false, &[Isa::Avx512]), Err(KernelError::IsaRequired { isa: "avx512" }));
    }

    #[test]
    fn bf16_gate_fails_only_when_required() {
        assert_eq!(Isa::gate_bf16(Isa::Avx512, true, "avx512bf16"), Ok(true));
        assert_eq!(Isa::gate_bf16(Isa::Avx512, false, "avx2,avx512"), Ok(false));
        assert_eq!(
            Isa::gate_bf16(Isa::Avx512, false, "avx2, AVX512BF16"),
            Err(KernelError::IsaRequired { isa: "avx512bf16" })
        );
        // Another tier's extension does not require this one's.
        assert_eq!(Isa::gate_bf16(Isa::Avx512, false, "neonbf16"), Ok(false));
        assert!(Isa::gate_bf16(Isa::Avx512, false, "avx512,bogus").is_err());
    }

    #[test]
    fn host_detection_is_consistent() {
        let available = Isa::available();
        assert_eq!(available.first(), Some(&Isa::Portable));
        // AVX-512 is only reported together with AVX2+FMA.
        if available.contains(&Isa::Avx512) {
            assert!(available.contains(&Isa::Avx2Fma));
        }
        assert!(available.contains(&Isa::best()));
        for isa in Isa::ALL {
            // A tier computes in f32 exactly where it runs; bf16 only on a tier that runs, and never on the tiers
            // without a bf16 extension.
            assert_eq!(isa.supports(DType::F32), isa.is_supported());
            if isa.supports(DType::BF16) {
                assert!(isa.is_supported() && matches!(isa, Isa::Avx512 | Isa::Neon), "{isa}");
            }
        }
    }

    /// `KILN_REQUIRE_ISA` is the contract with CI: every ISA it names must be detected on this host.
    #[test]
    fn required_isas_are_present() {
        let required = Isa::required().expect("KILN_REQUIRE_ISA must parse");
        for isa in Isa::ALL {
            match isa.testable() {
                Ok(true) => println!("isa {isa}: detected"),
                Ok(false) => println!("isa {isa}: skipped (not detected on this host)"),
                Err(err) => panic!("{err}"),
            }
        }
        for isa in required {
            assert!(isa.is_supported(), "KILN_REQUIRE_ISA names {isa}, which this host lacks");
        }
    }
}
