#![forbid(unsafe_code)]

/// jemalloc returns memory to the system after bursts of connections end, where the system
/// allocator keeps it (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    hafi_realtime::cli::main()
}
