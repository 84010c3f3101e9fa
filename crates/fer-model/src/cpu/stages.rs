//! Runs a fixed list of stages (one image's layers) on every thread of rayon's pool at once:
//! each stage's chunks are claimed from a counter, and a stage starts once the previous one
//! is done (a spin wait). One hand-over to the pool per call instead of one per parallel
//! region, which is what batch-1 latency costs on a 2-core machine (20-30 µs per hand-over).
//! Optional background chunks (work no stage depends on) fill the time a thread would
//! otherwise spend waiting, and whatever is left runs after the last stage.
//!
//! The calling thread works from the first chunk; the pool's other threads are invited by
//! [`Handoff`]s and join as they wake. A helper then lingers for [`LINGER`], spinning for the
//! next call's hand-off, so that a stream of single images does not pay a thread's wake-up
//! per image (a lingering helper may serve a call from any pool).
//!
//! Invariants: every chunk runs exactly once, on whichever thread claims it; a thread waits
//! only for chunks already claimed by a thread that is running them, so a helper that starts
//! late (or never) costs speed, never progress; no helper touches a call's stages after
//! [`run_with_background`] returns (a hand-off not yet taken is withdrawn, one taken is waited
//! for); every background chunk has run when it returns; a panicking chunk stops the others'
//! waits and the panic reaches the caller.

use std::any::Any;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// `run` (the tests' entry), with the chunks of `background` run by threads that would otherwise wait for a
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
    // The caller works from the start (no hand-over to the pool and back, each a thread's
    // wake-up); the pool's other threads join as they wake, through cancellable hand-offs.
    let helpers = rayon::current_num_threads().saturating_sub(1);
    let job: &(dyn Fn() + Sync) = &participate;
    let handoffs = Handoffs((0..helpers).map(|_| Handoff::post(job)).collect());
    participate();
    handoffs.finish();
}

/// A [`Handoff`] state: posted, not yet taken.
const POSTED: u8 = 0;
/// Taken by a helper, which is running the job.
const TAKEN: u8 = 1;
/// The helper has finished the job (or unwound from it).
const DONE: u8 = 2;
/// Withdrawn by the caller before any helper took it: it will never run.
const WITHDRAWN: u8 = 3;

/// One pool thread's invitation to run a job that lives on the caller's stack. The caller
/// either withdraws it (never taken) or waits until it is done before the job goes out of
/// scope, so the job is never touched after the call returns.
struct Handoff {
    state: AtomicU8,
    /// The job, its lifetime erased; valid while `state` may still become `TAKEN`.
    job: *const (dyn Fn() + Sync + 'static),
    /// The helper's panic, handed back to the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `job` is a `Sync` closure, called only under the protocol above.
unsafe impl Send for Handoff {}
// SAFETY: as above.
unsafe impl Sync for Handoff {}

impl Handoff {
    /// Posts `job` to rayon's current pool (the global one outside any pool).
    fn post(job: &(dyn Fn() + Sync)) -> Arc<Self> {
        // SAFETY: only the lifetime changes; `finish` keeps the job alive while a helper may
        // run it (see the type's docs).
        let job: &'static (dyn Fn() + Sync) = unsafe { std::mem::transmute(job) };
        let handoff = Arc::new(Self {
            state: AtomicU8::new(POSTED),
            job,
            panic: Mutex::new(None),
        });
        if LINGERING.reserve() {
            LINGERING.send(Arc::clone(&handoff));
        } else {
            let helper = Arc::clone(&handoff);
            rayon::spawn(move || LINGERING.serve(helper));
        }
        handoff
    }

    /// The helper's side: runs the job unless the caller withdrew it.
    fn take(&self) {
        if self
            .state
            .compare_exchange(POSTED, TAKEN, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        // SAFETY: taken before being withdrawn, so the caller waits for DONE below.
        let job = unsafe { &*self.job };
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
            *self.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(panic);
        }
        self.state.store(DONE, Ordering::Release);
    }

    /// The caller's side: withdraws the job, or waits until the helper that took it is done;
    /// then the helper's panic, if any.
    fn finish(&self) -> Option<Box<dyn Any + Send>> {
        let withdrawn = self
            .state
            .compare_exchange(POSTED, WITHDRAWN, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if !withdrawn {
            let mut spins = 0u32;
            while self.state.load(Ordering::Acquire) != DONE {
                spins += 1;
                if spins < 1 << 16 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        self.panic.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// How long a helper stays after its hand-off, spinning for the next one, before it gives its
/// thread back to the pool: back-to-back calls (a stream of single images) then skip the
/// helpers' wake-up, which costs each call tens of µs on its first stage.
const LINGER: Duration = Duration::from_micros(100);

/// Helpers that finished a hand-off and spin for the next one, for up to [`LINGER`].
static LINGERING: Lingering = Lingering {
    idle: AtomicUsize::new(0),
    queued: AtomicUsize::new(0),
    queue: Mutex::new(Vec::new()),
};

/// The lingering helpers: `idle` counts those spinning minus the reservations not yet
/// served, so a reserved hand-off always finds a helper (one that would leave waits for it).
struct Lingering {
    idle: AtomicUsize,
    /// `queue.len()`, read without the lock while spinning.
    queued: AtomicUsize,
    queue: Mutex<Vec<Arc<Handoff>>>,
}

impl Lingering {
    /// Reserves a spinning helper, if any.
    fn reserve(&self) -> bool {
        self.idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Hands `handoff` to the helper reserved for it.
    fn send(&self, handoff: Arc<Handoff>) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handoff);
        self.queued.fetch_add(1, Ordering::Release);
    }

    /// A helper's life: runs its hand-off, then lingers for the next one.
    fn serve(&self, first: Arc<Handoff>) {
        let mut next = Some(first);
        while let Some(handoff) = next.take() {
            handoff.take();
            drop(handoff);
            self.idle.fetch_add(1, Ordering::AcqRel);
            let deadline = Instant::now() + LINGER;
            loop {
                if self.queued.load(Ordering::Acquire) > 0 {
                    let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(handoff) = queue.pop() {
                        self.queued.fetch_sub(1, Ordering::Release);
                        next = Some(handoff);
                        break;
                    }
                }
                // Leave only if no reservation counts on this helper.
                if Instant::now() > deadline && self.reserve() {
                    break;
                }
                std::hint::spin_loop();
            }
        }
    }
}

/// The hand-offs of one call: finished on return and on unwinding, so that no helper runs
/// the job after the call.
struct Handoffs(Vec<Arc<Handoff>>);

impl Handoffs {
    /// Finishes every hand-off, then passes on a helper's panic.
    fn finish(mut self) {
        let panics: Vec<_> = self.0.drain(..).filter_map(|h| h.finish()).collect();
        if let Some(panic) = panics.into_iter().next() {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for Handoffs {
    fn drop(&mut self) {
        for handoff in &self.0 {
            handoff.finish();
        }
    }
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

    /// Stages that count their chunks and record each stage's start after the previous one.
    fn counted_stages(runs: &AtomicUsize) -> [Stage<'_>; 3] {
        std::array::from_fn(|_| {
            Stage::new(7, move |_| {
                runs.fetch_add(1, Ordering::Relaxed);
            })
        })
    }

    /// Called from a thread outside any pool (helpers come from the global pool) and, back to
    /// back, from inside pools of 2 and 4 threads (helpers may linger between calls): every
    /// chunk runs once per call.
    #[test]
    fn every_chunk_runs_once_from_outside_and_inside_pools_back_to_back() {
        let runs = AtomicUsize::new(0);
        for _ in 0..50 {
            run(&counted_stages(&runs));
        }
        assert_eq!(runs.swap(0, Ordering::Relaxed), 50 * 21);
        for threads in [2, 4] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                for _ in 0..50 {
                    run(&counted_stages(&runs));
                }
            });
            assert_eq!(
                runs.swap(0, Ordering::Relaxed),
                50 * 21,
                "{threads} threads"
            );
        }
    }

    /// With the pool's other thread busy for the whole call, the caller runs every chunk
    /// itself and returns (the hand-off is withdrawn, or taken by a helper lingering from
    /// another call), instead of waiting for the busy thread.
    #[test]
    fn the_caller_finishes_alone_when_the_other_thread_is_busy() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let release = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicBool::new(false));
        let runs = AtomicUsize::new(0);
        pool.install(|| {
            let (release, busy) = (Arc::clone(&release), Arc::clone(&busy));
            rayon::spawn(move || {
                busy.store(true, Ordering::Release);
                // Gives up after 5 s, so that a caller waiting for this thread fails the
                // test instead of hanging it.
                let start = std::time::Instant::now();
                while !release.load(Ordering::Acquire) {
                    if start.elapsed().as_secs() >= 5 {
                        release.store(true, Ordering::Release);
                    }
                    std::hint::spin_loop();
                }
            });
        });
        while !busy.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        pool.install(|| run(&counted_stages(&runs)));
        let released_before_return = release.load(Ordering::Acquire);
        release.store(true, Ordering::Release);
        assert!(!released_before_return);
        assert_eq!(runs.into_inner(), 21);
    }
}
