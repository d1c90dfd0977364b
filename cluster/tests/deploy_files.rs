//! The deploy files at the top of the repository, checked without Docker.
//!
//! There is no Docker engine here, so nothing would notice a compose file
//! whose nginx points at a port no node listens on, or an nginx config that
//! nginx refuses. These tests parse `docker-compose.multi-node.yml`, run the
//! real `nginx -t` on `nginx-lb.conf`, read the `Dockerfile`, and check that
//! the three agree with each other and with the seed (nginx 8080, nodes
//! 8081-8083, Redis 6379, the seed's container names).

use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn compose() -> Value {
    serde_yaml_ng::from_str(&repo_file("docker-compose.multi-node.yml"))
        .expect("docker-compose.multi-node.yml is valid YAML")
}

fn service<'a>(c: &'a Value, name: &str) -> &'a Value {
    let s = &c["services"][name];
    assert!(s.is_mapping(), "service {name} missing");
    s
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v:?}"))
}

/// `environment:` as a map, whichever of the two compose forms is used.
fn env_of(s: &Value) -> BTreeMap<String, String> {
    match &s["environment"] {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => panic!("environment value {other:?}"),
                };
                (str_of(k, "env key").to_string(), v)
            })
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .filter_map(|i| i.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `ports:` as (host port, container port) pairs.
fn ports_of(s: &Value) -> Vec<(u16, u16)> {
    s["ports"]
        .as_sequence()
        .map(|p| {
            p.iter()
                .map(|m| {
                    let m = str_of(m, "port mapping");
                    let parts: Vec<&str> = m.split(':').collect();
                    let n = parts.len();
                    assert!(n >= 2, "port mapping {m} needs HOST:CONTAINER");
                    (parts[n - 2].parse().unwrap(), parts[n - 1].parse().unwrap())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `server HOST:PORT` lines of the `upstream` block, and the `listen` ports.
fn nginx_upstreams_and_listen(conf: &str) -> (Vec<String>, Vec<u16>) {
    let upstream = conf
        .split_once("upstream wsnodes {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .expect("an `upstream wsnodes { }` block")
        .0;
    let servers = upstream
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("server "))
        .map(|rest| {
            rest.split(|c: char| c.is_whitespace() || c == ';')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let listens = conf
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("listen "))
        .map(|rest| {
            let port: String = rest
                .rsplit(':')
                .next()
                .unwrap()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            port.parse().expect("listen PORT")
        })
        .collect();
    (servers, listens)
}

fn dockerfile_exposed() -> Vec<u16> {
    repo_file("Dockerfile")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("EXPOSE "))
        .flat_map(|ports| ports.split_whitespace().map(|p| p.parse::<u16>().unwrap()))
        .collect()
}

#[test]
fn compose_matches_the_seed_the_nginx_config_and_the_dockerfile() {
    let c = compose();
    let services: Vec<&str> = c["services"]
        .as_mapping()
        .expect("services")
        .keys()
        .map(|k| str_of(k, "service name"))
        .collect();
    assert_eq!(services, ["redis", "node1", "node2", "node3", "nginx"]);

    let redis = service(&c, "redis");
    assert_eq!(redis["container_name"].as_str(), Some("demo-redis-multi"));
    assert_eq!(ports_of(redis), [(6379, 6379)]);
    assert!(redis["healthcheck"]["test"].is_sequence());

    let (upstreams, listens) = nginx_upstreams_and_listen(&repo_file("nginx-lb.conf"));
    let exposed = dockerfile_exposed();
    let mut node_addrs = Vec::new();
    for i in 1..=3u16 {
        let name = format!("node{i}");
        let port = 8080 + i;
        let s = service(&c, &name);
        assert_eq!(
            s["container_name"].as_str(),
            Some(format!("demo-java-websocket-{i}").as_str()),
            "seed's container name for {name}"
        );
        assert_eq!(
            s["build"]["dockerfile"].as_str(),
            Some("Dockerfile"),
            "{name} builds the Dockerfile"
        );
        let env = env_of(s);
        assert_eq!(
            env.get("WSNODE_LISTEN").map(String::as_str),
            Some(format!("0.0.0.0:{port}").as_str()),
            "{name}"
        );
        assert_eq!(env.get("WSNODE_NODE_ID"), Some(&name));
        assert_eq!(
            env.get("WSNODE_REDIS").map(String::as_str),
            Some("redis://redis:6379"),
            "{name} joins the redis service"
        );
        assert_eq!(ports_of(s), [(port, port)], "{name} published on {port}");
        assert!(
            exposed.contains(&port),
            "Dockerfile EXPOSE {exposed:?} lacks {port}"
        );
        let hc: Vec<&str> = s["healthcheck"]["test"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} healthcheck"))
            .iter()
            .map(|v| str_of(v, "healthcheck arg"))
            .collect();
        assert_eq!(hc[..3], ["CMD", "wsnode", "health"], "{name}");
        assert_eq!(
            hc.get(3).copied(),
            Some(format!("http://127.0.0.1:{port}/health").as_str()),
            "{name} probes its own port"
        );
        assert_eq!(
            s["depends_on"]["redis"]["condition"].as_str(),
            Some("service_healthy")
        );
        node_addrs.push(format!("{name}:{port}"));
    }
    assert_eq!(
        upstreams, node_addrs,
        "nginx-lb.conf upstream = the compose nodes and their ports"
    );

    let nginx = service(&c, "nginx");
    assert_eq!(ports_of(nginx), [(8080, 8080)]);
    assert_eq!(
        listens,
        [8080],
        "nginx-lb.conf listens where compose publishes"
    );
    let volumes: Vec<&str> = nginx["volumes"]
        .as_sequence()
        .expect("nginx volumes")
        .iter()
        .map(|v| str_of(v, "volume"))
        .collect();
    assert!(
        volumes.contains(&"./nginx-lb.conf:/etc/nginx/nginx.conf:ro"),
        "{volumes:?}"
    );
    for i in 1..=3 {
        assert_eq!(
            nginx["depends_on"][format!("node{i}").as_str()]["condition"].as_str(),
            Some("service_healthy"),
            "nginx resolves node{i} at start, so it waits for it"
        );
    }
    let nginx_hc = nginx["healthcheck"]["test"]
        .as_sequence()
        .expect("nginx healthcheck");
    assert!(
        str_of(nginx_hc.last().unwrap(), "nginx healthcheck url").ends_with(":8080/nginx-health"),
        "{:?}",
        nginx["healthcheck"]
    );
}

#[test]
fn nginx_lb_conf_proxies_websockets_the_seed_way() {
    let conf = repo_file("nginx-lb.conf");
    for needle in [
        "ip_hash;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_read_timeout 3600s;",
        "proxy_send_timeout 3600s;",
        "location /health",
        "location = /nginx-health",
        "worker_connections 20000;",
    ] {
        assert!(conf.contains(needle), "nginx-lb.conf lacks {needle}");
    }
    // The official image starts nginx with -g 'daemon off;': a `daemon` line would clash.
    assert!(!conf.lines().any(|l| l.trim_start().starts_with("daemon")));
}

#[test]
fn nginx_lb_conf_passes_nginx_t() {
    let conf = repo_file("nginx-lb.conf");
    let (upstreams, _) = nginx_upstreams_and_listen(&conf);
    // The compose host names do not resolve here: point them at loopback ports.
    let local: Vec<(String, SocketAddr)> = upstreams
        .iter()
        .map(|u| {
            let port = u.rsplit(':').next().unwrap().parse().unwrap();
            (u.clone(), SocketAddr::from(([127, 0, 0, 1], port)))
        })
        .collect();
    let pairs: Vec<(&str, SocketAddr)> = local.iter().map(|(h, a)| (h.as_str(), *a)).collect();
    let dir = tempfile::tempdir().unwrap();
    let text = cluster::nginx::localize_deploy_conf(&conf, &pairs)
        .replace("@PORT@", "8080")
        .replace("@PREFIX@", &dir.path().to_string_lossy());
    assert!(!text.contains("node1:"), "host names replaced:\n{text}");
    let path = dir.path().join("nginx-lb.conf");
    std::fs::write(&path, &text).unwrap();
    let out = cluster::nginx::test_config(None, &path, dir.path())
        .unwrap_or_else(|e| panic!("{e}\nconfig:\n{text}"));
    assert!(out.contains("test is successful"), "{out}");
}

#[test]
fn nginx_t_rejects_a_broken_config() {
    // The check above can fail: the same run on a config with a typo.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.conf");
    std::fs::write(
        &path,
        "events {}\nhttp { upstream u { ip_hash; servr 127.0.0.1:1; } }\n",
    )
    .unwrap();
    let err = cluster::nginx::test_config(None, &path, dir.path()).unwrap_err();
    assert!(err.to_string().contains("servr"), "{err}");
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_a_healthcheck() {
    let text = repo_file("Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(froms[0].contains(" AS builder"), "{froms:?}");
    assert!(
        froms.last().unwrap().contains("-slim") && !froms.last().unwrap().contains("rust"),
        "small runtime image: {froms:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("COPY --from=builder")),
        "the runtime stage takes only the binary"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("--bin wsnode") && l.contains("--locked")),
        "builds wsnode from the lock file"
    );

    // The last USER of the final stage is not root.
    let last_stage = text.rsplit("\nFROM ").next().unwrap();
    let user = last_stage
        .lines()
        .filter_map(|l| l.trim().strip_prefix("USER "))
        .next_back()
        .expect("USER in the runtime stage");
    let name = user.split(':').next().unwrap().trim();
    assert!(name != "root" && name != "0", "runs as {user}");

    let hc = lines
        .iter()
        .position(|l| l.starts_with("HEALTHCHECK"))
        .expect("HEALTHCHECK");
    let hc_text = lines[hc..]
        .iter()
        .take(3)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(hc_text.contains("[\"wsnode\", \"health\"]"), "{hc_text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ENTRYPOINT [\"wsnode\"]"))
    );
    assert_eq!(dockerfile_exposed(), [8081, 8082, 8083]);

    let ignore = repo_file(".dockerignore");
    for must in ["target/", ".git/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == must),
            ".dockerignore lacks {must}"
        );
    }
}
