//! Data-parallel training across processes (ranks): the contract and its transports.
//!
//! A model trained by several ranks splits each global batch over `R` replicas ([`crate::Model::set_replicas`]),
//! `R / N` of them on each of the `N` ranks, in rank order. Every parameter is cut into `N` contiguous shards,
//! one per rank. After its replicas' backward passes every rank sends each peer their losses, counts and the
//! gradients of that peer's shard ([`Collective::all_to_all`]); each rank reduces all `R` gradients of its shard
//! in replica order and steps the optimizer on it, and the updated shards go to every rank
//! ([`Collective::all_gather`]). So the reduction never depends on the transport's algorithm, every rank holds
//! the same weights after every step, and a run is **bitwise identical** to one process running the same `R`
//! replicas — whatever `N` and the threads per rank (every optimizer update is elementwise). The optimizer's
//! state stays sharded during an epoch and is gathered on every rank at its end, before a callback that may
//! save it, and before rank 0's state is copied to the others.
//!
//! Transports: [`ThreadGroup`] (ranks as threads of one process, for tests) and, with the `distributed` cargo
//! feature, `Mpi` over a real MPI library (Open MPI or MPICH).

mod thread_group;

#[cfg(feature = "distributed")]
mod mpi;

#[cfg(feature = "distributed")]
pub use mpi::Mpi;
pub use thread_group::ThreadGroup;

use crate::error::Result;

/// A group of ranks exchanging `f32` buffers. Every rank must make the same calls in the same order with
/// buffers of the same length. A dead or silent peer must not hang a rank: within a bounded time an
/// implementation either fails the call with [`crate::NnError::Distributed`] naming the peer ([`ThreadGroup`])
/// or ends the whole job with a message saying why (MPI, whose collectives cannot be cancelled).
pub trait Collective: Send + Sync {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// Every rank's `local` (the same length on every rank) concatenated in rank order into `out`
    /// (`size() · local.len()` long), on every rank. Values arrive bit for bit.
    fn all_gather(&self, local: &[f32], out: &mut [f32]) -> Result<()>;
    /// Block `j` of `send` (`size()` equal blocks) to rank `j`, and into block `q` of `out` (as long as `send`)
    /// the block rank `q` sent this rank, on every rank — except block `rank()` of `out`, which is left as it is
    /// (the caller has it in `send`: no copy to itself). Values arrive bit for bit.
    fn all_to_all(&self, send: &[f32], out: &mut [f32]) -> Result<()>;
    /// Rank `root`'s `buf` copied, bit for bit, into `buf` on every rank.
    fn broadcast(&self, root: usize, buf: &mut [f32]) -> Result<()>;
}

/// The group of one process alone: what a model with more than two replicas trains on, through the same step
/// as N ranks (so their bits agree).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_gather(&self, local: &[f32], out: &mut [f32]) -> Result<()> {
        if out.len() != local.len() {
            return Err(crate::NnError::config("model", "all_gather of one rank into a buffer of another size"));
        }
        out.copy_from_slice(local);
        Ok(())
    }

    fn all_to_all(&self, send: &[f32], out: &mut [f32]) -> Result<()> {
        // One rank: its own block only, which stays where it is.
        if out.len() != send.len() {
            return Err(crate::NnError::config("model", "all_to_all of one rank into a buffer of another size"));
        }
        Ok(())
    }

    fn broadcast(&self, _root: usize, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }
}

/// Which of a run's replicas this rank trains: `count` of them starting at `first`, of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    pub(crate) first: usize,
    pub(crate) count: usize,
    pub(crate) total: usize,
}

/// The replicas of rank `rank` of `ranks` when a run has `total` (it must be a multiple of the ranks, so that
/// every rank sends buffers of one length).
pub(crate) fn placement(total: usize, rank: usize, ranks: usize) -> Result<Placement> {
    if ranks == 0 || total == 0 || !total.is_multiple_of(ranks) {
        return Err(crate::NnError::config(
            "model",
            format!("{total} replicas cannot be spread evenly over {ranks} ranks (use a multiple of the ranks)"),
        ));
    }
    let count = total / ranks;
    Ok(Placement { first: rank * count, count, total })
}

/// The rows of a batch of `batch` samples each of `replicas` replicas trains: replica `r` takes the next
/// `batch / replicas` rows, one more for the first `batch % replicas` (so two replicas split as ⌈b/2⌉, ⌊b/2⌋).
pub(crate) fn replica_rows(batch: usize, replicas: usize, r: usize) -> std::ops::Range<usize> {
    let (q, m) = (batch / replicas, batch % replicas);
    let start = r * q + r.min(m);
    start..start + q + usize::from(r < m)
}

/// The values of a parameter of `n` that rank `rank` of `ranks` reduces and steps: its contiguous shard, the
/// shards of all ranks covering `0..n` in rank order.
pub(crate) fn shard(n: usize, rank: usize, ranks: usize) -> std::ops::Range<usize> {
    n * rank / ranks..n * (rank + 1) / ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_cover_the_batch_in_order() {
        for batch in 0..40 {
            for replicas in 1..7 {
                let mut next = 0;
                for r in 0..replicas {
                    let rows = replica_rows(batch, replicas, r);
                    assert_eq!(rows.start, next);
                    assert!(rows.len() == batch / replicas || rows.len() == batch / replicas + 1);
                    next = rows.end;
                }
                assert_eq!(next, batch);
            }
        }
        // Two replicas split as the single-process data-parallel step always has.
        assert_eq!(replica_rows(33, 2, 0), 0..17);
        assert_eq!(replica_rows(33, 2, 1), 17..33);
    }

    #[test]
    fn shards_cover_a_parameter_in_rank_order() {
        for n in 0..30 {
            for ranks in 1..6 {
                let mut next = 0;
                for r in 0..ranks {
                    let s = shard(n, r, ranks);
                    assert_eq!(s.start, next);
                    assert!(s.len() == n / ranks || s.len() == n / ranks + 1);
                    next = s.end;
                }
                assert_eq!(next, n);
            }
        }
        assert_eq!(shard(5, 0, 1), 0..5);
    }

    #[test]
    fn placement_needs_a_multiple_of_the_ranks() {
        assert_eq!(placement(4, 1, 2).unwrap(), Placement { first: 2, count: 2, total: 4 });
        assert_eq!(placement(2, 1, 2).unwrap(), Placement { first: 1, count: 1, total: 2 });
        assert!(placement(3, 0, 2).is_err());
        assert!(placement(0, 0, 1).is_err());
    }
}
