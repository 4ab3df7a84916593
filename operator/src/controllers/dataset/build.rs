//! Pure: a Dataset in, its prepare Job out.

use crate::config::OperatorConfig;
use crate::controllers::apply::child_labels;
use crate::controllers::jobs;
use crate::controllers::workerpod::{WorkerPod, pod_template};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, KeyToPath, PersistentVolumeClaimVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{Resource, ResourceExt};
use modelops_api::dataset::{DEFAULT_PREPARE_CPU, DEFAULT_PREPARE_MEMORY, Source};
use modelops_api::trainingjob::RunPolicy;
use modelops_api::workorder::{PrepareOrder, SOURCE_MOUNT_PATH, WorkOrder, layout};
use modelops_api::{Dataset, common::ComputeResources};

/// Retries of a prepare pod: a network hiccup deserves another try, a bad file does not (the
/// worker exits with a permanent failure code for those).
const PREPARE_BACKOFF_LIMIT: i32 = 2;

/// How long a prepare Job may run, all attempts together: a source that never finishes
/// downloading fails the Dataset instead of holding a pod for ever.
pub const PREPARE_DEADLINE_SECONDS: i64 = 3600;

/// The name of the Job that prepares this version of the spec. The spec's hash is in the name,
/// so a changed spec gets a new Job and an unchanged one finds its Job again.
pub fn job_name(dataset: &Dataset) -> String {
    let name = dataset.name_any();
    let hash = jobs::short_hash(&dataset.spec);
    // The CRD keeps names to 40 characters (`modelops_api::NAME_RULES`), so that this fits a
    // label value; names are never truncated, so two Datasets never share a Job.
    format!("{name}-prepare-{hash}")
}

/// The source mount: a configMap key or a file on a claim, under `/source`; none for http.
fn source_volume(dataset: &Dataset) -> (Option<(Volume, VolumeMount)>, Option<String>) {
    let volume = |source: Volume| Volume {
        name: "source".into(),
        ..source
    };
    let mount = VolumeMount {
        name: "source".into(),
        mount_path: SOURCE_MOUNT_PATH.into(),
        read_only: Some(true),
        ..Default::default()
    };
    match dataset.spec.source.get() {
        Some(Source::ConfigMap(cm)) => (
            Some((
                volume(Volume {
                    config_map: Some(ConfigMapVolumeSource {
                        name: cm.name.clone(),
                        items: Some(vec![KeyToPath {
                            key: cm.key.clone(),
                            path: "data".into(),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                mount,
            )),
            Some(format!("{SOURCE_MOUNT_PATH}/data")),
        ),
        Some(Source::Volume(v)) => (
            Some((
                volume(Volume {
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: v.claim_name.clone(),
                        read_only: Some(true),
                    }),
                    ..Default::default()
                }),
                mount,
            )),
            Some(format!(
                "{SOURCE_MOUNT_PATH}/{}",
                v.path.trim_start_matches('/')
            )),
        ),
        // Downloaded by the worker: over HTTP, or from the store with the namespace's Secret.
        Some(Source::Http(_) | Source::S3(_)) | None => (None, None),
    }
}

/// The work order of the prepare pod.
pub fn prepare_order(config: &OperatorConfig, dataset: &Dataset, namespace: &str) -> WorkOrder {
    let (_, source_path) = source_volume(dataset);
    WorkOrder::Prepare(PrepareOrder {
        namespace: namespace.to_owned(),
        name: dataset.name_any(),
        spec: dataset.spec.clone(),
        source_path,
        output_uri: config.artifacts.uri(
            namespace,
            &layout::dataset_versions_dir(&dataset.name_any()),
        ),
    })
}

/// The prepare Job.
pub fn prepare_job(config: &OperatorConfig, dataset: &Dataset, namespace: &str) -> Job {
    let order = prepare_order(config, dataset, namespace);
    let labels = child_labels(dataset);
    let (source, _) = source_volume(dataset);
    let requested = dataset.spec.resources.clone().unwrap_or_default();
    let resources = ComputeResources {
        gpu: 0,
        cpu: Some(
            requested
                .cpu
                .unwrap_or_else(|| Quantity(DEFAULT_PREPARE_CPU.into())),
        ),
        memory: Some(
            requested
                .memory
                .unwrap_or_else(|| Quantity(DEFAULT_PREPARE_MEMORY.into())),
        ),
    };
    let template = pod_template(
        config,
        WorkerPod {
            command: "prepare",
            order: &order,
            resources: &resources,
            template: None,
            volumes: source.into_iter().collect(),
            labels: labels.clone(),
            metrics_port: None,
        },
    );
    let policy = RunPolicy {
        backoff_limit: PREPARE_BACKOFF_LIMIT,
        active_deadline_seconds: Some(PREPARE_DEADLINE_SECONDS),
        ..RunPolicy::default()
    };
    let owner = dataset
        .controller_owner_ref(&())
        .expect("a stored Dataset has a uid");
    jobs::build(
        &job_name(dataset),
        namespace,
        &labels,
        owner,
        template,
        &policy,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_claim_source_is_mounted_read_only_and_http_needs_no_mount() {
        let mut claim = digits();
        claim.spec.source =
            serde_json::from_value(json!({"volume": {"claimName": "raw", "path": "/digits.csv"}}))
                .unwrap();
        let (mount, path) = source_volume(&claim);
        let (volume, mount) = mount.unwrap();
        let source = volume.persistent_volume_claim.unwrap();
        assert_eq!(source.claim_name, "raw");
        assert_eq!(source.read_only, Some(true));
        assert_eq!(mount.read_only, Some(true));
        assert_eq!(path.as_deref(), Some("/source/digits.csv"));
        let mut http = digits();
        http.spec.source =
            serde_json::from_value(json!({"http": {"url": "http://example.com/d.csv"}})).unwrap();
        assert!(matches!(source_volume(&http), (None, None)));
        let mut s3 = digits();
        s3.spec.source =
            serde_json::from_value(json!({"s3": {"uri": "s3://modelops/team-a/raw/d.csv"}}))
                .unwrap();
        assert!(matches!(source_volume(&s3), (None, None)));
    }

    fn digits() -> Dataset {
        let mut dataset: Dataset =
            serde_yaml::from_str(include_str!("../../../../examples/digits/dataset.yaml")).unwrap();
        dataset.metadata.namespace = Some("team-a".into());
        dataset.metadata.uid = Some("uid-1".into());
        dataset
    }

    #[test]
    fn the_job_mounts_the_configmap_source_and_writes_to_the_namespace_root() {
        let config = OperatorConfig::for_tests();
        let job = prepare_job(&config, &digits(), "team-a");
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let volumes: Vec<_> = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(volumes, ["tmp", "scratch", "source"]);
        assert_eq!(
            job.spec.as_ref().unwrap().active_deadline_seconds,
            Some(PREPARE_DEADLINE_SECONDS)
        );
        // Requests and limits, always.
        let resources = pod.containers[0].resources.clone().unwrap();
        assert_eq!(
            resources.limits.unwrap()["memory"].0,
            DEFAULT_PREPARE_MEMORY
        );
        assert_eq!(resources.requests.unwrap()["cpu"].0, DEFAULT_PREPARE_CPU);
        let container = &pod.containers[0];
        assert_eq!(container.args.as_deref(), Some(&["prepare".to_owned()][..]));
        let order = &container.env.as_ref().unwrap()[0];
        let order: WorkOrder = serde_json::from_str(order.value.as_deref().unwrap()).unwrap();
        let WorkOrder::Prepare(order) = order else {
            panic!("not a prepare order")
        };
        assert_eq!(order.source_path.as_deref(), Some("/source/data"));
        assert_eq!(order.output_uri, "s3://modelops/team-a/datasets/digits");
        let labels = job.metadata.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "modelops");
        assert_eq!(labels["modelops.dev/dataset"], "digits");
        assert_eq!(job.metadata.owner_references.unwrap()[0].kind, "Dataset");
    }

    #[test]
    fn the_job_name_follows_the_spec() {
        let a = digits();
        let mut b = digits();
        assert_eq!(job_name(&a), job_name(&b));
        b.spec.split.seed = a.spec.split.seed + 1;
        assert_ne!(job_name(&a), job_name(&b));
        assert!(job_name(&a).starts_with("digits-prepare-"));
    }

    #[test]
    fn pods_are_restricted() {
        let config = OperatorConfig::for_tests();
        let job = prepare_job(&config, &digits(), "team-a");
        let pod = job.spec.unwrap().template.spec.unwrap();
        let sc = pod.containers[0].security_context.clone().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    }
}
