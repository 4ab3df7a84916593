//! The `Dataset` kind: where the data comes from, how to read it, how to clean and split it. A
//! prepare pod turns it into prepared data plus a profile, addressed by the content digest that
//! TrainingJobs pin.

use crate::common::{ArtifactRef, NAME_PATTERN, RELATIVE_PATH_PATTERN};
use crate::conditions::Conditions;
use kube_derive::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A data set to prepare: its source, format and schema, the cleaning to apply and the split into
/// train, validation and test rows.
// Clippy reads the repeated keys of the printcolumn(...) lists as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[kube(
    crates(kube_core = ::kube_core),
    group = "modelops.dev",
    version = "v1alpha1",
    kind = "Dataset",
    doc = "A data set for training: where it comes from, how to read, clean and split it. Its status holds the digest of the prepared data, which TrainingJobs pin.",
    namespaced,
    status = "DatasetStatus",
    shortname = "dset",
    category = "modelops",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the data set is prepared"
    ),
    printcolumn(
        name = "Rows",
        type_ = "integer",
        json_path = ".status.rows.total",
        description = "Rows kept after cleaning"
    ),
    printcolumn(
        name = "Digest",
        type_ = "string",
        json_path = ".status.digest",
        description = "sha256 of the prepared data"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = 1
    )
)]
#[x_kube(
    validation = Rule::new("self.format != 'jsonl' || has(self.schema.text)")
        .message("spec.schema.text is required when spec.format is jsonl: name the JSON field that holds the text")
        .field_path(".schema.text")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.format != 'csv' || !has(self.schema.text)")
        .message("spec.schema.text applies to jsonl only: remove it (csv columns are listed in spec.schema.features)")
        .field_path(".schema.text")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("self.format != 'jsonl' || !has(self.schema.features)")
        .message("spec.schema.features applies to csv only: remove it (jsonl records are read from spec.schema.text)")
        .field_path(".schema.features")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("self.format != 'jsonl' || !has(self.preprocessing) || !has(self.preprocessing.normalize) || self.preprocessing.normalize == 'none'")
        .message("spec.preprocessing.normalize applies to numeric csv features only: set it to none for jsonl")
        .field_path(".preprocessing.normalize")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.split) || !has(self.split.stratify) || !self.split.stratify || !has(self.schema.labelKind) || self.schema.labelKind == 'categorical'")
        .message("spec.split.stratify needs class labels: set it to false when spec.schema.labelKind is numeric")
        .field_path(".split.stratify")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct DatasetSpec {
    /// Where the raw data comes from: exactly one of `http`, `configMap`, `volume`, `s3`.
    pub source: DataSource,
    /// How the raw data is encoded.
    pub format: DataFormat,
    /// Which columns (csv) or fields (jsonl) hold the label, the features and the text.
    pub schema: DataSchema,
    /// Cleaning and normalisation.
    #[serde(default)]
    pub preprocessing: Preprocessing,
    /// How rows are split into train, validation and test sets.
    #[serde(default)]
    pub split: Split,
    /// CPU and memory of the prepare pod (requests equal limits). Default: `500m` and `1Gi`. The
    /// prepare Job has an hour, all attempts together.
    /// The source is streamed to the pod's disk and mapped, so memory follows the parsed rows
    /// (about 8 bytes per value), not the size of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<PrepareResources>,
}

/// Resources of a prepare pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = crate::common::positive_quantity_rule("cpu", "500m, 1 or 1.5"),
    validation = crate::common::positive_quantity_rule("memory", "512Mi or 2Gi"),
)]
#[serde(rename_all = "camelCase")]
pub struct PrepareResources {
    /// CPU, as a Kubernetes quantity (`1`, `500m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    /// Memory, as a Kubernetes quantity (`2Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
}

/// The prepare pod's CPU when `spec.resources.cpu` is not set.
pub const DEFAULT_PREPARE_CPU: &str = "500m";

/// The prepare pod's memory when `spec.resources.memory` is not set.
pub const DEFAULT_PREPARE_MEMORY: &str = "1Gi";

/// Where the raw data comes from. Exactly one member is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("[has(self.http), has(self.configMap), has(self.volume), has(self.s3)].filter(x, x).size() == 1")
        .message("spec.source: set exactly one of http, configMap, volume or s3"),
)]
#[serde(rename_all = "camelCase")]
pub struct DataSource {
    /// Download the file over HTTP(S).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSource>,
    /// Read the file from a key of a ConfigMap in the same namespace (at most 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapSource>,
    /// Read the file from a PersistentVolumeClaim in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeSource>,
    /// Read the file from an S3-compatible object store with the namespace's artifact
    /// credentials (docs/artifacts.md): streamed, so it may be as large as the pod's disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Source>,
}

/// The source, as one value, for code that handles each case.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Source<'a> {
    /// `spec.source.http`.
    Http(&'a HttpSource),
    /// `spec.source.configMap`.
    ConfigMap(&'a ConfigMapSource),
    /// `spec.source.volume`.
    Volume(&'a VolumeSource),
    /// `spec.source.s3`.
    S3(&'a S3Source),
}

impl DataSource {
    /// The one source that is set, or `None` when none or several are (which the CRD's rules
    /// refuse, so only a hand-built object can get there).
    pub fn get(&self) -> Option<Source<'_>> {
        match (&self.http, &self.config_map, &self.volume, &self.s3) {
            (Some(http), None, None, None) => Some(Source::Http(http)),
            (None, Some(config_map), None, None) => Some(Source::ConfigMap(config_map)),
            (None, None, Some(volume), None) => Some(Source::Volume(volume)),
            (None, None, None, Some(s3)) => Some(Source::S3(s3)),
            _ => None,
        }
    }
}

/// A file to download.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSource {
    /// URL of the file (`http://` or `https://`).
    #[schemars(length(min = 1, max = 2048), pattern(r"^https?://[^\s]+$"))]
    pub url: String,
    /// Expected sha256 of the downloaded file, as 64 lowercase hex digits; preparation fails when
    /// the download differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
}

/// A file in an S3-compatible object store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Source {
    /// The object: `s3://<bucket>/<key>`, for example `s3://modelops/team-a/raw/digits.csv`.
    /// Read with the namespace's artifact credentials; a URI in another namespace's artifact
    /// root is refused.
    #[schemars(
        length(min = 6, max = 2048),
        pattern(r"^s3://[a-z0-9][-a-z0-9.]*[a-z0-9]/[^/].*$")
    )]
    pub uri: String,
    /// Expected sha256 of the object, as 64 lowercase hex digits; preparation fails when it
    /// differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
}

/// A file held in a ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapSource {
    /// Name of the ConfigMap, in the Dataset's namespace.
    #[schemars(length(min = 1, max = 253), pattern(NAME_PATTERN))]
    pub name: String,
    /// Key of the file in the ConfigMap.
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// A file on a PersistentVolumeClaim.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSource {
    /// Name of the PersistentVolumeClaim, in the Dataset's namespace.
    #[schemars(length(min = 1, max = 253), pattern(NAME_PATTERN))]
    pub claim_name: String,
    /// Path of the file inside the volume, relative to its root (no leading `/`, no `..`).
    #[schemars(length(min = 1, max = 1024), pattern(RELATIVE_PATH_PATTERN))]
    pub path: String,
}

/// How the raw data is encoded.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DataFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line (text records).
    Jsonl,
}

/// What the label holds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LabelKind {
    /// Class names (strings or integers): for classification.
    #[default]
    Categorical,
    /// Numbers: for regression.
    Numeric,
}

/// Which columns or fields hold what.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("!has(self.features) || !(self.label in self.features)")
        .message("spec.schema.features must not include the label column spec.schema.label")
        .field_path(".features"),
    validation = Rule::new("!has(self.text) || self.text != self.label")
        .message("spec.schema.text and spec.schema.label must name different fields")
        .field_path(".text"),
)]
#[serde(rename_all = "camelCase")]
pub struct DataSchema {
    /// Column (csv) or field (jsonl) that holds the label.
    #[schemars(length(min = 1, max = 128))]
    pub label: String,
    /// What the label holds: class names (`categorical`, the default) or numbers (`numeric`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_kind: Option<LabelKind>,
    /// Feature columns, in the order the model reads them (csv only). Default: every column but
    /// the label, in file order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 2048),
        inner(length(min = 1, max = 128)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub features: Option<Vec<String>>,
    /// Field of a jsonl record that holds the text (jsonl only, required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub text: Option<String>,
}

impl DataSchema {
    /// The label kind, defaulted.
    pub fn label_kind(&self) -> LabelKind {
        self.label_kind.unwrap_or_default()
    }
}

/// How feature values are rescaled. The statistics come from the train split only, so that
/// nothing of the validation and test rows leaks into training.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Normalize {
    /// Leave values as they are.
    #[default]
    None,
    /// Subtract the mean and divide by the standard deviation.
    Standard,
    /// Rescale to [0, 1] by the minimum and maximum.
    Minmax,
}

/// Cleaning and normalisation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preprocessing {
    /// Drop rows with a missing or unparsable value and count them in `status.rows.rejected`.
    /// When false (the default), such a row fails the preparation with a message naming it.
    #[serde(default)]
    pub drop_invalid_rows: bool,
    /// Feature normalisation: `none` (default), `standard` or `minmax`.
    #[serde(default)]
    pub normalize: Normalize,
}

/// Fractions of rows for each split. They add up to 1.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("self.train + self.validation + self.test >= 0.999 && self.train + self.validation + self.test <= 1.001")
        .message("spec.split: train + validation + test must add up to 1 (for example 0.8, 0.1, 0.1)"),
)]
#[serde(rename_all = "camelCase")]
pub struct Split {
    /// Fraction of rows to train on, in (0, 1].
    #[schemars(range(max = 1.0), extend("minimum" = 0.0, "exclusiveMinimum" = true))]
    pub train: f64,
    /// Fraction of rows for validation (early stopping, model selection), in [0, 1].
    #[schemars(range(min = 0.0, max = 1.0))]
    pub validation: f64,
    /// Fraction of rows held out for the final test metrics, in [0, 1].
    #[schemars(range(min = 0.0, max = 1.0))]
    pub test: f64,
    /// Seed of the shuffle, so that a split is reproducible.
    #[serde(default = "default_split_seed")]
    #[schemars(range(min = 0))]
    pub seed: i64,
    /// Keep class proportions equal across splits. Default: true for categorical labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratify: Option<bool>,
}

fn default_split_seed() -> i64 {
    42
}

impl Default for Split {
    fn default() -> Self {
        Self {
            train: 0.8,
            validation: 0.1,
            test: 0.1,
            seed: default_split_seed(),
            stratify: None,
        }
    }
}

impl Split {
    /// Whether to stratify, given what the label holds.
    pub fn stratify(&self, label_kind: LabelKind) -> bool {
        self.stratify
            .unwrap_or(label_kind == LabelKind::Categorical)
    }
}

/// What preparation produced.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, and `Reconciling` or `Stalled` while they hold.
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    /// sha256 of the prepared data (`sha256:<64 hex>`): what a TrainingJob pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Where the prepared data is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactRef>,
    /// Row counts, per split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowCounts>,
    /// Class names in label order (categorical labels only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// Where the profile is: per-feature histograms of the train split, the drift reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ArtifactRef>,
    /// The first row dropped as invalid and why (`preprocessing.dropInvalidRows`), for
    /// example `row 3 (line 4): column "x": "abc" is not a number`; at most 300 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_rejection: Option<String>,
}

/// Row counts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RowCounts {
    /// Rows kept (train + validation + test).
    pub total: i64,
    /// Rows in the train split.
    pub train: i64,
    /// Rows in the validation split.
    pub validation: i64,
    /// Rows in the test split.
    pub test: i64,
    /// Rows dropped as invalid (with `dropInvalidRows`).
    #[serde(default)]
    pub rejected: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGITS: &str = include_str!("../../examples/digits/dataset.yaml");
    const IRIS: &str = include_str!("../../examples/iris/dataset.yaml");

    #[test]
    fn digits_example_reads_with_defaults() {
        let dataset: Dataset = serde_yaml::from_str(DIGITS).unwrap();
        let spec = &dataset.spec;
        assert_eq!(
            spec.source.get(),
            Some(Source::ConfigMap(&ConfigMapSource {
                name: "digits-data".into(),
                key: "digits.csv".into()
            }))
        );
        assert_eq!(spec.format, DataFormat::Csv);
        assert_eq!(spec.schema.label, "label");
        assert_eq!(spec.schema.label_kind(), LabelKind::Categorical);
        assert!(spec.split.stratify(spec.schema.label_kind()));
        assert!((spec.split.train + spec.split.validation + spec.split.test - 1.0).abs() < 1e-9);
    }

    #[test]
    fn iris_example_round_trips() {
        let dataset: Dataset = serde_yaml::from_str(IRIS).unwrap();
        let json = serde_json::to_value(&dataset).unwrap();
        let again: Dataset = serde_json::from_value(json).unwrap();
        assert_eq!(again.spec, dataset.spec);
        assert_eq!(dataset.spec.schema.label, "species");
    }

    #[test]
    fn omitted_blocks_take_their_defaults() {
        let spec: DatasetSpec = serde_json::from_value(serde_json::json!({
            "source": {"http": {"url": "https://example.org/data.csv"}},
            "format": "csv",
            "schema": {"label": "y"},
        }))
        .unwrap();
        assert_eq!(spec.split, Split::default());
        assert_eq!(spec.preprocessing.normalize, Normalize::None);
        assert!(!spec.preprocessing.drop_invalid_rows);
        assert_eq!(spec.split.seed, 42);
    }

    #[test]
    fn numeric_labels_are_not_stratified_by_default() {
        let split = Split::default();
        assert!(!split.stratify(LabelKind::Numeric));
        assert!(split.stratify(LabelKind::Categorical));
    }

    #[test]
    fn two_sources_are_no_source() {
        let source = DataSource {
            http: Some(HttpSource {
                url: "https://example.org/a.csv".into(),
                sha256: None,
            }),
            config_map: Some(ConfigMapSource {
                name: "a".into(),
                key: "b".into(),
            }),
            volume: None,
            s3: None,
        };
        assert_eq!(source.get(), None);
        let s3 = DataSource {
            s3: Some(S3Source {
                uri: "s3://modelops/team-a/raw/a.csv".into(),
                sha256: None,
            }),
            ..DataSource::default()
        };
        assert!(matches!(s3.get(), Some(Source::S3(_))));
    }

    #[test]
    fn empty_status_serialises_to_an_empty_object() {
        let json = serde_json::to_value(DatasetStatus::default()).unwrap();
        assert_eq!(json, serde_json::json!({}));
    }
}
