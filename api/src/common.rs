//! Small types that more than one kind uses: references to other objects, compute resources and
//! the pod template a user may adjust, and the string formats (durations, digests, artifact URIs)
//! that the schemas check.

use k8s_openapi::api::core::v1::Toleration;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube_derive::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A Go duration as Kubernetes writes it (`30s`, `5m`, `1h30m`, `250ms`). The schema refuses
/// anything else, so a controller never meets a duration it cannot parse.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$";

/// A content digest: `sha256:` and 64 lowercase hex digits.
pub const DIGEST_PATTERN: &str = r"^sha256:[0-9a-f]{64}$";

/// An artifact URI with a path: `s3://<bucket>/<key>` or `pvc://<claim>/<path>` (see
/// [`crate::store`] and docs/decisions.md). The controllers check the rest (no `..` segments,
/// the namespace's own store) and say so in a condition.
pub const ARTIFACT_URI_PATTERN: &str = r"^(s3|pvc)://[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[^/].*$";

/// The name of an object in the same namespace (a DNS subdomain, as Kubernetes names are).
pub const NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A relative path inside a volume: segments that start with a letter, digit or `_`, so that no
/// path climbs out with `..` or starts at `/`.
pub const RELATIVE_PATH_PATTERN: &str =
    r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$";

/// Parses a duration that matched [`DURATION_PATTERN`] (`30s`, `1h30m`, `250ms`).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let duration: kube_core::Duration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration such as 30s or 1h30m: {e}"))?;
    if duration.is_negative() {
        return Err(format!("{text:?} is negative"));
    }
    Ok(duration.into())
}

/// A figure as the status shows it: 4 significant digits (0.04217, 12.35); a non-finite value
/// as it is.
pub fn significant(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    // Rounded in decimal by the formatter (exact), not by scaling with a power of ten, which
    // is inexact at the ends of the range (1e-300 would come back as 9.999999999999994e-301).
    format!("{value:.3e}").parse().unwrap_or(value)
}

/// A reference to an object of a known kind in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    /// Name of the object, in the same namespace.
    #[schemars(length(min = 1, max = 253), pattern(NAME_PATTERN))]
    pub name: String,
}

impl LocalRef {
    /// A reference to `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

/// The rule that refuses a `resources.<field>` (`cpu` or `memory`) that is not a positive
/// Kubernetes quantity, at `kubectl apply`, rather than when the API server refuses the pod the
/// operator makes from it. The schema of a quantity is only "an integer or a string".
pub fn positive_quantity_rule(field: &str, examples: &str) -> kube_core::Rule {
    kube_core::Rule::new(format!(
        "!has(self.{field}) || (type(self.{field}) == int ? self.{field} > 0 : \
         isQuantity(self.{field}) && quantity(self.{field}).isGreaterThan(quantity('0')))"
    ))
    .message(
        format!("resources.{field} must be a positive Kubernetes quantity, for example {examples}")
            .as_str(),
    )
    .field_path(format!(".{field}"))
    .reason(kube_core::Reason::FieldValueInvalid)
}

/// Compute resources of a worker or serving pod. Requests equal limits, so that a pod gets what
/// it asked for and nothing it did not.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = positive_quantity_rule("cpu", "500m, 2 or 1.5"),
    validation = positive_quantity_rule("memory", "512Mi or 4Gi"),
)]
#[serde(rename_all = "camelCase")]
pub struct ComputeResources {
    /// Number of NVIDIA GPUs (`nvidia.com/gpu`); 0 runs on CPU.
    #[serde(default)]
    #[schemars(range(min = 0, max = 16))]
    pub gpu: i32,
    /// CPU, as a Kubernetes quantity (`2`, `500m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Memory, as a Kubernetes quantity (`4Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

/// When the kubelet pulls the image.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ImagePullPolicy {
    /// Pull on every start.
    Always,
    /// Pull only when the node does not have the image.
    IfNotPresent,
    /// Never pull: the image must be on the node.
    Never,
}

impl ImagePullPolicy {
    /// The value as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// What a user may change in the pods modelops creates for an object. Everything else (command,
/// volumes, security context) belongs to the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    /// Container image; the operator's configured worker image when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub image: Option<String>,
    /// Image pull policy of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// Node labels the pod must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pod (for example for tainted GPU nodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub tolerations: Vec<Toleration>,
    /// Service account the pod runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(NAME_PATTERN))]
    pub service_account_name: Option<String>,
    /// Priority class of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(NAME_PATTERN))]
    pub priority_class_name: Option<String>,
}

/// A reference to an artifact on the artifact volume.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRef {
    /// Where the artifact is: `s3://<bucket>/<key>` or `pvc://<claim>/<path>`.
    pub uri: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_as_kubernetes_writes_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
        assert!(parse_duration("-1s").is_err());
    }
}
