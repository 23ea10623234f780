//! Docker cannot run here, so the container files are checked by reading them: the compose file
//! parses and wires the gateway to a healthy PostgreSQL; the Dockerfile builds from files that
//! exist and runs as a non-root user.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

use std::path::Path;

use serde_yaml::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn compose_runs_the_gateway_against_a_healthy_postgres() {
    let compose: Value =
        serde_yaml::from_str(&std::fs::read_to_string(Path::new(ROOT).join("docker-compose.yml")).unwrap()).unwrap();
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
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    let stages: Vec<usize> = lines.iter().enumerate().filter(|(_, l)| l.starts_with("FROM ")).map(|(i, _)| i).collect();
    assert!(stages.len() >= 2, "multi-stage build");
    let last_stage = &lines[*stages.last().unwrap()..];

    let user = last_stage.iter().find_map(|l| l.strip_prefix("USER ")).expect("runtime stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "runtime user {user}");

    for line in &lines {
        if let Some(args) = line.strip_prefix("COPY ") {
            if args.starts_with("--from=") {
                continue;
            }
            let parts: Vec<&str> = args.split_whitespace().collect();
            for source in &parts[..parts.len() - 1] {
                assert!(Path::new(ROOT).join(source).exists(), "COPY source {source} does not exist");
            }
        }
    }
    let expose = last_stage.iter().find_map(|l| l.strip_prefix("EXPOSE ")).unwrap();
    assert!(last_stage.iter().any(|l| l.contains(&format!("SPEECHGATE_LISTEN=0.0.0.0:{expose}"))));
    assert!(last_stage.iter().any(|l| l.starts_with("ENTRYPOINT") && l.contains("speechgate")));
    let ignore = std::fs::read_to_string(Path::new(ROOT).join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target"), "the build context excludes target/");
}
