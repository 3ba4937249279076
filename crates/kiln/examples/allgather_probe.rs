//! The exchange a training step across ranks makes, timed on its own: `all_gather` of one replica's record
//! (loss, counts, a flag and the gradient of every parameter) through Kiln's MPI collective, for the seed
//! model's size and a few others. It feeds the scaling model in the README ("Beyond one machine").
//!
//! ```text
//! cargo build -p kiln --features distributed --example allgather_probe
//! mpirun -n 2 target/debug/examples/allgather_probe
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln::nn::distributed::{Collective, Mpi};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mpi = Arc::new(Mpi::init(Duration::from_secs(60))?);
    let (rank, size) = (mpi.rank(), mpi.size());
    // The seed model's record: 203,068 parameters, 8 flags, 3 head values.
    for floats in [1usize, 1_000, 50_000, 203_079, 1_000_000] {
        let local = vec![rank as f32; floats];
        let mut all = vec![0.0f32; floats * size];
        let mut times = Vec::new();
        for _ in 0..7 {
            let reps = 200;
            let mut sync = [0.0f32];
            mpi.broadcast(0, &mut sync)?;
            let t0 = Instant::now();
            for _ in 0..reps {
                mpi.all_gather(&local, &mut all)?;
            }
            times.push(t0.elapsed().as_secs_f64() / reps as f64);
        }
        times.sort_by(f64::total_cmp);
        if rank == 0 {
            println!(
                "{size} ranks, {floats} floats ({:.1} KB) per rank: all_gather best {:.1} µs, median {:.1} µs ({:.2} GB/s received per rank at best)",
                floats as f64 * 4.0 / 1e3,
                times[0] * 1e6,
                times[3] * 1e6,
                (size - 1) as f64 * floats as f64 * 4.0 / times[0] / 1e9
            );
        }
    }
    Ok(())
}
