//! The training jobs as ranks of an MPI job: `--mpi N` builds this binary with the `distributed` feature and
//! starts N copies under `mpirun`; a copy started by any MPI launcher (`mpirun`, `srun`) joins its job.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use kiln::nn::Model;

/// Whether this process was started by an MPI launcher (Open MPI, MPICH's Hydra, Slurm's PMI/PMIx).
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"].iter().any(|v| std::env::var_os(v).is_some())
}

/// The first of the launchers' variables `names` that is set to a number.
fn launcher_number(names: &[&str]) -> Option<usize> {
    names.iter().find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// This process's rank as its MPI launcher set it (0 when none did).
pub fn rank_from_env() -> usize {
    launcher_number(&["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"]).unwrap_or(0)
}

/// Ranks of the whole job as its MPI launcher set it (1 when none did).
pub fn world_size_from_env() -> usize {
    launcher_number(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"]).filter(|&n| n >= 1).unwrap_or(1)
}

/// Ranks of this job on this host (the launcher says; 1 when alone), to share the cores among them.
pub fn local_ranks() -> usize {
    launcher_number(&["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"])
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

/// Joins the MPI job this process was started in, when it was; the model then trains across its ranks. The
/// returned handle must live until training is over (dropping it finalises MPI).
#[cfg(feature = "distributed")]
pub fn join(model: &mut Model, timeout: Duration) -> Result<Option<Arc<kiln::nn::distributed::Mpi>>, String> {
    if !launched_by_mpi() {
        return Ok(None);
    }
    let mpi = Arc::new(kiln::nn::distributed::Mpi::init(timeout).map_err(|e| e.to_string())?);
    model.set_collective(mpi.clone()).map_err(|e| e.to_string())?;
    Ok(Some(mpi))
}

/// Without the `distributed` feature: alone, or a clear error when an MPI launcher started this binary.
#[cfg(not(feature = "distributed"))]
pub fn join(_model: &mut Model, _timeout: Duration) -> Result<Option<Arc<()>>, String> {
    if launched_by_mpi() {
        return Err("started by an MPI launcher, but this xtask was built without the `distributed` feature \
                    (use --mpi N, or build with --features distributed)"
            .into());
    }
    Ok(None)
}

/// `--mpi N`: builds xtask with the `distributed` feature (in `target/mpi`, so the plain build stays as it
/// is) and runs this job's command line, without `--mpi`, as N ranks under `mpirun`.
pub fn launch(ranks: usize, root: &Path) -> Result<(), String> {
    if ranks == 0 {
        return Err("--mpi must be at least 1".into());
    }
    let target = root.join("target").join("mpi");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--quiet", "--package", "xtask", "--features", "distributed", "--target-dir"])
        .arg(&target)
        .current_dir(root)
        .status()
        .map_err(|e| format!("--mpi: cannot run cargo: {e}"))?;
    if !built.success() {
        return Err("--mpi: building xtask with the `distributed` feature failed (it needs an MPI library and \
                    libclang: apt-get install openmpi-bin libopenmpi-dev libclang-dev)"
            .into());
    }
    let version = Command::new("mpirun")
        .arg("--version")
        .output()
        .map_err(|e| format!("--mpi: cannot run mpirun ({e}); install openmpi-bin (or MPICH)"))?;
    let open_mpi = String::from_utf8_lossy(&version.stdout).contains("Open MPI");
    let mut cmd = Command::new("mpirun");
    cmd.args(["-n", &ranks.to_string()]);
    if open_mpi {
        // More ranks than cores is allowed (each gets its share of threads); no pinning, as the ranks'
        // threads are many and the shares small. Root may run it inside a container.
        cmd.args(["--oversubscribe", "--bind-to", "none"]);
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    cmd.arg(target.join("debug").join("xtask"));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--mpi" {
            args.next();
        } else if !a.starts_with("--mpi=") {
            cmd.arg(a);
        }
    }
    let status = cmd.status().map_err(|e| format!("--mpi: cannot run mpirun: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("the MPI job failed ({status})")) }
}
