//! The test bed itself: GPU pods schedule and run the worker image; Services reach their pods from
//! another pod and from the host; `tests/cluster/up` is idempotent.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::PostParams;
use serde_json::json;

#[tokio::test]
async fn gpu_pod_runs_worker_info() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "gpu").await;
    let pods = ns.api::<Pod>();
    let pod: Pod = from_json(json!({
        "metadata": {"name": "worker-info"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "worker",
                "image": "modelops/worker:dev",
                "imagePullPolicy": "IfNotPresent",
                "args": ["info"],
                "resources": {"limits": {"nvidia.com/gpu": 1}},
                "securityContext": restricted_security_context(),
            }],
        }
    }));
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let (pod, log) = finished_pod(&pods, "worker-info", Duration::from_secs(120)).await;
    assert_eq!(phase(&pod), Some("Succeeded"), "pod failed; log:\n{log}");
    assert!(
        pod.spec.as_ref().unwrap().node_name.is_some(),
        "pod was never scheduled"
    );

    let info: serde_json::Value = serde_json::from_str(log.trim())
        .unwrap_or_else(|e| panic!("`modelops-worker info` printed no JSON ({e}):\n{log}"));
    assert!(
        info["libtorch"].as_str().unwrap().starts_with("2.13.0"),
        "{info}"
    );
    // The test bed advertises GPUs but has none: the worker must fall back to the CPU.
    assert_eq!(info["device"], "cpu", "{info}");
    assert_eq!(info["cudaAvailable"], false, "{info}");
    ns.delete().await;
}

/// One GET from the host over a fresh connection.
fn host_get(ip: &str, port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect((ip, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_owned())
        .unwrap_or_default())
}

#[tokio::test]
async fn service_reaches_pods_from_a_pod_and_from_the_host() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "svc").await;
    let labels = json!({"app": "netcheck"});
    let deployment: Deployment = from_json(json!({
        "metadata": {"name": "netcheck"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "serve",
                    "image": "modelops/netcheck:dev",
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["serve", "8080"],
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    "securityContext": restricted_security_context(),
                }]},
            },
        }
    }));
    let service: Service = from_json(json!({
        "metadata": {"name": "netcheck"},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
    }));
    ns.api::<Deployment>()
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let service = ns
        .api::<Service>()
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    wait(
        &ns.api::<Deployment>(),
        "netcheck",
        Duration::from_secs(120),
        |d| d.and_then(|d| d.status.as_ref()?.ready_replicas) == Some(2),
    )
    .await;
    let backends: BTreeSet<String> = ns
        .api::<Pod>()
        .list(&kube::api::ListParams::default().labels("app=netcheck"))
        .await
        .unwrap()
        .into_iter()
        .map(|p| format!("hello from {}", p.metadata.name.unwrap()))
        .collect();
    assert_eq!(backends.len(), 2);
    let cluster_ip = service.spec.unwrap().cluster_ip.unwrap();

    // From the host. kube-proxy may still be writing the rules (first none, then one endpoint)
    // when the Deployment turns ready; once both are in, it spreads fresh connections at random,
    // so both pods answer within a few requests. Keep asking until both have, for up to a minute.
    let mut seen = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 2 && std::time::Instant::now() < deadline {
        if let Ok(body) = tokio::task::spawn_blocking({
            let ip = cluster_ip.clone();
            move || host_get(&ip, 80)
        })
        .await
        .unwrap()
        {
            assert!(backends.contains(&body), "unexpected answer {body:?}");
            seen.insert(body);
        }
    }
    assert_eq!(
        seen, backends,
        "the host did not reach both pods through {cluster_ip}"
    );

    // From a third pod.
    let client_pod: Pod = from_json(json!({
        "metadata": {"name": "client"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "get",
                "image": "modelops/netcheck:dev",
                "imagePullPolicy": "IfNotPresent",
                "args": ["get", format!("http://{cluster_ip}:80/"), "40"],
                "securityContext": restricted_security_context(),
            }],
        }
    }));
    ns.api::<Pod>()
        .create(&PostParams::default(), &client_pod)
        .await
        .unwrap();
    let (pod, log) = finished_pod(&ns.api::<Pod>(), "client", Duration::from_secs(60)).await;
    assert_eq!(phase(&pod), Some("Succeeded"), "client pod failed:\n{log}");
    let answers: BTreeSet<String> = log.lines().map(str::to_owned).collect();
    assert!(
        answers.is_subset(&backends),
        "unexpected answers {answers:?}"
    );
    assert_eq!(log.lines().count(), 40, "{log}");
    ns.delete().await;
}

#[test]
fn up_is_idempotent() {
    if skip_without_cluster() {
        return;
    }
    let dir =
        std::env::var("MODELOPS_CLUSTER_DIR").unwrap_or_else(|_| "/tmp/modelops-cluster".into());
    let pids = || -> Vec<(String, String)> {
        let mut pids: Vec<_> = std::fs::read_dir(format!("{dir}/run"))
            .expect("the test bed is up")
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        pids.sort();
        pids
    };
    let before = pids();
    assert!(
        before.len() >= 7,
        "expected the seven test-bed processes, found {before:?}"
    );
    let up = repo_root().join("tests/cluster/up");
    let status = std::process::Command::new(up).status().unwrap();
    assert!(status.success(), "a second tests/cluster/up failed");
    assert_eq!(before, pids(), "a second up restarted something");
}

/// `up` refuses a pod range that overlaps a route the host already has, names the route and the
/// variable to set, and starts nothing. It runs in a folder of its own, beside the test bed.
#[test]
fn up_refuses_address_ranges_that_collide_with_the_hosts_routes() {
    if skip_without_cluster() {
        return;
    }
    let routes = std::process::Command::new("ip")
        .args(["-4", "route", "show", "table", "main"])
        .output()
        .expect("ip runs");
    let routes = String::from_utf8_lossy(&routes.stdout);
    // The host's own network: a route that is neither the default nor the test bed's.
    let host_route = routes
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .find(|dst| dst.contains('/') && !dst.starts_with("10.88.") && !dst.starts_with("10.96."))
        .expect("the host routes a network of its own")
        .to_owned();
    let dir = std::env::temp_dir().join(format!("modelops-collision-{}", std::process::id()));
    let out = std::process::Command::new(repo_root().join("tests/cluster/up"))
        .env("MODELOPS_CLUSTER_DIR", &dir)
        .env("MODELOPS_POD_CIDR", &host_route)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "up accepted {host_route}: {stderr}");
    assert!(
        stderr.contains(&format!("the host already routes {host_route}"))
            && stderr.contains("MODELOPS_POD_CIDR"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("starting"),
        "up started something: {stderr}"
    );
}
