//! The `ModelDeployment` kind: serve a trained model over HTTP (Open Inference Protocol v2),
//! roll new models out as revisions (at once, or as a canary in steps), and roll back to the
//! stable revision when an analysis Monitor fails.

use crate::common::{
    ARTIFACT_URI_PATTERN, ComputeResources, DIGEST_PATTERN, DURATION_PATTERN, LocalRef, PodTemplate,
};
use crate::conditions::Conditions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_derive::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Serves a model. Each distinct model (digest plus serving-relevant spec) is a revision with a
/// Deployment of its own; one Service spans the revisions and traffic follows the replicas.
// Clippy reads the repeated keys of the printcolumn(...) lists as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[kube(
    crates(kube_core = ::kube_core),
    group = "modelops.dev",
    version = "v1alpha1",
    kind = "ModelDeployment",
    doc = "Serves a model over HTTP (Open Inference Protocol v2), rolls new models out as revisions, at once or as a canary, and rolls back when an analysis Monitor fails.",
    namespaced,
    status = "ModelDeploymentStatus",
    shortname = "mdep",
    category = "modelops",
    printcolumn(
        name = "Revision",
        type_ = "integer",
        json_path = ".status.currentRevision",
        description = "Newest revision"
    ),
    printcolumn(
        name = "Stable",
        type_ = "integer",
        json_path = ".status.stableRevision",
        description = "Revision that takes the traffic the canary does not"
    ),
    printcolumn(
        name = "Canary",
        type_ = "integer",
        json_path = ".status.canaryWeight",
        description = "Percent of traffic on the canary revision"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the model is served"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".status.endpoint",
        priority = 1
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentSpec {
    /// The model to serve: exactly one of `trainingJobRef` or `artifact`.
    pub model: ModelSource,
    /// Serving replicas of the stable revision.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,
    /// Compute resources of each serving pod.
    #[serde(default)]
    pub resources: ComputeResources,
    /// Request batching.
    #[serde(default)]
    pub serving: Serving,
    /// How a new revision takes traffic.
    #[serde(default)]
    pub strategy: Strategy,
    /// Superseded and rolled-back revisions kept (their Deployments scaled to 0) besides the
    /// current and stable ones.
    #[serde(default = "default_revision_history_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub revision_history_limit: i32,
    /// Adjustments to the serving pods.
    #[serde(default)]
    pub template: PodTemplate,
}

fn default_replicas() -> i32 {
    1
}

fn default_revision_history_limit() -> i32 {
    3
}

/// Where the model comes from. Exactly one member is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("has(self.trainingJobRef) != has(self.artifact)")
        .message("spec.model: set exactly one of trainingJobRef or artifact"),
)]
#[serde(rename_all = "camelCase")]
pub struct ModelSource {
    /// Serve the model of a Succeeded TrainingJob in the same namespace; a new model from the
    /// job (a re-run) becomes a new revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_job_ref: Option<LocalRef>,
    /// Serve a model artifact directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ModelArtifactSource>,
}

/// A model artifact in the artifact store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelArtifactSource {
    /// The model folder (holding `model.safetensors` and `model.json`): `s3://<bucket>/<key>`
    /// or `pvc://<claim>/<path>`, within the namespace's own store.
    #[schemars(length(max = 2048), pattern(ARTIFACT_URI_PATTERN))]
    pub uri: String,
    /// The model's digest, `sha256:<64 hex>`: the sha256 of its `model.json` (the card, which
    /// pins the weights' sha256), as a TrainingJob's `status.model.digest` gives it; serving
    /// refuses a model whose digest differs.
    #[schemars(pattern(DIGEST_PATTERN))]
    pub digest: String,
}

/// Request batching of the serving pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Serving {
    /// Rows gathered into one forward pass at most (a larger request runs alone).
    #[serde(default = "default_max_batch_size")]
    #[schemars(range(min = 1, max = 4096))]
    pub max_batch_size: i32,
    /// How long the first request of a batch waits for more (a duration such as `2ms`). The
    /// default, `0s`, adds no wait: requests that arrive while a forward pass runs are batched
    /// anyway, so a busy server batches and an idle one answers at once.
    #[serde(default = "default_batch_timeout")]
    #[schemars(length(max = 64), pattern(DURATION_PATTERN))]
    pub batch_timeout: String,
    /// Rows one inference request may carry at most; a request with more is answered 413 (the
    /// body size is capped apart from this, at 4 MiB).
    #[serde(default = "default_max_rows_per_request")]
    #[schemars(range(min = 1, max = 65536))]
    pub max_rows_per_request: i32,
    /// Inference requests one serving pod works on at once; more are answered 429 with
    /// `Retry-After: 1` at once (a client's overload, not counted as the model's errors).
    #[serde(default = "default_max_concurrent_requests")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_concurrent_requests: i32,
}

fn default_max_batch_size() -> i32 {
    32
}

fn default_max_rows_per_request() -> i32 {
    1024
}

fn default_max_concurrent_requests() -> i32 {
    64
}

fn default_batch_timeout() -> String {
    "0s".into()
}

impl Default for Serving {
    fn default() -> Self {
        Self {
            max_batch_size: default_max_batch_size(),
            batch_timeout: default_batch_timeout(),
            max_rows_per_request: default_max_rows_per_request(),
            max_concurrent_requests: default_max_concurrent_requests(),
        }
    }
}

/// Rollout strategies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StrategyType {
    /// The new revision takes all traffic once it is ready.
    #[default]
    Replace,
    /// The new revision takes traffic in steps (`canary.steps`), checked by an analysis.
    Canary,
}

/// How a new revision takes traffic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("self.type != 'Canary' || has(self.canary)")
        .message("spec.strategy.canary is required when spec.strategy.type is Canary: list its steps, for example [{weight: 10}, {weight: 50}]")
        .field_path(".canary")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.type == 'Canary' || !has(self.canary)")
        .message("spec.strategy.canary applies to type Canary only: remove it or set spec.strategy.type: Canary")
        .field_path(".canary")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    /// `Replace` (default) or `Canary`.
    #[serde(rename = "type", default)]
    pub type_: StrategyType,
    /// The canary's steps and analysis (type Canary only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
}

/// A canary rollout: the new revision takes each step's share of traffic in turn, then all of
/// it. When the analysis Monitor fails, traffic goes back to the stable revision.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("self.steps.map(s, s.weight).isSorted() && self.steps.all(s, self.steps.exists_one(t, t.weight == s.weight))")
        .message("spec.strategy.canary.steps: weights must increase from step to step, for example 10, 50, 100")
        .field_path(".steps"),
)]
#[serde(rename_all = "camelCase")]
pub struct Canary {
    /// The steps, in order.
    #[schemars(length(min = 1, max = 20))]
    pub steps: Vec<CanaryStep>,
    /// The check that gates each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
}

/// One step of a canary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// Percent of traffic on the new revision during the step, 1 to 100.
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
    /// How long the step lasts before the next (a duration such as `2m`); without it, the step
    /// lasts until the analysis passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), pattern(DURATION_PATTERN))]
    pub pause: Option<String>,
}

/// The check that gates canary steps.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("!has(self.onInconclusiveTimeout) || has(self.inconclusiveTimeout)")
        .message("spec.strategy.canary.analysis.onInconclusiveTimeout needs spec.strategy.canary.analysis.inconclusiveTimeout: set the timeout (for example 10m) or remove onInconclusiveTimeout")
        .field_path(".onInconclusiveTimeout")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// A Monitor, in the same namespace, whose verdict gates each step: Pass moves on; Fail rolls
    /// back when the Monitor's action is `rollback`, and holds the canary where it is when it is
    /// `alert`.
    pub monitor_ref: LocalRef,
    /// How long a step may go without a Pass or Fail of the Monitor about the canary (a duration
    /// such as `10m`, greater than 0), counted from the moment the step began; then
    /// `onInconclusiveTimeout` applies. Without it, an Inconclusive analysis (no traffic, labels
    /// not yet arrived) holds the canary for as long as it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), pattern(DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("spec.strategy.canary.analysis.inconclusiveTimeout must be greater than 0, for example 10m"))]
    pub inconclusive_timeout: Option<String>,
    /// What happens when `inconclusiveTimeout` passes: `abort` (the default) rolls the canary
    /// back, `promote` counts the step as passed, `hold` keeps waiting and says so in the
    /// `Stalled` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_inconclusive_timeout: Option<InconclusiveTimeoutAction>,
}

/// What a canary does when its analysis stays Inconclusive past `inconclusiveTimeout`: `abort`
/// (the default) rolls it back, `promote` counts the step as passed, `hold` keeps waiting and
/// reports `Stalled`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum InconclusiveTimeoutAction {
    /// Roll the canary back (RolledBack until the spec changes); the stable revision serves.
    #[default]
    Abort,
    /// Count the step as passed: the canary moves to its next step, or is promoted after the
    /// last (each step has its own timeout).
    Promote,
    /// Keep the canary where it is, and report the rollout `Stalled` until a verdict comes or
    /// the spec changes.
    Hold,
}

/// The state of a revision.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RevisionState {
    /// Takes the traffic the canary does not (all of it when there is no canary).
    Stable,
    /// Rolling out: takes `status.canaryWeight` percent of the traffic.
    Canary,
    /// Replaced by a newer revision that became stable.
    Superseded,
    /// Taken out of traffic after a failed analysis; stays so until the spec changes.
    RolledBack,
    /// Never became ready (image, model or digest problem).
    Failed,
}

/// One revision of a ModelDeployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    /// Revision number N; its Deployment is `<name>-r<N>`.
    pub revision: i32,
    /// sha256 of the model it serves.
    pub model_digest: String,
    /// The TrainingJob whose model it serves, when the model came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_job: Option<String>,
    /// Stable, Canary, Superseded, RolledBack or Failed.
    pub state: RevisionState,
    /// When it entered its state.
    pub since: Time,
    /// Why it is in its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Hash of the model digest and the serving-relevant spec: what makes it a revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// The ModelDeployment generation that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The traffic weight it took since it first was a canary, each change with when it
    /// began (at most 20, the oldest dropped): the canary's steps, 100 once promoted, 0 once
    /// rolled back or superseded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<WeightChange>,
}

/// A revision's traffic weight from a time on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightChange {
    /// Percent of the traffic.
    pub weight: i32,
    /// When it began.
    pub since: Time,
}

/// The most weight changes kept per revision.
pub const MAX_WEIGHT_CHANGES: usize = 20;

/// What is served.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded`, `RolledBack`, and `Reconciling` or `Stalled` while
    /// they hold.
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    /// The newest revision (the canary while one rolls out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<i32>,
    /// The revision that takes the traffic the canary does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<i32>,
    /// Percent of traffic on the canary (0 without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,
    /// Index of the canary step under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_step: Option<i32>,
    /// Serving replicas ready, over all revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Base URL of the inference API (`http://<service>.<namespace>:<port>`); requests go to
    /// `<endpoint>/v2/models/<name>/infer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The revisions kept, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<RevisionStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_manifest_reads() {
        let md: ModelDeployment = serde_yaml::from_str(
            r#"
apiVersion: modelops.dev/v1alpha1
kind: ModelDeployment
metadata: {name: digits, namespace: default}
spec:
  model: {trainingJobRef: {name: digits}}
  replicas: 2
  strategy:
    type: Canary
    canary:
      steps: [{weight: 10, pause: 1m}, {weight: 50}]
      analysis: {monitorRef: {name: digits}}
"#,
        )
        .unwrap();
        let canary = md.spec.strategy.canary.as_ref().unwrap();
        assert_eq!(md.spec.strategy.type_, StrategyType::Canary);
        assert_eq!(canary.steps[0].pause.as_deref(), Some("1m"));
        assert_eq!(canary.analysis.as_ref().unwrap().monitor_ref.name, "digits");
        assert_eq!(md.spec.serving, Serving::default());
        assert_eq!(md.spec.revision_history_limit, 3);
    }

    #[test]
    fn an_inconclusive_timeout_reads_and_its_action_defaults_to_none() {
        let analysis: Analysis = serde_json::from_value(serde_json::json!({
            "monitorRef": {"name": "digits"},
            "inconclusiveTimeout": "10m",
            "onInconclusiveTimeout": "hold",
        }))
        .unwrap();
        assert_eq!(analysis.inconclusive_timeout.as_deref(), Some("10m"));
        assert_eq!(
            analysis.on_inconclusive_timeout,
            Some(InconclusiveTimeoutAction::Hold)
        );
        let plain: Analysis =
            serde_json::from_value(serde_json::json!({"monitorRef": {"name": "digits"}})).unwrap();
        assert_eq!(plain.inconclusive_timeout, None);
        assert_eq!(plain.on_inconclusive_timeout, None);
        assert_eq!(
            InconclusiveTimeoutAction::default(),
            InconclusiveTimeoutAction::Abort
        );
    }

    #[test]
    fn defaults_replace_one_replica() {
        let spec: ModelDeploymentSpec = serde_json::from_value(serde_json::json!({
            "model": {"artifact": {"uri": "pvc://modelops-artifacts/models/ab", "digest": "sha256:ab"}},
        }))
        .unwrap();
        assert_eq!(spec.replicas, 1);
        assert_eq!(spec.strategy.type_, StrategyType::Replace);
        assert_eq!(spec.serving.batch_timeout, "0s");
        assert_eq!(spec.serving.max_batch_size, 32);
    }
}
