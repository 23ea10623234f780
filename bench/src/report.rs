//! The results as Markdown, and the section of BENCHMARKS.md they replace.

use std::{fmt::Write as _, path::Path, process::Command};

use crate::load::Outcome;

pub struct Throughput {
    pub concurrency: usize,
    pub cpu_us_per_request: f64,
    pub outcome: Outcome,
}

pub struct Memory {
    pub name: String,
    pub idle_kib: u64,
    pub peak_kib: u64,
    pub outcome: Outcome,
}

pub struct Measured {
    pub nginx_version: Option<String>,
    pub load_average: String,
    pub seconds: f64,
    pub pinned: bool,
    /// Concurrency 1, every path in turn.
    pub latency: Vec<Outcome>,
    pub throughput: Vec<Throughput>,
    /// A vendor that takes 50 ms, concurrency 64.
    pub slow_upstream: Vec<Outcome>,
    /// Streamed audio, every path in turn.
    pub ttfb: Vec<Outcome>,
    pub memory: Vec<Memory>,
    pub streams: usize,
    /// The conversation and the gateway's CPU milliseconds per conversation.
    pub conversation: Option<(Outcome, f64)>,
}

impl Measured {
    /// Requests that failed in any measurement.
    pub fn failed_requests(&self) -> usize {
        let outcomes = self
            .latency
            .iter()
            .chain(self.throughput.iter().map(|t| &t.outcome))
            .chain(&self.slow_upstream)
            .chain(&self.ttfb)
            .chain(self.memory.iter().map(|m| &m.outcome))
            .chain(self.conversation.as_ref().map(|(o, _)| o));
        outcomes.map(|o| o.errors).sum()
    }
}

const BEGIN: &str = "<!-- bench/run.sh writes from here -->";
const END: &str = "<!-- bench/run.sh writes up to here -->";

/// Replaces the harness's section of `path` (between its markers), or appends it.
pub fn write_section(path: &Path, markdown: &str) -> anyhow::Result<()> {
    let current = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{BEGIN}\n{markdown}{END}");
    let updated = match (current.find(BEGIN), current.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            format!("{}{section}{}", &current[..begin], &current[end + END.len()..])
        }
        _ => format!("{}\n{section}\n", current.trim_end()),
    };
    std::fs::write(path, updated)?;
    Ok(())
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1e3)
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn find<'a>(outcomes: &'a [Outcome], name: &str) -> Option<&'a Outcome> {
    outcomes.iter().find(|o| o.name == name)
}

fn command(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    format!("{cores} cores ({model}), {:.0} GiB, Linux {}", memory_kib as f64 / 1048576.0, command("uname", &["-r"]))
}

/// An interleaved measurement's table: each path's percentiles (to the first byte with `ttfb`,
/// else to the last) and what they add to the direct path's.
fn percentile_table(out: &mut String, outcomes: &[Outcome], counted: &str, ttfb: bool) {
    let pick = |o: &Outcome| if ttfb { o.ttfb_us } else { o.total_us };
    let direct = find(outcomes, "direct").map(pick);
    let _ = writeln!(out, "| path | {counted} | p50 | p90 | p99 | added p50 | added p90 | added p99 | errors |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for outcome in outcomes {
        let p = pick(outcome);
        let added = match direct.filter(|_| outcome.name != "direct") {
            Some(d) => format!("{} | {} | {}", ms(p.p50 - d.p50), ms(p.p90 - d.p90), ms(p.p99 - d.p99)),
            None => "— | — | —".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {added} | {} |",
            outcome.name,
            outcome.requests,
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            outcome.errors
        );
    }
}

pub fn markdown(m: &Measured) -> String {
    let mut out = String::new();
    let dirty = !command("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let _ = writeln!(out, "## Load harness: the gateway next to the direct path and a bare proxy\n");
    let _ = writeln!(
        out,
        "- **Command:** `bash bench/run.sh` (builds the release gateway and `speechgate-bench`, installs nginx-light \
         when apt can, starts a throwaway PostgreSQL, runs `speechgate-bench run --out BENCHMARKS.md`).\n\
         - **Run:** commit `{}`{}, {}; {}; load average before: {}.\n\
         - **Proxies:** nginx {} (`proxy_pass` to an upstream block with keep-alive, one worker, no access log, \
         buffering off) and the release gateway with its default configuration (API key auth, usage metering, \
         metrics, the JSON request log to /dev/null), once on SQLite and once on PostgreSQL.",
        command("git", &["rev-parse", "--short", "HEAD"]),
        if dirty { " with uncommitted changes" } else { "" },
        command("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        machine(),
        m.load_average.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        m.nginx_version.as_deref().unwrap_or("(not present: no floor)"),
    );
    let _ = writeln!(
        out,
        "- **Method:** a fake vendor (`speechgate-bench upstream`, hyper) answers OpenAI-style speech requests; \
         the load generator (`speechgate-bench load`, hyper, one keep-alive connection per worker and path) runs \
         as its own process. {} Each path is asked for the same 4,800-byte PCM clip: *direct* to the fake \
         vendor, through nginx (same request), and through the gateway (`/v1/audio/speech`, PCM pass-through). \
         CPU per request is the server process's user + system time from `/proc/<pid>/stat` over a {}-second \
         run, divided by the requests served (for *direct*, the fake vendor's own). Interleaved runs send each \
         worker's requests to every path in turn, so that the machine's noise falls on all alike; \"added\" is a \
         path's percentile minus the direct path's. Times in milliseconds.\n",
        if m.pinned {
            "The servers (nginx, the gateways) are pinned to core 0; the load generator and the fake vendor \
             to the other cores."
        } else {
            "**Nothing is pinned** (one core, or no `taskset`): servers and load share the cores."
        },
        m.seconds,
    );

    let _ = writeln!(out, "### Latency at concurrency 1 (interleaved, to the last byte)\n");
    percentile_table(&mut out, &m.latency, "requests", false);

    let _ = writeln!(out, "\n### Throughput and CPU per request (one path at a time)\n");
    let _ = writeln!(out, "| path | concurrency | requests/s | CPU µs per request | × nginx | p50 | p99 | errors |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for t in &m.throughput {
        let floor = m.throughput.iter().find(|n| n.concurrency == t.concurrency && n.outcome.name == "nginx");
        let ratio = floor
            .filter(|_| t.outcome.name != "direct")
            .map_or("—".to_owned(), |n| format!("{:.2}", t.cpu_us_per_request / n.cpu_us_per_request));
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.1} | {ratio} | {} | {} | {} |",
            t.outcome.name,
            t.concurrency,
            t.outcome.rps(),
            t.cpu_us_per_request,
            ms(t.outcome.total_us.p50),
            ms(t.outcome.total_us.p99),
            t.outcome.errors
        );
    }

    let _ = writeln!(out, "\n### A vendor that takes 50 ms, concurrency 64 (one path at a time)\n");
    let _ = writeln!(out, "| path | requests/s | p50 | p99 | errors |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for o in &m.slow_upstream {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {} |",
            o.name,
            o.rps(),
            ms(o.total_us.p50),
            ms(o.total_us.p99),
            o.errors
        );
    }

    let _ = writeln!(
        out,
        "\n### Streamed audio: time to first byte (interleaved, 4 streams at a time)\n\n\
         The fake vendor sends ten chunks of audio, the first at once, then one every 10 ms.\n"
    );
    percentile_table(&mut out, &m.ttfb, "streams", true);

    let _ = writeln!(
        out,
        "\n### Memory: resident set, idle and with {} concurrent slow streams\n\n\
         Idle is after start, before any request; the peak is sampled every 20 ms while the streams run (4 s).\n",
        m.streams
    );
    let _ = writeln!(out, "| server | idle MB | peak MB | KiB per stream | streams completed | errors |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for memory in &m.memory {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.1} | {} | {} |",
            memory.name,
            mb(memory.idle_kib),
            mb(memory.peak_kib),
            memory.peak_kib.saturating_sub(memory.idle_kib) as f64 / m.streams as f64,
            memory.outcome.requests,
            memory.outcome.errors
        );
    }

    if let Some((outcome, cpu_ms)) = &m.conversation {
        let _ = writeln!(
            out,
            "\n### Conversation: 10 turns of 6 s of speech, mixed to one mp3 (24 kHz)\n\n\
             One conversation at a time through {}, after two for warming up; the fake vendor answers each turn at once.\n",
            outcome.name
        );
        let _ = writeln!(out, "| conversations | p50 ms | p99 ms | gateway CPU ms each | errors |");
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.0} | {} |",
            outcome.requests,
            outcome.total_us.p50 / 1e3,
            outcome.total_us.p99 / 1e3,
            cpu_ms,
            outcome.errors
        );
    }

    targets(&mut out, m);
    out
}

/// The issue's targets on this machine, each with what was measured.
fn targets(out: &mut String, m: &Measured) {
    let mut rows: Vec<(String, String, bool)> = Vec::new();
    let direct = find(&m.latency, "direct");
    let direct_ttfb = find(&m.ttfb, "direct");
    for gateway in m.latency.iter().filter(|o| o.name.starts_with("gateway")) {
        let name = &gateway.name;
        let nginx = m.throughput.iter().find(|t| t.concurrency == 16 && t.outcome.name == "nginx");
        let ours = m.throughput.iter().find(|t| t.concurrency == 16 && t.outcome.name == *name);
        if let (Some(nginx), Some(ours)) = (nginx, ours) {
            let ratio = ours.cpu_us_per_request / nginx.cpu_us_per_request;
            rows.push((
                format!("{name}: CPU per request ≤ 2× nginx at concurrency 16"),
                format!("{ratio:.2}× ({:.1} µs vs {:.1} µs)", ours.cpu_us_per_request, nginx.cpu_us_per_request),
                ratio <= 2.0,
            ));
        }
        if let Some(direct) = direct {
            let p50 = gateway.total_us.p50 - direct.total_us.p50;
            let p99 = gateway.total_us.p99 - direct.total_us.p99;
            rows.push((
                format!("{name}: added latency p50 ≤ 0.2 ms at concurrency 1"),
                format!("{} ms", ms(p50)),
                p50 <= 200.0,
            ));
            rows.push((
                format!("{name}: added latency p99 ≤ 0.5 ms at concurrency 1"),
                format!("{} ms", ms(p99)),
                p99 <= 500.0,
            ));
        }
        if let (Some(direct), Some(ours)) = (direct_ttfb, find(&m.ttfb, name)) {
            let p50 = ours.ttfb_us.p50 - direct.ttfb_us.p50;
            rows.push((
                format!("{name}: added time to first byte p50 ≤ 0.3 ms"),
                format!("{} ms", ms(p50)),
                p50 <= 300.0,
            ));
        }
        if let Some(memory) = m.memory.iter().find(|mem| mem.name == *name) {
            rows.push((
                format!("{name}: RSS idle < 60 MB"),
                format!("{:.1} MB", mb(memory.idle_kib)),
                mb(memory.idle_kib) < 60.0,
            ));
            rows.push((
                format!("{name}: RSS with {} streams < 150 MB", m.streams),
                format!("{:.1} MB ({} errors)", mb(memory.peak_kib), memory.outcome.errors),
                mb(memory.peak_kib) < 150.0 && memory.outcome.errors == 0,
            ));
        }
    }
    if let Some((outcome, _)) = &m.conversation {
        let p50 = outcome.total_us.p50 / 1e3;
        rows.push(("10-turn 60 s conversation mixed and encoded < 400 ms".into(), format!("{p50:.0} ms"), p50 < 400.0));
    }
    let _ = writeln!(out, "\n### Targets\n\n| target | measured | met |\n|---|---:|:---:|");
    for (target, measured, met) in rows {
        let _ = writeln!(out, "| {target} | {measured} | {} |", if met { "yes" } else { "**no**" });
    }
}
