//! How the operator's heap is kept near what it holds. Its caches are built from large list
//! responses (pages of 500 objects, each read whole and decoded), which glibc's allocator
//! serves from the heap and, once freed, keeps: with ten thousand TrainingJobs the process held
//! about 155 MB for about 26 MB of cached objects (`bench/operator`). Three settings fix most of
//! that, on glibc only (other allocators are left as they are):
//!
//! - at most [`ARENAS`] malloc arenas (glibc makes up to eight per core, each holding its own
//!   freed memory);
//! - a fixed mmap threshold of [`MMAP_THRESHOLD`]: a large buffer (a list page) gets pages of
//!   its own and gives them back when freed. glibc otherwise raises the threshold to the largest
//!   buffer freed so far, and every later page lands in the heap;
//! - [`trim`] within [`TRIM_EVERY`] after work ([`note_work`]: a reconcile), and at least every
//!   [`TRIM_AT_LEAST_EVERY`]: freed pages anywhere in the heap, not only at its top, go back to
//!   the system (`malloc_trim`). Not at every tick: `malloc_trim` and `mallinfo2` walk every
//!   free chunk of every arena, and every 10 s they were 44 % of an idle operator's CPU.
//!
//! docs/decisions.md says why this is written here rather than taken from a crate.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The most malloc arenas the process uses.
pub const ARENAS: i32 = 2;
/// Buffers at least this large are mapped on their own.
pub const MMAP_THRESHOLD: i32 = 128 * 1024;
/// How soon after work freed heap pages are given back.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);
/// How often they are given back when no work was noted (a watch's decoding is not).
pub const TRIM_AT_LEAST_EVERY: Duration = Duration::from_secs(300);

/// Work done since the process started, as [`note_work`] counts it.
static WORK: AtomicU64 = AtomicU64::new(0);

/// Notes work that may have left freed memory behind (a reconcile): the next [`TRIM_EVERY`]
/// tick trims. Costs one relaxed atomic add.
pub fn note_work() {
    WORK.fetch_add(1, Ordering::Relaxed);
}

/// Sets the allocator's limits: call first in `main`, before any thread starts.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Gives the heap's free pages back to the system.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe (it takes each arena's lock) and frees nothing in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What the heap holds, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heap {
    /// Allocated and not freed: what the process holds.
    pub in_use: u64,
    /// Freed but kept by the allocator (part of the RSS until given back).
    pub free: u64,
}

/// The heap's figures, where the allocator tells them (glibc's `mallinfo2`, over all arenas).
pub fn heap() -> Option<Heap> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics, under each arena's lock.
        let info = unsafe { libc::mallinfo2() };
        let bytes = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Some(Heap {
            in_use: bytes(info.uordblks).saturating_add(bytes(info.hblkhd)),
            free: bytes(info.fordblks),
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Runs [`trim`] forever: at the first [`TRIM_EVERY`] tick after [`note_work`], and after
/// [`TRIM_AT_LEAST_EVERY`] without; hands the heap's figures after each to `observe`.
pub async fn trim_periodically(observe: impl Fn(Heap)) {
    let mut every = tokio::time::interval(TRIM_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut trimmed = None;
    loop {
        let now = every.tick().await;
        let work = WORK.load(Ordering::Relaxed);
        if !due(trimmed, work, now.into_std()) {
            continue;
        }
        trim();
        if let Some(heap) = heap() {
            observe(heap);
        }
        trimmed = Some((work, now.into_std()));
    }
}

/// Whether to trim at `now`, with `work` noted so far, given the work count and time of the
/// last trim (none yet: at once).
fn due(trimmed: Option<(u64, Instant)>, work: u64, now: Instant) -> bool {
    trimmed.is_none_or(|(at_work, at)| {
        at_work != work || now.duration_since(at) >= TRIM_AT_LEAST_EVERY
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heap_is_trimmed_after_work_and_now_and_then_without() {
        let start = Instant::now();
        assert!(due(None, 0, start), "at once");
        let last = Some((7, start));
        assert!(!due(last, 7, start + TRIM_EVERY), "no work since");
        assert!(due(last, 8, start + TRIM_EVERY), "work since");
        assert!(!due(last, 7, start + TRIM_AT_LEAST_EVERY - TRIM_EVERY));
        assert!(
            due(last, 7, start + TRIM_AT_LEAST_EVERY),
            "long enough without"
        );
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn the_heap_counts_what_is_held_and_not_what_was_freed() {
        let before = heap().unwrap();
        let held = vec![1u8; 64 << 20];
        let holding = heap().unwrap();
        assert!(
            holding.in_use >= before.in_use + (60 << 20),
            "{before:?} {holding:?}"
        );
        drop(held);
        trim();
        let after = heap().unwrap();
        assert!(
            after.in_use < holding.in_use - (60 << 20),
            "{holding:?} {after:?}"
        );
    }
}
