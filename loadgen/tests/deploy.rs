//! The Kubernetes manifests of deploy/k8s/, checked without a cluster:
//! kubeconform is not installable from the registries this project uses,
//! so this test checks the fields each kind requires and what ties the
//! files together (the ConfigMap's keys, the Service's selector and port,
//! the agents' count), and parses the options they pass with loadgen's own
//! parser and validator.

use clap::Parser;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s")
}

/// Every document of every manifest, by kind and name.
fn manifests() -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for f in [
        "configmap.yaml",
        "redis.yaml",
        "agents-job.yaml",
        "controller-job.yaml",
    ] {
        let text = std::fs::read_to_string(dir().join(f)).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{f}: {e}"));
            let kind = s(&v, &["kind"]);
            let api = s(&v, &["apiVersion"]);
            let want = match kind.as_str() {
                "ConfigMap" | "Service" => "v1",
                "Deployment" => "apps/v1",
                "Job" => "batch/v1",
                k => panic!("{f}: unexpected kind {k}"),
            };
            assert_eq!(api, want, "{f}: {kind}");
            let name = s(&v, &["metadata", "name"]);
            assert!(
                !name.is_empty()
                    && name.len() <= 63
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{f}: bad name {name:?}"
            );
            assert!(out.insert((kind, name), v).is_none(), "{f}: duplicate");
        }
    }
    out
}

use serde::Deserialize;

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut at = v;
    for k in path {
        at = at
            .get(*k)
            .unwrap_or_else(|| panic!("missing {}", path.join(".")));
    }
    at
}

fn s(v: &Value, path: &[&str]) -> String {
    match get(v, path) {
        Value::String(x) => x.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("{} is not a string: {other:?}", path.join(".")),
    }
}

fn n(v: &Value, path: &[&str]) -> u64 {
    get(v, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{} is not a count", path.join(".")))
}

fn seq<'a>(v: &'a Value, path: &[&str]) -> &'a Vec<Value> {
    get(v, path)
        .as_sequence()
        .unwrap_or_else(|| panic!("{} is not a list", path.join(".")))
}

/// A Job's pod spec, checked for what every Job pod needs.
fn job_container(job: &Value) -> &Value {
    let pod = get(job, &["spec", "template", "spec"]);
    let restart = s(pod, &["restartPolicy"]);
    assert!(
        ["Never", "OnFailure"].contains(&restart.as_str()),
        "{restart}"
    );
    let containers = seq(pod, &["containers"]);
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert!(!s(c, &["name"]).is_empty() && s(c, &["image"]).contains("loadgen"));
    c
}

/// The container's environment as the pod would see it: ConfigMap keys
/// looked up (each must exist), the completion index as given.
fn env_of(c: &Value, data: &BTreeMap<String, String>, index: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for e in seq(c, &["env"]) {
        let name = s(e, &["name"]);
        let from = get(e, &["valueFrom"]);
        let value = if let Some(r) = from.get("configMapKeyRef") {
            assert_eq!(s(r, &["name"]), "loadgen-options");
            let key = s(r, &["key"]);
            data.get(&key)
                .unwrap_or_else(|| panic!("the ConfigMap has no {key}"))
                .clone()
        } else {
            let path = s(from, &["fieldRef", "fieldPath"]);
            assert!(path.contains("job-completion-index"), "{path}");
            index.to_string()
        };
        env.insert(name, value);
    }
    env
}

/// `exec loadgen ...` with `$VAR` and `"$VAR"` expanded (split on spaces
/// like the shell, quoted ones kept whole), every variable defined.
fn argv(c: &Value, env: &BTreeMap<String, String>) -> Vec<String> {
    assert_eq!(
        seq(c, &["command"]),
        &vec![Value::from("/bin/sh"), Value::from("-c")]
    );
    let line = seq(c, &["args"])[0].as_str().unwrap().to_string();
    let line = line.strip_prefix("exec loadgen ").expect("exec loadgen");
    let mut out = vec!["loadgen".to_string()];
    for word in line.split_whitespace() {
        let quoted = word.starts_with('"');
        let w = word.trim_matches('"');
        let mut expanded = w.to_string();
        for (k, v) in env {
            expanded = expanded.replace(&format!("${k}"), v);
        }
        assert!(!expanded.contains('$'), "undefined variable in {word}");
        if quoted {
            out.push(expanded);
        } else {
            out.extend(expanded.split_whitespace().map(String::from));
        }
    }
    out
}

#[test]
fn the_manifests_hold_together_and_pass_loadgen_s_own_checks() {
    let m = manifests();
    let cm = &m[&("ConfigMap".to_string(), "loadgen-options".to_string())];
    let data: BTreeMap<String, String> = get(cm, &["data"])
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
        .collect();
    let agents: u64 = data["AGENTS"].parse().unwrap();

    // Redis: the Service selects the Deployment's pods, on a port the
    // container opens, and the coordinator URL names that Service.
    let dep = &m[&("Deployment".to_string(), "loadgen-redis".to_string())];
    let labels = get(dep, &["spec", "template", "metadata", "labels"]);
    for (k, v) in get(dep, &["spec", "selector", "matchLabels"])
        .as_mapping()
        .unwrap()
    {
        assert_eq!(
            labels.get(k),
            Some(v),
            "the Deployment selects its own pods"
        );
    }
    let svc = &m[&("Service".to_string(), "loadgen-redis".to_string())];
    for (k, v) in get(svc, &["spec", "selector"]).as_mapping().unwrap() {
        assert_eq!(labels.get(k), Some(v), "the Service selects the Redis pods");
    }
    let port = &seq(svc, &["spec", "ports"])[0];
    let container = &seq(dep, &["spec", "template", "spec", "containers"])[0];
    let opened = seq(container, &["ports"])
        .iter()
        .any(|p| s(p, &["name"]) == s(port, &["targetPort"]));
    assert!(
        opened,
        "the Service's targetPort is a port of the container"
    );
    assert_eq!(
        data["COORDINATOR"],
        format!(
            "redis://{}:{}",
            s(svc, &["metadata", "name"]),
            n(port, &["port"])
        )
    );

    // The agents: an Indexed Job with one pod per agent.
    let aj = &m[&("Job".to_string(), "loadgen-agents".to_string())];
    assert_eq!(s(aj, &["spec", "completionMode"]), "Indexed");
    assert_eq!(n(aj, &["spec", "completions"]), agents);
    assert_eq!(n(aj, &["spec", "parallelism"]), agents);
    let c = job_container(aj);
    let args = argv(c, &env_of(c, &data, "2"));
    let opts = loadgen::Opts::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let Some(loadgen::Command::Agent(a)) = opts.command else {
        panic!("{args:?} is not `loadgen agent`");
    };
    assert_eq!(
        (a.coordinator.as_str(), a.name.as_deref()),
        (data["COORDINATOR"].as_str(), Some("agent-2"))
    );
    assert_eq!(a.runs, 1, "a Job's agent exits after its run");

    // The controller: a normal run's options, accepted by loadgen's own
    // validator (the target's host name replaced, as it resolves only
    // inside the cluster).
    let cj = &m[&("Job".to_string(), "loadgen-controller".to_string())];
    assert_eq!(n(cj, &["spec", "completions"]), 1);
    let c = job_container(cj);
    let mut args = argv(c, &env_of(c, &data, ""));
    let at = args.iter().position(|a| a == "--url").expect("--url");
    let url = &args[at + 1];
    let after_scheme = url.strip_prefix("ws://").expect("a ws:// URL");
    let path = &after_scheme[after_scheme.find('/').expect("a path")..];
    args[at + 1] = format!("ws://127.0.0.1:8081{path}");
    let opts = loadgen::Opts::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let cfg =
        loadgen::config::Config::from_opts(&opts.load).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let ag = cfg.agents.expect("the controller runs agents");
    assert_eq!(
        (ag.count as u64, ag.coordinator.as_str()),
        (agents, data["COORDINATOR"].as_str())
    );

    // kustomization.yaml lists every manifest.
    let k: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(dir().join("kustomization.yaml")).unwrap(),
    )
    .unwrap();
    let mut listed: Vec<&str> = seq(&k, &["resources"])
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "agents-job.yaml",
            "configmap.yaml",
            "controller-job.yaml",
            "redis.yaml"
        ]
    );
}
