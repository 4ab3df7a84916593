//! Dynamic batching: requests that arrive together share one forward pass.
//!
//! Handlers hand their rows to [`Batcher::run`] and await their outputs. One thread, the model
//! thread, owns the forward function: it takes the oldest queued request, gathers more until the
//! batch holds `max_rows` rows or the first request has waited `timeout` since it was queued,
//! runs the forward pass once, and gives each request its own slice of the outputs. While a
//! forward pass runs, new requests queue, so under load batches fill by themselves; an idle
//! server answers a lone request after `timeout`. A request with more rows than `max_rows` runs
//! as a batch of its own; a request is never split.
//!
//! A request that finds the model idle (no wait configured, nothing queued, no forward pass
//! running) may instead run at once on the caller's thread ([`Batcher::try_run_now`]): the batch
//! it would have had on the model thread is itself alone, and it saves two thread hand-offs.
//!
//! A forward pass that fails or panics fails the requests of its batch only: the thread goes on
//! with the next batch. Requests are validated before they are queued, so one client's bad input
//! never fails another's.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How requests are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Rows gathered into one forward pass at most.
    pub max_rows: usize,
    /// How long the first request of a batch waits for more.
    pub timeout: Duration,
    /// Requests queued at most; more are refused as [`BatchError::Overloaded`] rather than left
    /// to wait without bound.
    pub queue: usize,
}

/// Why a request got no outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// The queue is full.
    Overloaded,
    /// The model thread has stopped.
    Stopped,
    /// The forward pass failed (or panicked), with its message.
    Failed(String),
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Overloaded => f.write_str("the server is overloaded; retry later"),
            BatchError::Stopped => f.write_str("the model is no longer served"),
            BatchError::Failed(message) => write!(f, "the forward pass failed: {message}"),
        }
    }
}

/// Counters of the forward passes run.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Forward passes.
    pub batches: AtomicU64,
    /// Rows in them.
    pub rows: AtomicU64,
    /// How long the latest forward pass took, in microseconds.
    pub last_micros: AtomicU64,
}

/// A request runs at once on its caller's thread only while the latest forward pass took at most
/// this long (µs): a model slow enough to hold up the caller's other work (readiness probes,
/// other connections) runs on the model thread.
pub const RUN_NOW_MAX_MICROS: u64 = 1_000;

type Reply<O> = oneshot::Sender<Result<Vec<O>, BatchError>>;

struct Job<I, O> {
    rows: Vec<I>,
    queued: Instant,
    reply: Reply<O>,
}

enum Message<I, O> {
    Job(Job<I, O>),
    /// Shutting down: stop waiting for more rows, run what is queued.
    Drain,
}

/// The forward function: a batch of rows to one output per row.
type Forward<I, O> = Box<dyn FnMut(Vec<I>) -> Result<Vec<O>, String> + Send>;

/// What the model thread shares with the callers.
struct Shared<I, O> {
    /// Held while a forward pass runs, on the model thread or on a caller's.
    forward: Mutex<Forward<I, O>>,
    /// Requests sent to the model thread and not yet answered by it.
    queued: AtomicUsize,
    stats: BatchStats,
}

impl<I, O> Shared<I, O> {
    fn new(forward: impl FnMut(Vec<I>) -> Result<Vec<O>, String> + Send + 'static) -> Self {
        Self {
            forward: Mutex::new(Box::new(forward)),
            queued: AtomicUsize::new(0),
            stats: BatchStats {
                // Unknown until a forward pass is timed: the first request goes to the model
                // thread.
                last_micros: AtomicU64::new(u64::MAX),
                ..BatchStats::default()
            },
        }
    }
}

/// The handle of a model thread. Dropping it lets the thread answer what is queued, then joins it.
pub struct Batcher<I, O> {
    sender: Option<SyncSender<Message<I, O>>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared<I, O>>,
    config: BatchConfig,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the model thread with `forward`, which maps a batch of rows to one output per row.
    pub fn spawn<F>(config: BatchConfig, forward: F) -> Self
    where
        F: FnMut(Vec<I>) -> Result<Vec<O>, String> + Send + 'static,
    {
        let (sender, receiver) = sync_channel(config.queue.max(1));
        let shared = Arc::new(Shared::new(forward));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("model".into())
            .spawn(move || gather_and_run(receiver, config, &thread_shared))
            .expect("start the model thread");
        Self {
            sender: Some(sender),
            thread: Some(thread),
            shared,
            config,
        }
    }

    /// Runs `rows` at once on this thread when the model is idle: no `timeout` to wait for
    /// company, nothing queued, no forward pass running, at most `max_rows` rows, and the
    /// latest forward pass quick ([`RUN_NOW_MAX_MICROS`]). Otherwise gives the rows back, for
    /// [`Batcher::run`]. For a caller that knows no other request is on its way to the batcher
    /// (a lone client), and small batches only: it blocks the caller's thread for one forward
    /// pass.
    pub fn try_run_now(&self, rows: Vec<I>) -> Result<Result<Vec<O>, BatchError>, Vec<I>> {
        if self.sender.is_none()
            || !self.config.timeout.is_zero()
            || rows.len() > self.config.max_rows
            || self.shared.queued.load(Ordering::Acquire) > 0
            || self.shared.stats.last_micros.load(Ordering::Relaxed) > RUN_NOW_MAX_MICROS
        {
            return Err(rows);
        }
        let Ok(mut forward) = self.shared.forward.try_lock() else {
            return Err(rows);
        };
        Ok(run_forward(&mut **forward, rows, &self.shared.stats).map_err(BatchError::Failed))
    }

    /// Runs `rows` in the next batch with room for them and returns their outputs, in order.
    pub async fn run(&self, rows: Vec<I>) -> Result<Vec<O>, BatchError> {
        let (reply, outputs) = oneshot::channel();
        let job = Job {
            rows,
            queued: Instant::now(),
            reply,
        };
        let sender = self.sender.as_ref().ok_or(BatchError::Stopped)?;
        // Counted before it is sent, so that the model thread never takes it uncounted.
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        match sender.try_send(Message::Job(job)) {
            Ok(()) => {}
            Err(error) => {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                return Err(match error {
                    TrySendError::Full(_) => BatchError::Overloaded,
                    TrySendError::Disconnected(_) => BatchError::Stopped,
                });
            }
        }
        outputs.await.unwrap_or(Err(BatchError::Stopped))
    }

    /// Stops waiting for more rows: what is queued runs at once (on shutdown).
    pub fn drain(&self) {
        if let Some(sender) = &self.sender {
            // A full queue needs no nudge: the thread is busy and will not wait.
            let _ = sender.try_send(Message::Drain);
        }
    }

    /// Forward passes run so far.
    pub fn stats(&self) -> &BatchStats {
        &self.shared.stats
    }
}

impl<I, O> Drop for Batcher<I, O> {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn gather_and_run<I, O>(
    receiver: Receiver<Message<I, O>>,
    config: BatchConfig,
    shared: &Shared<I, O>,
) {
    let mut draining = false;
    let mut carried: Option<Job<I, O>> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match receiver.recv() {
                Ok(Message::Job(job)) => job,
                Ok(Message::Drain) => {
                    draining = true;
                    continue;
                }
                // Every handle is gone: nothing more can arrive.
                Err(_) => return,
            },
        };
        let deadline = first.queued + config.timeout;
        let mut rows = first.rows.len();
        let mut batch = vec![first];
        while rows < config.max_rows {
            let wait = if draining {
                Duration::ZERO
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            let message = match receiver.recv_timeout(wait) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            };
            match message {
                Message::Drain => draining = true,
                Message::Job(job) if rows + job.rows.len() > config.max_rows => {
                    carried = Some(job);
                    break;
                }
                Message::Job(job) => {
                    rows += job.rows.len();
                    batch.push(job);
                }
            }
        }
        // Counted as queued until run: a request never runs at once ahead of one gathered,
        // carried or running here.
        run_batch(batch, shared);
    }
}

/// One forward pass over `inputs`, counted; a failure or panic is its message.
fn run_forward<I, O>(
    forward: &mut (dyn FnMut(Vec<I>) -> Result<Vec<O>, String> + Send),
    inputs: Vec<I>,
    stats: &BatchStats,
) -> Result<Vec<O>, String> {
    let total = inputs.len();
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.rows.fetch_add(total as u64, Ordering::Relaxed);
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| forward(inputs)));
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    stats.last_micros.store(micros, Ordering::Relaxed);
    match outcome {
        Ok(Ok(outputs)) if outputs.len() == total => Ok(outputs),
        Ok(Ok(outputs)) => Err(format!("{} outputs for {total} rows", outputs.len())),
        Ok(Err(message)) => Err(message),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "the forward pass panicked".to_owned())),
    }
}

/// Runs a batch with the model held (`shared.forward`), then, with the model released and the
/// batch no longer counted as queued, answers each request: a client that sends its next
/// request as soon as it has the answer finds the model idle.
fn run_batch<I, O>(batch: Vec<Job<I, O>>, shared: &Shared<I, O>) {
    let jobs = batch.len();
    // A client that went away needs no forward pass.
    let batch: Vec<Job<I, O>> = batch
        .into_iter()
        .filter(|job| !job.reply.is_closed())
        .collect();
    let mut counts = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    let mut inputs = Vec::new();
    for job in batch {
        counts.push(job.rows.len());
        replies.push(job.reply);
        inputs.extend(job.rows);
    }
    let outcome = (!replies.is_empty()).then(|| {
        // A caller running a batch of its own at once holds the model meanwhile.
        let mut forward = shared
            .forward
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        run_forward(&mut **forward, inputs, &shared.stats)
    });
    shared.queued.fetch_sub(jobs, Ordering::AcqRel);
    match outcome {
        None => {}
        Some(Ok(outputs)) => {
            let mut outputs = outputs.into_iter();
            for (count, reply) in counts.into_iter().zip(replies) {
                let _ = reply.send(Ok(outputs.by_ref().take(count).collect()));
            }
        }
        Some(Err(message)) => {
            for reply in replies {
                let _ = reply.send(Err(BatchError::Failed(message.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn config(max_rows: usize, timeout: Duration) -> BatchConfig {
        BatchConfig {
            max_rows,
            timeout,
            queue: 64,
        }
    }

    /// A forward pass that doubles each row and records the batch sizes it saw.
    fn doubling(sizes: Arc<Mutex<Vec<usize>>>) -> impl FnMut(Vec<i32>) -> Result<Vec<i32>, String> {
        move |rows| {
            sizes.lock().unwrap().push(rows.len());
            Ok(rows.into_iter().map(|r| r * 2).collect())
        }
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_forward_pass_and_get_their_own_rows() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        // A long timeout: the batch closes because it is full, not because time ran out.
        let batcher = Arc::new(Batcher::spawn(
            config(6, Duration::from_secs(60)),
            doubling(Arc::clone(&sizes)),
        ));
        let requests = [vec![1], vec![2, 3], vec![4, 5, 6]];
        let handles: Vec<_> = requests
            .iter()
            .cloned()
            .map(|rows| {
                let batcher = Arc::clone(&batcher);
                tokio::spawn(async move { batcher.run(rows).await })
            })
            .collect();
        for (handle, rows) in handles.into_iter().zip(requests) {
            let outputs = handle.await.unwrap().unwrap();
            assert_eq!(outputs, rows.iter().map(|r| r * 2).collect::<Vec<_>>());
        }
        assert_eq!(*sizes.lock().unwrap(), [6]);
        assert_eq!(batcher.stats().batches.load(Ordering::Relaxed), 1);
        assert_eq!(batcher.stats().rows.load(Ordering::Relaxed), 6);
    }

    #[tokio::test]
    async fn a_lone_request_runs_when_the_timeout_ends() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let batcher = Batcher::spawn(
            config(32, Duration::from_millis(20)),
            doubling(Arc::clone(&sizes)),
        );
        let started = Instant::now();
        assert_eq!(batcher.run(vec![21]).await.unwrap(), [42]);
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert_eq!(*sizes.lock().unwrap(), [1]);
    }

    #[test]
    fn a_request_that_does_not_fit_waits_for_the_next_batch_and_a_large_one_runs_alone() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let (sender, receiver) = sync_channel(16);
        let mut replies = Vec::new();
        // Queued before the thread looks: the batches are decided by sizes alone.
        for rows in [vec![1, 2, 3], vec![4, 5], vec![6; 10], vec![7]] {
            let (reply, outputs) = oneshot::channel();
            sender
                .send(Message::Job(Job {
                    rows,
                    queued: Instant::now(),
                    reply,
                }))
                .unwrap();
            replies.push(outputs);
        }
        drop(sender);
        let shared = Shared::new(doubling(Arc::clone(&sizes)));
        shared.queued.store(replies.len(), Ordering::SeqCst);
        gather_and_run(receiver, config(4, Duration::from_secs(60)), &shared);
        assert_eq!(shared.queued.load(Ordering::SeqCst), 0);
        // [1,2,3] then [4,5] (3 + 2 > 4), then the 10 rows alone, then [7].
        assert_eq!(*sizes.lock().unwrap(), [3, 2, 10, 1]);
        let outputs: Vec<Vec<i32>> = replies
            .into_iter()
            .map(|r| r.blocking_recv().unwrap().unwrap())
            .collect();
        assert_eq!(outputs[1], [8, 10]);
        assert_eq!(outputs[2], [12; 10]);
    }

    #[tokio::test]
    async fn a_failing_or_panicking_forward_pass_fails_its_batch_only() {
        let batcher = Batcher::spawn(config(1, Duration::ZERO), |rows: Vec<i32>| match rows[0] {
            0 => Err("bad batch".to_owned()),
            1 => panic!("the model broke"),
            2 => Ok(vec![]),
            r => Ok(vec![r]),
        });
        assert_eq!(
            batcher.run(vec![0]).await,
            Err(BatchError::Failed("bad batch".into()))
        );
        assert_eq!(
            batcher.run(vec![1]).await,
            Err(BatchError::Failed("the model broke".into()))
        );
        assert_eq!(
            batcher.run(vec![2]).await,
            Err(BatchError::Failed("0 outputs for 1 rows".into()))
        );
        assert_eq!(batcher.run(vec![3]).await, Ok(vec![3]));
    }

    #[test]
    fn an_idle_model_runs_a_request_on_the_callers_thread_and_a_busy_one_does_not() {
        let caller = std::thread::current().id();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Mutex::new(released);
        let batcher = Batcher::spawn(config(4, Duration::ZERO), move |rows: Vec<i32>| {
            if rows[0] == 0 {
                // Holds the model until the test drops `release`.
                let _ = released.lock().unwrap().recv();
            }
            Ok(vec![
                i32::from(std::thread::current().id() == caller);
                rows.len()
            ])
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // Until a forward pass was timed, requests go to the model thread.
        assert_eq!(batcher.try_run_now(vec![1, 2]), Err(vec![1, 2]));
        assert_eq!(runtime.block_on(batcher.run(vec![1, 2])), Ok(vec![0, 0]));
        assert_eq!(batcher.try_run_now(vec![1, 2]).unwrap(), Ok(vec![1, 1]));
        assert_eq!(batcher.stats().batches.load(Ordering::Relaxed), 2);
        // More rows than a batch holds go to the model thread.
        assert_eq!(batcher.try_run_now(vec![1; 5]), Err(vec![1; 5]));
        // While the model thread runs a forward pass, a request waits for it.
        let batcher = Arc::new(batcher);
        let busy = {
            let batcher = Arc::clone(&batcher);
            std::thread::spawn(move || runtime.block_on(batcher.run(vec![0])))
        };
        while batcher.stats().batches.load(Ordering::Relaxed) < 3 {
            std::thread::yield_now();
        }
        assert_eq!(batcher.try_run_now(vec![3]), Err(vec![3]));
        drop(release);
        assert_eq!(busy.join().unwrap(), Ok(vec![0]));
        // After a slow forward pass, requests go to the model thread until one is quick again.
        batcher
            .stats()
            .last_micros
            .store(RUN_NOW_MAX_MICROS + 1, Ordering::Relaxed);
        assert_eq!(batcher.try_run_now(vec![4]), Err(vec![4]));
        batcher.stats().last_micros.store(0, Ordering::Relaxed);
        assert_eq!(batcher.try_run_now(vec![4]).unwrap(), Ok(vec![1]));
        // A batch timeout means waiting for company: never at once.
        let waiting = Batcher::spawn(config(4, Duration::from_millis(5)), |rows: Vec<i32>| {
            Ok(rows)
        });
        assert_eq!(waiting.try_run_now(vec![1]), Err(vec![1]));
    }

    #[tokio::test]
    async fn draining_runs_what_is_queued_without_waiting() {
        let batcher = Arc::new(Batcher::spawn(
            config(32, Duration::from_secs(600)),
            |rows: Vec<i32>| Ok(rows),
        ));
        let waiting = {
            let batcher = Arc::clone(&batcher);
            tokio::spawn(async move { batcher.run(vec![5]).await })
        };
        // Without the drain the request would wait ten minutes for company; queued before or
        // after the drain, it runs at once.
        batcher.drain();
        assert_eq!(waiting.await.unwrap(), Ok(vec![5]));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_instead_of_waiting() {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Mutex::new(released);
        let batcher = Arc::new(Batcher::spawn(
            BatchConfig {
                max_rows: 1,
                timeout: Duration::ZERO,
                queue: 1,
            },
            move |rows: Vec<i32>| {
                // Blocks until the test drops `release`.
                let _ = released.lock().unwrap().recv();
                Ok(rows)
            },
        ));
        let spawn = |rows| {
            let batcher = Arc::clone(&batcher);
            tokio::spawn(async move { batcher.run(rows).await })
        };
        // The first request occupies the model thread...
        let first = spawn(vec![1]);
        while batcher.stats().batches.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        // ...the second the queue, and the third finds no room.
        let (reply, second_outputs) = oneshot::channel();
        batcher
            .sender
            .as_ref()
            .unwrap()
            .try_send(Message::Job(Job {
                rows: vec![2],
                queued: Instant::now(),
                reply,
            }))
            .map_err(|_| "the queue should have room for one")
            .unwrap();
        assert_eq!(batcher.run(vec![3]).await, Err(BatchError::Overloaded));
        drop(release);
        assert_eq!(first.await.unwrap(), Ok(vec![1]));
        assert_eq!(second_outputs.await.unwrap(), Ok(vec![2]));
    }
}
