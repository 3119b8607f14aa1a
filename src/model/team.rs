//! Fork–join with spinning helpers, for the thousands of small products of one generation.
//!
//! A decoding step of the shipped model is about twenty products of a few dozen microseconds
//! each. Rayon hands each one to its workers through its sleep/wake machinery, and a worker that
//! went to sleep between two products costs a futex wake-up — measured, a fifth of the run time
//! went to it. A [`Team`] lives for one generation instead: its helpers (rayon workers lent for
//! that long) spin between products, so handing one over costs an atomic store and a cache-line
//! transfer. Outside a generation no team exists and [`for_each_chunk`] falls back to rayon, so no
//! thread ever spins idle.
//!
//! Nothing here is specific to the model; it is hand-written because the crates that do this
//! (e.g. `fork_union`) keep their threads spinning for the life of the pool or build C code,
//! neither of which suits a plugin inside a DAW.

use std::cell::{RefCell, UnsafeCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

/// Busy-wait iterations before a waiting thread starts yielding its core to others.
const SPINS_BEFORE_YIELD: u32 = 2_000;

/// The job of one parallel region, with its borrow's lifetime erased (see [`Team::run`]).
type JobPtr = *const (dyn Fn(usize) + Sync + 'static);

/// A group of threads that runs parallel regions for one caller, the *leader*: the thread that
/// calls [`Team::run`]. Helpers join by calling [`Team::help`] and leave after [`Team::finish`].
///
/// Protocol: the leader publishes a region by making `epoch` odd, waiting until no helper is
/// inside the previous region (`busy == 0`), writing the job, resetting the counters and making
/// `epoch` even again. A helper that sees a new even epoch registers in `busy`, re-reads `epoch`
/// and only then reads the job; every task index is claimed once from `next`, and the leader
/// returns from [`Team::run`] only after `unfinished` reaches zero. All atomics are `SeqCst`, so
/// a helper either registered before the leader checked `busy` (and the leader waits for it) or
/// sees the odd epoch and backs off.
pub struct Team {
    job: UnsafeCell<Option<JobPtr>>,
    tasks: AtomicUsize,
    next: AtomicUsize,
    unfinished: AtomicUsize,
    epoch: AtomicUsize,
    busy: AtomicUsize,
    finished: AtomicBool,
    panicked: AtomicBool,
    size: usize,
}

// SAFETY: the only non-thread-safe field is `job`, which the leader writes only while no helper
// can read it (odd epoch, `busy == 0`) and helpers read only while registered in `busy` under an
// even epoch (see the protocol above). The job it points to is `Sync`.
unsafe impl Sync for Team {}
// SAFETY: as above; the raw pointer is only dereferenced under the protocol, never owned.
unsafe impl Send for Team {}

impl Team {
    /// A team for `size` threads in all (the leader and `size − 1` helpers).
    pub fn new(size: usize) -> Self {
        Self {
            job: UnsafeCell::new(None),
            tasks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            unfinished: AtomicUsize::new(0),
            epoch: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            finished: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            size: size.max(1),
        }
    }

    /// Threads the team was made for, helpers not yet arrived included.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `job(i)` for every `i < tasks`, on the leader and whichever helpers are present, and
    /// returns when all have finished. Only the leader may call it. A panic in a task is re-raised
    /// here after the region is over.
    pub fn run(&self, tasks: usize, job: &(dyn Fn(usize) + Sync)) {
        if tasks == 0 {
            return;
        }
        // Close the previous region to late helpers, then wait for the ones still inside it.
        self.epoch.fetch_add(1, SeqCst);
        wait_until(|| self.busy.load(SeqCst) == 0);
        // SAFETY: this erases the borrow's lifetime; the pointer is dereferenced only by tasks
        // claimed below, and this function returns only after every claimed task has finished
        // (`unfinished == 0`) and leaves nothing claimable (`next ≥ tasks`), so no call outlives
        // the borrow.
        let erased = unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), JobPtr>(job as *const _)
        };
        // SAFETY: see above; exclusive while the epoch is odd and `busy == 0`.
        unsafe { *self.job.get() = Some(erased) };
        self.tasks.store(tasks, SeqCst);
        self.next.store(0, SeqCst);
        self.unfinished.store(tasks, SeqCst);
        self.epoch.fetch_add(1, SeqCst);
        self.work(erased);
        wait_until(|| self.unfinished.load(SeqCst) == 0);
        if self.panicked.swap(false, SeqCst) {
            resume_unwind(Box::new("a parallel task panicked"));
        }
    }

    /// Lends the calling thread to the team until [`Team::finish`], running tasks as regions
    /// appear.
    pub fn help(&self) {
        let mut seen = self.epoch.load(SeqCst) & !1;
        loop {
            let mut spins = 0u32;
            let epoch = loop {
                if self.finished.load(SeqCst) {
                    return;
                }
                let epoch = self.epoch.load(SeqCst);
                if epoch.is_multiple_of(2) && epoch != seen {
                    break epoch;
                }
                pause(&mut spins);
            };
            seen = epoch;
            self.busy.fetch_add(1, SeqCst);
            if self.epoch.load(SeqCst) == epoch {
                // SAFETY: registered in `busy` under an even epoch, so the leader is not writing
                // `job` (it waits for `busy == 0` first).
                if let Some(job) = unsafe { *self.job.get() } {
                    self.work(job);
                }
            }
            self.busy.fetch_sub(1, SeqCst);
        }
    }

    /// Sends the helpers home; call once the leader has no more regions to run.
    pub fn finish(&self) {
        self.finished.store(true, SeqCst);
    }

    /// Claims and runs tasks of the current region until none are left. The job is dereferenced
    /// only for a claimed task: a helper that arrives after the region ended holds a pointer to a
    /// closure that may be gone, and must not touch it.
    fn work(&self, job: JobPtr) {
        let tasks = self.tasks.load(SeqCst);
        loop {
            let task = self.next.fetch_add(1, SeqCst);
            if task >= tasks {
                return;
            }
            // SAFETY: a claimed task keeps `unfinished > 0`, so the leader is still inside `run`
            // and the closure behind `job` is alive until `unfinished` is decremented below.
            let job = unsafe { &*job };
            if catch_unwind(AssertUnwindSafe(|| job(task))).is_err() {
                self.panicked.store(true, SeqCst);
            }
            self.unfinished.fetch_sub(1, SeqCst);
        }
    }
}

/// Spins, then yields, until `ready()`.
fn wait_until(ready: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !ready() {
        pause(&mut spins);
    }
}

fn pause(spins: &mut u32) {
    if *spins < SPINS_BEFORE_YIELD {
        *spins += 1;
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

thread_local! {
    /// The team this thread leads, if it is running a generation.
    static LEADING: RefCell<Option<Arc<Team>>> = const { RefCell::new(None) };
}

/// Runs `body` on the calling thread, leading a team of as many threads as rayon's pool has:
/// `size − 1` helpers are lent by the pool until `body` returns, and parallel regions inside
/// `body` (those of [`for_each_chunk`]) go to the team. `body` starts at once even when the pool
/// is busy (e.g. helping another plugin instance's generation); it then runs with fewer helpers.
pub fn with_team<T>(body: impl FnOnce() -> T) -> T {
    let team = Arc::new(Team::new(rayon::current_num_threads()));
    for _ in 1..team.size() {
        let helper = Arc::clone(&team);
        rayon::spawn(move || helper.help());
    }
    let previous = LEADING.with(|leading| leading.replace(Some(Arc::clone(&team))));
    // Helpers must be released even if `body` panics, or they would spin forever.
    let outcome = catch_unwind(AssertUnwindSafe(body));
    LEADING.with(|leading| leading.replace(previous));
    team.finish();
    outcome.unwrap_or_else(|panic| resume_unwind(panic))
}

/// Threads a parallel region started on this thread can use.
pub fn threads() -> usize {
    LEADING
        .with(|leading| leading.borrow().as_ref().map(|team| team.size()))
        .unwrap_or_else(rayon::current_num_threads)
}

/// Calls `task(i, chunk)` for every `chunk_len`-long chunk `i` of `data` (the last may be
/// shorter), in parallel: on the team this thread leads, else on rayon's pool.
pub fn for_each_chunk<T: Send>(
    data: &mut [T],
    chunk_len: usize,
    task: impl Fn(usize, &mut [T]) + Sync,
) {
    let chunk_len = chunk_len.max(1);
    let team = LEADING.with(|leading| leading.borrow().clone());
    match team {
        Some(team) => {
            // Each chunk is claimed by exactly one task, so its lock is never contended.
            let chunks: Vec<Mutex<&mut [T]>> = data.chunks_mut(chunk_len).map(Mutex::new).collect();
            team.run(chunks.len(), &|i| {
                if let Some(chunk) = chunks.get(i) {
                    let mut chunk = chunk.lock().unwrap_or_else(|poison| poison.into_inner());
                    task(i, &mut chunk);
                }
            });
        }
        None => data
            .par_chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, chunk)| task(i, chunk)),
    }
}

/// Calls `task(i, a_chunk, b_chunk)` for the `i`-th chunks of `a` (`a_len` long) and `b`
/// (`b_len` long) together, in parallel as [`for_each_chunk`] does: for a task that writes two
/// buffers, such as an attention head's cache block and its output. Chunks past the shorter
/// buffer's end are not visited.
pub fn for_each_chunk_pair<A: Send, B: Send>(
    a: &mut [A],
    a_len: usize,
    b: &mut [B],
    b_len: usize,
    task: impl Fn(usize, &mut [A], &mut [B]) + Sync,
) {
    let (a_len, b_len) = (a_len.max(1), b_len.max(1));
    let team = LEADING.with(|leading| leading.borrow().clone());
    match team {
        Some(team) => {
            // Each pair is claimed by exactly one task, so its lock is never contended.
            let pairs: Vec<Mutex<(&mut [A], &mut [B])>> = a
                .chunks_mut(a_len)
                .zip(b.chunks_mut(b_len))
                .map(Mutex::new)
                .collect();
            team.run(pairs.len(), &|i| {
                if let Some(pair) = pairs.get(i) {
                    let mut pair = pair.lock().unwrap_or_else(|poison| poison.into_inner());
                    let (a, b) = &mut *pair;
                    task(i, a, b);
                }
            });
        }
        None => a
            .par_chunks_mut(a_len)
            .zip(b.par_chunks_mut(b_len))
            .enumerate()
            .for_each(|(i, (a, b))| task(i, a, b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_is_visited_once_with_and_without_a_team() {
        let fill = |data: &mut Vec<usize>| {
            for _ in 0..50 {
                for_each_chunk(data, 7, |i, chunk| {
                    chunk.iter_mut().for_each(|v| *v += i + 1)
                });
            }
        };
        let want: Vec<usize> = (0..1000).map(|j| 50 * (j / 7 + 1)).collect();
        let mut without = vec![0; 1000];
        fill(&mut without);
        assert_eq!(without, want);
        let with = with_team(|| {
            let mut data = vec![0; 1000];
            fill(&mut data);
            data
        });
        assert_eq!(with, want);
    }

    #[test]
    fn paired_chunks_are_visited_together_once() {
        let fill = || {
            let mut a = vec![0usize; 30];
            let mut b = vec![0usize; 21];
            for_each_chunk_pair(&mut a, 10, &mut b, 7, |i, a, b| {
                a.iter_mut().for_each(|v| *v += i + 1);
                b.iter_mut().for_each(|v| *v += 10 * (i + 1));
            });
            (a, b)
        };
        let want_a: Vec<usize> = (0..30).map(|j| j / 10 + 1).collect();
        let want_b: Vec<usize> = (0..21).map(|j| 10 * (j / 7 + 1)).collect();
        assert_eq!(fill(), (want_a.clone(), want_b.clone()));
        assert_eq!(with_team(fill), (want_a, want_b));
    }

    #[test]
    fn helpers_work_and_leave() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let counts = pool.install(|| {
            with_team(|| {
                assert_eq!(threads(), 3);
                let counter = AtomicUsize::new(0);
                let mut data = vec![0u8; 4096];
                for _ in 0..200 {
                    for_each_chunk(&mut data, 64, |_, _| {
                        counter.fetch_add(1, SeqCst);
                    });
                }
                counter.into_inner()
            })
        });
        assert_eq!(counts, 200 * 64);
    }

    #[test]
    fn a_leader_does_not_wait_for_a_busy_pool() {
        // Another generation (say, a second plugin instance's) holds every worker of the pool.
        let release = Arc::new(AtomicBool::new(false));
        let holding = Arc::clone(&release);
        rayon::spawn_broadcast(move |_| {
            while !holding.load(SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let sum = with_team(|| {
                let mut data = vec![1u32; 4096];
                for_each_chunk(&mut data, 64, |i, chunk| {
                    chunk.iter_mut().for_each(|v| *v += i as u32)
                });
                data.iter().sum::<u32>()
            });
            let _ = done_tx.send(sum);
        });
        let outcome = done_rx.recv_timeout(std::time::Duration::from_secs(20));
        release.store(true, SeqCst);
        assert_eq!(outcome, Ok(4096 + 64 * (0..64).sum::<u32>()));
    }

    #[test]
    fn a_panicking_task_reaches_the_leader_and_releases_the_helpers() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let outcome = pool.install(|| {
            catch_unwind(AssertUnwindSafe(|| {
                with_team(|| {
                    let mut data = vec![0u8; 64];
                    for_each_chunk(&mut data, 8, |i, _| assert_ne!(i, 3, "task 3 fails"));
                })
            }))
        });
        assert!(outcome.is_err());
        // The pool is still usable: no helper is stuck spinning.
        assert_eq!(pool.install(|| with_team(threads)), 2);
    }
}
