//! Buffers a network's fused CPU paths keep between calls: activations (a steady-state step
//! allocates none again) and the batch-1 path's Winograd weights ([`one_image`](super::one_image)).

use std::sync::{Mutex, MutexGuard};

use super::shape::ConvShape;
use super::tiling::Tiling;

/// Activation buffers kept between steps: a steady-state step allocates none of them again.
/// Every kernel writing into a taken buffer overwrites all of it, so stale values never leak.
#[derive(Debug, Default)]
pub(crate) struct Workspace {
    free: Mutex<Vec<Vec<f32>>>,
    /// Batch-1 inference's transformed weights, one per Winograd layer, kept between calls.
    pub(crate) winograd: Mutex<Vec<CachedLayer>>,
}

impl Workspace {
    fn free(&self) -> MutexGuard<'_, Vec<Vec<f32>>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of exactly `len` floats (stale contents).
    pub(crate) fn take(&self, len: usize) -> Vec<f32> {
        let mut free = self.free();
        match free.iter().position(|v| v.len() == len) {
            Some(i) => free.swap_remove(i),
            None => vec![0f32; len],
        }
    }

    pub(crate) fn give(&self, buffers: impl IntoIterator<Item = Vec<f32>>) {
        let mut free = self.free();
        free.extend(buffers);
        // Keep one step's worth (a change of batch size leaves the old sizes behind).
        if free.len() > 64 {
            let excess = free.len() - 64;
            free.drain(..excess);
        }
    }
}

/// One convolution's weights in Winograd form (`U` of its [`Tiling`], any scale folded in),
/// beside the weights and scale it was derived from.
#[derive(Debug, Default)]
pub(crate) struct CachedLayer {
    pub(crate) weight: Vec<f32>,
    /// Empty for a convolution without a scale.
    pub(crate) scale: Vec<f32>,
    pub(crate) u: Vec<f32>,
}

impl CachedLayer {
    /// Sizes the buffers for a convolution of shape `s`; true when they had another size
    /// (so nothing cached applies: the layer is derived afresh).
    pub(crate) fn prepare(&mut self, s: &ConvShape, scaled: bool) -> bool {
        let sizes = (
            s.cout * s.patch(),
            if scaled { s.cout } else { 0 },
            s.cout * Tiling::for_shape(s).positions() * s.cin,
        );
        if (self.weight.len(), self.scale.len(), self.u.len()) == sizes {
            return false;
        }
        self.weight = vec![0.0; sizes.0];
        self.scale = vec![0.0; sizes.1];
        self.u = vec![0.0; sizes.2];
        true
    }
}
