//! Buffers the seed CNN's fused CPU paths keep between calls: activations (a steady-state
//! step allocates none again) and the batch-1 path's Winograd weights.

use std::sync::{Mutex, MutexGuard};

/// Activation buffers kept between steps: a steady-state step allocates none of them again.
/// Every kernel writing into a taken buffer overwrites all of it, so stale values never leak.
#[derive(Debug, Default)]
pub(crate) struct Workspace {
    free: Mutex<Vec<Vec<f32>>>,
    /// Batch-1 inference's transformed weights, kept between calls.
    pub(crate) winograd: Mutex<WinogradWeights>,
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

/// conv2..conv5's weights in Winograd form (`cpu::winograd`'s `U`), each beside the raw weights
/// it was derived from.
#[derive(Debug, Default)]
pub(crate) struct WinogradWeights {
    /// Per layer (conv2..conv5): (raw weights, `U`).
    pub(super) layers: [(Vec<f32>, Vec<f32>); 4],
}
