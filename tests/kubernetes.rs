//! The Kubernetes manifests (`deploy/kubernetes/`), read the way the cluster and the gateway
//! would: every file parses and is listed in the kustomization; the replicas' configuration —
//! their environment, with the Secret's values, and the ConfigMap's file — loads and validates
//! as the gateway's own; the probes hit the gateway's public health routes on the container's
//! port; the termination grace outlasts the preStop sleep, the drain delay and the shutdown
//! grace; a Job migrates while replicas do not; the Service, PDB and HPA select the Deployment;
//! and every environment variable set is one the gateway reads (`config::reads_env_var`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]
#![allow(clippy::result_large_err, reason = "figment::Jail closures return figment::Error")]

use std::{collections::BTreeMap, path::Path};

use serde_norway::Value;
use speechgate::config::{self, Config};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");

fn load(file: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(DIR).join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{file} does not parse: {e}"))
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value.as_str().unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

/// Every resource of the kustomization, by kind (one of each).
fn resources() -> BTreeMap<String, Value> {
    let kustomization = load("kustomization.yaml");
    assert_eq!(kustomization["kind"], "Kustomization");
    let listed: Vec<&str> =
        kustomization["resources"].as_sequence().unwrap().iter().map(|r| str_of(r, "resource")).collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, on_disk, "the kustomization lists exactly the manifests in the directory");
    let mut by_kind = BTreeMap::new();
    for file in listed {
        let resource = load(file);
        let kind = str_of(&resource["kind"], "kind").to_owned();
        assert!(resource["metadata"]["name"].is_string(), "{file} has a name");
        assert!(by_kind.insert(kind.clone(), resource).is_none(), "one {kind}");
    }
    for kind in
        ["ConfigMap", "Secret", "Job", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"]
    {
        assert!(by_kind.contains_key(kind), "no {kind} among {:?}", by_kind.keys());
    }
    by_kind
}

fn gateway_container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1, "one container per replica");
    &containers[0]
}

fn job_container(job: &Value) -> &Value {
    &job["spec"]["template"]["spec"]["containers"][0]
}

/// A container's environment with secret references resolved from the Secret (a reference to a
/// missing key must be optional, and is then unset, as in the cluster).
fn environment(container: &Value, secret: &Value) -> Vec<(String, String)> {
    let secret_name = str_of(&secret["metadata"]["name"], "secret name");
    assert!(container["envFrom"].is_null(), "variables are named one by one, so each can be checked");
    let mut vars = Vec::new();
    for var in container["env"].as_sequence().unwrap() {
        let name = str_of(&var["name"], "env name").to_owned();
        if let Some(value) = var["value"].as_str() {
            vars.push((name, value.to_owned()));
            continue;
        }
        let reference = &var["valueFrom"]["secretKeyRef"];
        assert_eq!(str_of(&reference["name"], "secret"), secret_name, "{name} comes from the gateway's Secret");
        let key = str_of(&reference["key"], "secret key");
        match secret["stringData"][key].as_str() {
            Some(value) => vars.push((name, value.to_owned())),
            None => {
                assert_eq!(reference["optional"], true, "{name}: the Secret has no {key:?}, so it must be optional")
            }
        }
    }
    vars
}

/// The replicas' configuration exactly as the gateway loads it: the ConfigMap's file at the path
/// `SPEECHGATE_CONFIG` names, and the container's environment.
fn replica_config(resources: &BTreeMap<String, Value>) -> Config {
    let deployment = &resources["Deployment"];
    let container = gateway_container(deployment);
    let env = environment(container, &resources["Secret"]);
    let config_path = env.iter().find(|(name, _)| name == config::CONFIG_FILE_VAR).map(|(_, v)| v.clone()).unwrap();
    let config_path = Path::new(&config_path);

    // The file is the ConfigMap's key, mounted read-only at the file's directory.
    let configmap = &resources["ConfigMap"];
    let file_name = config_path.file_name().unwrap().to_str().unwrap();
    let toml = str_of(&configmap["data"][file_name], "the configuration file").to_owned();
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| Path::new(str_of(&m["mountPath"], "mountPath")) == config_path.parent().unwrap())
        .expect("the configuration file's directory is mounted");
    let volumes = deployment["spec"]["template"]["spec"]["volumes"].as_sequence().unwrap();
    let volume = volumes.iter().find(|v| v["name"] == mount["name"]).unwrap();
    assert_eq!(volume["configMap"]["name"], configmap["metadata"]["name"]);

    let mut loaded = None;
    figment::Jail::expect_with(|jail| {
        jail.create_file("speechgate.toml", &toml)?;
        for (name, value) in &env {
            jail.set_env(name, value);
        }
        loaded = Some(Config::load(Path::new("speechgate.toml")).map_err(|e| e.to_string())?);
        Ok(())
    });
    loaded.unwrap()
}

#[test]
fn every_variable_set_is_one_the_gateway_reads() {
    let resources = resources();
    let secret = &resources["Secret"];
    for (kind, container) in
        [("Deployment", gateway_container(&resources["Deployment"])), ("Job", job_container(&resources["Job"]))]
    {
        for var in container["env"].as_sequence().unwrap() {
            let name = str_of(&var["name"], "env name");
            assert!(config::reads_env_var(name), "{kind} sets {name}, which the gateway does not read");
        }
        environment(container, secret);
    }
    // Loading refuses a SPEECHGATE__ variable that names no field, and validates the values.
    let config = replica_config(&resources);
    assert!(config.auth.admin_token.is_some(), "the admin token comes from the Secret");
    assert!(config.auth.url_signing_secret.is_some(), "replicas share the URL signing secret");
    assert!(config.providers.openai.api_key.is_some());
    assert_eq!(speechgate::store::backend_of(&config.database.url), Some(speechgate::store::Backend::Postgres));
}

#[test]
fn probes_hit_the_public_health_routes_on_the_container_port() {
    let resources = resources();
    let container = gateway_container(&resources["Deployment"]);
    let config = replica_config(&resources);
    let ports = container["ports"].as_sequence().unwrap();
    assert_eq!(ports.len(), 1);
    let port = &ports[0];
    let number = port["containerPort"].as_u64().unwrap();
    assert_eq!(u64::from(config.listen_addr().unwrap().port()), number, "the gateway listens on the container port");
    assert!(config.listen_addr().unwrap().ip().is_unspecified(), "it listens on every interface, not loopback");

    let paths = speechgate::http::openapi().paths.paths;
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(str_of(&get["path"], probe), path, "{probe}");
        assert!(paths.contains_key(path), "{path} is a route of the gateway");
        assert!(speechgate::http::middleware::PUBLIC_ROUTES.contains(&path), "{path} needs no credential");
        assert!(get["port"] == port["name"] || get["port"].as_u64() == Some(number), "{probe} port: {:?}", get["port"]);
    }
    let service = &resources["Service"]["spec"]["ports"][0];
    assert!(service["targetPort"] == port["name"] || service["targetPort"].as_u64() == Some(number));
}

#[test]
fn termination_grace_outlasts_the_prestop_sleep_and_the_shutdown() {
    let resources = resources();
    let deployment = &resources["Deployment"];
    let config = replica_config(&resources);
    let command = gateway_container(deployment)["lifecycle"]["preStop"]["exec"]["command"].as_sequence().unwrap();
    let command: Vec<&str> = command.iter().map(|c| str_of(c, "preStop")).collect();
    let [sleep, secs] = command.as_slice() else { panic!("preStop is `sleep N`: {command:?}") };
    assert_eq!(*sleep, "sleep");
    let pre_stop: u64 = secs.parse().unwrap();
    assert!(pre_stop >= 5, "long enough for the endpoints to be withdrawn everywhere");
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap();
    let needed = pre_stop + config.server.drain_delay_secs + config.server.shutdown_grace_secs;
    assert!(
        grace > needed,
        "terminationGracePeriodSeconds {grace} must exceed preStop + drain delay + shutdown grace ({needed})"
    );
}

#[test]
fn a_job_migrates_and_the_replicas_do_not() {
    let resources = resources();
    let deployment = &resources["Deployment"];
    let (gateway, job) = (gateway_container(deployment), &resources["Job"]);
    let migrate = job_container(job);
    let args: Vec<&str> = migrate["args"].as_sequence().unwrap().iter().map(|a| str_of(a, "args")).collect();
    assert_eq!(args, ["migrate"]);
    assert_eq!(migrate["image"], gateway["image"], "the Job migrates to the replicas' schema");
    assert!(matches!(job["spec"]["template"]["spec"]["restartPolicy"].as_str(), Some("OnFailure" | "Never")));
    let secret = &resources["Secret"];
    let url = |container| {
        environment(container, secret).into_iter().find(|(name, _)| name == "SPEECHGATE_DATABASE_URL").unwrap().1
    };
    assert_eq!(url(migrate), url(gateway), "one database");

    let config = replica_config(&resources);
    assert!(!config.database.migrate_on_start, "replicas leave migrating to the Job");
    assert!(Config::default().database.migrate_on_start, "the one-command start still migrates");
}

#[test]
fn the_service_pdb_and_hpa_select_the_deployment() {
    let resources = resources();
    let deployment = &resources["Deployment"];
    let pod_labels = deployment["spec"]["template"]["metadata"]["labels"].as_mapping().unwrap();
    let selector = deployment["spec"]["selector"]["matchLabels"].as_mapping().unwrap();
    let selects_pods = |labels: &serde_norway::Mapping, what: &str| {
        assert!(!labels.is_empty(), "{what} selects something");
        for (key, value) in labels {
            assert_eq!(pod_labels.get(key), Some(value), "{what} selects {key:?}={value:?}, which the pods lack");
        }
    };
    selects_pods(selector, "the Deployment");
    let pdb = &resources["PodDisruptionBudget"]["spec"];
    assert_eq!(pdb["selector"]["matchLabels"].as_mapping(), Some(selector), "the PDB selects the Deployment's pods");
    selects_pods(resources["Service"]["spec"]["selector"].as_mapping().unwrap(), "the Service");

    let hpa = &resources["HorizontalPodAutoscaler"]["spec"];
    assert_eq!(hpa["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(hpa["scaleTargetRef"]["name"], deployment["metadata"]["name"]);
    let (min, max) = (hpa["minReplicas"].as_u64().unwrap(), hpa["maxReplicas"].as_u64().unwrap());
    assert!(min >= 2 && max > min, "at least two replicas, so a disruption leaves one serving");
    assert!(pdb["maxUnavailable"].as_u64().unwrap() < min);

    let resources_of = &gateway_container(deployment)["resources"];
    assert!(resources_of["requests"]["memory"].is_string() && resources_of["requests"]["cpu"].is_string());
    assert!(resources_of["limits"]["memory"].is_string(), "a memory limit");
}
