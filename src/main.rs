use std::process::ExitCode;

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
