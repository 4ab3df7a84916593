//! The chart as installed on the test bed (`tests/cluster/install`): least privilege, and every
//! pod under the `restricted` Pod Security Standard.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams};
use std::time::Duration;

const OPERATOR: &str = "system:serviceaccount:modelops-system:modelops-operator";

/// `kubectl auth can-i` as the operator's ServiceAccount; a `/sub` suffix names a subresource.
fn can_i(verb: &str, resource: &str) -> bool {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let mut command = std::process::Command::new("kubectl");
    command.args([
        "auth",
        "can-i",
        verb,
        resource,
        "--all-namespaces",
        "--as",
        OPERATOR,
    ]);
    if !subresource.is_empty() {
        command.arg(format!("--subresource={subresource}"));
    }
    let out = command.output().expect("kubectl runs");
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[test]
fn the_operator_reads_no_secrets_and_has_no_wildcards() {
    if skip_without_cluster() {
        return;
    }
    // It writes each ModelDeployment's feedback key (only Secrets labelled as its own: the
    // chart's admission policy, tests/tenancy.rs), and reads none.
    for verb in ["get", "list", "watch", "delete"] {
        assert!(!can_i(verb, "secrets"), "the operator may {verb} Secrets");
    }
    assert!(!can_i("*", "*"), "the operator is cluster-admin");
    assert!(
        !can_i("delete", "customresourcedefinitions"),
        "the operator may delete CRDs"
    );
    assert!(
        !can_i("create", "clusterrolebindings"),
        "the operator may grant itself roles"
    );
    // The test bed's store is S3: the operator makes no claims and no volumes.
    for resource in ["persistentvolumeclaims", "persistentvolumes"] {
        assert!(
            !can_i("create", resource),
            "the operator may create {resource}"
        );
    }
    // What it does need.
    for (verb, resource) in [
        ("patch", "trainingjobs.modelops.dev/status"),
        ("create", "jobs.batch"),
        ("create", "deployments.apps"),
        ("list", "pods"),
        ("create", "secrets"),
    ] {
        assert!(
            can_i(verb, resource),
            "the operator may not {verb} {resource}"
        );
    }
}

#[tokio::test]
async fn the_operator_namespace_enforces_restricted_and_its_pod_complies() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = Api::<Namespace>::all(client.clone())
        .get("modelops-system")
        .await
        .unwrap();
    assert_eq!(
        ns.metadata
            .labels
            .unwrap()
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    let pods: Api<Pod> = Api::namespaced(client, "modelops-system");
    let list = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=modelops"))
        .await
        .unwrap();
    assert!(!list.items.is_empty());
    for pod in list.items {
        let spec = pod.spec.unwrap();
        // It reads no artifact: no claim, no host folder.
        for volume in spec.volumes.clone().unwrap_or_default() {
            assert!(
                volume.persistent_volume_claim.is_none() && volume.host_path.is_none(),
                "the operator mounts {volume:?}"
            );
        }
        assert_eq!(
            spec.security_context.as_ref().unwrap().run_as_non_root,
            Some(true)
        );
        for container in spec.containers {
            let sc = container.security_context.unwrap();
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
        }
    }
}

/// `helm template` of the chart with `args`, as one string.
fn render(args: &[&str]) -> String {
    let out = std::process::Command::new("helm")
        .args(["template", "modelops"])
        .arg(repo_root().join("charts/modelops"))
        .args(["--namespace", "modelops-system", "--kube-version", "1.36.0"])
        .args(args)
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The documents of `rendered` of `kind`.
fn documents(rendered: &str, kind: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(rendered)
        .filter_map(|d| serde_json::Value::deserialize(d).ok())
        .filter(|d| d["kind"] == kind)
        .collect()
}

#[test]
fn the_chart_runs_two_replicas_under_a_budget_and_takes_an_existing_feedback_key() {
    // helm comes with the test bed.
    if skip_without_cluster() {
        return;
    }
    let default = render(&[]);
    let deployment = &documents(&default, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pdb = &documents(&default, "PodDisruptionBudget")[0];
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let secrets = documents(&default, "Secret");
    assert_eq!(secrets[0]["metadata"]["name"], "modelops-feedback-key");
    // GitOps renders with `helm template`, where helm cannot see the Secret it made before: a
    // Secret made outside the chart is mounted instead, and none is rendered.
    let gitops = render(&["--set", "feedbackKey.existingSecret=sealed-feedback-key"]);
    assert!(documents(&gitops, "Secret").is_empty());
    let volumes = &documents(&gitops, "Deployment")[0]["spec"]["template"]["spec"]["volumes"];
    assert_eq!(volumes[0]["secret"]["secretName"], "sealed-feedback-key");
    // One replica: no budget that would block every drain.
    assert!(documents(&render(&["--set", "replicas=1"]), "PodDisruptionBudget").is_empty());
}

#[tokio::test]
async fn the_prometheus_operator_objects_select_every_pod_and_their_alerts_are_valid_promql() {
    if skip_without_cluster() {
        return;
    }
    // Off by default: a cluster without the Prometheus Operator has no such kinds.
    let default = render(&[]);
    for kind in ["ServiceMonitor", "PodMonitor", "PrometheusRule"] {
        assert!(documents(&default, kind).is_empty(), "{kind}");
    }
    let on = render(&[
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=kube-prometheus",
    ]);
    let service_monitor = &documents(&on, "ServiceMonitor")[0];
    assert_eq!(
        service_monitor["metadata"]["labels"]["release"],
        "kube-prometheus"
    );
    let endpoint = &service_monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["honorLabels"], true);
    // It selects the operator's metrics Service.
    let service = documents(&on, "Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "modelops-operator-metrics")
        .unwrap();
    let selector = service_monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    for (key, value) in selector {
        assert_eq!(&service["metadata"]["labels"][key], value, "{key}");
    }
    // The PodMonitor selects the operator's children in every namespace, on the ports the
    // serving and training pods name, and leaves their labels to Prometheus.
    let pod_monitor = &documents(&on, "PodMonitor")[0];
    assert_eq!(pod_monitor["spec"]["namespaceSelector"]["any"], true);
    assert_eq!(
        pod_monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/managed-by"],
        "modelops"
    );
    let ports: Vec<&str> = pod_monitor["spec"]["podMetricsEndpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e.get("honorLabels").is_none());
            e["port"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ports, ["http", "metrics"]);
    // Every alert is PromQL the test bed's Prometheus accepts, on series that exist.
    let rule = &documents(&on, "PrometheusRule")[0];
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    assert!(rules.len() >= 4);
    let _ = rustls::crypto::ring::default_provider().install_default();
    for alert in rules {
        let expr = alert["expr"].as_str().unwrap();
        // No series yet, or an alert that fires: either way the expression is valid.
        if let modelops_core::monitor::promql::QueryResult::Failed(why) =
            modelops_operator::promql::query_one(&prometheus_url(), expr).await
        {
            panic!("{}: {expr}: {why}", alert["alert"]);
        }
        let summary = alert["annotations"]["summary"].as_str().unwrap();
        assert!(summary.contains("{{ $labels."), "{summary}");
    }
    for series in [
        "modelops_rollout_events_total",
        "modelops_trainingjobs_finished_total",
        "modelops_monitor_evaluations_total",
        "modelops_reconcile_failures_total",
    ] {
        assert!(
            rules
                .iter()
                .any(|r| r["expr"].as_str().unwrap().contains(series)),
            "{series}"
        );
    }
}

#[tokio::test]
async fn one_replica_leads_on_the_lease_and_the_other_waits() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "modelops-system");
    let list = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=modelops"))
        .await
        .unwrap();
    let running: Vec<String> = list
        .items
        .iter()
        .filter(|p| phase(p) == Some("Running") && p.metadata.deletion_timestamp.is_none())
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(running.len(), 2, "operator pods: {running:?}");
    let lease =
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client, "modelops-system")
            .get("modelops-operator")
            .await
            .unwrap();
    // Each process's identity is its pod's name and a random number.
    let holder = lease.spec.unwrap().holder_identity.unwrap();
    let leading_pods: Vec<&String> = running
        .iter()
        .filter(|p| holder.starts_with(&format!("{p}-")))
        .collect();
    assert_eq!(leading_pods.len(), 1, "{holder} holds the lease");
    // The other replica waits: it started no controller.
    let other = running.iter().find(|p| *p != leading_pods[0]).unwrap();
    let log = pods
        .logs(other, &kube::api::LogParams::default())
        .await
        .unwrap();
    assert!(log.contains("waiting for the lease"), "{log}");
    assert!(!log.contains("leading"), "{log}");
    // The test bed runs it with --log-format json: one object per line.
    for line in log.lines() {
        let entry: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            entry["level"].is_string() && entry["fields"]["message"].is_string(),
            "{line}"
        );
    }
    // Each says so on /metrics; the leader's reconciles are timed in a histogram.
    for pod in &list.items {
        let name = pod.metadata.name.clone().unwrap();
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        if !running.contains(&name) {
            continue;
        }
        let (status, text) = http(&ip, 8080, "GET", "/metrics", b"").unwrap();
        assert_eq!(status, 200, "{text}");
        let samples = modelops_api::serving::parse_metrics(&text);
        let leading = samples
            .iter()
            .find(|s| s.name == "modelops_leading")
            .map(|s| s.value);
        let leads = name == *leading_pods[0];
        assert_eq!(
            leading,
            Some(if leads { 1.0 } else { 0.0 }),
            "{name}: {text}"
        );
        if leads {
            assert!(
                samples
                    .iter()
                    .any(|s| s.name == "modelops_reconcile_duration_seconds_bucket"),
                "{text}"
            );
        }
    }
}

/// A TrainingJob in `ns` of the iris kind with `template`, applied as `kubectl apply` would.
fn training_job(ns: &str, name: &str, template: serde_json::Value) -> String {
    serde_json::json!({
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "datasetRef": {"name": "iris"},
            "task": "classification",
            "model": {"architecture": "mlp"},
            "template": template,
        }
    })
    .to_string()
}

/// `kubectl apply -f -` of `manifest`: Ok, or the error kubectl printed.
fn kubectl_apply(manifest: &str, extra: &[&str]) -> Result<(), String> {
    let mut child = std::process::Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), manifest.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn a_template_outside_the_workload_policy_is_refused_at_apply() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "policy").await;
    for (template, field, allowed) in [
        (
            serde_json::json!({"image": "evil.example/miner:1"}),
            "spec.template.image: \"evil.example/miner:1\"",
            "policy.images",
        ),
        // A prefix of an allowed image is not an allowed image.
        (
            serde_json::json!({"image": "modelops/worker:dev-evil"}),
            "spec.template.image: \"modelops/worker:dev-evil\"",
            "policy.images",
        ),
        (
            serde_json::json!({"serviceAccountName": "admin"}),
            "spec.template.serviceAccountName: \"admin\"",
            "policy.serviceAccounts",
        ),
        (
            serde_json::json!({"priorityClassName": "system-cluster-critical"}),
            "spec.template.priorityClassName: \"system-cluster-critical\"",
            "policy.priorityClasses",
        ),
    ] {
        let refused = kubectl_apply(&training_job(&ns.name, "job", template), &[]).unwrap_err();
        assert!(
            refused.contains(field) && refused.contains(allowed),
            "{refused}"
        );
    }
    // The worker image itself is allowed; changing it to another afterwards is not.
    kubectl_apply(
        &training_job(
            &ns.name,
            "job",
            serde_json::json!({"image": "modelops/worker:dev"}),
        ),
        &[],
    )
    .unwrap();
    let refused = kubectl_apply(
        &training_job(
            &ns.name,
            "job",
            serde_json::json!({"image": "evil.example/x:1"}),
        ),
        &[],
    )
    .unwrap_err();
    assert!(refused.contains("spec.template.image"), "{refused}");
    ns.delete().await;
}

#[tokio::test]
async fn a_monitor_querying_a_prometheus_outside_the_policy_is_refused_at_apply() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "promql-policy").await;
    let monitor = |address: &str| {
        serde_json::json!({
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Monitor",
            "metadata": {"name": "guard", "namespace": ns.name},
            "spec": {
                "targetRef": {"name": "digits"},
                "metrics": [{"prometheus": {"address": address, "query": "up", "max": 1}}],
            }
        })
        .to_string()
    };
    // The test bed installs the chart with its own Prometheus as the one allowed.
    let allowed = prometheus_url();
    for address in [
        "http://169.254.169.254/latest/meta-data",
        "http://kubernetes.default.svc",
        // A longer host that starts with the allowed one is another host.
        &format!("{allowed}0"),
    ] {
        let refused = kubectl_apply(&monitor(address), &[]).unwrap_err();
        assert!(
            refused.contains("spec.metrics[].prometheus.address")
                && refused.contains(address)
                && refused.contains("policy.prometheusAddresses"),
            "{refused}"
        );
    }
    for address in [
        allowed.clone(),
        format!("{allowed}/"),
        format!("{allowed}/tenant"),
    ] {
        kubectl_apply(&monitor(&address), &[]).unwrap();
    }
    ns.delete().await;
}

#[tokio::test]
async fn the_operators_service_account_cannot_create_a_privileged_pod() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "confined").await;
    // No Pods at all, by RBAC.
    assert!(!can_i("create", "pods"));
    let job = |name: &str, labelled: bool, image: &str, pod: serde_json::Value| {
        let mut pod_spec = serde_json::json!({
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": image}],
        });
        for (k, v) in pod.as_object().unwrap() {
            if k == "container" {
                for (ck, cv) in v.as_object().unwrap() {
                    pod_spec["containers"][0][ck] = cv.clone();
                }
            } else {
                pod_spec[k] = v.clone();
            }
        }
        let labels = if labelled {
            serde_json::json!({"app.kubernetes.io/managed-by": "modelops"})
        } else {
            serde_json::json!({})
        };
        serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns.name, "labels": labels},
            "spec": {"template": {"spec": pod_spec}},
        })
        .to_string()
    };
    let as_operator = ["--as", OPERATOR, "--dry-run=server"];
    for (manifest, why) in [
        (
            job(
                "privileged",
                true,
                "modelops/worker:dev",
                serde_json::json!({"container": {"securityContext": {"privileged": true}}}),
            ),
            "no privileged containers",
        ),
        (
            job(
                "caps",
                true,
                "modelops/worker:dev",
                serde_json::json!({"container": {"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}}),
            ),
            "no privileged containers",
        ),
        (
            job(
                "host",
                true,
                "modelops/worker:dev",
                serde_json::json!({"hostPID": true}),
            ),
            "host's namespaces",
        ),
        (
            job(
                "hostpath",
                true,
                "modelops/worker:dev",
                serde_json::json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
            ),
            "no host folders",
        ),
        (
            job("image", true, "evil.example/miner:1", serde_json::json!({})),
            "only the images of its workload policy",
        ),
        (
            job(
                "sa",
                true,
                "modelops/worker:dev",
                serde_json::json!({"serviceAccountName": "admin"}),
            ),
            "only under the ServiceAccounts",
        ),
        (
            job(
                "unlabelled",
                false,
                "modelops/worker:dev",
                serde_json::json!({}),
            ),
            "labelled app.kubernetes.io/managed-by=modelops",
        ),
    ] {
        let refused = kubectl_apply(&manifest, &as_operator).unwrap_err();
        assert!(refused.contains(why), "{why}: {refused}");
    }
    // What the operator does make passes: the policy is not a blanket refusal.
    kubectl_apply(
        &job("fine", true, "modelops/worker:dev", serde_json::json!({})),
        &as_operator,
    )
    .unwrap();
    ns.delete().await;
}

#[test]
fn the_argocd_patch_carries_each_kinds_health_check_verbatim() {
    let out = std::process::Command::new(repo_root().join("scripts/argocd-health"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let patch: serde_json::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    for kind in ["Dataset", "TrainingJob", "ModelDeployment", "Monitor"] {
        assert_eq!(
            patch["data"][format!("resource.customizations.health.modelops.dev_{kind}")],
            argo_health_script(kind),
            "{kind}"
        );
    }
}

/// The operator's leader election against the real API server, in a namespace of its own: a
/// candidate waits while the holder renews (past the Lease's duration), a waiting candidate that
/// stops leaves the Lease alone, a released Lease is taken at once, a holder that stops renewing
/// (a crash) is replaced only after the Lease's duration, and the crashed holder's late release
/// does not clear the Lease its successor holds (every write carries the version it read).
#[tokio::test]
async fn a_lease_changes_hands_only_when_released_or_expired() {
    use k8s_openapi::api::coordination::v1::Lease;
    use modelops_operator::leader::{self, LEASE_NAME, LEASE_SECONDS, Leadership};
    use tokio::sync::oneshot;
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "lease").await;
    let leases: Api<Lease> = ns.api();
    let spec = |lease: Option<&Lease>| lease.and_then(|l| l.spec.clone()).unwrap_or_default();
    let holder = |lease: Option<&Lease>| spec(lease).holder_identity;
    let renewed = |lease: Option<&Lease>| spec(lease).renew_time.map(|t| t.0);

    // A holder that renews until told to stop, then hands its Leadership back unreleased.
    let hold = |mut leadership: Leadership| {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tokio::select! {
                () = leadership.lost() => panic!("the lease was lost"),
                _ = stopped => leadership,
            }
        });
        (stop, task)
    };
    let take = |identity: &'static str| {
        let client = client.clone();
        let ns = ns.name.clone();
        tokio::spawn(async move {
            leader::acquire(client, &ns, identity)
                .await
                .unwrap()
                .unwrap()
        })
    };

    let a = leader::acquire(client.clone(), &ns.name, "a")
        .await
        .unwrap()
        .unwrap();
    let taken = renewed(Some(&leases.get(LEASE_NAME).await.unwrap())).unwrap();
    let (stop_a, a) = hold(a);
    // b waits while a renews, for longer than the Lease lasts.
    let b = take("b");
    let past_duration = taken
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(
            i64::from(LEASE_SECONDS) + 2,
        ))
        .unwrap();
    let lease = wait(&leases, LEASE_NAME, Duration::from_secs(60), |lease| {
        renewed(lease).is_some_and(|t| t > past_duration)
    })
    .await;
    assert_eq!(holder(lease.as_ref()).as_deref(), Some("a"));
    assert!(!b.is_finished(), "b took a lease a was renewing");
    // A waiting candidate that stops (as a standby replica does on shutdown) writes nothing.
    b.abort();
    let before = leases.get(LEASE_NAME).await.unwrap();
    wait(&leases, LEASE_NAME, Duration::from_secs(30), |lease| {
        lease.and_then(|l| l.metadata.resource_version.clone()) != before.metadata.resource_version
    })
    .await;
    assert_eq!(
        holder(Some(&leases.get(LEASE_NAME).await.unwrap())).as_deref(),
        Some("a")
    );

    // A released Lease is taken without waiting for it to expire.
    let c = take("c");
    stop_a.send(()).unwrap();
    a.await.unwrap().release().await;
    let c = tokio::time::timeout(Duration::from_secs(10), c)
        .await
        .expect("c did not take the released lease")
        .unwrap();
    let lease = leases.get(LEASE_NAME).await.unwrap();
    assert_eq!(holder(Some(&lease)).as_deref(), Some("c"));
    assert_eq!(spec(Some(&lease)).lease_transitions, Some(1));

    // c stops renewing without releasing (a crash): d takes over once the Lease has gone
    // unrenewed for its duration, not before.
    let (stop_c, c) = hold(c);
    let d = take("d");
    stop_c.send(()).unwrap();
    let crashed = c.await.unwrap();
    let last_renewal = renewed(Some(&leases.get(LEASE_NAME).await.unwrap())).unwrap();
    let d = tokio::time::timeout(Duration::from_secs(60), d)
        .await
        .expect("d did not take the expired lease")
        .unwrap();
    let lease = leases.get(LEASE_NAME).await.unwrap();
    assert_eq!(holder(Some(&lease)).as_deref(), Some("d"));
    let acquired = spec(Some(&lease)).acquire_time.unwrap().0;
    let unrenewed = acquired.duration_since(last_renewal);
    assert!(
        unrenewed >= k8s_openapi::jiff::SignedDuration::from_secs(LEASE_SECONDS.into()),
        "d took the lease {unrenewed:?} after c's last renewal"
    );
    // The crashed holder's late release finds the Lease changed and clears nothing.
    crashed.release().await;
    assert_eq!(
        holder(Some(&leases.get(LEASE_NAME).await.unwrap())).as_deref(),
        Some("d")
    );
    let (stop_d, d) = hold(d);
    stop_d.send(()).unwrap();
    d.await.unwrap().release().await;
    assert_eq!(holder(Some(&leases.get(LEASE_NAME).await.unwrap())), None);
    ns.delete().await;
}
