//! The whole comparison: every process started, pinned and driven here, and the results handed
//! to `report`.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use serde_json::json;

use crate::{
    load::{Outcome, Spec, Target},
    proc::{cpu_seconds, rss_kib},
    report::{Measured, Memory, Throughput},
};

#[derive(clap::Args)]
pub struct Options {
    /// The gateway binary (a release build).
    #[arg(long, default_value = "target/release/speechgate")]
    gateway: PathBuf,
    /// A PostgreSQL database for the second gateway (it is migrated); without it, SQLite only.
    #[arg(long, env = "SPEECHGATE_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// nginx, the bare reverse proxy to compare with; looked up in PATH and /usr/sbin if unset.
    #[arg(long)]
    nginx: Option<PathBuf>,
    /// Seconds each measurement of throughput runs (the interleaved ones run four times this).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Concurrent slow streams held for the memory measurement.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Record a CPU profile of each gateway during its run at concurrency 16 with `perf record`,
    /// into this directory (`perf report -i DIR/<file> --no-children` reads it).
    #[arg(long)]
    perf: Option<PathBuf>,
    /// Markdown file whose load-harness section is replaced by the results (e.g. BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A child process killed when dropped.
struct Process {
    child: Child,
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which cores the servers run on and which the load generator and fake vendor run on: apart
/// when the machine has two cores or more.
struct Cores {
    server: Option<String>,
    load: Option<String>,
}

impl Cores {
    fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        if cores < 2 || Command::new("taskset").arg("--version").output().is_err() {
            return Self { server: None, load: None };
        }
        Self { server: Some("0".into()), load: Some(format!("1-{}", cores - 1)) }
    }

    fn command(cores: &Option<String>, program: &Path) -> Command {
        match cores {
            Some(list) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(list).arg(program);
                command
            }
            None => Command::new(program),
        }
    }
}

struct Gateway {
    process: Process,
    addr: String,
    key: String,
    _dir: tempfile::TempDir,
}

pub fn run(options: Options) -> anyhow::Result<()> {
    let cores = Cores::detect();
    let me = std::env::current_exe()?;
    let gateway_bin = std::fs::canonicalize(&options.gateway).with_context(|| {
        format!("the gateway binary {} (build it with cargo build --release)", options.gateway.display())
    })?;
    let nginx_bin = options.nginx.clone().or_else(find_nginx);
    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("cores: servers on {:?}, load on {:?}", cores.server, cores.load);

    let upstream_addr = free_addr()?;
    let upstream =
        Process { child: Cores::command(&cores.load, &me).args(["upstream", "--listen", &upstream_addr]).spawn()? };
    wait_http(&upstream_addr, "/", "the fake vendor", false)?;

    let nginx_dir = tempfile::tempdir()?;
    let nginx = match &nginx_bin {
        Some(bin) => Some(start_nginx(&cores, bin, nginx_dir.path(), &upstream_addr)?),
        None => {
            eprintln!("nginx not found: the bare-proxy floor is left out");
            None
        }
    };
    let sqlite_dir = tempfile::tempdir()?;
    let sqlite_url = format!("sqlite://{}/bench.db", sqlite_dir.path().display());
    let mut gateways = vec![("gateway (SQLite)", start_gateway(&cores, &gateway_bin, &sqlite_url, &upstream_addr)?)];
    if let Some(url) = &options.postgres {
        gateways.push(("gateway (PostgreSQL)", start_gateway(&cores, &gateway_bin, url, &upstream_addr)?));
    } else {
        eprintln!("no --postgres: the PostgreSQL gateway is left out");
    }
    std::thread::sleep(Duration::from_millis(500));
    // Resident memory of each server after start, before any request.
    let idle_rss: std::collections::HashMap<u32, u64> = gateways
        .iter()
        .map(|(_, g)| g.process.pid())
        .chain(nginx.as_ref().map(|(p, _)| p.pid()))
        .map(|pid| (pid, rss_kib(pid)))
        .collect();

    // Each path to the fake vendor's `mode`: direct, through nginx, through each gateway.
    let paths = |mode: &str| -> Vec<(Target, u32)> {
        let vendor_path = format!("/{mode}/v1/audio/speech");
        let vendor_body =
            json!({"model": "tts-1", "voice": "alloy", "input": "Benchmark sentence.", "response_format": "pcm"})
                .to_string();
        let mut paths = vec![(
            Target {
                name: "direct".into(),
                addr: upstream_addr.clone(),
                path: vendor_path.clone(),
                headers: vec![],
                body: vendor_body.clone(),
            },
            upstream.pid(),
        )];
        if let Some((process, addr)) = &nginx {
            paths.push((
                Target {
                    name: "nginx".into(),
                    addr: addr.clone(),
                    path: vendor_path,
                    headers: vec![],
                    body: vendor_body,
                },
                process.pid(),
            ));
        }
        for (name, gateway) in &gateways {
            let body = json!({"model": mode, "voice": "alloy", "text": "Benchmark sentence.",
                              "output": {"format": "pcm", "sampleRate": 24000}});
            paths.push((
                Target {
                    name: (*name).into(),
                    addr: gateway.addr.clone(),
                    path: "/v1/audio/speech".into(),
                    headers: vec![("authorization".into(), format!("Bearer {}", gateway.key))],
                    body: body.to_string(),
                },
                gateway.process.pid(),
            ));
        }
        paths
    };
    let driver = Driver { me: &me, cores: &cores };
    let seconds = options.seconds;

    eprintln!("warming up");
    let instant = paths("instant");
    driver.load(&instant.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>(), 16, 2.0, None)?;

    eprintln!("latency at concurrency 1, interleaved");
    let latency = driver.load(&instant.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>(), 1, seconds * 4.0, None)?;

    let mut throughput = Vec::new();
    for concurrency in [16, 64] {
        for (target, pid) in &instant {
            eprintln!("throughput: {} at concurrency {concurrency}", target.name);
            driver.load(std::slice::from_ref(target), concurrency, 1.0, None)?;
            let profile = match &options.perf {
                Some(dir) if concurrency == 16 && target.name != "direct" => {
                    Some(record_profile(dir, &target.name, *pid)?)
                }
                _ => None,
            };
            let before = cpu_seconds(*pid);
            let outcome = driver.load(std::slice::from_ref(target), concurrency, seconds, None)?.remove(0);
            let cpu = cpu_seconds(*pid) - before;
            if let Some(perf) = profile {
                stop_profile(perf)?;
            }
            throughput.push(Throughput {
                concurrency,
                cpu_us_per_request: cpu * 1e6 / outcome.requests.max(1) as f64,
                outcome,
            });
        }
    }

    let mut slow_upstream = Vec::new();
    for (target, _) in paths("ttfb50") {
        eprintln!("50 ms vendor: {} at concurrency 64", target.name);
        slow_upstream.push(driver.load(&[target], 64, seconds, None)?.remove(0));
    }

    eprintln!("streamed time to first byte, interleaved");
    let quick = paths("quickstream");
    let ttfb = driver.load(&quick.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>(), 4, seconds * 4.0, None)?;

    let streams = paths("stream");
    let mut memory = Vec::new();
    for (target, pid) in streams.iter().filter(|(_, pid)| idle_rss.contains_key(pid)) {
        eprintln!("memory: {} streams through {}", options.streams, target.name);
        let idle = idle_rss[pid];
        let (outcome, peak) = driver.load_watching(target, options.streams, *pid)?;
        memory.push(Memory { name: target.name.clone(), idle_kib: idle, peak_kib: peak, outcome });
    }

    let conversation = match gateways.first() {
        Some((name, gateway)) => {
            eprintln!("conversation through {name}");
            let turns: Vec<_> = (0..10).map(|i| json!({"voice": "alloy", "text": format!("Turn {i}")})).collect();
            let target = Target {
                name: (*name).into(),
                addr: gateway.addr.clone(),
                path: "/v1/audio/conversation".into(),
                headers: vec![("authorization".into(), format!("Bearer {}", gateway.key))],
                body: json!({"model": "speech", "turns": turns, "gapMs": 300, "volumeDbfs": -16, "output": "mp3"})
                    .to_string(),
            };
            driver.load(std::slice::from_ref(&target), 1, 60.0, Some(2))?;
            let before = cpu_seconds(gateway.process.pid());
            let outcome = driver.load(std::slice::from_ref(&target), 1, 120.0, Some(10))?.remove(0);
            let cpu = cpu_seconds(gateway.process.pid()) - before;
            Some((outcome.clone(), cpu * 1e3 / outcome.requests.max(1) as f64))
        }
        None => None,
    };

    let measured = Measured {
        nginx_version: nginx_bin.as_deref().map(nginx_version),
        load_average,
        seconds,
        pinned: cores.server.is_some(),
        latency,
        throughput,
        slow_upstream,
        ttfb,
        memory,
        streams: options.streams,
        conversation,
    };
    let markdown = crate::report::markdown(&measured);
    println!("{markdown}");
    // A failed request means a path was not measured as it should be: no figures are kept.
    let failed = measured.failed_requests();
    if failed > 0 {
        bail!("{failed} requests failed (see the errors columns): the figures are not valid and were not written");
    }
    if let Some(out) = &options.out {
        crate::report::write_section(out, &markdown)?;
        eprintln!("written to {}", out.display());
    }
    drop(gateways);
    drop(nginx);
    drop(upstream);
    Ok(())
}

struct Driver<'a> {
    me: &'a Path,
    cores: &'a Cores,
}

impl Driver<'_> {
    fn spec_file(&self, spec: &Spec) -> anyhow::Result<tempfile::NamedTempFile> {
        let mut file = tempfile::NamedTempFile::new()?;
        file.write_all(&serde_json::to_vec(spec)?)?;
        Ok(file)
    }

    fn command(&self, spec: &Path) -> Command {
        let mut command = Cores::command(&self.cores.load, self.me);
        command.arg("load").arg("--spec").arg(spec).stdout(Stdio::piped());
        command
    }

    /// Runs the load generator as its own process, on the load cores.
    fn load(
        &self,
        targets: &[Target],
        concurrency: usize,
        seconds: f64,
        max_requests: Option<usize>,
    ) -> anyhow::Result<Vec<Outcome>> {
        let spec = Spec { targets: targets.to_vec(), concurrency, duration_secs: seconds, max_requests };
        let file = self.spec_file(&spec)?;
        let output = self.command(file.path()).output()?;
        if !output.status.success() {
            bail!("the load generator failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let outcomes: Vec<Outcome> = serde_json::from_slice(&output.stdout)?;
        for outcome in &outcomes {
            if let Some(error) = &outcome.first_error {
                eprintln!("  {}: {} errors, the first: {error}", outcome.name, outcome.errors);
            }
        }
        Ok(outcomes)
    }

    /// `concurrency` streams held through one target for a few seconds, with the server's peak
    /// resident memory sampled every 20 ms meanwhile.
    fn load_watching(&self, target: &Target, concurrency: usize, pid: u32) -> anyhow::Result<(Outcome, u64)> {
        let spec = Spec { targets: vec![target.clone()], concurrency, duration_secs: 4.0, max_requests: None };
        let file = self.spec_file(&spec)?;
        let mut child = self.command(file.path()).spawn()?;
        let mut stdout = child.stdout.take().context("load generator output")?;
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            stdout.read_to_end(&mut out).map(|_| out)
        });
        let mut peak = 0;
        while child.try_wait()?.is_none() {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = reader.join().map_err(|_| anyhow::anyhow!("reader thread"))??;
        let mut outcomes: Vec<Outcome> = serde_json::from_slice(&out)?;
        Ok((outcomes.remove(0), peak))
    }
}

fn start_gateway(cores: &Cores, bin: &Path, database: &str, upstream: &str) -> anyhow::Result<Gateway> {
    let dir = tempfile::tempdir()?;
    let addr = free_addr()?;
    let providers: String = ["instant", "ttfb50", "stream", "quickstream", "speech"]
        .iter()
        .map(|mode| {
            format!(
                "[providers.compatible.{mode}]\nbase_url = \"http://{upstream}/{mode}/v1\"\nmodels = [\"{mode}\"]\n"
            )
        })
        .collect();
    // Defaults, except what a benchmark of 1,000 streams from one key needs, and no local voice.
    let config = format!(
        "[server]\nlisten = \"{addr}\"\nmax_concurrent_requests = 4096\n[database]\nurl = \"{database}\"\n\
         [auth]\nmax_concurrent_per_key = 4096\n[providers.local]\nenabled = false\n{providers}"
    );
    let config_path = dir.path().join("speechgate.toml");
    std::fs::write(&config_path, config)?;
    let config_arg = config_path.display().to_string();
    let created = Command::new(bin)
        .args(["--config", &config_arg, "keys", "create", "--name", "bench", "--json"])
        .env_clear()
        .output()?;
    if !created.status.success() {
        bail!("creating a key failed: {}", String::from_utf8_lossy(&created.stderr));
    }
    let created: serde_json::Value = serde_json::from_slice(&created.stdout)?;
    let key = created["key"].as_str().context("the created key")?.to_owned();
    // The request log goes where a container's output would, minus the reader: /dev/null.
    let child = Cores::command(&cores.server, bin)
        .args(["--config", &config_arg, "serve"])
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let process = Process { child };
    wait_http(&addr, "/healthz", "the gateway", true)?;
    Ok(Gateway { process, addr, key, _dir: dir })
}

fn start_nginx(cores: &Cores, bin: &Path, dir: &Path, upstream: &str) -> anyhow::Result<(Process, String)> {
    let addr = free_addr()?;
    let d = dir.display();
    // One process, no master, no logs: the least a reverse proxy can do. Buffering off, so that
    // streamed audio passes as it arrives, as through the gateway.
    let config = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log error;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         upstream vendor {{ server {upstream}; keepalive 256; }}\n\
         server {{\n    listen {addr};\n    location / {{\n      proxy_pass http://vendor;\n\
         proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n    }}\n  }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config)?;
    let child = Cores::command(&cores.server, bin)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join("error.log"))
        .spawn()?;
    let process = Process { child };
    wait_http(&addr, "/", "nginx", false)?;
    Ok((process, addr))
}

/// `perf record` attached to `pid`, sampling at 2,999 Hz, into `dir/<name>.perf.data`.
fn record_profile(dir: &Path, name: &str, pid: u32) -> anyhow::Result<Child> {
    std::fs::create_dir_all(dir)?;
    let file: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let output = dir.join(format!("{file}.perf.data"));
    let child = Command::new("perf")
        .args(["record", "-F", "2999", "-p", &pid.to_string(), "-o"])
        .arg(&output)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("perf (apt linux-perf)")?;
    // perf takes a moment to attach.
    std::thread::sleep(Duration::from_millis(300));
    Ok(child)
}

/// Stops `perf record` the way it expects (SIGINT), so that it writes its file out.
fn stop_profile(mut perf: Child) -> anyhow::Result<()> {
    Command::new("kill").args(["-INT", &perf.id().to_string()]).status()?;
    perf.wait()?;
    Ok(())
}

fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

fn nginx_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().trim_start_matches("nginx version: nginx/").to_owned())
        .unwrap_or_default()
}

fn free_addr() -> std::io::Result<String> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string())
}

/// Waits until `addr` answers HTTP on `path` (with a 200 when `ok` is asked for), for up to 30 s.
fn wait_http(addr: &str, path: &str, name: &str, ok: bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = TcpStream::connect(addr).and_then(|mut tcp| {
            tcp.write_all(format!("GET {path} HTTP/1.0\r\nhost: {addr}\r\n\r\n").as_bytes())?;
            let mut head = [0u8; 12];
            tcp.read_exact(&mut head)?;
            Ok(head)
        });
        match answer {
            Ok(head) if !ok || head.ends_with(b" 200") => return Ok(()),
            _ if Instant::now() > deadline => bail!("{name} at {addr} did not come up"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
