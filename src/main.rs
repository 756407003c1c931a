#![forbid(unsafe_code)]

/// jemalloc, with its background threads, returns memory to the system within seconds after a
/// crowd of connections leaves, where the system allocator keeps it (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    hafi_realtime::main()
}
