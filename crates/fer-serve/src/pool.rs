//! [`InferencePool`]: a fixed set of threads that run inference outside the async runtime,
//! behind a bounded queue that refuses work when full instead of growing.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Why a job did not run to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The queue is full: the caller should answer 503.
    #[error("the inference queue is full")]
    Busy,
    /// The job panicked (a bug); the worker survives.
    #[error("inference failed unexpectedly")]
    Panicked,
    /// The pool is shutting down.
    #[error("the inference pool has stopped")]
    Stopped,
}

/// Worker threads fed by a queue of at most `capacity` waiting jobs. Dropping the pool lets
/// the workers finish the queued jobs and exit.
///
/// Admission counts jobs, not channel slots: `workers + capacity` jobs are admitted (running
/// or waiting) and the next one is refused, whether or not a worker thread has woken up yet
/// to take the first. So what a client gets depends on how many requests are in flight, not
/// on how the operating system schedules the workers.
pub struct InferencePool {
    sender: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    queue_depth: Gauge,
    admitted: Arc<AtomicUsize>,
    admission_limit: usize,
}

/// One admitted job's place; it is given back when the job ends, is skipped or is dropped.
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InferencePool {
    /// Starts `workers` threads; `queue_depth` follows the number of jobs waiting.
    pub fn new(workers: usize, capacity: usize, queue_depth: Gauge) -> Self {
        let admission_limit = workers + capacity;
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(admission_limit);
        let workers = (0..workers)
            .map(|k| {
                let receiver = receiver.clone();
                std::thread::Builder::new()
                    .name(format!("fer-inference-{k}"))
                    .spawn(move || {
                        for job in receiver {
                            job();
                        }
                    })
                    .expect("cannot start an inference thread")
            })
            .collect();
        InferencePool {
            sender: Some(sender),
            workers,
            queue_depth,
            admitted: Arc::new(AtomicUsize::new(0)),
            admission_limit,
        }
    }

    /// Runs `work` on a worker and waits for its result without blocking the runtime. Refused
    /// at once with [`PoolError::Busy`] when the queue is full. If the caller stops waiting
    /// (the client went away, the request timed out) before a worker takes the job, the
    /// job is skipped.
    pub async fn run<T, F>(&self, work: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let sender = self.sender.as_ref().ok_or(PoolError::Stopped)?;
        let limit = self.admission_limit;
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map_err(|_| PoolError::Busy)?;
        let admission = Admission(Arc::clone(&self.admitted));
        let (reply, answer) = oneshot::channel();
        let depth = self.queue_depth.clone();
        let job: Job = Box::new(move || {
            let _admission = admission;
            depth.dec();
            if reply.is_closed() {
                return; // nobody waits for it any more
            }
            let result = catch_unwind(AssertUnwindSafe(work)).map_err(|_| PoolError::Panicked);
            let _ = reply.send(result);
        });
        self.queue_depth.inc();
        match sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.queue_depth.dec();
                return Err(PoolError::Busy);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.queue_depth.dec();
                return Err(PoolError::Stopped);
            }
        }
        answer.await.map_err(|_| PoolError::Stopped)?
    }
}

impl Drop for InferencePool {
    fn drop(&mut self) {
        self.sender.take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::{Arc, Barrier, mpsc};

    #[tokio::test]
    async fn a_full_queue_refuses_work_and_a_panic_is_an_error() {
        let depth = Gauge::default();
        let pool = Arc::new(InferencePool::new(1, 1, depth.clone()));
        assert_eq!(pool.run(|| 6 * 7).await, Ok(42));
        assert_eq!(
            pool.run(|| -> u8 { panic!("a bug") }).await,
            Err(PoolError::Panicked)
        );

        // Hold the only worker, fill the one queue slot: one more is refused.
        let gate = Arc::new(Barrier::new(2));
        let (started, has_started) = mpsc::channel();
        let held = {
            let (pool, gate) = (Arc::clone(&pool), Arc::clone(&gate));
            tokio::spawn(async move {
                pool.run(move || {
                    started.send(()).unwrap();
                    gate.wait();
                    1
                })
                .await
            })
        };
        while has_started.try_recv().is_err() {
            tokio::task::yield_now().await;
        }
        let queued = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.run(|| 2).await })
        };
        while depth.get() != 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|| 3).await, Err(PoolError::Busy));
        assert_eq!(depth.get(), 1, "a refused job leaves the depth as it was");
        gate.wait();
        assert_eq!(held.await.unwrap(), Ok(1));
        assert_eq!(queued.await.unwrap(), Ok(2));
        assert_eq!(depth.get(), 0);
    }

    #[tokio::test]
    async fn admission_does_not_wait_for_a_worker_to_wake() {
        // Two jobs submitted back to back, nanoseconds apart: the worker has had no time to
        // take the first from the channel, yet both are admitted (one runs, one waits).
        let depth = Gauge::default();
        let pool = InferencePool::new(1, 1, depth.clone());
        let gate = Arc::new(Barrier::new(2));
        let held_gate = Arc::clone(&gate);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        let mut first = Box::pin(pool.run(move || {
            held_gate.wait();
            1
        }));
        let mut second = Box::pin(pool.run(|| 2));
        let first_waits = first.as_mut().poll(&mut context).is_pending();
        let second_waits = second.as_mut().poll(&mut context).is_pending();
        let third = pool.run(|| 3).await;
        gate.wait(); // let the worker go before any assertion can fail
        assert!(
            first_waits && second_waits,
            "both admitted: {first_waits}, {second_waits}"
        );
        assert_eq!(third, Err(PoolError::Busy));
        assert_eq!(first.await, Ok(1));
        assert_eq!(second.await, Ok(2));
        assert_eq!(depth.get(), 0);
        assert_eq!(pool.run(|| 4).await, Ok(4), "places are given back");
    }
}
