//! A prepared data set on disk: `dataset.json` (the manifest), the data of each split
//! (`data.safetensors` for tables, `text.jsonl` for text) and `profile.json`, in a folder named
//! by the sha256 of those files. `prepare` writes it; `train` loads it and checks the digest.

use super::normalize::Normalization;
use super::split::SplitConfig;
use crate::artifact;
use anyhow::{Context, Result, bail};
pub use modelops_api::card::DataKind;
use modelops_api::workorder::layout::{DATASET_JSON, PROFILE_JSON, TEXT_JSONL};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;
use tch::Tensor;

/// The splits, in the order their files list them.
pub const SPLITS: [&str; 3] = ["train", "validation", "test"];

/// Row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RowCounts {
    /// Rows kept (train + validation + test).
    pub total: usize,
    /// Rows in the training split.
    pub train: usize,
    /// Rows in the validation split.
    pub validation: usize,
    /// Rows in the test split.
    pub test: usize,
    /// Rows dropped as invalid.
    pub rejected: usize,
}

/// Which tasks the label supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskHints {
    /// The label has few enough distinct values to be classes.
    pub classification: bool,
    /// Every label is a number.
    pub regression: bool,
}

/// `dataset.json`: everything a trainer or a server needs to interpret the prepared rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetManifest {
    /// Table or text.
    pub kind: DataKind,
    /// The label column or field in the source.
    pub label: String,
    /// Feature names, in the order of the feature vectors (empty for text).
    pub features: Vec<String>,
    /// The text field (text data only).
    pub text_field: Option<String>,
    /// Class names as written in the data: numerically sorted when every label is a number,
    /// else sorted as strings. `None` when the label has too many values to be classes.
    pub classes: Option<Vec<String>>,
    /// The normalisation applied to the features (table data only).
    pub normalization: Option<Normalization>,
    /// Row counts.
    pub rows: RowCounts,
    /// How the rows were split.
    pub split: SplitConfig,
    /// Which tasks the label supports.
    pub task_hints: TaskHints,
    /// The data file in this folder.
    pub data_file: String,
    /// The profile file in this folder.
    pub profile_file: String,
}

/// The rows of one split, ready for training.
#[derive(Debug)]
pub struct SplitData {
    /// Normalised features `[n, f]` (f32) for table data.
    pub features: Option<Tensor>,
    /// Texts for text data.
    pub texts: Vec<String>,
    /// Class index per row (i64 `[n]`), when the label has classes.
    pub labels: Option<Tensor>,
    /// Numeric label per row (f32 `[n]`), when every label is a number.
    pub targets: Option<Tensor>,
}

impl SplitData {
    /// Rows in the split.
    pub fn len(&self) -> usize {
        match (&self.features, &self.labels, &self.targets) {
            (Some(features), ..) => features.size()[0] as usize,
            (None, Some(labels), _) | (None, None, Some(labels)) => labels.size()[0] as usize,
            _ => self.texts.len(),
        }
    }

    /// True when the split has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A prepared data set, loaded.
#[derive(Debug)]
pub struct PreparedDataset {
    /// The folder's digest (its name), checked against the content.
    pub digest: String,
    /// The manifest.
    pub manifest: DatasetManifest,
    /// The training split.
    pub train: SplitData,
    /// The validation split.
    pub validation: SplitData,
    /// The test split.
    pub test: SplitData,
}

/// One line of `text.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TextRecord {
    /// `train`, `validation` or `test`.
    pub split: String,
    /// The label as written in the data.
    pub label: String,
    /// The text.
    pub text: String,
}

/// The digest of a prepared folder's files, in their canonical order (data, manifest, profile).
pub fn digest(data_file: &str, data: &[u8], manifest: &[u8], profile: &[u8]) -> String {
    artifact::digest_files(&[
        (data_file, data),
        (DATASET_JSON, manifest),
        (PROFILE_JSON, profile),
    ])
}

/// Loads the prepared data set in `dir`, refusing a folder whose content does not match its name.
pub fn load(dir: &Path) -> Result<PreparedDataset> {
    let read = |name: &str| {
        fs::read(dir.join(name)).with_context(|| format!("reading {}", dir.join(name).display()))
    };
    let manifest_bytes = read(DATASET_JSON)?;
    let manifest: DatasetManifest = serde_json::from_slice(&manifest_bytes)
        .with_context(|| format!("parsing {}", dir.join(DATASET_JSON).display()))?;
    let data = read(&manifest.data_file)?;
    let profile = read(&manifest.profile_file)?;
    let digest = digest(&manifest.data_file, &data, &manifest_bytes, &profile);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name != digest {
        return Err(crate::failure::Failure::error(
            "DigestMismatch",
            false,
            format!(
                "the prepared data in {} has digest {digest}, not the {name} its folder is named after; prepare the Dataset again",
                dir.display()
            ),
        ));
    }
    let [train, validation, test] = match manifest.kind {
        DataKind::Table => table_splits(&data)?,
        DataKind::Text => text_splits(&data, &manifest)?,
    };
    Ok(PreparedDataset {
        digest,
        manifest,
        train,
        validation,
        test,
    })
}

fn table_splits(bytes: &[u8]) -> Result<[SplitData; 3]> {
    let mut tensors: std::collections::HashMap<String, Tensor> =
        artifact::read_safetensors_bytes(bytes)?
            .into_iter()
            .collect();
    Ok(SPLITS.map(|split| SplitData {
        features: tensors.remove(&format!("{split}.features")),
        texts: Vec::new(),
        labels: tensors.remove(&format!("{split}.labels")),
        targets: tensors.remove(&format!("{split}.targets")),
    }))
}

fn text_splits(bytes: &[u8], manifest: &DatasetManifest) -> Result<[SplitData; 3]> {
    let mut texts: [Vec<String>; 3] = Default::default();
    let mut labels: [Vec<String>; 3] = Default::default();
    for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let record: TextRecord = serde_json::from_slice(line)
            .with_context(|| format!("{TEXT_JSONL} line {}", number + 1))?;
        let Some(index) = SPLITS.iter().position(|s| *s == record.split) else {
            bail!(
                "{TEXT_JSONL} line {}: unknown split {:?}",
                number + 1,
                record.split
            );
        };
        texts[index].push(record.text);
        labels[index].push(record.label);
    }
    let mut splits = Vec::new();
    for (texts, labels) in texts.into_iter().zip(labels) {
        let (class_index, numeric) = label_tensors(&labels, manifest)?;
        splits.push(SplitData {
            features: None,
            texts,
            labels: class_index,
            targets: numeric,
        });
    }
    Ok(splits.try_into().expect("three splits"))
}

/// Class indices and numeric values of labels, as far as the manifest says they exist.
pub fn label_tensors(
    labels: &[String],
    manifest: &DatasetManifest,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let class_index = match &manifest.classes {
        Some(classes) => {
            let index = labels
                .iter()
                .map(|label| match classes.iter().position(|c| c == label) {
                    Some(i) => Ok(i as i64),
                    None => bail!("label {label:?} is not one of the data set's classes"),
                })
                .collect::<Result<Vec<i64>>>()?;
            Some(Tensor::from_slice(&index))
        }
        None => None,
    };
    let numeric = if manifest.task_hints.regression {
        let values: Vec<f32> = labels
            .iter()
            .map(|l| l.parse::<f64>().unwrap_or(f64::NAN) as f32)
            .collect();
        Some(Tensor::from_slice(&values))
    } else {
        None
    };
    Ok((class_index, numeric))
}
