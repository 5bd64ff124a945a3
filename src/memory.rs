//! The allocator's housekeeping, for a daemon that runs for years in a small memory.
//!
//! glibc's malloc keeps what a call freed: in one arena per thread that allocated (the encoder,
//! the speaker, the blocking pool), and in free pages inside its heaps. Resident memory then
//! creeps up from call to call although nothing is live (measured by the soak: about 40 kB a
//! call in anonymous memory, while a heap profile of the same calls found about 6 kB a call
//! still allocated). Two arenas are enough for the door's few threads, and when the last call
//! has been torn down the free pages go back to the kernel.
//!
//! Other C libraries (musl) keep no such caches: there these do nothing.

/// Caps malloc's arenas. Call once, before the runtime's threads start.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator; it is safe at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns the allocator's free pages to the kernel (all arenas, not only the heap's top).
pub fn give_back_free_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes the arenas' locks itself and frees only free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
