//! A counting global allocator for "never touches the heap" tests: only heap calls made on a
//! thread while it is [`watch`]ing are counted, so the test harness and helper threads may
//! allocate freely. Include with `#[path = "common/heap_counter.rs"] mod heap_counter;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

struct CountingAllocator;

static HEAP_CALLS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if WATCHING.with(Cell::get) {
        HEAP_CALLS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count();
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Starts or stops counting the calling thread's heap calls.
pub fn watch(on: bool) {
    WATCHING.with(|w| w.set(on));
}

/// Heap calls (allocations, reallocations and frees) counted so far.
pub fn heap_calls() -> u64 {
    HEAP_CALLS.load(Ordering::Relaxed)
}
