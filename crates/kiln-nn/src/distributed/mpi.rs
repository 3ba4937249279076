//! [`Mpi`]: the ranks of an MPI job (Open MPI or MPICH through the `mpi` crate, rsmpi).
//!
//! A model calls its collectives from whichever thread of its pool runs the step, so MPI is initialised for
//! calls from any thread (`MPI_THREAD_MULTIPLE`; at least `SERIALIZED`) and a mutex keeps them one at a time;
//! the buffers go to MPI in place, without copies. An MPI collective cannot be cancelled, so the bound on a
//! wait is a watchdog: a collective still running after the timeout — a peer died or stopped — makes the
//! watchdog print why and abort the whole job (`MPI_Abort`), every rank with it, rather than hang.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mpi::Threading;
use mpi::datatype::{Partition, PartitionMut};
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};

use super::Collective;
use crate::error::{NnError, Result};

/// The exit code of a job the watchdog aborts.
const ABORT_CODE: i32 = 70;

/// This process's rank in the MPI job it was started in (`mpirun -n N …`, `srun …`; alone, a job of one).
pub struct Mpi {
    rank: usize,
    size: usize,
    timeout: Duration,
    /// Held during every collective: one at a time, whatever thread calls. Dropping the universe finalises.
    universe: Mutex<Option<Universe>>,
    watch: Arc<Watch>,
}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpi").field("rank", &self.rank).field("size", &self.size).finish_non_exhaustive()
    }
}

/// What the watchdog watches: the collective in progress (its name and deadline, in ms since `start`).
struct Watch {
    start: Instant,
    /// 0: none in progress.
    deadline_ms: AtomicU64,
    what: Mutex<&'static str>,
    done: AtomicBool,
}

impl Mpi {
    /// Initialises MPI; a collective still running after `timeout` aborts the job (see the module docs).
    /// Call it once per process (MPI cannot be initialised twice).
    pub fn init(timeout: Duration) -> Result<Mpi> {
        let fail = |message: String| NnError::Distributed { rank: 0, message };
        let (universe, level) = mpi::initialize_with_threading(Threading::Multiple)
            .ok_or_else(|| fail("MPI is already initialised in this process".into()))?;
        if level < Threading::Serialized {
            return Err(fail(format!("the MPI library offers {level:?} threading; Kiln needs Serialized")));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let watch = Arc::new(Watch {
            start: Instant::now(),
            deadline_ms: AtomicU64::new(0),
            what: Mutex::new(""),
            done: AtomicBool::new(false),
        });
        let w = watch.clone();
        let multiple = level == Threading::Multiple;
        std::thread::Builder::new()
            .name("kiln-mpi-watchdog".into())
            .spawn(move || watchdog(&w, rank, timeout, multiple))
            .map_err(|e| fail(format!("cannot start the MPI watchdog: {e}")))?;
        Ok(Mpi { rank, size, timeout, universe: Mutex::new(Some(universe)), watch })
    }

    /// Runs `f` on the world communicator, one collective at a time, under the watchdog.
    fn collective(&self, what: &'static str, f: impl FnOnce(&SimpleCommunicator)) -> Result<()> {
        let guard = self.universe.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(NnError::Distributed { rank: self.rank, message: format!("{what} after MPI was finalised") });
        }
        *self.watch.what.lock().unwrap_or_else(|e| e.into_inner()) = what;
        let deadline = self.watch.start.elapsed() + self.timeout;
        self.watch.deadline_ms.store(deadline.as_millis().max(1) as u64, Ordering::Release);
        f(&SimpleCommunicator::world());
        self.watch.deadline_ms.store(0, Ordering::Release);
        drop(guard);
        Ok(())
    }
}

/// Watches the collective in progress; past its deadline, says so and ends the job.
fn watchdog(w: &Watch, rank: usize, timeout: Duration, multiple: bool) {
    let tick = (timeout / 10).clamp(Duration::from_millis(10), Duration::from_millis(500));
    while !w.done.load(Ordering::Acquire) {
        std::thread::sleep(tick);
        let deadline = w.deadline_ms.load(Ordering::Acquire);
        if deadline != 0 && w.start.elapsed().as_millis() as u64 > deadline {
            let what = *w.what.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "error: distributed training, rank {rank}: {what} did not complete within {timeout:?}: a peer rank \
                 died or stopped responding; ending the job"
            );
            if multiple {
                SimpleCommunicator::world().abort(ABORT_CODE);
            }
            // Without MPI_THREAD_MULTIPLE this thread may not call MPI: leaving unfinalised ends the job too.
            std::process::exit(ABORT_CODE);
        }
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_gather(&self, local: &[f32], out: &mut [f32]) -> Result<()> {
        if out.len() != local.len() * self.size {
            return Err(NnError::Distributed {
                rank: self.rank,
                message: format!("all_gather of {} values into {}", local.len(), out.len()),
            });
        }
        self.collective("all_gather", |world| world.all_gather_into(local, out))
    }

    fn all_to_all(&self, send: &[f32], out: &mut [f32]) -> Result<()> {
        if out.len() != send.len() || !send.len().is_multiple_of(self.size) {
            return Err(NnError::Distributed {
                rank: self.rank,
                message: format!("all_to_all of {} values into {} for {} ranks", send.len(), out.len(), self.size),
            });
        }
        // Counts of zero for this rank's own block: MPI copies nothing to itself.
        let Ok(block) = mpi::Count::try_from(send.len() / self.size) else {
            return Err(NnError::Distributed {
                rank: self.rank,
                message: format!("all_to_all blocks of {} values exceed MPI's counts", send.len() / self.size),
            });
        };
        let counts: Vec<mpi::Count> = (0..self.size).map(|q| if q == self.rank { 0 } else { block }).collect();
        let displs: Vec<mpi::Count> = (0..self.size as mpi::Count).map(|q| q * block).collect();
        self.collective("all_to_all", |world| {
            let sent = Partition::new(send, &counts[..], &displs[..]);
            let mut received = PartitionMut::new(out, &counts[..], &displs[..]);
            world.all_to_all_varcount_into(&sent, &mut received)
        })
    }

    fn broadcast(&self, root: usize, buf: &mut [f32]) -> Result<()> {
        if root >= self.size {
            return Err(NnError::Distributed {
                rank: self.rank,
                message: format!("broadcast from rank {root} of {}", self.size),
            });
        }
        self.collective("broadcast", |world| world.process_at_rank(root as i32).broadcast_into(buf))
    }
}

impl Drop for Mpi {
    /// Finalises MPI (a synchronisation of all ranks, under the watchdog too).
    fn drop(&mut self) {
        let mut guard = self.universe.lock().unwrap_or_else(|e| e.into_inner());
        *self.watch.what.lock().unwrap_or_else(|e| e.into_inner()) = "MPI_Finalize";
        let deadline = self.watch.start.elapsed() + self.timeout;
        self.watch.deadline_ms.store(deadline.as_millis().max(1) as u64, Ordering::Release);
        drop(guard.take());
        self.watch.deadline_ms.store(0, Ordering::Release);
        self.watch.done.store(true, Ordering::Release);
    }
}
