//! [`join_balanced`]: `rayon::join` for two halves of similar length, without the sleep/wake round trip.

use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest the calling thread spins for the other half before falling back to rayon's blocking wait.
const SPIN_MAX: Duration = Duration::from_millis(2);

/// `rayon::join(a, b)` for two pieces of work of about the same length (the data-parallel halves of a training
/// step, the two halves of the optimizer tail). When `b` has been taken by another thread, the calling thread
/// spin-waits (at most [`SPIN_MAX`]) for it to finish after `a` instead of entering rayon's latch wait, where it
/// soon sleeps and then needs a futex wake-up: on this project's 2-core VM that round trip cost ~50–100 µs per
/// join, i.e. 5–8 % of a flagship step. When `b` was not taken (no idle worker), nothing spins and rayon runs it
/// on the calling thread as usual. Results and their order are those of `rayon::join`.
pub(crate) fn join_balanced<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let started = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    rayon::join(
        || {
            let r = a();
            if started.load(Ordering::Acquire) {
                let t0 = Instant::now();
                let mut n = 0u32;
                while !done.load(Ordering::Acquire) {
                    spin_loop();
                    n = n.wrapping_add(1);
                    if n.is_multiple_of(256) && t0.elapsed() > SPIN_MAX {
                        break;
                    }
                }
            }
            r
        },
        || {
            started.store(true, Ordering::Release);
            let r = b();
            done.store(true, Ordering::Release);
            r
        },
    )
}
