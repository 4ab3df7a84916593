//! Helpers of the worker's integration tests: temporary folders, work orders and runs of the
//! real `modelops-worker` binary.
#![allow(dead_code)]

use modelops_api::workorder::{PrepareOrder, TrainOrder, WorkOrder, layout};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A data file of the repository's examples.
pub fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(path)
}

/// The `spec` of an example manifest, as JSON.
pub fn example_spec(path: &str) -> Value {
    let text = std::fs::read_to_string(example(path)).unwrap();
    let manifest: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    manifest["spec"].clone()
}

/// A fresh folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("modelops-worker-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What a run of the worker left behind.
pub struct Run {
    pub output: Output,
    /// The termination message, parsed.
    pub message: Value,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts success and returns the termination message.
    pub fn ok(&self) -> &Value {
        assert!(
            self.output.status.success(),
            "worker failed:\n{}\n{}",
            self.stdout(),
            self.stderr()
        );
        &self.message
    }

    /// Asserts failure and returns the termination message (a WorkerFailure).
    pub fn failed(&self) -> &Value {
        assert!(
            !self.output.status.success(),
            "worker succeeded:\n{}",
            self.stdout()
        );
        &self.message
    }
}

/// The worker command, ready to run an order: one libtorch thread (tests run side by side on
/// small machines) and a termination log in `dir`.
pub fn worker(command: &str, order: &WorkOrder, dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelops-worker"));
    cmd.arg(command)
        .env("MODELOPS_WORK_ORDER", order.to_env_value())
        .env("MODELOPS_THREADS", "1")
        .env("MODELOPS_TERMINATION_LOG", dir.join("termination-log"))
        .env("MODELOPS_ARTIFACTS_DIR", dir)
        .env("MODELOPS_SCRATCH_DIR", dir.join("scratch"))
        .env("MODELOPS_PROGRESS_PORT", "0");
    cmd
}

/// Runs the worker to the end.
pub fn run(command: &str, order: &WorkOrder, dir: &Path) -> Run {
    let log = dir.join("termination-log");
    std::fs::write(&log, "").unwrap();
    let output = worker(command, order, dir)
        .output()
        .expect("run modelops-worker");
    let text = std::fs::read_to_string(&log).unwrap();
    let message = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "termination message is not JSON ({e}): {text:?}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Run { output, message }
}

/// The store of the tests: `pvc://` on the test's folder (`MODELOPS_ARTIFACTS_DIR`).
pub const ROOT: &str = "pvc://artifacts";

/// The URI of a path of the test's folder `dir`.
pub fn uri_of(dir: &Path, path: &Path) -> String {
    format!(
        "{ROOT}/{}",
        path.strip_prefix(dir)
            .expect("a path in the test folder")
            .display()
    )
}

/// A prepare order for a file mounted at `source`, with `spec` a Dataset spec in JSON.
pub fn prepare_order(name: &str, source: Option<&Path>, spec: Value) -> WorkOrder {
    WorkOrder::Prepare(PrepareOrder {
        namespace: "default".into(),
        name: name.into(),
        spec: serde_json::from_value(spec).expect("a Dataset spec"),
        source_path: source.map(|s| s.display().to_string()),
        output_uri: format!("{ROOT}/{}", layout::dataset_versions_dir(name)),
    })
}

/// The digits data set as a configMap source, split 70/15/15, standardised.
pub fn digits_dataset() -> WorkOrder {
    prepare_order(
        "digits",
        Some(&example("data/digits.csv")),
        json!({
            "source": {"configMap": {"name": "digits-data", "key": "digits.csv"}},
            "format": "csv",
            "schema": {"label": "label"},
            "preprocessing": {"normalize": "standard"},
            "split": {"train": 0.7, "validation": 0.15, "test": 0.15, "seed": 7},
        }),
    )
}

/// Prepares a data set and returns its folder and digest.
pub fn prepare(dir: &Path, order: &WorkOrder) -> (PathBuf, String) {
    let run = run("prepare", order, dir);
    let result = run.ok();
    let digest = result["digest"].as_str().unwrap().to_owned();
    let WorkOrder::Prepare(prepare) = order else {
        unreachable!()
    };
    (
        dir.join(layout::dataset_dir(&prepare.name, &digest)),
        digest,
    )
}

/// A train order on a prepared data set, with `spec` a TrainingJob spec in JSON.
pub fn train_order(
    dir: &Path,
    dataset: &(PathBuf, String),
    checkpoints: &str,
    spec: Value,
) -> WorkOrder {
    WorkOrder::Train(TrainOrder {
        namespace: "default".into(),
        name: "job".into(),
        uid: "uid-1".into(),
        spec: serde_json::from_value(spec).expect("a TrainingJob spec"),
        dataset_uri: uri_of(dir, &dataset.0),
        dataset_digest: dataset.1.clone(),
        checkpoint_uri: format!("{ROOT}/checkpoints/{checkpoints}"),
        models_uri: format!("{ROOT}/{}", layout::MODELS_DIR),
        module_uri: None,
        trial: None,
    })
}

/// The MLP on digits that the tests train: 20 epochs of Adam.
pub fn digits_mlp(seed: u64) -> Value {
    json!({
        "datasetRef": {"name": "digits"},
        "task": "classification",
        "model": {"architecture": "mlp", "mlp": {"hiddenLayers": [64, 32]}},
        "hyperparameters": {"epochs": 20, "batchSize": 32, "optimizer": {"type": "adam", "learningRate": 0.002}, "seed": seed},
    })
}

/// The folder of a trained model, from its result.
pub fn model_dir(dir: &Path, result: &Value) -> PathBuf {
    dir.join("models")
        .join(layout::digest_hex(result["modelDigest"].as_str().unwrap()))
}
