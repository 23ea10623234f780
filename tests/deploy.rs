//! Docker cannot run here, so the container files are checked by reading them: the compose file
//! parses and wires the gateway to a healthy PostgreSQL; the Dockerfile builds from files that
//! exist and runs as a non-root user; and the build stage's crate compiles from exactly the files
//! that the stage copies in (cargo run on a copy of them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn compose_runs_the_gateway_against_a_healthy_postgres() {
    let compose: Value =
        serde_norway::from_str(&std::fs::read_to_string(Path::new(ROOT).join("docker-compose.yml")).unwrap()).unwrap();
    let services = &compose["services"];
    let postgres = &services["postgres"];
    assert!(postgres["image"].as_str().unwrap().starts_with("postgres:"));
    let health = postgres["healthcheck"]["test"].as_sequence().unwrap();
    assert!(health.iter().any(|part| part.as_str().unwrap_or("").contains("pg_isready")));

    let gateway = &services["gateway"];
    assert_eq!(gateway["build"].as_str(), Some("."));
    assert_eq!(gateway["depends_on"]["postgres"]["condition"].as_str(), Some("service_healthy"));
    let env = &gateway["environment"];
    let url = env["SPEECHGATE_DATABASE_URL"].as_str().unwrap();
    let user = postgres["environment"]["POSTGRES_USER"].as_str().unwrap();
    let password = postgres["environment"]["POSTGRES_PASSWORD"].as_str().unwrap();
    let db = postgres["environment"]["POSTGRES_DB"].as_str().unwrap();
    assert_eq!(url, format!("postgres://{user}:{password}@postgres:5432/{db}"));
    let listen_port = env["SPEECHGATE_LISTEN"].as_str().unwrap().rsplit(':').next().unwrap();
    let published = gateway["ports"][0].as_str().unwrap();
    assert!(published.ends_with(&format!(":{listen_port}")), "{published}");
    let grace: u64 = gateway["stop_grace_period"].as_str().unwrap().trim_end_matches('s').parse().unwrap();
    assert!(grace > speechgate::config::Config::default().server.shutdown_grace_secs);
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_copies_real_paths() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let stages = stages(&dockerfile);
    assert!(stages.len() >= 2, "multi-stage build");
    let runtime = stages.last().unwrap();
    let runtime_args = |keyword: &'static str| {
        runtime.instructions.iter().filter(move |(k, _)| k == keyword).map(|(_, args)| args.as_str())
    };

    let user = runtime_args("USER").next().expect("runtime stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "runtime user {user}");

    for stage in &stages {
        for copy in stage.copies().filter(|copy| copy.from.is_none()) {
            for source in &copy.sources {
                assert!(Path::new(ROOT).join(source).exists(), "COPY source {source} does not exist");
            }
        }
    }
    let expose = runtime_args("EXPOSE").next().unwrap();
    assert!(runtime_args("ENV").any(|env| env.contains(&format!("SPEECHGATE_LISTEN=0.0.0.0:{expose}"))));
    assert!(runtime_args("ENTRYPOINT").any(|entrypoint| entrypoint.contains("speechgate")));
    let ignore = std::fs::read_to_string(Path::new(ROOT).join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target"), "the build context excludes target/");
}

/// The build stage compiles from what it copies: the build context's files named by the stage's
/// `COPY` lines (not `--from=` another stage) are copied, to the same places under the directory
/// where the stage runs `cargo build`, into a temporary directory, and `cargo check --release
/// --locked --offline` runs there. A file that cargo needs and the Dockerfile leaves out (a
/// `[[bench]]` target, a `build.rs`, an `include_str!` outside the copied folders) fails here as it
/// would fail `docker compose up --build`. `--offline`: the registry cache is already filled by the
/// build of this test. The target directory is shared between runs (`docker-context` in this
/// build's target directory), so that only speechgate itself is checked again.
#[test]
fn the_build_stage_compiles_from_the_files_it_copies() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let ignored = docker_ignore(&std::fs::read_to_string(Path::new(ROOT).join(".dockerignore")).unwrap());
    let stages = stages(&dockerfile);
    let build = stages
        .iter()
        .find(|stage| stage.name.as_deref() == Some("build"))
        .expect("the Dockerfile has a stage named build (FROM ... AS build)");

    // Container paths: each COPY lands relative to the WORKDIR in force at that line; cargo runs
    // in the WORKDIR in force at the RUN that calls `cargo build`.
    let mut workdir = PathBuf::from("/");
    let mut copies = Vec::new();
    let mut cargo_dir = None;
    for (keyword, args) in &build.instructions {
        match keyword.as_str() {
            "WORKDIR" => workdir = workdir.join(args.trim()),
            "COPY" => {
                let copy = parse_copy(args);
                if copy.from.is_none() {
                    copies.push((workdir.clone(), copy));
                }
            }
            "ADD" => panic!("ADD in the build stage is not modelled by this test: use COPY"),
            "RUN" if args.contains("cargo build") => cargo_dir = Some(workdir.clone()),
            _ => {}
        }
    }
    let cargo_dir = cargo_dir.expect("the build stage runs `cargo build`");
    assert!(!copies.is_empty(), "the build stage copies nothing from the build context");

    let context = tempfile::Builder::new().prefix("speechgate-docker-context").tempdir().unwrap();
    for (workdir, copy) in &copies {
        let dest = workdir.join(&copy.dest);
        let dest_in_context = match dest.strip_prefix(&cargo_dir) {
            Ok(relative) => context.path().join(relative),
            Err(_) => {
                panic!("COPY destination {} is outside {}, where cargo runs", dest.display(), cargo_dir.display())
            }
        };
        let into_directory = copy.dest.ends_with('/') || copy.sources.len() > 1;
        for source in &copy.sources {
            assert!(!source.contains(['*', '?', '[']), "COPY source {source}: wildcards are not modelled by this test");
            let from = Path::new(ROOT).join(source);
            let relative = relative_to_context(source);
            assert!(from.exists(), "COPY source {source} does not exist in the repository: `docker build` fails on it");
            assert!(
                !is_ignored(&ignored, &relative),
                "COPY source {source} is excluded by .dockerignore: `docker build` fails on it"
            );
            if from.is_dir() {
                copy_tree(&from, &dest_in_context, &relative, &ignored);
            } else {
                let to = if into_directory {
                    dest_in_context.join(from.file_name().unwrap())
                } else {
                    dest_in_context.clone()
                };
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(&from, &to).unwrap();
            }
        }
    }

    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("docker-context");
    let output = Command::new(env!("CARGO"))
        .args(["check", "--release", "--locked", "--offline"])
        .current_dir(context.path())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo check failed in a copy of the files that the Dockerfile's build stage copies ({}): \
         `docker compose up --build` would fail too.\ncargo's stderr:\n{}",
        copies.iter().flat_map(|(_, copy)| copy.sources.iter().map(String::as_str)).collect::<Vec<_>>().join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn copy_lines_are_parsed_with_flags_continuations_and_stages() {
    let dockerfile = r#"# syntax=docker/dockerfile:1
ARG RUST=1.95
FROM --platform=$BUILDPLATFORM rust:${RUST} AS build
WORKDIR /src
COPY --chown=10001:10001 --chmod=644 rust-toolchain.toml \
    Cargo.toml \
    # a comment inside a continued line is dropped

    Cargo.lock ./
copy src ./src
COPY ["benches", "./benches"]
RUN cargo build --release

FROM debian:bookworm-slim
COPY --from=build /usr/local/bin/speechgate /usr/local/bin/speechgate
"#;
    let stages = stages(dockerfile);
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].name.as_deref(), Some("build"));
    assert_eq!(stages[1].name, None);
    let copies: Vec<Copy> = stages[0].copies().collect();
    let copy = |sources: &[&str], dest: &str| Copy {
        from: None,
        sources: sources.iter().map(|s| s.to_string()).collect(),
        dest: dest.to_string(),
    };
    assert_eq!(
        copies,
        [
            copy(&["rust-toolchain.toml", "Cargo.toml", "Cargo.lock"], "./"),
            copy(&["src"], "./src"),
            copy(&["benches"], "./benches"),
        ]
    );
    let runtime: Vec<Copy> = stages[1].copies().collect();
    assert_eq!(runtime.len(), 1);
    assert_eq!(runtime[0].from.as_deref(), Some("build"));
    assert!(stages[0].instructions.contains(&("RUN".to_string(), "cargo build --release".to_string())));

    let ignored = docker_ignore("target\n# comment\n*.db\n/secrets/\n");
    assert!(is_ignored(&ignored, &relative_to_context("target")));
    assert!(is_ignored(&ignored, &relative_to_context("./target/release/x")));
    assert!(is_ignored(&ignored, &relative_to_context("speechgate.db")));
    assert!(is_ignored(&ignored, &relative_to_context("secrets/key")));
    assert!(!is_ignored(&ignored, &relative_to_context("src/target.rs")));
    assert!(!is_ignored(&ignored, &relative_to_context("src/speechgate.db")));
}

/// One build stage: its name (`FROM image AS name`) and its instructions, each as the keyword in
/// upper case and its arguments, with continued lines joined and comments dropped.
struct Stage {
    name: Option<String>,
    instructions: Vec<(String, String)>,
}

impl Stage {
    fn copies(&self) -> impl Iterator<Item = Copy> + '_ {
        self.instructions.iter().filter(|(keyword, _)| keyword == "COPY").map(|(_, args)| parse_copy(args))
    }
}

/// The stages of a Dockerfile. Instructions before the first `FROM` (global `ARG`s) are left out.
fn stages(dockerfile: &str) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    let mut pending = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        // Comment lines and empty lines are dropped, also between the lines of a continued one.
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head.trim_end());
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let instruction = std::mem::take(&mut pending);
        let (keyword, args) = instruction.split_once(char::is_whitespace).unwrap_or((&instruction, ""));
        let keyword = keyword.to_ascii_uppercase();
        let args = args.trim().to_string();
        if keyword == "FROM" {
            let words: Vec<&str> = args.split_whitespace().filter(|word| !word.starts_with("--")).collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage { name, instructions: Vec::new() });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((keyword, args));
        }
    }
    assert!(pending.is_empty(), "the Dockerfile ends in a continued line");
    stages
}

/// A `COPY`: `--from=` if it copies from another stage or image, else from the build context.
#[derive(Debug, PartialEq, Eq)]
struct Copy {
    from: Option<String>,
    sources: Vec<String>,
    dest: String,
}

/// The arguments of a `COPY`: flags (`--chown=`, `--chmod=`, `--link`, `--from=`), then sources
/// and the destination, space-separated or as a JSON array.
fn parse_copy(args: &str) -> Copy {
    let mut from = None;
    let mut rest = args.trim_start();
    while rest.starts_with("--") {
        let (flag, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if let Some(stage) = flag.strip_prefix("--from=") {
            from = Some(stage.to_string());
        }
        rest = after.trim_start();
    }
    let mut words: Vec<String> = if rest.starts_with('[') {
        serde_json::from_str(rest).unwrap_or_else(|e| panic!("COPY {args}: bad JSON form: {e}"))
    } else {
        rest.split_whitespace().map(str::to_string).collect()
    };
    assert!(words.len() >= 2, "COPY {args}: needs a source and a destination");
    let dest = words.pop().unwrap();
    Copy { from, sources: words, dest }
}

/// A path in the build context as its components, without `.`.
fn relative_to_context(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

/// `.dockerignore` patterns, each as its components. Only what this repository needs is modelled:
/// `*` and `?` within a component; a pattern that matches a directory excludes what is inside.
fn docker_ignore(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            assert!(!line.starts_with('!') && !line.contains("**"), ".dockerignore {line}: not modelled by this test");
            relative_to_context(line)
        })
        .collect()
}

fn is_ignored(patterns: &[Vec<String>], path: &[String]) -> bool {
    patterns.iter().any(|pattern| {
        pattern.len() <= path.len() && pattern.iter().zip(path).all(|(pattern, part)| wildcard_match(pattern, part))
    })
}

fn wildcard_match(pattern: &str, text: &str) -> bool {
    match pattern.chars().next() {
        None => text.is_empty(),
        Some('*') => {
            (0..=text.len()).filter(|&i| text.is_char_boundary(i)).any(|i| wildcard_match(&pattern[1..], &text[i..]))
        }
        Some(c) => text
            .chars()
            .next()
            .is_some_and(|t| (c == '?' || c == t) && wildcard_match(&pattern[c.len_utf8()..], &text[t.len_utf8()..])),
    }
}

/// Copies the directory `from` (the context path `relative`) into `to`, leaving out what
/// `.dockerignore` excludes, as `COPY dir dest` copies a directory's contents.
fn copy_tree(from: &Path, to: &Path, relative: &[String], ignored: &[Vec<String>]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let mut path = relative.to_vec();
        path.push(entry.file_name().to_string_lossy().into_owned());
        if is_ignored(ignored, &path) {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, &path, ignored);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
