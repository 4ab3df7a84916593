//! The test bed itself: GPU pods schedule and run the worker image; Services reach their pods from
//! another pod and from the host; `tests/cluster/up` is idempotent; the S3 server confines each
//! tenant (`tests/cluster/tenant`) to its own prefix, and pods reach it.

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

// ---------------------------------------------------------------- the S3 server and its tenants

/// The namespace's `modelops-artifacts` Secret, as an [`S3Access`].
async fn tenant_access(client: &kube::Client, ns: &str) -> S3Access {
    use k8s_openapi::api::core::v1::Secret;
    let secret = kube::Api::<Secret>::namespaced(client.clone(), ns)
        .get("modelops-artifacts")
        .await
        .unwrap_or_else(|e| panic!("Secret modelops-artifacts in {ns}: {e}"));
    let vars = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect();
    S3Access::from_vars(&vars)
}

/// A namespace name nobody has used yet.
fn unique_namespace(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let suffix = format!("{:x}", std::process::id() ^ nanos);
    format!("t-{prefix}-{}", &suffix[suffix.len().saturating_sub(6)..])
}

/// An error and everything below it, as text: object_store keeps the HTTP status and the S3
/// error document in the errors it wraps.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(" <- ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// How object_store reports a request the store refused with HTTP 403: `PermissionDenied` for
/// the object requests, `Generic` wrapping the list request's error for a listing (object_store
/// maps no status of a listing to a variant of its own).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Refused {
    PermissionDenied,
    Generic,
}

/// Asserts that `result` is the store's HTTP 403 (with S3 error code `AccessDenied` where the
/// answer has a body: every method but HEAD), reported as `expected`.
fn assert_403<T: std::fmt::Debug>(what: &str, result: object_store::Result<T>, expected: Refused) {
    let error = match result {
        Ok(value) => panic!("{what}: allowed ({value:?}), expected HTTP 403"),
        Err(error) => error,
    };
    let chain = error_chain(&error);
    let kind = match &error {
        object_store::Error::PermissionDenied { .. } => Some(Refused::PermissionDenied),
        object_store::Error::Generic { .. } => Some(Refused::Generic),
        _ => None,
    };
    assert_eq!(kind, Some(expected), "{what}: {chain}");
    assert!(
        chain.contains("403 Forbidden"),
        "{what}: not a 403: {chain}"
    );
    if !what.starts_with("HEAD") {
        assert!(
            chain.contains("<Code>AccessDenied</Code>"),
            "{what}: a 403 other than AccessDenied: {chain}"
        );
    }
}

#[tokio::test]
async fn s3_env_names_the_endpoint_and_an_admin_that_can_list() {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt, path::Path};
    if skip_without_cluster() {
        return;
    }
    let file = cluster_dir().join("s3.env");
    let vars = parse_env(&std::fs::read_to_string(&file).unwrap());
    let keys: BTreeSet<&str> = vars.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "AWS_ACCESS_KEY_ID",
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_SECRET_ACCESS_KEY"
        ]),
        "{}",
        file.display()
    );
    // Shell syntax too: sourced, it sets the same four variables.
    let sourced = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#"set -a; . "$1"; echo "$AWS_ENDPOINT_URL $AWS_REGION $AWS_ACCESS_KEY_ID""#)
        .arg("s3.env")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sourced.stdout).trim(),
        format!(
            "{} {} {}",
            vars["AWS_ENDPOINT_URL"], vars["AWS_REGION"], vars["AWS_ACCESS_KEY_ID"]
        )
    );
    let admin = s3_admin();
    assert!(admin.endpoint.starts_with("http://"), "{admin:?}");
    assert_eq!(admin.region, "us-east-1");

    // The admin lists the whole bucket, and writes, reads and deletes anywhere in it.
    let store = admin.store("modelops", true);
    let probe = Path::from(format!("{}/admin-probe", unique_namespace("adm")));
    store.put(&probe, "admin".into()).await.unwrap();
    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert!(
        listed.iter().any(|meta| meta.location == probe),
        "the admin's listing lacks {probe}: {listed:?}"
    );
    let body = store.get(&probe).await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], b"admin");
    store.delete(&probe).await.unwrap();
}

#[tokio::test]
async fn s3_tenants_are_confined_to_their_own_prefix() {
    use futures::TryStreamExt;
    use k8s_openapi::api::core::v1::Namespace;
    use object_store::{ObjectStore, ObjectStoreExt, path::Path};
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let (a, b) = (unique_namespace("s3a"), unique_namespace("s3b"));
    let location_a = tokio::task::spawn_blocking({
        let a = a.clone();
        move || tenant(&a)
    })
    .await
    .unwrap();
    let location_b = tokio::task::spawn_blocking({
        let b = b.clone();
        move || tenant(&b)
    })
    .await
    .unwrap();
    assert_eq!(location_a, format!("s3://modelops/{a}/"));
    assert_eq!(location_b, format!("s3://modelops/{b}/"));
    let namespace = kube::Api::<Namespace>::all(client.clone())
        .get(&b)
        .await
        .unwrap();
    assert_eq!(
        namespace.metadata.labels.unwrap_or_default()["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    let access_a = tenant_access(&client, &a).await;
    let access_b = tenant_access(&client, &b).await;
    assert_ne!(access_a.key, access_b.key);
    assert_eq!(access_a.endpoint, s3_admin().endpoint);

    // A second run keeps the identity.
    let again = tokio::task::spawn_blocking({
        let a = a.clone();
        move || tenant(&a)
    })
    .await
    .unwrap();
    assert_eq!(again, location_a);
    let access_a_again = tenant_access(&client, &a).await;
    assert_eq!(
        (&access_a_again.key, &access_a_again.secret),
        (&access_a.key, &access_a.secret)
    );

    let (bucket, prefix_a) = split_location(&location_a);
    let (_, prefix_b) = split_location(&location_b);
    let store_a = access_a.store(&bucket, true);
    let store_b = access_b.store(&bucket, true);
    let store_b_single_delete = access_b.store(&bucket, false);

    // A writes and reads under its own prefix.
    let model = Path::from(format!("{prefix_a}/models/m1/model.safetensors"));
    store_a.put(&model, "weights of A".into()).await.unwrap();
    let body = store_a.get(&model).await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], b"weights of A");
    let listed: Vec<_> = store_a
        .list(Some(&Path::from(prefix_a.as_str())))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|m| &m.location).collect::<Vec<_>>(),
        [&model]
    );

    // B can do nothing under A's prefix: each request is refused with 403.
    assert_403("GET", store_b.get(&model).await, Refused::PermissionDenied);
    assert_403(
        "HEAD",
        store_b.head(&model).await,
        Refused::PermissionDenied,
    );
    let planted = Path::from(format!("{prefix_a}/models/m1/planted"));
    assert_403(
        "PUT",
        store_b.put(&planted, "from B".into()).await,
        Refused::PermissionDenied,
    );
    assert_403(
        "PUT over",
        store_b.put(&model, "from B".into()).await,
        Refused::PermissionDenied,
    );
    assert_403(
        "LIST",
        store_b
            .list(Some(&Path::from(prefix_a.as_str())))
            .try_collect::<Vec<_>>()
            .await,
        Refused::Generic,
    );
    assert_403(
        "DELETE",
        store_b_single_delete.delete(&model).await,
        Refused::PermissionDenied,
    );
    // A batch delete (object_store's default, POST ?delete) answers 200 and refuses the key
    // inside: AccessDenied for that key.
    let batch = store_b.delete(&model).await;
    let chain = error_chain(&batch.expect_err("B's batch delete of A's model succeeded"));
    assert!(chain.contains("AccessDenied"), "batch delete: {chain}");
    // Nor can B copy A's object into its own prefix.
    let stolen = Path::from(format!("{prefix_b}/stolen"));
    assert_403(
        "COPY",
        store_b.copy(&model, &stolen).await,
        Refused::PermissionDenied,
    );

    // A's object is untouched and nothing was planted.
    let body = store_a.get(&model).await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], b"weights of A");
    assert!(
        matches!(
            store_a.head(&planted).await,
            Err(object_store::Error::NotFound { .. })
        ),
        "B planted an object under A's prefix"
    );

    // B works under its own prefix, which A cannot read.
    let own = Path::from(format!("{prefix_b}/data/prepared.parquet"));
    store_b.put(&own, "data of B".into()).await.unwrap();
    let body = store_b.get(&own).await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], b"data of B");
    let listed: Vec<_> = store_b
        .list(Some(&Path::from(prefix_b.as_str())))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    store_b_single_delete.delete(&own).await.unwrap();
    store_b.put(&own, "data of B".into()).await.unwrap();
    assert_403(
        "GET B's",
        store_a.get(&own).await,
        Refused::PermissionDenied,
    );
    // Neither lists the bucket as a whole.
    assert_403(
        "LIST bucket",
        store_a.list(None).try_collect::<Vec<_>>().await,
        Refused::Generic,
    );

    // Pods reach the endpoint of the Secret (the node's address).
    let pods = kube::Api::<Pod>::namespaced(client.clone(), &a);
    let accounts =
        kube::Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), &a);
    wait(&accounts, "default", Duration::from_secs(60), |sa| {
        sa.is_some()
    })
    .await;
    let probe: Pod = from_json(json!({
        "metadata": {"name": "s3-reachable"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "get",
                "image": "modelops/netcheck:dev",
                "imagePullPolicy": "IfNotPresent",
                "args": ["get", format!("{}/healthz", access_a.endpoint), "1"],
                "securityContext": restricted_security_context(),
            }],
        }
    }));
    pods.create(&PostParams::default(), &probe).await.unwrap();
    let (pod, log) = finished_pod(&pods, "s3-reachable", Duration::from_secs(60)).await;
    assert_eq!(
        phase(&pod),
        Some("Succeeded"),
        "a pod did not reach {}:\n{log}",
        access_a.endpoint
    );

    let namespaces = kube::Api::<Namespace>::all(client);
    for ns in [&a, &b] {
        let _ = namespaces
            .delete(ns, &kube::api::DeleteParams::default())
            .await;
    }
}
