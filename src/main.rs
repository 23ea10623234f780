use std::process::ExitCode;

/// mimalloc rather than the system allocator: a request makes many small, short-lived
/// allocations (headers, JSON, futures), and glibc's malloc and free were a sixth of the
/// gateway's CPU time per request (BENCHMARKS.md, the load harness). Its 2.x line (feature `v2`):
/// the 3.x line held on to freed memory for a second, and with 1,000 streams after a burst of
/// load the gateway's resident memory peaked at 118 MB against 94 MB with 2.x.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match speechgate::cli::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Before logging is configured there is nowhere else to say it.
            #[expect(clippy::print_stderr, reason = "the process's last word on a fatal error")]
            {
                eprintln!("speechgate: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}
