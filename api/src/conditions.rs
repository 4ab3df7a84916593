//! Status conditions shared by all four kinds: the list type (a list-map keyed by `type`, so that
//! server-side apply merges conditions one by one), the condition types and reasons as constants,
//! and small pure functions that set a condition the way cert-manager does: `lastTransitionTime`
//! moves only when the status flips, and every condition records the generation it describes.
//!
//! Conventions (kstatus, which Flux and Argo CD read): `Ready` is always present; `Reconciling`
//! and `Stalled` are present only while true, so a controller sets them with
//! [`Conditions::set_while_true`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Condition types. `READY`, `RECONCILING` and `STALLED` apply to every kind; the others are the
/// domain conditions of one kind each.
pub mod types {
    /// The object does its job: a Dataset is prepared, a TrainingJob succeeded, a
    /// ModelDeployment serves, a Monitor evaluates. Always present.
    pub const READY: &str = "Ready";
    /// The controller is working towards the spec. Present only while true.
    pub const RECONCILING: &str = "Reconciling";
    /// The controller cannot make progress without a change from a person. Present only while
    /// true.
    pub const STALLED: &str = "Stalled";
    /// TrainingJob: training finished and produced a model.
    pub const SUCCEEDED: &str = "Succeeded";
    /// TrainingJob: training failed for good (backoff limit or deadline reached).
    pub const FAILED: &str = "Failed";
    /// TrainingJob: `spec.runPolicy.suspend` holds the job.
    pub const SUSPENDED: &str = "Suspended";
    /// ModelDeployment: a rollout (a new revision, a canary step) is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// ModelDeployment: fewer serving replicas are ready than asked for.
    pub const DEGRADED: &str = "Degraded";
    /// ModelDeployment: traffic went back to the stable revision after a failed analysis.
    pub const ROLLED_BACK: &str = "RolledBack";
    /// Monitor: input or prediction drift is above its maximum.
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    /// Monitor: the quality on labelled feedback is out of its threshold (accuracy below its
    /// minimum, or a regression model's rmse or mae above its maximum).
    pub const ACCURACY_DEGRADED: &str = "AccuracyDegraded";
}

/// Condition reasons: one CamelCase word each, saying why a condition has its status. Messages
/// carry the details.
pub mod reasons {
    // Shared by every kind.
    /// The spec is refused by a check the CRD schema cannot express.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// An artifact URI is not one this namespace may use: malformed, of another scheme than the
    /// cluster's store, or in another namespace's store. The message names the field and the URI.
    pub const FORBIDDEN_ARTIFACT_URI: &str = "ForbiddenArtifactUri";
    /// `spec.template` names an image, ServiceAccount or priority class the cluster's workload
    /// policy does not allow (docs/security.md). The message names the field and what is allowed.
    pub const FORBIDDEN_POD_TEMPLATE: &str = "ForbiddenPodTemplate";
    /// Event: a child's name is taken by an object the owner does not control; the operator
    /// does not adopt it.
    pub const NAME_TAKEN: &str = "NameTaken";
    /// A referenced object does not exist.
    pub const REFERENCE_NOT_FOUND: &str = "ReferenceNotFound";
    /// A referenced object exists but is not Ready yet.
    pub const REFERENCE_NOT_READY: &str = "ReferenceNotReady";
    /// A referenced object failed for good (a TrainingJob whose phase is Failed): only a change
    /// of the spec (or of the referenced object) helps.
    pub const REFERENCE_FAILED: &str = "ReferenceFailed";
    /// The controller is creating or updating child objects.
    pub const PROGRESSING: &str = "Progressing";
    /// Nothing is left to do for the current generation.
    pub const RECONCILED: &str = "Reconciled";
    /// A worker pod (prepare or train) succeeded but left no result the operator can read.
    pub const UNREADABLE_RESULT: &str = "UnreadableResult";

    // Dataset.
    /// A prepare pod is running.
    pub const PREPARING: &str = "Preparing";
    /// The data set is prepared and its digest recorded.
    pub const PREPARED: &str = "Prepared";
    /// The prepare pod failed (bad source, bad rows, digest mismatch).
    pub const PREPARE_FAILED: &str = "PrepareFailed";

    // TrainingJob.
    /// Queued in a Kueue LocalQueue (label `kueue.x-k8s.io/queue-name`) that has not admitted
    /// it yet.
    pub const WAITING_FOR_ADMISSION: &str = "WaitingForAdmission";
    /// The TrainingJob's Dataset does not exist (yet): the job waits for it.
    pub const DATASET_NOT_FOUND: &str = "DatasetNotFound";
    /// The TrainingJob's Dataset exists but is not prepared yet: the job waits for it.
    pub const DATASET_NOT_READY: &str = "DatasetNotReady";
    /// Every trial of a search failed.
    pub const ALL_TRIALS_FAILED: &str = "AllTrialsFailed";
    /// Waiting for pods to be scheduled or to start.
    pub const PENDING: &str = "Pending";
    /// Worker pods are training.
    pub const TRAINING: &str = "Training";
    /// Training produced a model.
    pub const TRAINING_SUCCEEDED: &str = "TrainingSucceeded";
    /// A worker pod failed and `spec.runPolicy.backoffLimit` is spent (the Job controller's
    /// reason, passed on).
    pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
    /// `spec.runPolicy.activeDeadlineSeconds` passed (the Job controller's reason, passed on).
    pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
    /// `spec.runPolicy.suspend` is true.
    pub const JOB_SUSPENDED: &str = "JobSuspended";
    /// `spec.runPolicy.suspend` went back to false.
    pub const JOB_RESUMED: &str = "JobResumed";
    /// Event: the first worker pods of the run (or of the search's trials) were created.
    pub const STARTED: &str = "Started";
    /// Event: a worker pod ended before finishing; the next attempt resumes from the checkpoint.
    pub const RETRYING: &str = "Retrying";
    /// Event: training finished and produced a model.
    pub const SUCCEEDED: &str = "Succeeded";
    /// Event: training failed for good.
    pub const FAILED: &str = "Failed";
    /// Event: `spec.runPolicy.suspend` holds the job.
    pub const SUSPENDED: &str = "Suspended";

    // ModelDeployment.
    /// A new revision is rolling out.
    pub const NEW_REVISION: &str = "NewRevision";
    /// Revision: the first revision, stable at once (there is nothing to compare it with).
    pub const FIRST_REVISION: &str = "FirstRevision";
    /// Revision: an earlier revision the spec asks for again rolls out again.
    pub const ROLLED_OUT_AGAIN: &str = "RolledOutAgain";
    /// Revision: a canary abandoned because the spec moved on.
    pub const SPEC_CHANGED: &str = "SpecChanged";
    /// Revision: its pods never became ready (the Deployment controller's reason, passed on).
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// Event: a revision never became ready and takes no traffic.
    pub const REVISION_FAILED: &str = "RevisionFailed";
    /// Revision: the stable revision a promoted canary replaced.
    pub const REPLACED: &str = "Replaced";
    /// Revision: a stable revision that failed a rollback Monitor after its promotion.
    pub const MONITOR_FAILED: &str = "MonitorFailed";
    /// Revision: the earlier revision that took the traffic back after such a failure.
    pub const RESTORED_AFTER_ROLLBACK: &str = "RestoredAfterRollback";
    /// Event: traffic went back to the stable (or the earlier) revision after a failed analysis.
    pub const ROLLED_BACK: &str = "RolledBack";
    /// Event: a stable revision failed a rollback Monitor but no earlier revision is kept.
    pub const ROLLBACK_IMPOSSIBLE: &str = "RollbackImpossible";
    /// A canary step is waiting for its pause or its analysis.
    pub const CANARY_STEP: &str = "CanaryStep";
    /// The canary took all traffic and became the stable revision.
    pub const PROMOTED: &str = "Promoted";
    /// Serving replicas are ready and the Service routes to them.
    pub const AVAILABLE: &str = "Available";
    /// Some serving replicas are not ready.
    pub const REPLICAS_UNAVAILABLE: &str = "ReplicasUnavailable";
    /// The stable revision's serving pods cannot load its model (their readiness check says
    /// why: a refused or missing artifact, a digest mismatch).
    pub const MODEL_NOT_SERVABLE: &str = "ModelNotServable";
    /// The serving pods are ready, but a request through the Service has not succeeded yet (the
    /// Service's routes are still being programmed).
    pub const SERVICE_NOT_SERVING: &str = "ServiceNotServing";
    /// The analysis Monitor reported Fail, so traffic went back to the stable revision.
    pub const ANALYSIS_FAILED: &str = "AnalysisFailed";
    /// The analysis Monitor gave no Pass or Fail about the canary for
    /// `analysis.inconclusiveTimeout`, so `onInconclusiveTimeout` applied (abort, promote or hold).
    pub const ANALYSIS_INCONCLUSIVE_TIMEOUT: &str = "AnalysisInconclusiveTimeout";

    // Monitor.
    /// Every metric is within its threshold.
    pub const WITHIN_THRESHOLDS: &str = "WithinThresholds";
    /// Accuracy on labelled feedback is below `accuracy.min`.
    pub const ACCURACY_BELOW_MINIMUM: &str = "AccuracyBelowMinimum";
    /// A regression model's rmse on labelled feedback is above `rmse.max`.
    pub const RMSE_ABOVE_MAXIMUM: &str = "RmseAboveMaximum";
    /// A regression model's mae on labelled feedback is above `mae.max`.
    pub const MAE_ABOVE_MAXIMUM: &str = "MaeAboveMaximum";
    /// Input drift is above `inputDrift.max`.
    pub const INPUT_DRIFT_ABOVE_MAXIMUM: &str = "InputDriftAboveMaximum";
    /// Prediction drift is above `predictionDrift.max`.
    pub const PREDICTION_DRIFT_ABOVE_MAXIMUM: &str = "PredictionDriftAboveMaximum";
    /// The p99 latency is above `latency.p99Max`.
    pub const LATENCY_ABOVE_MAXIMUM: &str = "LatencyAboveMaximum";
    /// The error rate is above `errorRate.max`.
    pub const ERROR_RATE_ABOVE_MAXIMUM: &str = "ErrorRateAboveMaximum";
    /// Too few labelled feedbacks in the window to judge accuracy.
    pub const LABELS_PENDING: &str = "LabelsPending";
    /// No request reached the revision within the window.
    pub const NO_TRAFFIC: &str = "NoTraffic";
    /// A drift metric has fewer rows in the window than its `minSamples`.
    pub const TOO_FEW_SAMPLES: &str = "TooFewSamples";
    /// The Dataset profile, the drift reference, cannot be read (or, for prediction drift, has
    /// no classes).
    pub const PROFILE_UNAVAILABLE: &str = "ProfileUnavailable";
    /// A `prometheus` metric's query gave a value below its `min`.
    pub const PROMETHEUS_BELOW_MINIMUM: &str = "PrometheusBelowMinimum";
    /// A `prometheus` metric's query gave a value above its `max`.
    pub const PROMETHEUS_ABOVE_MAXIMUM: &str = "PrometheusAboveMaximum";
    /// A `prometheus` metric's query gave no number: no series, NaN, or several series.
    pub const NO_DATA: &str = "NoData";
    /// A `prometheus` metric's query failed: no answer, an HTTP error or a PromQL error.
    pub const QUERY_FAILED: &str = "QueryFailed";
    /// A `prometheus` metric names an address the operator is not allowed to query
    /// (`--allowed-prometheus-addresses`, chart value `policy.prometheusAddresses`).
    pub const FORBIDDEN_PROMETHEUS_ADDRESS: &str = "ForbiddenPrometheusAddress";
    /// The Monitor evaluated its target; the verdict is in `status.lastEvaluation`.
    pub const EVALUATED: &str = "Evaluated";
}

/// The status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The controller cannot tell yet.
    Unknown,
}

impl ConditionStatus {
    /// The value as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(holds: bool) -> Self {
        if holds { Self::True } else { Self::False }
    }
}

/// Builds a condition observed now, for the object's `generation`.
pub fn new_condition(
    type_: &str,
    status: impl Into<ConditionStatus>,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.into().as_str().to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: now.clone(),
    }
}

/// The conditions of an object: a list-map keyed by `type` (`x-kubernetes-list-type: map`), in
/// the order they were first set, so that an unchanged status serialises the same way twice.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct Conditions(pub Vec<Condition>);

impl Conditions {
    /// The condition of the given type, if present.
    pub fn get(&self, type_: &str) -> Option<&Condition> {
        self.0.iter().find(|c| c.type_ == type_)
    }

    /// Whether the condition of the given type is present and `True`.
    pub fn is_true(&self, type_: &str) -> bool {
        self.get(type_).is_some_and(|c| c.status == "True")
    }

    /// Whether no condition is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets a condition. Its `lastTransitionTime` is kept from the present condition of the same
    /// type unless the status flips. Returns whether anything changed.
    pub fn set(&mut self, mut condition: Condition) -> bool {
        match self.0.iter_mut().find(|c| c.type_ == condition.type_) {
            Some(present) => {
                if present.status == condition.status {
                    condition.last_transition_time = present.last_transition_time.clone();
                }
                let changed = *present != condition;
                *present = condition;
                changed
            }
            None => {
                self.0.push(condition);
                true
            }
        }
    }

    /// Removes the condition of the given type. Returns whether it was present.
    pub fn remove(&mut self, type_: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|c| c.type_ != type_);
        self.0.len() != before
    }

    /// Sets a kstatus "abnormal-true" condition (`Reconciling`, `Stalled`): present with status
    /// `True` and the given `(reason, message)` while it holds, absent otherwise. Returns whether
    /// anything changed.
    pub fn set_while_true(
        &mut self,
        type_: &str,
        holds: Option<(&str, String)>,
        generation: Option<i64>,
        now: &Time,
    ) -> bool {
        match holds {
            Some((reason, message)) => {
                self.set(new_condition(type_, true, reason, message, generation, now))
            }
            None => self.remove(type_),
        }
    }
}

impl JsonSchema for Conditions {
    fn schema_name() -> Cow<'static, str> {
        "Conditions".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = Vec::<Condition>::json_schema(generator);
        schema.insert("x-kubernetes-list-type".into(), "map".into());
        schema.insert(
            "x-kubernetes-list-map-keys".into(),
            serde_json::json!(["type"]),
        );
        schema.insert(
            "description".into(),
            "The latest observations of the object's state, one per type.".into(),
        );
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + second).unwrap())
    }

    #[test]
    fn a_new_condition_is_appended_with_now() {
        let mut conditions = Conditions::default();
        let changed = conditions.set(new_condition(
            types::READY,
            false,
            reasons::PREPARING,
            "prepare pod running",
            Some(1),
            &at(0),
        ));
        assert!(changed);
        let ready = conditions.get(types::READY).unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.observed_generation, Some(1));
        assert_eq!(ready.last_transition_time, at(0));
    }

    #[test]
    fn same_status_keeps_transition_time_but_updates_the_rest() {
        let mut conditions = Conditions::default();
        conditions.set(new_condition(
            types::READY,
            false,
            reasons::PENDING,
            "waiting",
            Some(1),
            &at(0),
        ));
        let changed = conditions.set(new_condition(
            types::READY,
            false,
            reasons::TRAINING,
            "epoch 3/10",
            Some(2),
            &at(60),
        ));
        assert!(changed);
        let ready = conditions.get(types::READY).unwrap();
        assert_eq!(ready.last_transition_time, at(0), "status did not flip");
        assert_eq!(ready.reason, reasons::TRAINING);
        assert_eq!(ready.message, "epoch 3/10");
        assert_eq!(ready.observed_generation, Some(2));
    }

    #[test]
    fn a_flip_moves_transition_time() {
        let mut conditions = Conditions::default();
        conditions.set(new_condition(
            types::READY,
            false,
            reasons::TRAINING,
            "",
            Some(1),
            &at(0),
        ));
        conditions.set(new_condition(
            types::READY,
            true,
            reasons::TRAINING_SUCCEEDED,
            "",
            Some(1),
            &at(90),
        ));
        let ready = conditions.get(types::READY).unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.last_transition_time, at(90));
        assert!(conditions.is_true(types::READY));
    }

    #[test]
    fn setting_the_same_condition_again_changes_nothing() {
        let mut conditions = Conditions::default();
        let condition = |now| {
            new_condition(
                types::READY,
                true,
                reasons::PREPARED,
                "1797 rows",
                Some(3),
                &now,
            )
        };
        conditions.set(condition(at(0)));
        let before = conditions.clone();
        assert!(!conditions.set(condition(at(500))), "only the time differs");
        assert_eq!(conditions, before);
    }

    #[test]
    fn unknown_to_true_is_a_flip() {
        let mut conditions = Conditions::default();
        conditions.set(new_condition(
            types::READY,
            ConditionStatus::Unknown,
            reasons::PROGRESSING,
            "",
            Some(1),
            &at(0),
        ));
        conditions.set(new_condition(
            types::READY,
            true,
            reasons::AVAILABLE,
            "",
            Some(1),
            &at(5),
        ));
        assert_eq!(
            conditions.get(types::READY).unwrap().last_transition_time,
            at(5)
        );
    }

    #[test]
    fn reconciling_is_present_only_while_true() {
        let mut conditions = Conditions::default();
        conditions.set(new_condition(
            types::READY,
            false,
            reasons::PREPARING,
            "",
            Some(1),
            &at(0),
        ));
        assert!(conditions.set_while_true(
            types::RECONCILING,
            Some((reasons::PREPARING, "prepare pod running".into())),
            Some(1),
            &at(0),
        ));
        assert!(conditions.is_true(types::RECONCILING));
        assert!(conditions.set_while_true(types::RECONCILING, None, Some(1), &at(10)));
        assert!(conditions.get(types::RECONCILING).is_none());
        assert!(!conditions.set_while_true(types::RECONCILING, None, Some(1), &at(20)));
        assert_eq!(conditions.0.len(), 1, "Ready stays");
    }

    #[test]
    fn order_is_kept_when_a_condition_is_updated() {
        let mut conditions = Conditions::default();
        for type_ in [types::READY, types::PROGRESSING, types::DEGRADED] {
            conditions.set(new_condition(
                type_,
                false,
                reasons::PROGRESSING,
                "",
                None,
                &at(0),
            ));
        }
        conditions.set(new_condition(
            types::PROGRESSING,
            true,
            reasons::NEW_REVISION,
            "",
            None,
            &at(1),
        ));
        let order: Vec<_> = conditions.0.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(order, [types::READY, types::PROGRESSING, types::DEGRADED]);
    }

    #[test]
    fn serialises_as_a_plain_list_with_kubernetes_names() {
        let mut conditions = Conditions::default();
        conditions.set(new_condition(
            types::READY,
            true,
            reasons::PREPARED,
            "ok",
            Some(4),
            &at(0),
        ));
        let json = serde_json::to_value(&conditions).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{
                "type": "Ready",
                "status": "True",
                "reason": "Prepared",
                "message": "ok",
                "observedGeneration": 4,
                "lastTransitionTime": "2027-01-15T08:00:00Z",
            }])
        );
    }

    #[test]
    fn schema_is_a_list_map_keyed_by_type() {
        let schema = schemars::generate::SchemaSettings::openapi3()
            .into_generator()
            .into_root_schema_for::<Conditions>();
        assert_eq!(schema.get("x-kubernetes-list-type").unwrap(), "map");
        assert_eq!(
            schema.get("x-kubernetes-list-map-keys").unwrap(),
            &serde_json::json!(["type"])
        );
    }
}
