//! Checkpoints and progress, in the job's checkpoint folder.
//!
//! After every epoch the worker writes `epoch-NNNN.safetensors` (the weights as `model.*` and the
//! optimiser's moments as `optimizer.*`), then `checkpoint.json` (the epoch, the optimiser step
//! count, the early-stopping state, the history, and the sha256 of that safetensors file), then
//! `progress.json` for the operator — each atomically, in that order, so `checkpoint.json` only
//! ever names a complete file. The two newest epoch files are kept. Because every epoch reseeds
//! libtorch and the shuffle from (seed, epoch), a run resumed from a checkpoint computes exactly
//! what the uninterrupted run would have.

use super::early_stopping::Tracker;
use crate::artifact;
use anyhow::{Context, Result, bail};
// The file names are the contract's: the operator reads `progress.json` from the same folder.
use modelops_api::trainingjob::{EpochFigures, LearningCurves};
use modelops_api::workorder::layout::{BEST_SAFETENSORS, CHECKPOINT_JSON, PROGRESS_JSON};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::Tensor;

/// Epoch files kept besides the newest.
const KEEP_OLDER: usize = 1;

/// One epoch's figures: `progress.json`, and the history in `checkpoint.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Epochs completed (1-based).
    pub epoch: usize,
    /// Epochs planned.
    pub total_epochs: usize,
    /// Mean training loss of the epoch.
    pub train_loss: f64,
    /// Mean validation loss after the epoch.
    pub validation_loss: Option<f64>,
    /// Validation accuracy after the epoch (classification).
    pub validation_accuracy: Option<f64>,
    /// The epoch's learning rate.
    pub learning_rate: f64,
    /// Training throughput of the epoch.
    pub samples_per_second: f64,
    /// The search trial this training is (when searching).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<u32>,
    /// When the epoch ended (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// `progress.json`: the last epoch's figures, and the learning curves of every epoch so far
/// (bounded, as the status keeps them).
#[derive(Serialize)]
struct ProgressReport<'a> {
    #[serde(flatten)]
    progress: &'a Progress,
    curves: LearningCurves,
}

/// The learning curves of `history`, at most [`LearningCurves::MAX_POINTS`] epochs.
pub fn curves(history: &[Progress]) -> LearningCurves {
    let epochs: Vec<EpochFigures> = history
        .iter()
        .map(|p| EpochFigures {
            epoch: p.epoch as i32,
            train_loss: Some(p.train_loss),
            validation_loss: p.validation_loss,
            validation_accuracy: p.validation_accuracy,
        })
        .collect();
    LearningCurves::from_epochs(&epochs, LearningCurves::MAX_POINTS)
}

/// The current time in RFC 3339 (`2027-01-15T08:00:00Z`), as Kubernetes writes times.
pub fn rfc3339_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    rfc3339(seconds)
}

/// Seconds since the Unix epoch in RFC 3339, UTC (Howard Hinnant's civil-from-days).
fn rfc3339(seconds: i64) -> String {
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// `checkpoint.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointState {
    /// Identifies the training configuration (data, architecture, hyperparameters): a checkpoint
    /// of another configuration is never resumed.
    pub fingerprint: String,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser updates done.
    pub optimizer_steps: i64,
    /// The epoch file.
    pub file: String,
    /// The epoch file's sha256.
    pub sha256: String,
    /// Early-stopping state.
    pub early_stopping: Tracker,
    /// True when early stopping ended training at this epoch.
    pub stopped: bool,
    /// Every epoch's figures so far.
    pub history: Vec<Progress>,
}

/// A checkpoint read back: its state and its tensors by name.
pub struct Restored {
    /// The state.
    pub state: CheckpointState,
    /// `model.*` and `optimizer.*` tensors.
    pub tensors: HashMap<String, Tensor>,
}

/// A copy of the checkpoint folder somewhere else (the artifact store), kept up to date file by
/// file as the folder changes, so that a pod started anywhere resumes from it.
pub trait Mirror: Send + Sync {
    /// Writes the file `name` with `bytes`.
    fn put(&self, name: &str, bytes: &[u8]) -> Result<()>;
    /// Removes the file `name`.
    fn delete(&self, name: &str) -> Result<()>;
}

/// A shared [`Mirror`] (cloneable, printable, for the training configuration).
#[derive(Clone)]
pub struct SharedMirror(pub Arc<dyn Mirror>);

impl std::fmt::Debug for SharedMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mirror")
    }
}

/// The checkpoint folder of one training job.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
    mirror: Option<SharedMirror>,
}

impl Checkpoints {
    /// The folder (created on first save), copied to `mirror` when there is one.
    pub fn new(dir: &Path, mirror: Option<SharedMirror>) -> Self {
        Self {
            dir: dir.to_owned(),
            mirror,
        }
    }

    /// Writes a file of the folder, and then its copy: the copy of a pointer is written only
    /// after the copy of what it points to.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        artifact::write_atomic(&self.dir.join(name), bytes)?;
        if let Some(mirror) = &self.mirror {
            mirror.0.put(name, bytes)?;
        }
        Ok(())
    }

    /// The newest checkpoint of this configuration, if any. A checkpoint of another
    /// configuration is reported and left alone (it is overwritten by this run's first epoch).
    pub fn latest(&self, fingerprint: &str) -> Result<Option<Restored>> {
        let pointer = self.dir.join(CHECKPOINT_JSON);
        let bytes = match fs::read(&pointer) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(error).with_context(|| format!("reading {}", pointer.display()));
            }
        };
        let state: CheckpointState = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", pointer.display()))?;
        if state.fingerprint != fingerprint {
            tracing::info!(
                "checkpoint in {} is for a different training configuration; starting from epoch 0",
                self.dir.display()
            );
            return Ok(None);
        }
        let file = self.dir.join(&state.file);
        let weights =
            fs::read(&file).with_context(|| format!("reading checkpoint {}", file.display()))?;
        if artifact::sha256_hex(&weights) != state.sha256 {
            bail!(
                "checkpoint {} does not match the sha256 in {CHECKPOINT_JSON}; delete the checkpoint folder {} to start over",
                file.display(),
                self.dir.display()
            );
        }
        let tensors = artifact::read_safetensors_bytes(&weights)?
            .into_iter()
            .collect();
        Ok(Some(Restored { state, tensors }))
    }

    /// Saves an epoch: its tensors, then the pointer, then the progress.
    pub fn save(&self, mut state: CheckpointState, tensors: &[(String, Tensor)]) -> Result<()> {
        let bytes = artifact::safetensors_bytes(tensors)?;
        state.file = format!("epoch-{:04}.safetensors", state.epoch);
        state.sha256 = artifact::sha256_hex(&bytes);
        self.write(&state.file, &bytes)?;
        self.write(CHECKPOINT_JSON, &serde_json::to_vec_pretty(&state)?)?;
        // The operator asks the pod for its progress (the last epoch's, and the learning curves
        // so far); the copy in the store is for people.
        if let Some(progress) = state.history.last() {
            let report = ProgressReport {
                progress,
                curves: curves(&state.history),
            };
            self.write(PROGRESS_JSON, &serde_json::to_vec_pretty(&report)?)?;
        }
        self.prune(state.epoch);
        Ok(())
    }

    /// Removes epoch files older than the ones kept; failures only cost disk space.
    fn prune(&self, newest: usize) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let epoch = name
                .strip_prefix("epoch-")
                .and_then(|n| n.strip_suffix(".safetensors"));
            if let Some(epoch) = epoch.and_then(|e| e.parse::<usize>().ok())
                && epoch + KEEP_OLDER < newest
            {
                let _ = fs::remove_file(entry.path());
                if let Some(mirror) = &self.mirror {
                    let _ = mirror.0.delete(&name);
                }
            }
        }
    }

    /// Saves the best epoch's weights.
    pub fn save_best(&self, tensors: &[(String, Tensor)]) -> Result<()> {
        self.write(BEST_SAFETENSORS, &artifact::safetensors_bytes(tensors)?)
    }

    /// The best epoch's weights, by name.
    pub fn best(&self) -> Result<HashMap<String, Tensor>> {
        let path = self.dir.join(BEST_SAFETENSORS);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(artifact::read_safetensors_bytes(&bytes)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(epoch: usize) -> CheckpointState {
        CheckpointState {
            fingerprint: "f".to_owned(),
            epoch,
            optimizer_steps: 10 * epoch as i64,
            file: String::new(),
            sha256: String::new(),
            early_stopping: Tracker::default(),
            stopped: false,
            history: vec![Progress {
                epoch,
                total_epochs: 9,
                train_loss: 1.0,
                validation_loss: Some(1.0),
                validation_accuracy: None,
                learning_rate: 0.1,
                samples_per_second: 1.0,
                trial: None,
                updated_at: Some(rfc3339_now()),
            }],
        }
    }

    #[test]
    fn times_are_written_as_kubernetes_writes_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn the_newest_checkpoint_is_restored_and_old_ones_pruned() {
        let dir = std::env::temp_dir().join(format!("modelops-checkpoints-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let checkpoints = Checkpoints::new(&dir, None);
        assert!(checkpoints.latest("f").unwrap().is_none());
        for epoch in 1..=3 {
            let tensors = vec![("model.w".to_owned(), Tensor::from_slice(&[epoch as f32]))];
            checkpoints.save(state(epoch), &tensors).unwrap();
        }
        let restored = checkpoints.latest("f").unwrap().unwrap();
        assert_eq!(
            (restored.state.epoch, restored.state.optimizer_steps),
            (3, 30)
        );
        assert_eq!(restored.tensors["model.w"].double_value(&[0]), 3.0);
        assert!(!dir.join("epoch-0001.safetensors").exists());
        assert!(dir.join("epoch-0002.safetensors").exists());
        let progress: Progress =
            serde_json::from_slice(&fs::read(dir.join(PROGRESS_JSON)).unwrap()).unwrap();
        assert_eq!(progress.epoch, 3);
        assert!(
            checkpoints.latest("other").unwrap().is_none(),
            "another configuration is not resumed"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
