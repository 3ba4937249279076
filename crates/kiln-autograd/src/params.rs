//! [`Params`]: the one copy of every parameter's value — trainable weights and non-trainable state such as moving
//! statistics — shared read-only by every replica's [`Tape`](crate::Tape) during a step and written between steps
//! (by the optimizer, by [`Recording::assign`](crate::Recording::assign)ed state, by loading a model).
//!
//! Each value carries a *version* that changes whenever the value may have changed (every mutable access), so
//! that anything derived from a value — a convolution's packed or Winograd-transformed weights — is rebuilt once
//! per version and reused until then. Versions come from one process-wide counter: a version is never reused, so
//! a derived value keyed by `(parameter, version)` cannot be mistaken for one made from another store.

use std::sync::atomic::{AtomicU64, Ordering};

use kiln_kernels::AlignedVec;
use kiln_kernels::optim::{Stream, stream_buffer};
use kiln_tensor::Tensor;

use crate::dims::Dims;
use crate::error::{AutogradError, Result};

/// A parameter's handle: its position in its [`Params`] (registration order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub(crate) u32);

impl ParamId {
    /// The parameter's position in registration order.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The id of the `i`-th registered parameter (an error at use if there is none).
    pub fn from_index(i: usize) -> ParamId {
        ParamId(u32::try_from(i).unwrap_or(u32::MAX))
    }
}

fn next_version() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One parameter: name, shape, value, whether the optimizer trains it, and the version of its value.
#[derive(Debug)]
struct Param {
    name: String,
    dims: Dims,
    value: AlignedVec,
    trainable: bool,
    version: u64,
}

/// The parameter store: one value per parameter, with a name, a shape, whether the optimizer trains it, and a
/// version that changes whenever the value may have changed (every mutable access).
#[derive(Debug, Default)]
pub struct Params {
    entries: Vec<Param>,
}

impl Clone for Params {
    /// A copy with the same values; its versions are new (a copy may diverge from the original).
    fn clone(&self) -> Self {
        let entries = self
            .entries
            .iter()
            .map(|p| Param {
                name: p.name.clone(),
                dims: p.dims,
                value: p.value.clone(),
                trainable: p.trainable,
                version: next_version(),
            })
            .collect();
        Params { entries }
    }
}

impl Params {
    /// An empty store.
    pub fn new() -> Self {
        Params::default()
    }

    /// Registers a parameter with its initial value: trainable (a weight the optimizer updates) or not (state
    /// such as a moving mean, written by [`Recording::assign`](crate::Recording::assign) or by the user).
    pub fn add(&mut self, name: impl Into<String>, value: &Tensor, trainable: bool) -> Result<ParamId> {
        let dims = Dims::new(value.dims())?;
        let id = u32::try_from(self.entries.len())
            .map_err(|_| AutogradError::Alloc { what: "parameter handles", elements: self.entries.len() })?;
        let mut data = stream_buffer(value.len(), Stream::Value)
            .map_err(|_| AutogradError::Alloc { what: "parameter", elements: value.len() })?;
        data.copy_from_slice(value.as_slice());
        self.entries.push(Param { name: name.into(), dims, value: data, trainable, version: next_version() });
        Ok(ParamId(id))
    }

    fn get(&self, id: ParamId) -> Result<&Param> {
        self.entries.get(id.index()).ok_or(AutogradError::UnknownParam { index: id.0 })
    }

    fn get_mut(&mut self, id: ParamId) -> Result<&mut Param> {
        self.entries.get_mut(id.index()).ok_or(AutogradError::UnknownParam { index: id.0 })
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every id, in registration order.
    pub fn ids(&self) -> impl Iterator<Item = ParamId> + '_ {
        (0..self.entries.len()).map(ParamId::from_index)
    }

    /// The id of the parameter named `name`.
    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.entries.iter().position(|p| p.name == name).map(ParamId::from_index)
    }

    /// A parameter's name (`conv2d/kernel`, …).
    pub fn name(&self, id: ParamId) -> Result<&str> {
        Ok(&self.get(id)?.name)
    }

    /// A parameter's dimensions.
    pub fn dims(&self, id: ParamId) -> Result<Dims> {
        Ok(self.get(id)?.dims)
    }

    /// Whether the optimizer trains this parameter.
    pub fn trainable(&self, id: ParamId) -> Result<bool> {
        Ok(self.get(id)?.trainable)
    }

    /// A parameter's value.
    pub fn value(&self, id: ParamId) -> Result<&[f32]> {
        Ok(self.get(id)?.value.as_slice())
    }

    /// The version of a parameter's value: it changes whenever the value may have changed.
    pub fn version(&self, id: ParamId) -> Result<u64> {
        Ok(self.get(id)?.version)
    }

    /// Mutable access to a parameter's value (its version changes).
    pub fn value_mut(&mut self, id: ParamId) -> Result<&mut [f32]> {
        let p = self.get_mut(id)?;
        p.version = next_version();
        Ok(p.value.as_mut_slice())
    }

    /// Overwrites a parameter's value; the length must match.
    pub fn set_value(&mut self, id: ParamId, value: &[f32]) -> Result<()> {
        let p = self.get_mut(id)?;
        if p.value.len() != value.len() {
            return Err(AutogradError::Shape {
                op: "set_value",
                what: "parameter value",
                expected: format!("{} elements for {}", p.value.len(), p.name),
                got: Dims::new(&[value.len()])?,
            });
        }
        p.value.copy_from_slice(value);
        p.version = next_version();
        Ok(())
    }

    /// Visits every parameter with its mutable value (every version changes) — what an optimizer step needs.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(ParamId, bool, &mut [f32]) -> Result<()>) -> Result<()> {
        for (i, p) in self.entries.iter_mut().enumerate() {
            p.version = next_version();
            f(ParamId::from_index(i), p.trainable, p.value.as_mut_slice())?;
        }
        Ok(())
    }

    /// The scalars in all parameters.
    pub fn count(&self) -> usize {
        self.entries.iter().map(|p| p.value.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_change_on_every_mutable_access_and_never_repeat() {
        let mut p = Params::new();
        let a = p.add("a", &Tensor::zeros(&[2]).unwrap(), true).unwrap();
        let v0 = p.version(a).unwrap();
        let _ = p.value(a).unwrap();
        assert_eq!(p.version(a).unwrap(), v0, "reading keeps the version");
        p.set_value(a, &[1.0, 2.0]).unwrap();
        let v1 = p.version(a).unwrap();
        assert_ne!(v1, v0);
        p.value_mut(a).unwrap()[0] = 3.0;
        let v2 = p.version(a).unwrap();
        assert!(v2 != v1 && v2 != v0);
        let copy = p.clone();
        assert_eq!(copy.value(a).unwrap(), &[3.0, 2.0]);
        assert_ne!(copy.version(a).unwrap(), v2, "a copy's versions are its own");
        assert!(p.set_value(a, &[1.0]).is_err());
        assert!(p.value(ParamId::from_index(7)).is_err());
    }
}
