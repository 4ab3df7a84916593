//! `train`: trains a model on a prepared data set, checkpointing every epoch and resuming from
//! the last checkpoint, then evaluates it on the test split and publishes the model artifact
//! (`models/<digest>/model.safetensors` + `model.json`). A regression model's card also carries
//! the histogram of its predictions on the training split (`predictions`), the reference of
//! prediction drift that its servers count live predictions against.
//!
//! Reproducibility: `seed` seeds the weight initialisation, and every epoch reseeds the shuffle
//! and libtorch's generator from (seed, epoch). On a CPU with a fixed thread count the same seed
//! gives the same weights, so the same card and model digest (the sha256 of the card, which
//! pins the weights'), and a resumed run the same model as an uninterrupted one.

pub mod checkpoint;
pub mod early_stopping;
pub mod fit;
pub mod loss;
pub mod optim;
pub mod schedule;

use crate::artifact;
use crate::data::prepared::{self, DataKind, PreparedDataset, SplitData};
use crate::failure::{Failure, Reason};
use crate::model::predict::{load_variables, named_variables};
use crate::model::{Architecture, ArchitectureExt, Head, HeadExt, Network, Task};
use crate::tokenize::Tokenizer;
use anyhow::{Context, Result, bail};
use checkpoint::{CheckpointState, Checkpoints, Progress};
use early_stopping::{EarlyStopping, Tracker, Verdict};
use fit::{EpochPlan, Examples};
use loss::Loss;
use modelops_api::card::{self, FileDigest, ModelCard, ModelInput, TargetScaling, TrainingRecord};
use modelops_api::profile::Histogram;
use modelops_api::trainingjob::DEFAULT_SEED;
use modelops_api::workorder::layout;
use optim::{Optimizer, OptimizerConfig};
use schedule::Schedule;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor, nn};

/// The training hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hyperparameters {
    /// Passes over the training split.
    pub epochs: usize,
    /// Rows per mini-batch.
    pub batch_size: usize,
    /// The optimiser.
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule.
    pub learning_rate_schedule: Schedule,
    /// The loss; `None` means the task's default (crossEntropy, or mse for regression).
    pub loss: Option<Loss>,
    /// Early stopping on a validation metric.
    pub early_stopping: Option<EarlyStopping>,
    /// Seed of initialisation, shuffles and dropout.
    pub seed: u64,
}

impl Default for Hyperparameters {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 32,
            optimizer: OptimizerConfig::default(),
            learning_rate_schedule: Schedule::Constant,
            loss: None,
            early_stopping: None,
            seed: DEFAULT_SEED as u64,
        }
    }
}

/// What `train` is asked to do.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The prepared data set's folder (`…/<digest>`).
    pub dataset_dir: PathBuf,
    /// The digest the job pinned; the data set must still have it.
    pub expected_dataset_digest: Option<String>,
    /// Classification or regression.
    pub task: Task,
    /// The architecture and its options.
    pub architecture: Architecture,
    /// The hyperparameters.
    pub hyperparameters: Hyperparameters,
    /// The job's checkpoint folder.
    pub checkpoint_dir: PathBuf,
    /// Where the checkpoint folder is copied as it changes (the artifact store).
    pub checkpoint_mirror: Option<checkpoint::SharedMirror>,
    /// Where models are published (`<models_dir>/<digest>/`).
    pub models_dir: PathBuf,
    /// The device (CUDA when the pod has a GPU).
    pub device: Device,
    /// libtorch's intra-op threads; `None` leaves libtorch's default.
    pub threads: Option<usize>,
    /// The search trial this run is, reported in the progress.
    pub trial: Option<u32>,
}

/// What `train` produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The model's digest: the sha256 of its card (`model.json`), which pins the weights' own.
    pub digest: String,
    /// The model folder.
    pub dir: PathBuf,
    /// The model card.
    pub card: ModelCard,
    /// The epoch this run resumed after, if it resumed.
    pub resumed_from: Option<usize>,
    /// Mean training throughput of this run's epochs (the first one, a warm-up, left out when
    /// there are more).
    pub samples_per_second: Option<f64>,
    /// The learning curves of every epoch, those of the attempts it resumed included.
    pub curves: modelops_api::trainingjob::LearningCurves,
}

/// Trains, evaluates and publishes a model.
pub fn run(config: &TrainConfig) -> Result<TrainOutcome> {
    if let Some(threads) = config.threads {
        tch::set_num_threads(threads.max(1) as i32);
    }
    let data = prepared::load(&config.dataset_dir)?;
    check_pinned_digest(config, &data)?;
    let mut session = Session::new(config, &data)?;
    let (mut state, resumed_from) = session.resume(&data)?;
    let mut throughput = Vec::new();
    while state.epoch < config.hyperparameters.epochs && !state.stopped {
        throughput.push(session.train_epoch(&mut state)?);
    }
    let best_epoch = session.restore_best(&state)?;
    let metrics = session.final_metrics()?;
    let (digest, dir, card) = session.publish(&data, metrics, &state, best_epoch)?;
    Ok(TrainOutcome {
        digest,
        dir,
        card,
        resumed_from,
        samples_per_second: mean_after_warm_up(&throughput),
        curves: checkpoint::curves(&state.history),
    })
}

/// The data set must still be the one the job pinned: a data set prepared again since (another
/// digest) would make the model's lineage a lie.
fn check_pinned_digest(config: &TrainConfig, data: &PreparedDataset) -> Result<()> {
    match &config.expected_dataset_digest {
        Some(expected) if expected.trim_start_matches("sha256:") != data.digest => {
            Err(Failure::error(
                "DigestMismatch",
                false,
                format!(
                    "the prepared data set has digest sha256:{}, not the pinned {expected}",
                    data.digest
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Mean throughput of the epochs, the first one (a warm-up) left out when there are more.
fn mean_after_warm_up(throughput: &[f64]) -> Option<f64> {
    let warm = if throughput.len() > 1 {
        &throughput[1..]
    } else {
        throughput
    };
    (!warm.is_empty()).then(|| warm.iter().sum::<f64>() / warm.len() as f64)
}

/// The splits as network inputs and targets, on the training device.
struct Splits {
    train: Examples,
    validation: Examples,
    test: Examples,
}

/// One training run: the network being trained and everything an epoch needs.
struct Session<'a> {
    config: &'a TrainConfig,
    plan: Plan,
    splits: Splits,
    variables: nn::VarStore,
    network: Box<dyn Network>,
    optimizer: Optimizer,
    checkpoints: Checkpoints,
}

impl<'a> Session<'a> {
    /// Plans the model from the configuration and the data, loads the splits, and builds the
    /// network and its optimiser. Everything a spec can get wrong fails here, before an epoch.
    fn new(config: &'a TrainConfig, data: &PreparedDataset) -> Result<Self> {
        let hyper = &config.hyperparameters;
        let plan = Plan::new(config, data).reason("InvalidSpec", false)?;
        let device = config.device;
        let splits = Splits {
            train: plan.examples(&data.train, device)?,
            validation: plan.examples(&data.validation, device)?,
            test: plan.examples(&data.test, device)?,
        };
        if splits.train.is_empty() {
            bail!("the training split of data set {} is empty", data.digest);
        }
        if let Some(early_stopping) = &hyper.early_stopping {
            early_stopping
                .validate(
                    !splits.validation.is_empty(),
                    config.task == Task::Classification,
                )
                .reason("InvalidSpec", false)?;
        }
        tch::manual_seed(hyper.seed as i64 & i64::MAX);
        let variables = nn::VarStore::new(device);
        let network = config
            .architecture
            .build(&variables.root(), plan.input_width, plan.outputs, None)
            .reason("InvalidSpec", false)?;
        check_output_shape(network.as_ref(), &splits.train, plan.outputs)
            .reason("InvalidSpec", false)?;
        let optimizer = Optimizer::new(&hyper.optimizer, named_variables(&variables))
            .reason("InvalidSpec", false)?;
        Ok(Self {
            config,
            plan,
            splits,
            variables,
            network,
            optimizer,
            checkpoints: Checkpoints::new(&config.checkpoint_dir, config.checkpoint_mirror.clone()),
        })
    }

    /// The state to continue from: the latest checkpoint of this same training (same
    /// fingerprint), with the weights and optimiser restored, or a fresh start. Also returns
    /// the epoch resumed after.
    fn resume(&mut self, data: &PreparedDataset) -> Result<(CheckpointState, Option<usize>)> {
        let fingerprint = fingerprint(self.config, data, self.plan.loss)?;
        let Some(restored) = self.checkpoints.latest(&fingerprint)? else {
            let fresh = CheckpointState {
                fingerprint,
                epoch: 0,
                optimizer_steps: 0,
                file: String::new(),
                sha256: String::new(),
                early_stopping: Tracker::default(),
                stopped: false,
                history: Vec::new(),
            };
            return Ok((fresh, None));
        };
        load_variables(&self.variables, &restored.tensors, "model.")?;
        self.optimizer.restore(
            &restored.tensors,
            "optimizer.",
            restored.state.optimizer_steps,
        );
        tracing::info!("resuming from epoch {}", restored.state.epoch);
        let epoch = restored.state.epoch;
        Ok((restored.state, Some(epoch)))
    }

    /// Trains the next epoch, evaluates it, applies early stopping and checkpoints it. Returns
    /// the epoch's training throughput (samples per second).
    fn train_epoch(&mut self, state: &mut CheckpointState) -> Result<f64> {
        let hyper = &self.config.hyperparameters;
        let epoch = state.epoch + 1;
        let learning_rate = hyper.learning_rate_schedule.learning_rate(
            hyper.optimizer.learning_rate,
            epoch - 1,
            hyper.epochs,
        );
        let started = Instant::now();
        let epoch_plan = EpochPlan {
            examples: &self.splits.train,
            loss: self.plan.loss,
            batch_size: hyper.batch_size,
            learning_rate,
            seed: hyper.seed,
            epoch,
        };
        let train_loss = fit::train_epoch(self.network.as_ref(), &mut self.optimizer, &epoch_plan)?;
        if !train_loss.is_finite() {
            return Err(Failure::error(
                "TrainingDiverged",
                false,
                format!(
                    "the training loss of epoch {epoch} is {train_loss}; lower the learning rate ({learning_rate}) or normalise the features"
                ),
            ));
        }
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        let samples_per_second = self.splits.train.len() as f64 / elapsed;
        let progress = self.progress(epoch, train_loss, learning_rate, samples_per_second)?;
        self.watch_early_stopping(state, &progress)?;
        self.checkpoint(state, &progress)?;
        tracing::info!("{}", progress_line(&progress));
        if state.stopped {
            tracing::info!(
                "early stopping after epoch {epoch}: no improvement since epoch {}",
                state.early_stopping.best_epoch
            );
        }
        Ok(samples_per_second)
    }

    /// The epoch's progress report, with the validation metrics.
    fn progress(
        &self,
        epoch: usize,
        train_loss: f64,
        learning_rate: f64,
        samples_per_second: f64,
    ) -> Result<Progress> {
        let metrics = fit::evaluate(
            self.network.as_ref(),
            self.plan.loss,
            self.plan.head,
            &self.splits.validation,
            self.plan.scaling,
            "validation",
        )?;
        Ok(Progress {
            epoch,
            total_epochs: self.config.hyperparameters.epochs,
            train_loss,
            validation_loss: metrics.get("validationLoss").copied(),
            validation_accuracy: metrics.get("validationAccuracy").copied(),
            learning_rate,
            samples_per_second,
            trial: self.config.trial,
            updated_at: Some(checkpoint::rfc3339_now()),
        })
    }

    /// Early stopping: keeps the best epoch's weights aside and stops after `patience` epochs
    /// without improvement.
    fn watch_early_stopping(&self, state: &mut CheckpointState, progress: &Progress) -> Result<()> {
        let Some(early_stopping) = &self.config.hyperparameters.early_stopping else {
            return Ok(());
        };
        let watched = match early_stopping.metric {
            early_stopping::Metric::ValidationLoss => progress.validation_loss,
            early_stopping::Metric::ValidationAccuracy => progress.validation_accuracy,
        };
        match state.early_stopping.observe(
            early_stopping,
            progress.epoch,
            watched.unwrap_or(f64::NAN),
        ) {
            Verdict::Improved => self
                .checkpoints
                .save_best(&named_variables(&self.variables))?,
            Verdict::Wait => {}
            Verdict::Stop => state.stopped = true,
        }
        Ok(())
    }

    /// Records the epoch and saves the weights and the optimiser's state, so that a restarted
    /// pod resumes after this epoch.
    fn checkpoint(&self, state: &mut CheckpointState, progress: &Progress) -> Result<()> {
        state.epoch = progress.epoch;
        state.optimizer_steps = self.optimizer.steps();
        state.history.push(progress.clone());
        let mut tensors = prefixed("model.", named_variables(&self.variables));
        tensors.extend(prefixed("optimizer.", self.optimizer.state_tensors()));
        self.checkpoints.save(state.clone(), &tensors)
    }

    /// With early stopping the model is the best epoch's, not the last one's: loads it back and
    /// returns the epoch whose weights the model has.
    fn restore_best(&self, state: &CheckpointState) -> Result<usize> {
        match &self.config.hyperparameters.early_stopping {
            Some(_) if state.early_stopping.best_epoch > 0 => {
                load_variables(&self.variables, &self.checkpoints.best()?, "")?;
                Ok(state.early_stopping.best_epoch)
            }
            _ => Ok(state.epoch),
        }
    }

    /// The model's metrics on every split.
    fn final_metrics(&self) -> Result<BTreeMap<String, f64>> {
        let mut metrics = BTreeMap::new();
        for (examples, split) in [
            (&self.splits.test, "test"),
            (&self.splits.validation, "validation"),
            (&self.splits.train, "train"),
        ] {
            metrics.extend(fit::evaluate(
                self.network.as_ref(),
                self.plan.loss,
                self.plan.head,
                examples,
                self.plan.scaling,
                split,
            )?);
        }
        Ok(metrics)
    }

    /// Regression: the histogram of the model's predictions on the training split, in the
    /// target's own units: the reference a server's prediction bins are compared with. `None`
    /// for classification.
    fn prediction_reference(&self) -> Result<Option<Histogram>> {
        let Some(scaling) = self.plan.scaling else {
            return Ok(None);
        };
        let values = fit::predicted_values(self.network.as_ref(), &self.splits.train, scaling)?;
        Ok(fit::prediction_histogram(&values))
    }

    /// Writes the model folder (`<models_dir>/<digest>/`: weights, card and, for torchscript,
    /// the module) and returns its digest, folder and card.
    fn publish(
        &self,
        data: &PreparedDataset,
        metrics: BTreeMap<String, f64>,
        state: &CheckpointState,
        best_epoch: usize,
    ) -> Result<(String, PathBuf, ModelCard)> {
        let config = self.config;
        let weights = artifact::safetensors_bytes(&named_variables(&self.variables))?;
        let weights_sha256 = artifact::sha256_hex(&weights);
        let module = match &config.architecture {
            Architecture::Torchscript(options) => Some(
                std::fs::read(&options.module)
                    .with_context(|| format!("reading {}", options.module.display()))?,
            ),
            _ => None,
        };
        let mut card = self.plan.card(
            config,
            data,
            metrics,
            &weights_sha256,
            module.as_deref(),
            state.epoch,
            best_epoch,
            state.stopped,
        )?;
        card.predictions = self.prediction_reference()?;
        let card_bytes = serde_json::to_vec_pretty(&card)?;
        // The card, not the weights alone, is the model: the same weights with another input
        // normalisation (a feature shifted by a constant and min-max scaled, say) are another
        // model, and must not share a folder or a digest.
        let digest = artifact::sha256_hex(&card_bytes);
        let dir = config.models_dir.join(&digest);
        let mut files: Vec<(&str, &[u8])> = vec![
            (layout::MODEL_SAFETENSORS, &weights),
            (layout::MODEL_JSON, &card_bytes),
        ];
        if let Some(module) = &module {
            files.push((layout::MODULE_PT, module));
        }
        artifact::publish_folder(&dir, &files)?;
        Ok((digest, dir, card))
    }
}

/// What follows from the configuration and the data: the loss, head, input width, tokeniser and
/// target scaling.
struct Plan {
    loss: Loss,
    head: Head,
    input_width: i64,
    outputs: i64,
    tokenizer: Option<Tokenizer>,
    scaling: Option<TargetScaling>,
    task: Task,
}

impl Plan {
    fn new(config: &TrainConfig, data: &PreparedDataset) -> Result<Self> {
        let hyper = &config.hyperparameters;
        if hyper.epochs == 0 {
            bail!("hyperparameters.epochs must be at least 1");
        }
        if hyper.batch_size == 0 {
            bail!("hyperparameters.batchSize must be at least 1");
        }
        hyper.learning_rate_schedule.validate()?;
        let manifest = &data.manifest;
        let loss = hyper.loss.unwrap_or(Loss::default_for(config.task));
        let classes = match config.task {
            Task::Classification => match &manifest.classes {
                Some(classes) => classes.len(),
                None => bail!(
                    "the label {:?} has too many values to be classes; use task regression",
                    manifest.label
                ),
            },
            Task::Regression if !manifest.task_hints.regression => {
                bail!(
                    "task regression needs a numeric label, and {:?} has non-numeric values",
                    manifest.label
                )
            }
            Task::Regression => 0,
        };
        let head = loss.head(config.task, classes)?;
        let arch = config.architecture.name();
        let (input_width, tokenizer) = match (manifest.kind, &config.architecture) {
            (DataKind::Text, Architecture::TextLstm(options)) => {
                let tokenizer = Tokenizer::fit(
                    data.train.texts.iter().map(String::as_str),
                    options.vocabulary_size,
                    options.max_length,
                );
                (tokenizer.len() as i64, Some(tokenizer))
            }
            (DataKind::Text, _) => bail!(
                "architecture {arch} reads numeric features but the data set is text; use textLstm"
            ),
            (DataKind::Table, Architecture::TextLstm(_)) => {
                bail!(
                    "architecture textLstm reads text but the data set has numeric features; use mlp or cnn"
                )
            }
            (DataKind::Table, _) => (manifest.features.len() as i64, None),
        };
        let scaling = match config.task {
            Task::Regression => {
                let targets = data
                    .train
                    .targets
                    .as_ref()
                    .context("the training split has no numeric targets")?;
                let offset = targets.mean(Kind::Double).double_value(&[]);
                let std = targets.to_kind(Kind::Double).std(false).double_value(&[]);
                Some(TargetScaling {
                    offset,
                    scale: if std > 1e-12 { std } else { 1.0 },
                })
            }
            Task::Classification => None,
        };
        Ok(Self {
            loss,
            head,
            input_width,
            outputs: head.outputs(classes),
            tokenizer,
            scaling,
            task: config.task,
        })
    }

    /// A split's examples on the device.
    fn examples(&self, split: &SplitData, device: Device) -> Result<Examples> {
        let targets = match (self.task, &split.labels, &split.targets, self.scaling) {
            (Task::Classification, Some(labels), ..) => labels.shallow_clone(),
            (Task::Regression, _, Some(targets), Some(scaling)) => {
                (targets - scaling.offset) / scaling.scale
            }
            _ => bail!("the prepared data has no labels for this task"),
        };
        match &self.tokenizer {
            Some(tokenizer) => {
                Examples::new(tokenizer.encode_batch(&split.texts), targets, true, device)
            }
            None => {
                let features = split
                    .features
                    .as_ref()
                    .context("the prepared data has no feature tensor")?;
                Examples::new(features.shallow_clone(), targets, false, device)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn card(
        &self,
        config: &TrainConfig,
        data: &PreparedDataset,
        metrics: BTreeMap<String, f64>,
        weights_sha256: &str,
        module: Option<&[u8]>,
        epochs_run: usize,
        best_epoch: usize,
        stopped_early: bool,
    ) -> Result<ModelCard> {
        let manifest = &data.manifest;
        let mut architecture = config.architecture.clone();
        if let Architecture::Torchscript(options) = &mut architecture {
            options.module = PathBuf::from(layout::MODULE_PT);
        }
        let mut hyperparameters = serde_json::to_value(&config.hyperparameters)?;
        hyperparameters["loss"] = serde_json::to_value(self.loss)?;
        Ok(ModelCard {
            format_version: card::FORMAT_VERSION,
            architecture,
            task: self.task,
            head: self.head,
            classes: match self.task {
                Task::Classification => manifest.classes.clone(),
                Task::Regression => None,
            },
            input: ModelInput {
                kind: manifest.kind,
                features: manifest.features.clone(),
                normalization: manifest.normalization.clone(),
                text_field: manifest.text_field.clone(),
                tokenizer: self.tokenizer.clone().map(card::Tokenizer::from),
            },
            target_scaling: self.scaling,
            metrics,
            dataset_digest: format!("sha256:{}", data.digest),
            hyperparameters,
            weights: FileDigest {
                file: layout::MODEL_SAFETENSORS.to_owned(),
                sha256: weights_sha256.to_owned(),
            },
            module: module.map(|bytes| FileDigest {
                file: layout::MODULE_PT.to_owned(),
                sha256: artifact::sha256_hex(bytes),
            }),
            training: TrainingRecord {
                epochs_run,
                best_epoch,
                stopped_early,
                seed: config.hyperparameters.seed,
                device: device_name(config.device),
                libtorch: option_env!("MODELOPS_LIBTORCH_VERSION")
                    .unwrap_or("unknown")
                    .to_owned(),
            },
            // Set once the model is final (Session::prediction_reference).
            predictions: None,
        })
    }
}

/// `cpu` or `cuda:N`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(index) => format!("cuda:{index}"),
        _ => "cpu".to_owned(),
    }
}

/// A scripted module must return one row of `outputs` columns per input; say so before training.
fn check_output_shape(network: &dyn Network, train: &Examples, outputs: i64) -> Result<()> {
    let rows: Vec<i64> = (0..train.len().min(2) as i64).collect();
    let (inputs, _) = train.batch(&rows);
    let got = tch::no_grad(|| network.forward_t(&inputs, false))?.size();
    if got != [rows.len() as i64, outputs] {
        bail!(
            "the network returns outputs of shape {got:?} for {} inputs; the task needs [{}, {outputs}]",
            rows.len(),
            rows.len()
        );
    }
    Ok(())
}

/// Identifies a training configuration, so a checkpoint is only resumed by the same training.
fn fingerprint(config: &TrainConfig, data: &PreparedDataset, loss: Loss) -> Result<String> {
    // A scripted module is part of the configuration: a changed file is another training.
    let module = match &config.architecture {
        Architecture::Torchscript(options) => std::fs::read(&options.module)
            .map(|bytes| artifact::sha256_hex(&bytes))
            .ok(),
        _ => None,
    };
    let identity = json!({
        "dataset": data.digest,
        "module": module,
        "task": config.task,
        "architecture": config.architecture,
        "hyperparameters": config.hyperparameters,
        "loss": loss,
    });
    Ok(artifact::sha256_hex(&serde_json::to_vec(&identity)?))
}

fn prefixed(prefix: &str, tensors: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    tensors
        .into_iter()
        .map(|(name, tensor)| (format!("{prefix}{name}"), tensor))
        .collect()
}

/// The line printed after each epoch.
fn progress_line(progress: &Progress) -> String {
    let mut line = format!(
        "epoch {}/{} trainLoss={:.4}",
        progress.epoch, progress.total_epochs, progress.train_loss
    );
    if let Some(loss) = progress.validation_loss {
        line.push_str(&format!(" validationLoss={loss:.4}"));
    }
    if let Some(accuracy) = progress.validation_accuracy {
        line.push_str(&format!(" validationAccuracy={accuracy:.4}"));
    }
    line.push_str(&format!(
        " learningRate={:.6} samplesPerSecond={:.0}",
        progress.learning_rate, progress.samples_per_second
    ));
    line
}
