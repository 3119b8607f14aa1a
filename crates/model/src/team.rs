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
//!
//! # A good neighbour
//! Inside a DAW the host's own audio threads need cores too. The model therefore runs on a pool
//! of its own, [`model_threads`] threads (the `COMPER_THREADS` environment variable, else what
//! the application asked for with [`set_default_threads`], else every core; the plugin asks for
//! one core fewer than the machine has). A helper spins only [`SPIN_WINDOW`] between regions —
//! long enough to catch the next product of the same decoding step — and then sleeps until the
//! leader publishes a region, so a generation that is waiting on its sampler or its caller
//! holds no core. A parallel region allocates nothing.

use std::cell::{RefCell, UnsafeCell};
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use rayon::prelude::*;

/// Busy-wait iterations before a waiting leader starts yielding its core to others.
const SPINS_BEFORE_YIELD: u32 = 2_000;

/// How long a helper spins for the next region before it sleeps: the gap between two products
/// of one decoding step is a few microseconds; the sampler's work between steps is longer.
pub const SPIN_WINDOW: Duration = Duration::from_micros(50);

/// Longest sleep of a helper between checks (a safety net: the leader wakes sleeping helpers
/// when it publishes a region or finishes).
const SLEEP_TIMEOUT: Duration = Duration::from_millis(5);

/// The environment variable that sets the model's thread count (a whole number ≥ 1).
pub const THREADS_ENV: &str = "COMPER_THREADS";

/// Threads the application asked for before the pool was built (0: every core).
static DEFAULT_THREADS: AtomicUsize = AtomicUsize::new(0);

/// The model's own thread pool, built on first use.
static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();

/// Asks for `threads` model threads (at least 1) unless `COMPER_THREADS` says otherwise. Takes
/// effect only before the first generation builds the pool; returns whether it did.
pub fn set_default_threads(threads: usize) -> bool {
    DEFAULT_THREADS.store(threads.max(1), SeqCst);
    POOL.get().is_none()
}

/// Threads for a host application's plugin: one core fewer than the machine has (at least one),
/// so the host's audio threads keep a core while Comper generates.
pub fn plugin_default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(1)
}

/// The thread count the model's pool is (or will be) built with: `COMPER_THREADS` when it holds
/// a whole number ≥ 1, else [`set_default_threads`]'s, else every core.
pub fn model_threads() -> usize {
    if let Some(pool) = POOL.get() {
        return pool.current_num_threads();
    }
    resolve_threads(
        std::env::var(THREADS_ENV).ok().as_deref(),
        DEFAULT_THREADS.load(SeqCst),
    )
}

/// The thread count from the environment variable's value and the application's default.
fn resolve_threads(env: Option<&str>, default: usize) -> usize {
    env.and_then(|value| value.trim().parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .or(Some(default).filter(|&n| n >= 1))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The model's pool: [`model_threads`] threads named `comper-model-N`.
fn pool() -> &'static rayon::ThreadPool {
    POOL.get_or_init(|| {
        let threads = model_threads();
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("comper-model-{i}"))
            .build()
            .or_else(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build())
            .unwrap_or_else(|error| panic!("cannot start any model thread: {error}"))
    })
}

/// Runs `body` on the rayon pool the caller is in, else on the model's pool.
fn in_pool<T: Send>(body: impl FnOnce() -> T + Send) -> T {
    if rayon::current_thread_index().is_some() {
        body()
    } else {
        pool().install(body)
    }
}

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
    /// Helpers asleep (or about to be) waiting for a region.
    sleepers: AtomicUsize,
    /// The helpers' threads, to wake them (each registers once when it joins).
    helpers: Mutex<Vec<Thread>>,
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
            sleepers: AtomicUsize::new(0),
            helpers: Mutex::new(Vec::with_capacity(size)),
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
        self.wake_sleepers();
        self.work(erased);
        wait_until(|| self.unfinished.load(SeqCst) == 0);
        if self.panicked.swap(false, SeqCst) {
            resume_unwind(Box::new("a parallel task panicked"));
        }
    }

    /// Lends the calling thread to the team until [`Team::finish`], running tasks as regions
    /// appear.
    pub fn help(&self) {
        if let Ok(mut helpers) = self.helpers.lock() {
            helpers.push(std::thread::current());
        }
        let mut seen = self.epoch.load(SeqCst) & !1;
        loop {
            let Some(epoch) = self.next_region(seen) else {
                return;
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
        self.wake_sleepers();
    }

    /// Waits for a region newer than `seen` (its even epoch), spinning for [`SPIN_WINDOW`] and
    /// then sleeping; `None` once the team is finished.
    fn next_region(&self, seen: usize) -> Option<usize> {
        let fresh = || {
            let epoch = self.epoch.load(SeqCst);
            (epoch.is_multiple_of(2) && epoch != seen).then_some(epoch)
        };
        let spin_until = Instant::now() + SPIN_WINDOW;
        loop {
            if self.finished.load(SeqCst) {
                return None;
            }
            if let Some(epoch) = fresh() {
                return Some(epoch);
            }
            if Instant::now() < spin_until {
                std::hint::spin_loop();
                continue;
            }
            // Announce the sleep, then look again: the leader either sees the sleeper and
            // wakes it, or published before, and then this look finds the region.
            self.sleepers.fetch_add(1, SeqCst);
            if !self.finished.load(SeqCst) && fresh().is_none() {
                std::thread::park_timeout(SLEEP_TIMEOUT);
            }
            self.sleepers.fetch_sub(1, SeqCst);
        }
    }

    /// Wakes the helpers that sleep waiting for a region (nothing to do while all spin).
    fn wake_sleepers(&self) {
        if self.sleepers.load(SeqCst) == 0 {
            return;
        }
        if let Ok(helpers) = self.helpers.lock() {
            helpers.iter().for_each(Thread::unpark);
        }
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

/// Runs `body` on the calling thread, leading a team of as many threads as the model's pool has
/// (or the rayon pool the caller runs in): `size − 1` helpers are lent by the pool until `body`
/// returns, and parallel regions inside `body` (the network's products) go to the team.
/// `body` starts at once even when the pool is busy (e.g. helping another plugin instance's
/// generation); it then runs with fewer helpers.
pub fn with_team<T>(body: impl FnOnce() -> T) -> T {
    let team = Arc::new(Team::new(in_pool(rayon::current_num_threads)));
    for _ in 1..team.size() {
        let helper = Arc::clone(&team);
        if rayon::current_thread_index().is_some() {
            rayon::spawn(move || helper.help());
        } else {
            pool().spawn(move || helper.help());
        }
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
        .unwrap_or_else(|| in_pool(rayon::current_num_threads))
}

/// A mutable slice that parallel tasks cut disjoint pieces from without a lock or an allocation.
pub(crate) struct SharedSlice<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: tasks only reach the slice through `chunk`, whose callers take each chunk index once,
// so no element is reachable from two threads; `T: Send` lets elements be written elsewhere.
unsafe impl<T: Send> Sync for SharedSlice<'_, T> {}

impl<'a, T> SharedSlice<'a, T> {
    pub(crate) fn new(data: &'a mut [T]) -> Self {
        Self {
            ptr: data.as_mut_ptr(),
            len: data.len(),
            _borrow: PhantomData,
        }
    }

    /// Chunks of `chunk_len` elements (the last may be shorter).
    fn chunks(&self, chunk_len: usize) -> usize {
        self.len.div_ceil(chunk_len)
    }

    /// Chunk `i`, empty past the end.
    ///
    /// # Safety
    /// Each `(i, chunk_len)` may be taken once while the chunks are alive, with one `chunk_len`
    /// for all.
    #[allow(clippy::mut_from_ref)]
    unsafe fn chunk(&self, i: usize, chunk_len: usize) -> &mut [T] {
        let start = i.saturating_mul(chunk_len);
        // SAFETY: the caller takes each chunk once, so the pieces never overlap.
        unsafe { self.piece(start, start.saturating_add(chunk_len)) }
    }

    /// Elements `start..end`, clipped to the slice.
    ///
    /// # Safety
    /// No element may be reachable through two pieces alive at the same time.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn piece(&self, start: usize, end: usize) -> &mut [T] {
        let end = end.min(self.len);
        let start = start.min(end);
        // SAFETY: `start..end` lies inside the borrowed slice; the caller keeps pieces apart.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }
}

/// Calls `task(i)` for every `i < tasks`, in parallel: on the team this thread leads, else on the
/// model's pool.
pub fn for_each_index(tasks: usize, task: impl Fn(usize) + Sync) {
    let team = LEADING.with(|leading| leading.borrow().clone());
    match team {
        Some(team) => team.run(tasks, &task),
        None => in_pool(|| (0..tasks).into_par_iter().for_each(&task)),
    }
}

/// Calls `task(i, chunk)` for every `chunk_len`-long chunk `i` of `data` (the last may be
/// shorter), in parallel: on the team this thread leads, else on the model's pool.
pub fn for_each_chunk<T: Send>(
    data: &mut [T],
    chunk_len: usize,
    task: impl Fn(usize, &mut [T]) + Sync,
) {
    let chunk_len = chunk_len.max(1);
    let team = LEADING.with(|leading| leading.borrow().clone());
    match team {
        Some(team) => {
            let shared = SharedSlice::new(data);
            team.run(shared.chunks(chunk_len), &|i| {
                // SAFETY: the team runs every task index exactly once.
                task(i, unsafe { shared.chunk(i, chunk_len) });
            });
        }
        None => in_pool(|| {
            data.par_chunks_mut(chunk_len)
                .enumerate()
                .for_each(|(i, chunk)| task(i, chunk))
        }),
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
            let (a, b) = (SharedSlice::new(a), SharedSlice::new(b));
            let pairs = a.chunks(a_len).min(b.chunks(b_len));
            team.run(pairs, &|i| {
                // SAFETY: the team runs every task index exactly once.
                let (a, b) = unsafe { (a.chunk(i, a_len), b.chunk(i, b_len)) };
                task(i, a, b);
            });
        }
        None => in_pool(|| {
            a.par_chunks_mut(a_len)
                .zip(b.par_chunks_mut(b_len))
                .enumerate()
                .for_each(|(i, (a, b))| task(i, a, b))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_count_comes_from_the_environment_then_the_application_then_the_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(resolve_threads(Some("3"), 1), 3);
        assert_eq!(resolve_threads(Some(" 2 "), 5), 2);
        assert_eq!(resolve_threads(Some("0"), 5), 5, "0 threads is not a count");
        assert_eq!(resolve_threads(Some("many"), 0), cores);
        assert_eq!(resolve_threads(None, 4), 4);
        assert_eq!(resolve_threads(None, 0), cores);
        assert!(plugin_default_threads() >= 1 && plugin_default_threads() <= cores.max(1));
    }

    #[test]
    fn idle_helpers_sleep_and_wake_for_the_next_region() {
        let team = Arc::new(Team::new(3));
        let helpers: Vec<_> = (0..2)
            .map(|_| {
                let team = Arc::clone(&team);
                std::thread::spawn(move || team.help())
            })
            .collect();
        let counter = AtomicUsize::new(0);
        let count = |_| {
            counter.fetch_add(1, SeqCst);
        };
        team.run(64, &count);
        // Far longer than the spin window: both helpers must have gone to sleep.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut asleep = 0;
        while asleep < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
            asleep = asleep.max(team.sleepers.load(SeqCst));
        }
        assert_eq!(asleep, 2, "idle helpers sleep");
        team.run(64, &count);
        assert_eq!(counter.load(SeqCst), 128);
        team.finish();
        for helper in helpers {
            helper.join().unwrap();
        }
    }

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

    /// The hand-off itself, small enough for Miri, whose data-race detector checks the protocol
    /// (`cargo +nightly miri test --lib team_hands_off`, run by `.ci/run`): each region's tasks
    /// write their slot with plain stores, and the leader reads every slot with plain loads as
    /// soon as `run` returns, so a helper's write that did not happen-before the leader's return
    /// is a race. Each region's job borrows a different closure, so a helper reading a stale job
    /// pointer or the leader rewriting it under a helper is one too.
    #[test]
    fn team_hands_off_regions_to_helpers_without_a_data_race() {
        const HELPERS: usize = 2;
        const REGIONS: usize = 12;
        const TASKS: usize = 4;
        let team = Team::new(HELPERS + 1);
        let mut slots = vec![0usize; TASKS];
        std::thread::scope(|scope| {
            for _ in 0..HELPERS {
                scope.spawn(|| team.help());
            }
            for region in 0..REGIONS {
                let shared = SharedSlice::new(&mut slots);
                let job = |task: usize| {
                    // SAFETY: each task index is claimed once per region.
                    let slot = unsafe { shared.piece(task, task + 1) };
                    slot[0] = region * TASKS + task;
                };
                team.run(TASKS, &job);
                let expected: Vec<usize> = (0..TASKS).map(|t| region * TASKS + t).collect();
                assert_eq!(slots, expected, "region {region}");
            }
            team.finish();
        });
    }
}
