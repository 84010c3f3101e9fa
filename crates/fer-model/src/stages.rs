//! Runs a fixed list of stages (one image's layers) on every thread of rayon's pool at once:
//! each stage's chunks are claimed from a counter, and a stage starts once the previous one
//! is done (a spin wait). One hand-over to the pool per call instead of one per parallel
//! region, which is what batch-1 latency costs on a 2-core machine (20-30 µs per hand-over).
//! Optional background chunks (work no stage depends on) fill the time a thread would
//! otherwise spend waiting, and whatever is left runs after the last stage.
//!
//! Invariants: every chunk runs exactly once, on whichever thread claims it; a thread waits
//! only for chunks already claimed by a thread that is running them, so a helper that starts
//! late (or never) costs speed, never progress; every background chunk has run when
//! [`run_with_background`] returns; a panicking chunk stops the others' waits and the panic
//! reaches the caller.

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// `chunks` independent pieces of work; `run(c)` does piece `c`.
pub(crate) struct Stage<'a> {
    pub chunks: usize,
    pub run: Box<dyn Fn(usize) + Sync + 'a>,
}

impl<'a> Stage<'a> {
    pub fn new(chunks: usize, run: impl Fn(usize) + Sync + 'a) -> Self {
        Self {
            chunks,
            run: Box::new(run),
        }
    }
}

/// Sets the flag if dropped while its thread unwinds from a panic.
struct PanicFlag<'a>(&'a AtomicBool);

impl Drop for PanicFlag<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

/// A stage's progress: chunks claimed, chunks done.
#[derive(Default)]
struct Progress {
    claimed: AtomicUsize,
    done: AtomicUsize,
}

impl Progress {
    /// Claims and runs one chunk of `stage`; false when none is left to claim.
    fn run_one(&self, stage: &Stage<'_>) -> bool {
        // A load first, so that waiting threads polling an exhausted stage do not keep
        // incrementing the counter.
        if self.claimed.load(Ordering::Relaxed) >= stage.chunks {
            return false;
        }
        let chunk = self.claimed.fetch_add(1, Ordering::Relaxed);
        if chunk >= stage.chunks {
            return false;
        }
        (stage.run)(chunk);
        // Release: this chunk's writes are visible to whoever sees the count.
        self.done.fetch_add(1, Ordering::Release);
        true
    }

    fn finished(&self, stage: &Stage<'_>) -> bool {
        self.done.load(Ordering::Acquire) >= stage.chunks
    }
}

/// Runs `stages` in order, each stage's chunks spread over the calling pool's threads.
#[cfg(test)]
pub(crate) fn run(stages: &[Stage<'_>]) {
    run_with_background(stages, &Stage::new(0, |_| {}));
}

/// [`run`], with the chunks of `background` run by threads that would otherwise wait for a
/// stage to finish, and all of them done by the time it returns.
pub(crate) fn run_with_background(stages: &[Stage<'_>], background: &Stage<'_>) {
    let progress: Vec<Progress> = stages.iter().map(|_| Progress::default()).collect();
    let extra = Progress::default();
    let panicked = AtomicBool::new(false);
    let participate = || {
        let _flag = PanicFlag(&panicked);
        for (stage, progress) in stages.iter().zip(&progress) {
            while progress.run_one(stage) {}
            while !progress.finished(stage) {
                if panicked.load(Ordering::Acquire) {
                    return;
                }
                if !extra.run_one(background) {
                    std::hint::spin_loop();
                }
            }
        }
        while extra.run_one(background) {}
        while !extra.finished(background) {
            if panicked.load(Ordering::Acquire) {
                return;
            }
            std::hint::spin_loop();
        }
    };
    let helpers = rayon::current_num_threads().saturating_sub(1);
    rayon::scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|_| participate());
        }
        participate();
    });
}

/// A buffer that the chunks of one stage write in disjoint pieces and later stages read.
#[derive(Clone, Copy)]
pub(crate) struct Shared<'a> {
    ptr: *mut f32,
    len: usize,
    _buffer: PhantomData<&'a mut [f32]>,
}

// SAFETY: `Shared` is a `&mut [f32]` split by contract (see its methods); f32 is Send + Sync.
unsafe impl Send for Shared<'_> {}
// SAFETY: as above.
unsafe impl Sync for Shared<'_> {}

impl<'a> Shared<'a> {
    pub fn new(buffer: &'a mut [f32]) -> Self {
        Self {
            ptr: buffer.as_mut_ptr(),
            len: buffer.len(),
            _buffer: PhantomData,
        }
    }

    /// Elements `range`, to write.
    ///
    /// # Safety
    /// No other slice of these elements may be alive at the same time: the chunks of a stage
    /// take disjoint ranges, and no stage reads what the running stage writes.
    pub unsafe fn piece(&self, range: Range<usize>) -> &'a mut [f32] {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "piece out of bounds"
        );
        // SAFETY: in bounds (asserted); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }

    /// The whole buffer, to read.
    ///
    /// # Safety
    /// Nothing may write the buffer while the slice is alive: call it only in a stage after
    /// the one that wrote it.
    pub unsafe fn read(&self) -> &'a [f32] {
        // SAFETY: the pointer and length come from a live `&mut [f32]`; no writer by contract.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chunk runs once, and each stage sees the whole of the previous one's output,
    /// on 1, 2 and 3 threads.
    #[test]
    fn each_chunk_runs_once_after_the_whole_previous_stage() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut first = vec![0f32; 40];
            let mut second = vec![0f32; 8];
            let runs = AtomicUsize::new(0);
            {
                let (a, b) = (Shared::new(&mut first), Shared::new(&mut second));
                let runs = &runs;
                let stages = [
                    Stage::new(10, move |c| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        // SAFETY: chunk c alone writes elements 4c..4c+4.
                        let piece = unsafe { a.piece(4 * c..4 * c + 4) };
                        for (i, v) in piece.iter_mut().enumerate() {
                            *v += (4 * c + i) as f32;
                        }
                    }),
                    Stage::new(8, move |c| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        // SAFETY: stage 1 is done; chunk c alone writes element c of `b`.
                        let whole = unsafe { a.read() };
                        let total: f32 = whole.iter().sum();
                        // SAFETY: chunk c alone writes element c of `b`.
                        let piece = unsafe { b.piece(c..c + 1) };
                        piece[0] = total + c as f32;
                    }),
                ];
                pool.install(|| run(&stages));
            }
            assert_eq!(runs.into_inner(), 18, "{threads} threads");
            assert_eq!(first, (0..40).map(|i| i as f32).collect::<Vec<_>>());
            assert_eq!(second, (0..8).map(|c| 780.0 + c as f32).collect::<Vec<_>>());
        }
    }

    /// Background chunks all run, once each, whatever the thread count, and the stages still
    /// run in order around them.
    #[test]
    fn background_chunks_all_run_once() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let counts: Vec<AtomicUsize> = (0..25).map(|_| AtomicUsize::new(0)).collect();
            let order = std::sync::Mutex::new(Vec::new());
            let stages = [
                Stage::new(3, |c| order.lock().unwrap().push((0, c))),
                Stage::new(3, |c| order.lock().unwrap().push((1, c))),
            ];
            let background = Stage::new(counts.len(), |c| {
                counts[c].fetch_add(1, Ordering::Relaxed);
            });
            pool.install(|| run_with_background(&stages, &background));
            drop(stages);
            assert!(
                counts.iter().all(|c| c.load(Ordering::Relaxed) == 1),
                "{threads} threads"
            );
            let order = order.into_inner().unwrap();
            assert_eq!(order.len(), 6);
            assert!(order[..3].iter().all(|&(stage, _)| stage == 0), "{order:?}");
        }
    }

    /// A panicking chunk reaches the caller instead of leaving the other threads waiting.
    #[test]
    fn a_panicking_chunk_reaches_the_caller() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let stages = [
                Stage::new(4, |c| assert!(c != 2, "chunk 2 fails")),
                Stage::new(4, |_| {}),
            ];
            pool.install(|| run(&stages));
        }));
        assert!(outcome.is_err());
    }
}
