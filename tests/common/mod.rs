//! Helpers shared by the tests that run against the test bed (`tests/cluster/up`).
//!
//! Each test works in a namespace of its own and waits for conditions, never for time.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Once, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// The repository's root: examples, CRDs and the test bed's scripts are found from there.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is a folder of the repository")
        .to_path_buf()
}

/// Why there is no cluster to test against, or `None` when the API server answers. Asked once
/// per test binary, on a thread of its own (the tests run inside their own runtimes).
fn cluster_unavailable() -> Option<&'static str> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the cluster check");
                runtime.block_on(async {
                    let client = match Client::try_default().await {
                        Ok(client) => client,
                        Err(e) => return Some(format!("no kubeconfig: {e}")),
                    };
                    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
                        .await
                    {
                        Ok(Ok(_)) => None,
                        Ok(Err(e)) => Some(format!("the API server does not answer: {e}")),
                        Err(_) => Some("the API server did not answer within 10 s".to_owned()),
                    }
                })
            })
            .join()
            .expect("the cluster check does not panic")
        })
        .as_deref()
}

/// True when this test must be skipped because no cluster is up: `cargo test` on a machine
/// without the test bed runs the unit and worker tests and skips these, saying why once per
/// test binary. `scripts/test` sets `MODELOPS_REQUIRE_CLUSTER=1`, which turns a missing
/// cluster into a failure, so that CI never passes by skipping.
pub fn skip_without_cluster() -> bool {
    static SAID: Once = Once::new();
    let Some(reason) = cluster_unavailable() else {
        return false;
    };
    if std::env::var("MODELOPS_REQUIRE_CLUSTER").is_ok_and(|v| v == "1") {
        panic!("MODELOPS_REQUIRE_CLUSTER=1 but there is no cluster: {reason}");
    }
    // Written to stderr itself, not through eprintln!, which the test harness captures.
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "skipping the cluster tests of this binary: {reason} (run tests/cluster/up and export KUBECONFIG, or scripts/test)"
        );
    });
    true
}

/// A client for the test bed, from `KUBECONFIG` (the test command points it at
/// `$MODELOPS_CLUSTER_DIR/kubeconfig`).
pub async fn client() -> Client {
    Client::try_default().await.unwrap_or_else(|e| {
        panic!("no cluster to test against ({e}): run tests/cluster/up and export KUBECONFIG")
    })
}

/// A namespace for one test, labelled to enforce the `restricted` Pod Security Standard, and a
/// tenant of the artifact store (`tests/cluster/tenant`).
pub struct TestNamespace {
    pub name: String,
    /// The `s3://` root the namespace owns in the test bed's store (no trailing `/`).
    pub root: String,
    client: Client,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let suffix: String = format!("{:x}", std::process::id() ^ nanos());
        let name = format!("t-{prefix}-{}", &suffix[suffix.len().saturating_sub(6)..]);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted", "modelops.dev/test": prefix},
            }
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        // Pods can be created once the namespace's default ServiceAccount exists.
        let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &name);
        wait(&accounts, "default", Duration::from_secs(60), |sa| {
            sa.is_some()
        })
        .await;
        // Its own part of the artifact store, and the Secret its pods reach it with.
        let root = make_tenant(&name).await;
        Self {
            name,
            root,
            client: client.clone(),
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace (and so everything in it). A failing test skips this, leaving the
    /// namespace to look at; `tests/cluster/down` removes everything.
    pub async fn delete(self) {
        let _ = Api::<Namespace>::all(self.client)
            .delete(&self.name, &DeleteParams::default())
            .await;
    }
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// Waits until `condition` holds for the named object, or panics after `timeout` naming the wait.
pub async fn wait<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    condition: impl Fn(Option<&K>) -> bool,
) -> Option<K>
where
    K: Clone + Debug + DeserializeOwned + Resource + Send + 'static,
{
    let waited = tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await;
    match waited {
        Ok(Ok(object)) => object,
        Ok(Err(e)) => panic!("watching {name}: {e}"),
        Err(_) => {
            let now = api.get_opt(name).await.ok().flatten();
            panic!("timed out after {timeout:?} waiting on {name}; it is now: {now:#?}")
        }
    }
}

/// The field manager the tests apply with.
pub const TEST_FIELD_MANAGER: &str = "modelops-tests";

/// Server-side applies every CRD in `crds/` (field manager [`TEST_FIELD_MANAGER`]) and waits
/// until each is Established. Idempotent, so every test that needs the kinds calls it. Returns
/// the CRDs' names.
pub async fn install_crds(client: &Client) -> Vec<String> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};
    use kube::runtime::wait::{Condition, conditions::is_crd_established};

    let dir = repo_root().join("crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e} (run scripts/crdgen)", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no CRDs in {}: run scripts/crdgen",
        dir.display()
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(TEST_FIELD_MANAGER).force();
    let mut names = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let crd: CustomResourceDefinition = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a CRD: {e}", file.display()));
        let name = crd.metadata.name.clone().expect("a CRD has a name");
        crds.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("applying {}: {e}", file.display()));
        names.push(name);
    }
    for name in &names {
        wait(&crds, name, Duration::from_secs(60), |crd| {
            is_crd_established().matches_object(crd)
        })
        .await;
    }
    names
}

/// The phase of a pod, if it has one.
pub fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// Waits for a pod to finish (Succeeded or Failed) and returns it with its log.
pub async fn finished_pod(api: &Api<Pod>, name: &str, timeout: Duration) -> (Pod, String) {
    let pod = wait(api, name, timeout, |p| {
        p.and_then(phase)
            .is_some_and(|phase| phase == "Succeeded" || phase == "Failed")
    })
    .await
    .expect("pod exists");
    let log = api
        .logs(name, &LogParams::default())
        .await
        .unwrap_or_default();
    (pod, log)
}

/// Builds a typed object from a JSON manifest.
pub fn from_json<K: DeserializeOwned>(value: serde_json::Value) -> K {
    serde_json::from_value(value).expect("valid manifest")
}

/// The restricted-profile security context every test container runs with: the one the
/// operator gives its own pods.
pub fn restricted_security_context() -> serde_json::Value {
    serde_json::to_value(
        modelops_operator::controllers::workerpod::restricted_container_security_context(),
    )
    .expect("a security context serialises")
}

/// One HTTP/1.1 request over a fresh connection from the host (to a ClusterIP, say): the status
/// and the body. Errors are connection failures.
pub fn http(
    ip: &str,
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect((ip, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {ip}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, rest) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    // Chunked bodies are not expected from the server (it sets Content-Length).
    Ok((status, rest.to_owned()))
}

/// A manifest of `examples/`, typed.
pub fn example<K: DeserializeOwned>(path: &str) -> K {
    let file = repo_root().join(path);
    serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

/// The digits data set as shipped in `examples/data/digits.csv`.
pub fn digits_csv() -> String {
    std::fs::read_to_string(repo_root().join("examples/data/digits.csv")).unwrap()
}

/// Raw digits rows (64 grey levels) with their labels.
pub fn digits_rows() -> Vec<(Vec<f64>, String)> {
    digits_csv()
        .lines()
        .skip(1)
        .map(|line| {
            let mut values: Vec<&str> = line.split(',').collect();
            let label = values.pop().unwrap().to_owned();
            (values.iter().map(|v| v.parse().unwrap()).collect(), label)
        })
        .collect()
}

/// The prepared test split of a Ready Dataset, back to raw feature values: the prepared
/// features are `(raw - offset) / scale` (dataset.json), and digits are whole grey levels, so
/// rounding the inverse gives the raw values exactly. Returns rows and class indices.
pub async fn raw_test_split(
    dataset: &modelops_api::dataset::DatasetStatus,
) -> (Vec<Vec<f64>>, Vec<i64>) {
    let prepared = &dataset.artifact.as_ref().expect("a prepared Dataset").uri;
    let dataset_json = read_artifact(&format!("{prepared}/dataset.json")).await;
    let data = read_artifact(&format!("{prepared}/data.safetensors")).await;
    let (dataset_json, data) = (dataset_json.as_slice(), data.as_slice());
    let card: serde_json::Value = serde_json::from_slice(dataset_json).unwrap();
    let offset: Vec<f64> = serde_json::from_value(card["normalization"]["offset"].clone()).unwrap();
    let scale: Vec<f64> = serde_json::from_value(card["normalization"]["scale"].clone()).unwrap();
    // safetensors: an 8-byte little-endian header length, a JSON header, then the tensors.
    let bytes = data;
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let data = &bytes[8 + header_len..];
    let tensor = |name: &str| {
        let entry = &header[name];
        let [begin, end] = [0, 1].map(|i| entry["data_offsets"][i].as_u64().unwrap() as usize);
        (&data[begin..end], entry["shape"].clone())
    };
    let (features, shape) = tensor("test.features");
    let columns = shape[1].as_u64().unwrap() as usize;
    let values: Vec<f64> = features
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
        .collect();
    let rows = values
        .chunks(columns)
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(j, v)| (v * scale[j] + offset[j]).round())
                .collect()
        })
        .collect();
    let (labels, _) = tensor("test.labels");
    let labels = labels
        .chunks(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (rows, labels)
}

/// `kubectl apply --server-side -k <folder of the repository>` into namespace `ns`.
pub fn apply_kustomization(ns: &str, folder: &str) {
    let out = std::process::Command::new("kubectl")
        .args(["apply", "--server-side", "-k"])
        .arg(repo_root().join(folder))
        .args(["-n", ns])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl apply -k {folder}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for a TrainingJob to finish and returns it; panics with its status unless it succeeded.
pub async fn training_succeeded(
    ns: &TestNamespace,
    name: &str,
    timeout: Duration,
) -> modelops_api::TrainingJob {
    use modelops_api::trainingjob::TrainingPhase;
    let job = wait(&ns.api::<modelops_api::TrainingJob>(), name, timeout, |j| {
        j.and_then(|j| j.status.as_ref()?.phase)
            .is_some_and(|p| matches!(p, TrainingPhase::Succeeded | TrainingPhase::Failed))
    })
    .await
    .unwrap();
    assert_eq!(
        job.status.as_ref().unwrap().phase,
        Some(TrainingPhase::Succeeded),
        "{name}: {:#?}",
        job.status
    );
    job
}

/// Waits until a ModelDeployment serves with `revision` stable and no canary under way.
pub async fn serving_stable(
    ns: &TestNamespace,
    name: &str,
    revision: i32,
) -> modelops_api::ModelDeployment {
    use modelops_api::conditions::types;
    wait(
        &ns.api::<modelops_api::ModelDeployment>(),
        name,
        Duration::from_secs(180),
        |md| {
            md.and_then(|md| md.status.as_ref()).is_some_and(|s| {
                s.conditions.is_true(types::READY)
                    && s.stable_revision == Some(revision)
                    && s.canary_weight == Some(0)
            })
        },
    )
    .await
    .unwrap()
}

/// Waits until `replicas` serving replicas of ModelDeployment `name` are ready (all of them, once
/// a rollout has finished: then kstatus and Argo CD read it as done).
pub async fn replicas_ready(ns: &TestNamespace, name: &str, replicas: i32) {
    wait(
        &ns.api::<modelops_api::ModelDeployment>(),
        name,
        Duration::from_secs(120),
        |md| md.and_then(|md| md.status.as_ref()?.ready_replicas) == Some(replicas),
    )
    .await;
}

// ---------------------------------------------------------------- the S3 server and its tenants

/// The test bed's state folder.
pub fn cluster_dir() -> std::path::PathBuf {
    std::env::var("MODELOPS_CLUSTER_DIR")
        .unwrap_or_else(|_| "/tmp/modelops-cluster".into())
        .into()
}

/// `KEY=value` lines of a file such as `s3.env`.
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Credentials and endpoint of one S3 identity, in the four variables of `s3.env` and of the
/// tenants' `modelops-artifacts` Secrets.
#[derive(Clone, Debug)]
pub struct S3Access {
    pub endpoint: String,
    pub region: String,
    pub key: String,
    pub secret: String,
}

impl S3Access {
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Self {
        let var = |name: &str| {
            vars.get(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| panic!("{name} missing in {:?}", vars.keys()))
                .clone()
        };
        Self {
            endpoint: var("AWS_ENDPOINT_URL"),
            region: var("AWS_REGION"),
            key: var("AWS_ACCESS_KEY_ID"),
            secret: var("AWS_SECRET_ACCESS_KEY"),
        }
    }

    /// A client for one bucket, built the way the worker builds its own (object_store's S3
    /// backend, path-style requests, plain HTTP allowed for the test bed's endpoint).
    /// `bulk_delete: false` deletes with one `DELETE` per object instead of `POST ?delete`.
    pub fn store(&self, bucket: &str, bulk_delete: bool) -> object_store::aws::AmazonS3 {
        // reqwest's TLS needs a process-wide provider, even for plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_region(&self.region)
            .with_bucket_name(bucket)
            .with_access_key_id(&self.key)
            .with_secret_access_key(&self.secret)
            .with_allow_http(true)
            .with_disable_bulk_delete(!bulk_delete)
            .build()
            .expect("an S3 client")
    }
}

/// The admin identity of `$MODELOPS_CLUSTER_DIR/s3.env`.
pub fn s3_admin() -> S3Access {
    let file = cluster_dir().join("s3.env");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e} (tests/cluster/up writes it)", file.display()));
    S3Access::from_vars(&parse_env(&text))
}

/// Runs `tests/cluster/tenant NS` and returns the `s3://` prefix it prints last.
pub fn tenant(ns: &str) -> String {
    let out = std::process::Command::new(repo_root().join("tests/cluster/tenant"))
        .arg(ns)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tests/cluster/tenant {ns} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("tests/cluster/tenant {ns} printed nothing"))
        .to_owned()
}

/// `s3://bucket/prefix/` split into the bucket and the prefix (without its trailing slash).
pub fn split_location(location: &str) -> (String, String) {
    let rest = location
        .strip_prefix("s3://")
        .unwrap_or_else(|| panic!("not an s3:// location: {location}"));
    let (bucket, prefix) = rest.split_once('/').unwrap();
    (bucket.to_owned(), prefix.trim_end_matches('/').to_owned())
}

/// The bucket and the key of an `s3://` URI.
fn bucket_and_key(uri: &str) -> (String, object_store::path::Path) {
    let rest = uri
        .strip_prefix("s3://")
        .unwrap_or_else(|| panic!("{uri} is not an s3:// URI"));
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    (bucket.to_owned(), object_store::path::Path::from(key))
}

/// The bytes of the object at an `s3://` URI, read with the admin identity.
pub async fn read_artifact(uri: &str) -> Vec<u8> {
    use object_store::ObjectStoreExt;
    let (bucket, key) = bucket_and_key(uri);
    s3_admin()
        .store(&bucket, true)
        .get(&key)
        .await
        .unwrap_or_else(|e| panic!("reading {uri}: {e}"))
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

/// Writes an object at an `s3://` URI with the admin identity.
pub async fn write_artifact(uri: &str, bytes: Vec<u8>) {
    use object_store::ObjectStoreExt;
    let (bucket, key) = bucket_and_key(uri);
    s3_admin()
        .store(&bucket, true)
        .put(&key, bytes.into())
        .await
        .unwrap_or_else(|e| panic!("writing {uri}: {e}"));
}

/// Makes `namespace` a tenant of the test bed's store (`tests/cluster/tenant`): its own identity
/// and Secret `modelops-artifacts`. Returns the `s3://` root it owns.
pub async fn make_tenant(namespace: &str) -> String {
    let namespace = namespace.to_owned();
    tokio::task::spawn_blocking(move || tenant(&namespace))
        .await
        .unwrap()
        .trim_end_matches('/')
        .to_owned()
}

/// Asserts that no pod modelops made in the namespace (prepare, train, serve) mounts a
/// PersistentVolumeClaim or a host folder: with an `s3://` store, artifacts are only in the store.
pub async fn assert_no_artifact_volumes(ns: &TestNamespace) {
    let pods = ns
        .api::<Pod>()
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=modelops"))
        .await
        .unwrap();
    assert!(!pods.items.is_empty(), "no modelops pods in {}", ns.name);
    for pod in pods.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        for volume in pod.spec.unwrap().volumes.unwrap_or_default() {
            assert!(
                volume.persistent_volume_claim.is_none() && volume.host_path.is_none(),
                "pod {name} mounts {volume:?}"
            );
        }
    }
}

/// Waits until TrainingJob `name` reports at least `epoch` epochs done, and returns the epoch
/// it reports then.
pub async fn progress_reaches(ns: &TestNamespace, name: &str, epoch: i32) -> i32 {
    let job = wait(
        &ns.api::<modelops_api::TrainingJob>(),
        name,
        Duration::from_secs(300),
        |j| {
            j.and_then(|j| j.status.as_ref()?.progress.as_ref().map(|p| p.epoch))
                .is_some_and(|done| done >= epoch)
        },
    )
    .await
    .unwrap();
    job.status.unwrap().progress.unwrap().epoch
}

/// The epoch a training pod resumed after, from its log line `resuming from epoch N`.
pub fn resumed_epoch(log: &str) -> Option<i32> {
    log.lines()
        .find_map(|l| l.split("resuming from epoch ").nth(1))
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
}

// ---------------------------------------------------------------- traffic through a Service

/// One answer of a traffic loop: when it came, which revision gave it (`model_version`), and why
/// it failed, if it did.
#[derive(Debug)]
pub struct Answer {
    pub at: std::time::Instant,
    pub version: Option<String>,
    pub failure: Option<String>,
}

impl Answer {
    /// The answer to an inference request sent with [`http`], and its body when it was a 200.
    pub fn of(response: std::io::Result<(u16, String)>) -> (Self, serde_json::Value) {
        let at = std::time::Instant::now();
        match response {
            Ok((200, text)) => {
                let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let version = body["model_version"].as_str().map(str::to_owned);
                let answer = Self {
                    at,
                    version,
                    failure: None,
                };
                (answer, body)
            }
            Ok((status, text)) => (
                Self::failed(at, format!("{status}: {text}")),
                Default::default(),
            ),
            Err(e) => (Self::failed(at, e.to_string()), Default::default()),
        }
    }

    fn failed(at: std::time::Instant, why: String) -> Self {
        Self {
            at,
            version: None,
            failure: Some(why),
        }
    }
}

/// Panics, showing the first few, when any answer failed.
pub fn assert_no_failed_answers(answers: &[Answer]) {
    let failures: Vec<&String> = answers.iter().filter_map(|a| a.failure.as_ref()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        answers.len(),
        &failures[..failures.len().min(5)]
    );
}

/// How long `revision` answered, from its first answer to its last (and how many it gave);
/// panics when it never answered.
pub fn served_for(answers: &[Answer], revision: &str) -> (Duration, usize) {
    let of: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.version.as_deref() == Some(revision))
        .collect();
    let (Some(first), Some(last)) = (of.first(), of.last()) else {
        panic!("revision {revision} never answered")
    };
    (last.at - first.at, of.len())
}

/// Waits until ModelDeployment `name` has rolled revision `failed` back: `RolledBack` True,
/// `stable` the stable revision again, and `failed` in state RolledBack.
pub async fn rolled_back(
    ns: &TestNamespace,
    name: &str,
    failed: i32,
    stable: i32,
    timeout: Duration,
) -> Option<modelops_api::ModelDeployment> {
    use modelops_api::conditions::types;
    use modelops_api::modeldeployment::RevisionState;
    wait(
        &ns.api::<modelops_api::ModelDeployment>(),
        name,
        timeout,
        |md| {
            md.and_then(|md| md.status.as_ref()).is_some_and(|s| {
                s.conditions.is_true(types::ROLLED_BACK)
                    && s.stable_revision == Some(stable)
                    && s.revisions
                        .iter()
                        .any(|r| r.revision == failed && r.state == RevisionState::RolledBack)
            })
        },
    )
    .await
}

// ---------------------------------------------------------------- health as GitOps tools read it

/// What Flux (kstatus) and Argo CD (the chart's Lua health checks) make of one object, both read
/// from the same copy of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// kstatus: Current, InProgress, Failed, ...
    pub kstatus: String,
    /// Argo CD: Healthy, Progressing, Degraded, Suspended.
    pub argo: String,
    /// Argo CD's message.
    pub message: String,
}

/// A JSON value as a Lua table constructor (arrays 1-based, nulls left out).
pub fn lua_literal(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\{}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        Value::Array(items) => {
            let items: Vec<String> = items
                .iter()
                .filter(|v| !v.is_null())
                .map(lua_literal)
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    format!(
                        "[{}] = {}",
                        lua_literal(&Value::String(k.clone())),
                        lua_literal(v)
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// The chart's Argo CD health check of `kind`, whole: `prelude.lua` then `<kind>.lua`.
pub fn argo_health_script(kind: &str) -> String {
    let health = repo_root().join("charts/modelops/health");
    let read = |file: String| std::fs::read_to_string(health.join(file)).unwrap();
    read("prelude.lua".into()) + &read(format!("{kind}.lua"))
}

/// Runs the chart's Argo CD health check of `kind` on `object` with Lua 5.1, as Argo CD does:
/// (status, message).
pub fn argo_health(kind: &str, object: &serde_json::Value) -> (String, String) {
    let script = argo_health_script(kind);
    let program = format!(
        "obj = {}\nlocal function health()\n{script}\nend\nlocal hs = health()\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
        lua_literal(object)
    );
    let mut child = std::process::Command::new("lua5.1")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("lua5.1 runs (tests/cluster/build-components installs it)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), program.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{kind}.lua: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_owned(), message.to_owned())
}

/// kstatus' verdict on `object`, from the test bed's `kstatus` (sigs.k8s.io/cli-utils).
pub fn kstatus(object: &serde_json::Value) -> String {
    let mut child = std::process::Command::new(cluster_dir().join("bin/kstatus"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the test bed's kstatus runs");
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        object.to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kstatus failed");
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    verdict["status"].as_str().unwrap().to_owned()
}

/// The health of `kind` `name` in `ns` as both tools read it now.
pub fn health(ns: &str, kind: &str, name: &str) -> Health {
    let out = std::process::Command::new("kubectl")
        .args([
            "get",
            &format!("{}.modelops.dev", kind.to_lowercase()),
            name,
            "-n",
            ns,
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    health_of(kind, &object)
}

/// The health of `object` (of `kind`) as both tools read it: for a state seen by a watch, which
/// may have moved on by the time `kubectl get` would read it.
pub fn health_of(kind: &str, object: &serde_json::Value) -> Health {
    let (argo, message) = argo_health(kind, object);
    Health {
        kstatus: kstatus(object),
        argo,
        message,
    }
}

/// Panics unless kstatus and Argo CD read `kind` `name` as `expected` (kstatus, Argo CD), the
/// mapping of docs/gitops.md.
pub fn assert_health(ns: &str, kind: &str, name: &str, expected: (&str, &str)) -> Health {
    let health = health(ns, kind, name);
    assert_eq!(
        (health.kstatus.as_str(), health.argo.as_str()),
        expected,
        "{kind} {ns}/{name}: {health:?}"
    );
    health
}

// ---------------------------------------------------------------- the test bed's Prometheus

/// The test bed's Prometheus (`$MODELOPS_CLUSTER_DIR/prometheus.env`, written by `up`).
pub fn prometheus_url() -> String {
    let file = cluster_dir().join("prometheus.env");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e} (tests/cluster/up writes it)", file.display()));
    parse_env(&text)
        .remove("PROMETHEUS_URL")
        .unwrap_or_else(|| panic!("{}: no PROMETHEUS_URL", file.display()))
}

/// Waits until the test bed's Prometheus answers the instant query `query` with one number for
/// which `holds` holds, and returns it. Asks the way the operator does (its PromQL client).
pub async fn prometheus_until(query: &str, timeout: Duration, holds: impl Fn(f64) -> bool) -> f64 {
    use modelops_core::monitor::promql::QueryResult;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = prometheus_url();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let answer = modelops_operator::promql::query_one(&url, query).await;
        if let QueryResult::Value(value) = answer
            && holds(value)
        {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus ({url}) never gave what was waited for within {timeout:?}: {query}: last {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---------------------------------------------------------------- the dashboard

/// The dashboard's base URL: the Service `modelops-dashboard` the chart makes in the operator's
/// namespace (tests/cluster/install turns it on, with `auth: kubernetes`).
pub async fn dashboard_url() -> String {
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client().await, "modelops-system");
    let service = services.get("modelops-dashboard").await.unwrap();
    format!(
        "http://{}",
        service.spec.unwrap().cluster_ip.expect("a ClusterIP")
    )
}

/// GET `path` of the dashboard, with `token` as a bearer token when given: the status and body.
pub async fn dashboard_get(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// `kubectl apply` of `manifest` (YAML), which must succeed.
pub fn kubectl_apply_yaml(manifest: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "kubectl apply of\n{manifest}"
    );
}

/// A token of ServiceAccount `account` in `ns`, bound to a Role that may get and list
/// `resources` of modelops.dev there (none: no Role), once the dashboard answers it with the
/// expected status for `ns`'s page (RBAC takes effect within moments).
pub async fn dashboard_account(ns: &str, account: &str, resources: &[&str]) -> String {
    let mut manifest = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {account}, namespace: {ns}}}\n"
    );
    if !resources.is_empty() {
        manifest.push_str(&format!(
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: {account}, namespace: {ns}}}\n\
             rules: [{{apiGroups: [modelops.dev], resources: [{}], verbs: [get, list, watch]}}]\n\
             ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {account}, namespace: {ns}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {account}}}\n\
             subjects: [{{kind: ServiceAccount, name: {account}, namespace: {ns}}}]\n",
            resources.join(", ")
        ));
    }
    kubectl_apply_yaml(&manifest);
    let out = std::process::Command::new("kubectl")
        .args(["create", "token", account, "-n", ns, "--duration", "1h"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let expected = if resources.len() == 4 { 200 } else { 403 };
    let base = dashboard_url().await;
    let path = format!("/namespaces/{ns}");
    let settled = async {
        loop {
            if dashboard_get(&base, &path, Some(&token)).await.0 == expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), settled)
        .await
        .unwrap_or_else(|_| panic!("{account}'s rights never took effect on the dashboard"));
    token
}

/// A viewer of `ns`: a ServiceAccount that may get and list the four kinds there; its token.
pub async fn dashboard_viewer(ns: &str) -> String {
    dashboard_account(
        ns,
        "viewer",
        &["datasets", "trainingjobs", "modeldeployments", "monitors"],
    )
    .await
}

/// Where the tests' screenshots go: `screenshots/` in the integration tests' output folder.
pub fn screenshot_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Loads `path` of the dashboard in headless Chromium (Debian's `chromium`), logged in through
/// the dashboard's own `/login` form with `token`, and returns the DOM once loaded; with `shot`,
/// also saves a screenshot as `<shot>.png` in [`screenshot_dir`].
pub fn chromium(base: &str, token: &str, path: &str, shot: Option<&str>) -> String {
    let dir = std::env::temp_dir().join(format!(
        "modelops-chromium-{}-{}",
        std::process::id(),
        nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let login = dir.join("login.html");
    std::fs::write(
        &login,
        format!(
            "<!doctype html><form id=\"f\" method=\"post\" action=\"{base}/login\">\
             <input name=\"token\" value=\"{token}\"><input name=\"next\" value=\"{path}\"></form>\
             <script>document.getElementById('f').submit()</script>"
        ),
    )
    .unwrap();
    let run = |extra: &[String]| {
        let out = std::process::Command::new("timeout")
            .arg("60")
            .arg("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--window-size=1280,1400",
                // Less than the pages' refresh (5 s), enough for the login's redirect.
                "--virtual-time-budget=3000",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .args(extra)
            .arg(format!("file://{}", login.display()))
            .output()
            .expect("chromium runs (scripts/env.sh ensure_chromium installs it)");
        assert!(
            out.status.success(),
            "chromium: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = run(&["--dump-dom".to_owned()]);
    if let Some(shot) = shot {
        let file = screenshot_dir().join(format!("{shot}.png"));
        run(&[format!("--screenshot={}", file.display())]);
        assert!(file.exists(), "no screenshot {}", file.display());
        println!("screenshot: {}", file.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
    dom
}
