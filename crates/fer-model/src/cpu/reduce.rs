//! Sums across images that do not depend on the thread count: per-group partial results
//! added element by element, the groups always in the same order.

use rayon::prelude::*;

/// `out[j] = sum over parts, in order, of part[j]`, parallel over j.
pub(crate) fn ordered_sum<'a>(
    parts: impl Iterator<Item = &'a [f32]> + Clone + Send + Sync,
    out: &mut [f32],
) {
    const CHUNK: usize = 4096;
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            chunk.fill(0.0);
            for part in parts.clone() {
                let part = &part[c * CHUNK..c * CHUNK + chunk.len()];
                for (o, &p) in chunk.iter_mut().zip(part) {
                    *o += p;
                }
            }
        });
}
