//! speechgate's load harness. One binary, three parts, each its own process in a run so that
//! they can be pinned to different cores:
//!
//! - `upstream`: a fake speech vendor (OpenAI-style `POST …/v1/audio/speech`) that answers at once,
//!   after a fixed 50 ms, as a stream of chunks over about a second, or with six seconds of
//!   speech-like audio for conversations;
//! - `load`: a load generator (HTTP/1.1 keep-alive, one connection per worker and target) that
//!   reports time to first byte and to the last byte, as JSON;
//! - `run`: starts the fake vendor, nginx as a bare reverse proxy, and the release gateway on
//!   SQLite and PostgreSQL; drives each with `load`; reads CPU time and memory from `/proc`; and
//!   writes the results as Markdown.
//!
//! `bench/run.sh` builds everything and runs it; see bench/README.md.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a command-line tool: it reports on stdout and stderr")]
#![allow(
    clippy::disallowed_methods,
    reason = "the gateway's rule (background work on a TaskTracker, drained at shutdown) does not apply: a \
              measurement's tasks end with its process"
)]

mod load;
mod report;
mod run;
mod upstream;

#[path = "../../benches/support/proc.rs"]
mod proc;
#[path = "../../benches/support/speech.rs"]
mod speech;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "speechgate's load harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the fake vendor.
    Upstream {
        #[arg(long)]
        listen: String,
    },
    /// Drive load as described by a JSON spec file; print the results as JSON.
    Load {
        #[arg(long)]
        spec: PathBuf,
    },
    /// The whole comparison.
    Run(run::Options),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Upstream { listen } => runtime()?.block_on(upstream::serve(&listen)),
        Command::Load { spec } => {
            let spec: load::Spec = serde_json::from_slice(&std::fs::read(spec)?)?;
            let result = runtime()?.block_on(load::drive(spec))?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }
        Command::Run(options) => run::run(options),
    }
}

/// As many workers as the cores this process may run on (its affinity, when pinned).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}
