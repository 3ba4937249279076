//! [`ThreadGroup`]: ranks that are threads of one process, exchanging buffers through shared memory — the
//! in-process stand-in for MPI that tests the cross-rank contract without an MPI library.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Collective;
use crate::error::{NnError, Result};

/// How long a rank waits for its peers before a collective fails, unless [`ThreadGroup::with_timeout`] says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// One rank of a group of ranks that are threads of one process, exchanging buffers through shared memory;
/// each thread owns one member. A member that is dropped (its thread finished or panicked) makes its peers'
/// next collective fail naming it, as does a peer that does not arrive within the timeout.
#[derive(Debug)]
pub struct ThreadGroup {
    shared: Arc<Shared>,
    rank: usize,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<Round>,
    changed: Condvar,
    timeout: Duration,
}

/// One exchange at a time: every rank deposits, then every rank reads, then the next round may start.
#[derive(Debug)]
struct Round {
    bufs: Vec<Vec<f32>>,
    deposited: Vec<bool>,
    /// All ranks deposited; readers are copying.
    ready: bool,
    read: usize,
    left: Vec<bool>,
}

impl ThreadGroup {
    /// The `size` members of a new group, rank 0 first.
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        Self::with_timeout(size, DEFAULT_TIMEOUT)
    }

    /// As [`ThreadGroup::new`], failing a collective whose peers do not all arrive within `timeout`.
    pub fn with_timeout(size: usize, timeout: Duration) -> Vec<ThreadGroup> {
        let shared = Arc::new(Shared {
            state: Mutex::new(Round {
                bufs: vec![Vec::new(); size],
                deposited: vec![false; size],
                ready: false,
                read: 0,
                left: vec![false; size],
            }),
            changed: Condvar::new(),
            timeout,
        });
        (0..size).map(|rank| ThreadGroup { shared: shared.clone(), rank }).collect()
    }

    fn lock(&self) -> MutexGuard<'_, Round> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (until the deadline) while `blocked` holds; fails naming a peer that left or did not arrive.
    fn wait<'g>(
        &self,
        mut g: MutexGuard<'g, Round>,
        deadline: Instant,
        what: &str,
        blocked: impl Fn(&Round) -> bool,
    ) -> Result<MutexGuard<'g, Round>> {
        while blocked(&g) {
            if let Some(peer) = (0..g.left.len()).find(|&p| g.left[p] && !g.deposited[p]) {
                return Err(NnError::Distributed { rank: peer, message: format!("left the group during {what}") });
            }
            let now = Instant::now();
            if now >= deadline {
                let missing = (0..g.deposited.len()).find(|&p| !g.deposited[p]).unwrap_or(self.rank);
                return Err(NnError::Distributed {
                    rank: missing,
                    message: format!("did not join {what} within {:.0?}", self.shared.timeout),
                });
            }
            g = self.shared.changed.wait_timeout(g, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        Ok(g)
    }

    /// One round: deposits `local`, waits for every rank's, lets `read` see them all, and waits no further.
    fn exchange(&self, what: &str, local: &[f32], read: impl FnOnce(&[Vec<f32>]) -> Result<()>) -> Result<()> {
        let deadline = Instant::now() + self.shared.timeout;
        // A rank that finished reading the last round waits here until every peer has read it too.
        let mut g = self.wait(self.lock(), deadline, what, |r| r.ready)?;
        g.bufs[self.rank].clear();
        g.bufs[self.rank].extend_from_slice(local);
        g.deposited[self.rank] = true;
        if g.deposited.iter().all(|&d| d) {
            g.ready = true;
            self.shared.changed.notify_all();
        }
        let mut g = self.wait(g, deadline, what, |r| !r.ready)?;
        let res = read(&g.bufs);
        g.read += 1;
        if g.read == g.bufs.len() {
            g.read = 0;
            g.ready = false;
            g.deposited.iter_mut().for_each(|d| *d = false);
            self.shared.changed.notify_all();
        }
        res
    }
}

impl Drop for ThreadGroup {
    fn drop(&mut self) {
        let mut g = self.lock();
        g.left[self.rank] = true;
        self.shared.changed.notify_all();
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.lock().bufs.len()
    }

    fn all_gather(&self, local: &[f32], out: &mut [f32]) -> Result<()> {
        self.exchange("all_gather", local, |bufs| {
            if out.len() != bufs.len() * local.len() {
                return Err(NnError::Distributed {
                    rank: self.rank,
                    message: format!("all_gather into {} values, expected {}", out.len(), bufs.len() * local.len()),
                });
            }
            for (p, (b, o)) in bufs.iter().zip(out.chunks_mut(local.len().max(1))).enumerate() {
                if b.len() != local.len() {
                    return Err(NnError::Distributed {
                        rank: p,
                        message: format!("sent {} values to all_gather, rank {} {}", b.len(), self.rank, local.len()),
                    });
                }
                o.copy_from_slice(b);
            }
            Ok(())
        })
    }

    fn all_to_all(&self, send: &[f32], out: &mut [f32]) -> Result<()> {
        self.exchange("all_to_all", send, |bufs| {
            let n = bufs.len();
            if out.len() != send.len() || !send.len().is_multiple_of(n) {
                return Err(NnError::Distributed {
                    rank: self.rank,
                    message: format!("all_to_all of {} values into {} for {n} ranks", send.len(), out.len()),
                });
            }
            let block = send.len() / n;
            for (p, (b, o)) in bufs.iter().zip(out.chunks_mut(block.max(1))).enumerate() {
                if b.len() != send.len() {
                    return Err(NnError::Distributed {
                        rank: p,
                        message: format!("sent {} values to all_to_all, rank {} {}", b.len(), self.rank, send.len()),
                    });
                }
                if p != self.rank {
                    o.copy_from_slice(&b[self.rank * block..(self.rank + 1) * block]);
                }
            }
            Ok(())
        })
    }

    fn broadcast(&self, root: usize, buf: &mut [f32]) -> Result<()> {
        let local = if self.rank == root { buf.to_vec() } else { Vec::new() };
        self.exchange("broadcast", &local, |bufs| {
            let src = bufs.get(root).ok_or_else(|| NnError::Distributed {
                rank: self.rank,
                message: format!("broadcast from rank {root} of a group of {}", bufs.len()),
            })?;
            if src.len() != buf.len() {
                return Err(NnError::Distributed {
                    rank: root,
                    message: format!("broadcast {} values, rank {} expected {}", src.len(), self.rank, buf.len()),
                });
            }
            buf.copy_from_slice(src);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_in_rank_order_many_rounds() {
        let group = ThreadGroup::new(3);
        std::thread::scope(|s| {
            for m in &group {
                s.spawn(move || {
                    for round in 0..50 {
                        let local = [m.rank() as f32, round as f32];
                        let mut out = [0.0; 6];
                        m.all_gather(&local, &mut out).unwrap();
                        assert_eq!(out, [0.0, round as f32, 1.0, round as f32, 2.0, round as f32]);
                        let mut b = [m.rank() as f32 + 10.0; 2];
                        m.broadcast(2, &mut b).unwrap();
                        assert_eq!(b, [12.0; 2]);
                        // Block j of rank q's send holds 10q + j: rank r receives 10q + r from every q.
                        let send: Vec<f32> = (0..3).map(|j| (10 * m.rank() + j) as f32 + round as f32).collect();
                        let mut got = [-1.0; 3];
                        m.all_to_all(&send, &mut got).unwrap();
                        // …except from itself: that block stays as it was.
                        let want: Vec<f32> = (0..3)
                            .map(|q| if q == m.rank() { -1.0 } else { (10 * q + m.rank()) as f32 + round as f32 })
                            .collect();
                        assert_eq!(got.to_vec(), want);
                    }
                });
            }
        });
    }

    #[test]
    fn a_peer_that_leaves_or_stays_away_is_named() {
        let mut group = ThreadGroup::with_timeout(2, Duration::from_millis(200));
        let gone = group.pop().unwrap();
        drop(gone);
        let err = group[0].all_gather(&[1.0], &mut [0.0; 2]).unwrap_err();
        assert!(matches!(err, NnError::Distributed { rank: 1, .. }), "{err}");

        let group = ThreadGroup::with_timeout(2, Duration::from_millis(100));
        let t0 = Instant::now();
        let err = group[1].broadcast(0, &mut [0.0]).unwrap_err();
        assert!(matches!(err, NnError::Distributed { rank: 0, .. }), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
