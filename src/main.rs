#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hafi_realtime::cli::main()
}
