//! `prepare`: turns a data set's source into prepared, split, normalised data with a profile,
//! stored under its content digest.
//!
//! The steps are plain functions, one per file: [`read`] (parse and validate rows), [`split`],
//! [`normalize`] (fitted on the training split only), the profile (the drift reference, whose
//! format and builders are the contract's, `modelops_api::profile`) and [`prepared`] (the
//! folder layout, written here and loaded by `train`).

pub mod normalize;
pub mod prepared;
pub mod read;
pub mod split;

use crate::artifact;
use anyhow::{Result, bail};
use modelops_api::profile::{ClassBalance, FeatureProfile, Profile};
use modelops_api::workorder::layout;
use normalize::{ApplyNormalization, Method};
use prepared::{DataKind, DatasetManifest, RowCounts, TaskHints, TextRecord};
use read::{Format, LabelKind, ReadOutcome, Records, RowProblem, Schema};
use split::SplitConfig;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// A label with more distinct values than this is a regression target, not classes.
pub const MAX_CLASSES: usize = 1000;

/// What `prepare` is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct PrepareConfig {
    /// The source's format.
    pub format: Format,
    /// Which columns hold the label, the features, the text.
    pub schema: Schema,
    /// Drop rows that do not fit the schema instead of failing.
    pub drop_invalid_rows: bool,
    /// Feature normalisation (table data).
    pub normalize: Method,
    /// The split.
    pub split: SplitConfig,
}

/// What `prepare` produced.
#[derive(Debug, Clone)]
pub struct PrepareOutcome {
    /// The content digest, also the folder's name.
    pub digest: String,
    /// The prepared folder.
    pub dir: PathBuf,
    /// False when the folder already existed (the same data was prepared before).
    pub created: bool,
    /// The manifest written into the folder.
    pub manifest: DatasetManifest,
    /// The first rejected row, if any.
    pub first_rejection: Option<RowProblem>,
}

/// A source's rows as `prepare` reads, classes and splits them, before normalisation: also how
/// a test finds the raw rows of a split (to send them to a server, say).
#[derive(Debug, Clone)]
pub struct SplitRows {
    /// The valid rows.
    pub records: Records,
    /// Rows dropped as invalid.
    pub rejected: usize,
    /// The first row dropped, if any.
    pub first_rejection: Option<RowProblem>,
    /// True when every label is a number.
    pub numeric: bool,
    /// The classes, when the label has classes.
    pub classes: Option<Vec<String>>,
    /// Each row's index into `classes`.
    pub class_of_row: Option<Vec<usize>>,
    /// The rows of each split.
    pub split: split::Split,
}

/// Reads, classes and splits `source` as `prepare` does.
pub fn read_and_split(source: &[u8], config: &PrepareConfig) -> Result<SplitRows> {
    config.split.validate()?;
    let ReadOutcome {
        records,
        rejected,
        first_rejection,
        ..
    } = read::read(
        source,
        config.format,
        &config.schema,
        config.drop_invalid_rows,
    )?;
    let labels = records.labels();
    let numeric = labels
        .iter()
        .all(|l| l.parse::<f64>().is_ok_and(f64::is_finite));
    let classes = match config.schema.label_kind {
        Some(LabelKind::Numeric) => None,
        Some(LabelKind::Categorical) => {
            Some(classes_of(labels, false)?.expect("categorical labels have classes"))
        }
        None => classes_of(labels, numeric)?,
    };
    let class_of_row: Option<Vec<usize>> = classes.as_ref().map(|classes| {
        labels
            .iter()
            .map(|l| {
                classes
                    .binary_search_by(|c| compare_labels(c, l))
                    .expect("a class")
            })
            .collect()
    });
    let split = split::split(labels.len(), class_of_row.as_deref(), &config.split)?;
    Ok(SplitRows {
        records,
        rejected,
        first_rejection,
        numeric,
        classes,
        class_of_row,
        split,
    })
}

/// Prepares `source` (the bytes of the data set's file) into `output_root/<digest>/`.
pub fn prepare(
    source: &[u8],
    config: &PrepareConfig,
    output_root: &Path,
) -> Result<PrepareOutcome> {
    let rows = read_and_split(source, config)?;
    let encoded = match &rows.records {
        Records::Table {
            feature_names,
            rows: values,
            ..
        } => encode_table(&rows, feature_names, values, config)?,
        Records::Text { texts, .. } => encode_text(&rows, texts, config)?,
    };
    let (class_balance, class_balance_all) = class_balances(&rows);
    let profile = Profile {
        rows: rows.split.train.len() as u64,
        features: encoded.profiles,
        class_balance,
        class_balance_all,
        // The model's predictions are added by a serving pod, from the model card.
        predictions: None,
    };
    let manifest = DatasetManifest {
        kind: encoded.kind,
        label: config.schema.label.clone(),
        features: encoded.features,
        text_field: encoded.text_field,
        task_hints: TaskHints {
            classification: rows.classes.is_some(),
            regression: rows.numeric,
        },
        classes: rows.classes.clone(),
        normalization: encoded.normalization,
        rows: row_counts(&rows),
        split: config.split.clone(),
        data_file: encoded.data_file.to_owned(),
        profile_file: layout::PROFILE_JSON.to_owned(),
    };
    publish(
        output_root,
        encoded.data_file,
        &encoded.data,
        manifest,
        &profile,
        rows.first_rejection,
    )
}

/// The prepared data of one data set, before it is written.
struct Encoded {
    kind: DataKind,
    /// Feature names (table data).
    features: Vec<String>,
    /// The text field (text data).
    text_field: Option<String>,
    /// Fitted on the training split (table data).
    normalization: Option<normalize::Normalization>,
    /// `data.safetensors` or `text.jsonl`.
    data_file: &'static str,
    data: Vec<u8>,
    /// The drift reference of each feature, on the raw training values.
    profiles: Vec<FeatureProfile>,
}

/// How many rows each split got, and how many were dropped.
fn row_counts(rows: &SplitRows) -> RowCounts {
    RowCounts {
        total: rows.records.labels().len(),
        train: rows.split.train.len(),
        validation: rows.split.validation.len(),
        test: rows.split.test.len(),
        rejected: rows.rejected,
    }
}

/// The class balance of the training split and of every row, when the label has classes.
fn class_balances(rows: &SplitRows) -> (Option<ClassBalance>, Option<ClassBalance>) {
    match (&rows.classes, &rows.class_of_row) {
        (Some(classes), Some(class_of_row)) => (
            Some(ClassBalance::of(
                classes,
                rows.split.train.iter().map(|&r| class_of_row[r]),
            )),
            Some(ClassBalance::of(classes, class_of_row.iter().copied())),
        ),
        _ => (None, None),
    }
}

/// The splits in prepared order, named as the prepared data names them.
fn named_splits(split: &split::Split) -> impl Iterator<Item = (&'static str, &Vec<usize>)> {
    prepared::SPLITS
        .iter()
        .copied()
        .zip([&split.train, &split.validation, &split.test])
}

/// Table data: per split, the normalised features and the labels (class indices, and the
/// numeric targets when every label is a number) as tensors; the normalisation is fitted on the
/// training split only.
fn encode_table(
    rows: &SplitRows,
    feature_names: &[String],
    values: &[Vec<f64>],
    config: &PrepareConfig,
) -> Result<Encoded> {
    let labels = rows.records.labels();
    let train_rows: Vec<&[f64]> = rows
        .split
        .train
        .iter()
        .map(|&r| values[r].as_slice())
        .collect();
    let normalization = normalize::fit(config.normalize, feature_names.len(), &train_rows);
    let mut tensors = Vec::new();
    for (name, split_rows) in named_splits(&rows.split) {
        let flat: Vec<f32> = split_rows
            .iter()
            .flat_map(|&r| normalization.apply_row(&values[r]))
            .collect();
        let features =
            Tensor::from_slice(&flat).view([split_rows.len() as i64, feature_names.len() as i64]);
        tensors.push((format!("{name}.features"), features));
        if let Some(class_of_row) = &rows.class_of_row {
            let index: Vec<i64> = split_rows.iter().map(|&r| class_of_row[r] as i64).collect();
            tensors.push((format!("{name}.labels"), Tensor::from_slice(&index)));
        }
        if rows.numeric {
            let targets: Vec<f32> = split_rows
                .iter()
                .map(|&r| labels[r].parse::<f64>().unwrap_or(0.0) as f32)
                .collect();
            tensors.push((format!("{name}.targets"), Tensor::from_slice(&targets)));
        }
    }
    let profiles = feature_names
        .iter()
        .enumerate()
        .map(|(f, name)| {
            let column: Vec<f64> = rows.split.train.iter().map(|&r| values[r][f]).collect();
            FeatureProfile::of(name, &column)
        })
        .collect();
    Ok(Encoded {
        kind: DataKind::Table,
        features: feature_names.to_vec(),
        text_field: None,
        normalization: Some(normalization),
        data_file: layout::DATA_SAFETENSORS,
        data: artifact::safetensors_bytes(&tensors)?,
        profiles,
    })
}

/// Text data: one JSON record per row with its split, label and text; the profile is the
/// texts' length in characters.
fn encode_text(rows: &SplitRows, texts: &[String], config: &PrepareConfig) -> Result<Encoded> {
    let labels = rows.records.labels();
    let mut data = Vec::new();
    for (name, split_rows) in named_splits(&rows.split) {
        for &r in split_rows {
            let record = TextRecord {
                split: name.to_owned(),
                label: labels[r].clone(),
                text: texts[r].clone(),
            };
            serde_json::to_writer(&mut data, &record)?;
            data.push(b'\n');
        }
    }
    let lengths: Vec<f64> = rows
        .split
        .train
        .iter()
        .map(|&r| texts[r].chars().count() as f64)
        .collect();
    Ok(Encoded {
        kind: DataKind::Text,
        features: Vec::new(),
        text_field: Some(config.schema.text_field().to_owned()),
        normalization: None,
        data_file: layout::TEXT_JSONL,
        data,
        profiles: vec![FeatureProfile::of("textLength", &lengths)],
    })
}

/// Writes the prepared folder, named by the digest of its contents (so preparing the same data
/// again finds the folder already there).
fn publish(
    output_root: &Path,
    data_file: &str,
    data: &[u8],
    manifest: DatasetManifest,
    profile: &Profile,
    first_rejection: Option<RowProblem>,
) -> Result<PrepareOutcome> {
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    let profile_bytes = serde_json::to_vec_pretty(profile)?;
    let digest = prepared::digest(data_file, data, &manifest_bytes, &profile_bytes);
    let dir = output_root.join(&digest);
    let created = artifact::publish_folder(
        &dir,
        &[
            (data_file, data),
            (layout::DATASET_JSON, &manifest_bytes),
            (layout::PROFILE_JSON, &profile_bytes),
        ],
    )?;
    Ok(PrepareOutcome {
        digest,
        dir,
        created,
        manifest,
        first_rejection,
    })
}

/// Orders labels numerically when both are numbers, else as strings.
fn compare_labels(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// The distinct labels in a stable order, or `None` when a `numeric` label has too many values
/// to be classes.
fn classes_of(labels: &[String], numeric: bool) -> Result<Option<Vec<String>>> {
    let mut distinct: Vec<String> = labels.to_vec();
    distinct.sort_by(|a, b| compare_labels(a, b));
    distinct.dedup();
    if distinct.len() <= MAX_CLASSES {
        return Ok(Some(distinct));
    }
    if numeric {
        return Ok(None);
    }
    bail!(
        "the label has {} distinct values, more than the {MAX_CLASSES} classes modelops supports; check schema.label, or set schema.labelKind: numeric for a regression target",
        distinct.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(normalize: Method) -> PrepareConfig {
        PrepareConfig {
            format: Format::Csv,
            schema: Schema {
                label: "y".to_owned(),
                ..Schema::default()
            },
            drop_invalid_rows: true,
            normalize,
            split: SplitConfig {
                train: 0.5,
                validation: 0.25,
                test: 0.25,
                seed: 1,
                stratify: true,
            },
        }
    }

    fn temp_root(name: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("modelops-prepare-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        root
    }

    const CSV: &[u8] = b"x,y\n1,10\n2,2\n3,10\n4,2\n5,10\n6,2\n7,10\n8,2\nbad,2\n";

    #[test]
    fn classes_are_ordered_numerically_or_as_strings() {
        let labels: Vec<String> = ["10", "2", "9.5"].map(String::from).to_vec();
        assert_eq!(
            classes_of(&labels, true).unwrap().unwrap(),
            ["2", "9.5", "10"]
        );
        let labels: Vec<String> = ["b", "a", "b"].map(String::from).to_vec();
        assert_eq!(classes_of(&labels, false).unwrap().unwrap(), ["a", "b"]);
        let many: Vec<String> = (0..=MAX_CLASSES).map(|i| i.to_string()).collect();
        assert_eq!(
            classes_of(&many, true).unwrap(),
            None,
            "a numeric label with many values is a target"
        );
        assert!(classes_of(&many, false).is_err());
    }

    #[test]
    fn preparing_writes_a_content_addressed_folder_once() {
        let root = temp_root("once");
        let first = prepare(CSV, &config(Method::Standard), &root).unwrap();
        assert!(first.created);
        assert_eq!(first.dir, root.join(&first.digest));
        assert_eq!(
            first.manifest.rows,
            RowCounts {
                total: 8,
                train: 4,
                validation: 2,
                test: 2,
                rejected: 1
            }
        );
        assert_eq!(first.manifest.classes.as_deref().unwrap(), ["2", "10"]);
        assert!(first.first_rejection.is_some());
        let again = prepare(CSV, &config(Method::Standard), &root).unwrap();
        assert_eq!(
            (again.digest.as_str(), again.created),
            (first.digest.as_str(), false)
        );
        let other = prepare(CSV, &config(Method::Minmax), &root).unwrap();
        assert_ne!(other.digest, first.digest);

        let loaded = prepared::load(&first.dir).unwrap();
        assert_eq!(loaded.train.len(), 4);
        assert_eq!(loaded.validation.features.as_ref().unwrap().size(), [2, 1]);
        // The normalisation was fitted on the training rows: their mean is 0.
        let train_mean = loaded
            .train
            .features
            .as_ref()
            .unwrap()
            .mean(tch::Kind::Float)
            .double_value(&[]);
        assert!(train_mean.abs() < 1e-6, "{train_mean}");
        assert_eq!(loaded.test.targets.as_ref().unwrap().size(), [2]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_tampered_folder_is_refused() {
        let root = temp_root("tampered");
        let outcome = prepare(CSV, &config(Method::None), &root).unwrap();
        std::fs::write(outcome.dir.join(layout::PROFILE_JSON), b"{}").unwrap();
        let error = prepared::load(&outcome.dir).unwrap_err().to_string();
        assert!(error.contains("prepare the Dataset again"), "{error}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn text_data_is_written_as_json_lines_with_a_length_profile() {
        let root = temp_root("text");
        let mut text = config(Method::None);
        text.format = Format::Jsonl;
        text.schema.label = "label".to_owned();
        let source =
            "{\"text\":\"one two\",\"label\":\"a\"}\n{\"text\":\"三四\",\"label\":\"b\"}\n"
                .repeat(4);
        let outcome = prepare(source.as_bytes(), &text, &root).unwrap();
        let loaded = prepared::load(&outcome.dir).unwrap();
        assert_eq!(
            loaded.train.texts.len() + loaded.validation.texts.len() + loaded.test.texts.len(),
            8
        );
        assert_eq!(loaded.manifest.normalization, None);
        let profile: Profile =
            serde_json::from_slice(&std::fs::read(outcome.dir.join(layout::PROFILE_JSON)).unwrap())
                .unwrap();
        assert_eq!(profile.features[0].name, "textLength");
        assert_eq!(profile.class_balance.unwrap().counts, [2, 2]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
