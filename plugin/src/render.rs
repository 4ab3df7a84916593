//! What the plugin prints, from a snapshot of a namespace's objects: no I/O here, so that every
//! layout is a unit test. Every line fits [`WIDTH`] columns.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use modelops_api::conditions::{Conditions, types};
use modelops_api::modeldeployment::{RevisionState, RevisionStatus};
use modelops_api::monitor::Verdict;
use modelops_api::trainingjob::{LearningCurves, TrainingPhase};
use modelops_api::{Dataset, ModelDeployment, Monitor, TrainingJob};

/// The terminal width every line fits.
pub const WIDTH: usize = 100;

/// The four kinds of a namespace, as read at `now`.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The namespace they are in.
    pub namespace: String,
    /// When they were read (ages count from it).
    pub now: Timestamp,
    /// Its Datasets.
    pub datasets: Vec<Dataset>,
    /// Its TrainingJobs.
    pub jobs: Vec<TrainingJob>,
    /// Its ModelDeployments.
    pub deployments: Vec<ModelDeployment>,
    /// Its Monitors.
    pub monitors: Vec<Monitor>,
}

/// A kind of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A Dataset.
    Dataset,
    /// A TrainingJob.
    TrainingJob,
    /// A ModelDeployment.
    ModelDeployment,
    /// A Monitor.
    Monitor,
}

impl Kind {
    /// The kind as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dataset => "Dataset",
            Kind::TrainingJob => "TrainingJob",
            Kind::ModelDeployment => "ModelDeployment",
            Kind::Monitor => "Monitor",
        }
    }

    /// The kind a `KIND/` prefix names: singular, plural or short name, any case.
    pub fn parse(text: &str) -> Option<Kind> {
        match text.to_ascii_lowercase().as_str() {
            "dataset" | "datasets" | "dset" => Some(Kind::Dataset),
            "trainingjob" | "trainingjobs" | "tjob" => Some(Kind::TrainingJob),
            "modeldeployment" | "modeldeployments" | "mdep" => Some(Kind::ModelDeployment),
            "monitor" | "monitors" | "mmon" => Some(Kind::Monitor),
            _ => None,
        }
    }
}

/// One object of the snapshot: its kind and name.
pub type Key = (Kind, String);

/// Which object `get` is about: `NAME` (any kind) or `KIND/NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The kind, when given.
    pub kind: Option<Kind>,
    /// The name.
    pub name: String,
}

impl Target {
    /// Reads `NAME` or `KIND/NAME`.
    pub fn parse(text: &str) -> Result<Target, String> {
        match text.split_once('/') {
            None if !text.is_empty() => Ok(Target {
                kind: None,
                name: text.to_owned(),
            }),
            Some((kind, name)) if !name.is_empty() => match Kind::parse(kind) {
                Some(kind) => Ok(Target {
                    kind: Some(kind),
                    name: name.to_owned(),
                }),
                None => Err(format!(
                    "{kind:?} is not a kind of modelops: use dataset, trainingjob, modeldeployment or monitor (or dset, tjob, mdep, mmon)"
                )),
            },
            _ => Err(format!("{text:?} is not NAME or KIND/NAME")),
        }
    }
}

impl Snapshot {
    fn keys(&self) -> BTreeSet<Key> {
        let mut keys = BTreeSet::new();
        keys.extend(self.datasets.iter().map(|o| (Kind::Dataset, o.name_any())));
        keys.extend(self.jobs.iter().map(|o| (Kind::TrainingJob, o.name_any())));
        keys.extend(
            self.deployments
                .iter()
                .map(|o| (Kind::ModelDeployment, o.name_any())),
        );
        keys.extend(self.monitors.iter().map(|o| (Kind::Monitor, o.name_any())));
        keys
    }

    /// The links between objects that exist: a TrainingJob's Dataset, a ModelDeployment's
    /// TrainingJobs (the spec's and its revisions'), a Monitor's target and the Monitors that
    /// gate a canary.
    fn links(&self) -> Vec<(Key, Key)> {
        let keys = self.keys();
        let mut links = Vec::new();
        let mut link = |a: Key, b: Key| {
            if keys.contains(&a) && keys.contains(&b) {
                links.push((a, b));
            }
        };
        for job in &self.jobs {
            link(
                (Kind::Dataset, job.spec.dataset_ref.name.clone()),
                (Kind::TrainingJob, job.name_any()),
            );
        }
        for md in &self.deployments {
            let me = (Kind::ModelDeployment, md.name_any());
            if let Some(job) = &md.spec.model.training_job_ref {
                link((Kind::TrainingJob, job.name.clone()), me.clone());
            }
            for revision in md.status.iter().flat_map(|s| &s.revisions) {
                if let Some(job) = &revision.training_job {
                    link((Kind::TrainingJob, job.clone()), me.clone());
                }
            }
            let analysis = md.spec.strategy.canary.as_ref();
            if let Some(analysis) = analysis.and_then(|c| c.analysis.as_ref()) {
                link(
                    me.clone(),
                    (Kind::Monitor, analysis.monitor_ref.name.clone()),
                );
            }
        }
        for monitor in &self.monitors {
            link(
                (Kind::ModelDeployment, monitor.spec.target_ref.name.clone()),
                (Kind::Monitor, monitor.name_any()),
            );
        }
        links
    }

    /// The objects `target` names, or an error that says none does.
    pub fn find(&self, target: &Target) -> Result<Vec<Key>, String> {
        let found: Vec<Key> = self
            .keys()
            .into_iter()
            .filter(|(kind, name)| *name == target.name && target.kind.is_none_or(|k| k == *kind))
            .collect();
        if found.is_empty() {
            let what = target.kind.map_or(
                "no Dataset, TrainingJob, ModelDeployment or Monitor".to_owned(),
                |k| format!("no {}", k.as_str()),
            );
            return Err(format!(
                "{what} named {:?} in namespace {}",
                target.name, self.namespace
            ));
        }
        Ok(found)
    }

    /// The objects linked to `start`, directly or not: the pipeline(s) it belongs to.
    pub fn pipeline_of(&self, start: &[Key]) -> BTreeSet<Key> {
        let links = self.links();
        let mut seen: BTreeSet<Key> = start.iter().cloned().collect();
        let mut todo: Vec<Key> = start.to_vec();
        while let Some(key) = todo.pop() {
            for (a, b) in &links {
                let other = if *a == key {
                    b
                } else if *b == key {
                    a
                } else {
                    continue;
                };
                if seen.insert(other.clone()) {
                    todo.push(other.clone());
                }
            }
        }
        seen
    }
}

/// A row of the tree before layout.
#[derive(Clone, Debug, Default)]
struct Node {
    name: String,
    kind: &'static str,
    status: String,
    since: Option<Timestamp>,
    info: String,
    /// Lines printed under the row (conditions' messages, reasons), wrapped to the width.
    notes: Vec<String>,
    children: Vec<Node>,
}

const GOOD: &str = "✔";
const BAD: &str = "✖";
const BUSY: &str = "◌";
const WARN: &str = "⚠";
const PAUSED: &str = "॥";
const IDLE: &str = "•";

fn time(t: &Time) -> Timestamp {
    t.0
}

/// `12s`, `5m`, `3h`, `4d`: how long ago.
pub fn age(since: Timestamp, now: Timestamp) -> String {
    let seconds = now.as_second().saturating_sub(since.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `sha256:` and the first 12 hex digits.
pub fn short_digest(digest: &str) -> String {
    match digest.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", &hex[..hex.len().min(12)]),
        None => digest.chars().take(19).collect(),
    }
}

fn number(value: f64) -> String {
    if value.abs() >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

/// The message of `type_` when it holds something worth a line.
fn message(conditions: &Conditions, type_: &str) -> Option<String> {
    let c = conditions.get(type_)?;
    (!c.message.is_empty()).then(|| format!("{}: {}", c.reason, c.message))
}

fn dataset_node(ds: &Dataset) -> Node {
    let status = ds.status.clone().unwrap_or_default();
    let c = &status.conditions;
    let (icon, word, note) = if c.is_true(types::STALLED) {
        (BAD, "Stalled".to_owned(), message(c, types::STALLED))
    } else if c.is_true(types::READY) {
        (GOOD, "Ready".to_owned(), None)
    } else {
        let reason = c.get(types::READY).map(|r| r.reason.clone());
        let failed = reason.as_deref() == Some(modelops_api::conditions::reasons::PREPARE_FAILED);
        (
            if failed { BAD } else { BUSY },
            reason.unwrap_or_else(|| "Pending".to_owned()),
            message(c, types::READY),
        )
    };
    let mut info = Vec::new();
    if let Some(rows) = status.rows {
        info.push(format!(
            "{} rows ({}/{}/{})",
            rows.total, rows.train, rows.validation, rows.test
        ));
        if rows.rejected > 0 {
            info.push(format!("{} rejected", rows.rejected));
        }
    }
    if !status.classes.is_empty() {
        info.push(format!("{} classes", status.classes.len()));
    }
    Node {
        name: ds.name_any(),
        kind: "Dataset",
        status: format!("{icon} {word}"),
        since: ds.metadata.creation_timestamp.as_ref().map(time),
        info: info.join(", "),
        notes: note.into_iter().collect(),
        ..Node::default()
    }
}

fn job_node(job: &TrainingJob) -> Node {
    let status = job.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or(TrainingPhase::Pending);
    let icon = match phase {
        TrainingPhase::Succeeded => GOOD,
        TrainingPhase::Failed => BAD,
        TrainingPhase::Suspended => PAUSED,
        TrainingPhase::Pending | TrainingPhase::Running => BUSY,
    };
    let architecture = serde_json::to_value(job.spec.model.architecture)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut info = vec![architecture];
    match (&status.model, &status.progress) {
        (Some(model), _) => {
            let m = &model.metrics;
            if let Some(accuracy) = m.test_accuracy {
                info.push(format!("test accuracy {}", number(accuracy)));
            } else if let Some(rmse) = m.test_rmse {
                info.push(format!("test rmse {}", number(rmse)));
            }
            info.push(short_digest(&model.digest));
        }
        (None, Some(p)) if phase == TrainingPhase::Running => {
            let mut text = format!("epoch {}/{}", p.epoch, p.total_epochs);
            if let Some(trial) = p.trial {
                text = format!("trial {trial} {text}");
            }
            if let Some(loss) = p.train_loss {
                text.push_str(&format!(" loss {}", number(loss)));
            }
            if let Some(accuracy) = p.validation_accuracy {
                text.push_str(&format!(" val acc {}", number(accuracy)));
            }
            info.push(text);
        }
        _ => {}
    }
    if !status.trials.is_empty() {
        let best = status
            .best_trial
            .map(|b| format!(", best {b}"))
            .unwrap_or_default();
        info.push(format!("{} trials{best}", status.trials.len()));
    }
    let mut notes: Vec<String> = match phase {
        TrainingPhase::Succeeded | TrainingPhase::Running => None,
        _ => message(&status.conditions, types::READY),
    }
    .into_iter()
    .collect();
    if let Some(curves) = status.curves.as_ref().filter(|c| !c.is_empty()) {
        notes.push(curve_line(curves));
    }
    Node {
        name: job.name_any(),
        kind: "TrainingJob",
        status: format!("{icon} {}", phase.as_str()),
        since: job.metadata.creation_timestamp.as_ref().map(time),
        info: info.join(", "),
        notes,
        ..Node::default()
    }
}

/// The learning curves in one line: `epochs 1-30  train loss █▆▄▃▂▁ 0.041  val acc ▁▄▆▇██ 0.972`.
fn curve_line(curves: &LearningCurves) -> String {
    let first = curves.epochs.first().copied().unwrap_or(0);
    let last = curves.epochs.last().copied().unwrap_or(0);
    let mut line = format!("epochs {first}-{last}");
    for (name, series) in [
        ("train loss", &curves.train_loss),
        ("val loss", &curves.validation_loss),
        ("val acc", &curves.validation_accuracy),
    ] {
        if let Some(end) = series.last() {
            line.push_str(&format!(
                "  {name} {} {}",
                sparkline(series, 10),
                number(*end)
            ));
        }
    }
    line
}

/// `values` as at most `columns` bars (▁ to █, low to high), each the mean of its share.
pub fn sparkline(values: &[f64], columns: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() || columns == 0 {
        return String::new();
    }
    let n = finite.len();
    let buckets = n.min(columns);
    let means: Vec<f64> = (0..buckets)
        .map(|b| {
            let share = &finite[b * n / buckets..((b + 1) * n / buckets).max(b * n / buckets + 1)];
            share.iter().sum::<f64>() / share.len() as f64
        })
        .collect();
    let low = means.iter().copied().fold(f64::INFINITY, f64::min);
    let high = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    means
        .iter()
        .map(|m| {
            if high > low {
                BARS[(((m - low) / (high - low)) * 7.0).round() as usize]
            } else {
                BARS[3]
            }
        })
        .collect()
}

fn state_icon(state: RevisionState) -> &'static str {
    match state {
        RevisionState::Stable => GOOD,
        RevisionState::Canary => BUSY,
        RevisionState::Superseded => IDLE,
        RevisionState::RolledBack | RevisionState::Failed => BAD,
    }
}

/// What a revision's Monitors said about it: `guard: Fail (AccuracyBelowMinimum) accuracy 0.113`.
fn verdicts_on(revision: i32, monitors: &[&Monitor]) -> Vec<String> {
    let mut lines = Vec::new();
    for monitor in monitors {
        let status = monitor.status.clone().unwrap_or_default();
        for verdict in status.revisions.iter().filter(|v| v.revision == revision) {
            let values: Vec<String> = verdict
                .values
                .iter()
                .map(|(k, v)| format!("{k} {}", number(*v)))
                .collect();
            lines.push(format!(
                "Monitor {}: {} ({}) {}",
                monitor.name_any(),
                verdict.verdict.as_str(),
                verdict.reason,
                values.join(", ")
            ));
        }
        // What the Monitor did about it (the verdict itself may since have been dropped, once
        // the revision took no more traffic).
        for action in status
            .actions
            .iter()
            .filter(|a| a.revision == Some(revision))
        {
            lines.push(format!(
                "Monitor {}: {} at {}: {}",
                monitor.name_any(),
                action_name(action.action),
                action.time.0,
                action.reason
            ));
        }
    }
    lines
}

/// A Monitor's action as the API spells it (`rollback`, `alert`).
fn action_name(action: modelops_api::monitor::MonitorAction) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The Monitors' verdicts on `revision`: `guard Pass`; a Monitor that acted on it and keeps no
/// verdict failed it.
fn verdict_cells(revision: i32, monitors: &[&Monitor]) -> Vec<String> {
    monitors
        .iter()
        .filter_map(|m| {
            let s = m.status.as_ref()?;
            let verdict = s
                .revisions
                .iter()
                .find(|v| v.revision == revision)
                .map(|v| v.verdict)
                .or_else(|| {
                    s.actions
                        .iter()
                        .any(|a| a.revision == Some(revision))
                        .then_some(Verdict::Fail)
                })?;
            Some(format!("{} {}", m.name_any(), verdict.as_str()))
        })
        .collect()
}

fn revision_node(revision: &RevisionStatus, monitors: &[&Monitor]) -> Node {
    let mut info = vec![short_digest(&revision.model_digest)];
    if let Some(job) = &revision.training_job {
        info.push(format!("from {job}"));
    }
    let mut notes: Vec<String> = revision.reason.iter().cloned().collect();
    notes.extend(verdicts_on(revision.revision, monitors));
    Node {
        name: format!("r{}", revision.revision),
        kind: "Revision",
        status: format!("{} {:?}", state_icon(revision.state), revision.state),
        since: Some(time(&revision.since)),
        info: info.join(" "),
        notes,
        ..Node::default()
    }
}

fn deployment_node(md: &ModelDeployment, monitors: &[&Monitor]) -> Node {
    let status = md.status.clone().unwrap_or_default();
    let c = &status.conditions;
    let (icon, word, note) = if c.is_true(types::ROLLED_BACK) {
        (BAD, "RolledBack", message(c, types::ROLLED_BACK))
    } else if c.is_true(types::STALLED) {
        (BAD, "Stalled", message(c, types::STALLED))
    } else if c.is_true(types::DEGRADED) {
        (WARN, "Degraded", message(c, types::DEGRADED))
    } else if c.is_true(types::PROGRESSING) {
        (BUSY, "Progressing", message(c, types::PROGRESSING))
    } else if c.is_true(types::READY) {
        (GOOD, "Ready", None)
    } else {
        (BUSY, "Pending", message(c, types::READY))
    };
    let mut info = Vec::new();
    if let Some(stable) = status.stable_revision {
        info.push(format!("stable r{stable}"));
    }
    if let (Some(current), Some(weight)) = (status.current_revision, status.canary_weight)
        && weight > 0
        && Some(current) != status.stable_revision
    {
        info.push(format!("canary r{current} at {weight}%"));
    }
    info.push(format!(
        "{}/{} ready",
        status.ready_replicas.unwrap_or(0),
        md.spec.replicas
    ));
    let mut children: Vec<Node> = status
        .revisions
        .iter()
        .map(|r| revision_node(r, monitors))
        .collect();
    children.extend(monitors.iter().map(|m| monitor_node(m)));
    Node {
        name: md.name_any(),
        kind: "ModelDeployment",
        status: format!("{icon} {word}"),
        since: md.metadata.creation_timestamp.as_ref().map(time),
        info: info.join(", "),
        notes: note.into_iter().collect(),
        children,
    }
}

fn monitor_node(monitor: &Monitor) -> Node {
    let status = monitor.status.clone().unwrap_or_default();
    let (icon, word, info, mut notes) = match &status.last_evaluation {
        None => (
            BUSY,
            "Pending".to_owned(),
            String::new(),
            message(&status.conditions, types::READY)
                .into_iter()
                .collect(),
        ),
        Some(e) => {
            let icon = match e.verdict {
                Verdict::Pass => GOOD,
                Verdict::Fail => BAD,
                Verdict::Inconclusive => BUSY,
            };
            let values: Vec<String> = e
                .values
                .iter()
                .map(|(k, v)| match e.thresholds.get(k) {
                    Some(t) => format!("{k} {} (limit {})", number(*v), number(*t)),
                    None => format!("{k} {}", number(*v)),
                })
                .collect();
            let on = match (e.revision, values.is_empty()) {
                (Some(r), false) => format!("r{r}: "),
                (Some(r), true) => format!("on r{r}"),
                (None, _) => String::new(),
            };
            let mut notes = Vec::new();
            if e.verdict != Verdict::Pass {
                notes.push(match &e.message {
                    Some(m) => format!("{}: {m}", e.reason),
                    None => e.reason.clone(),
                });
            }
            (
                icon,
                e.verdict.as_str().to_owned(),
                format!("{on}{}", values.join(", ")),
                notes,
            )
        }
    };
    if let Some(action) = status.actions.last() {
        let on = action
            .revision
            .map(|r| format!(" of r{r}"))
            .unwrap_or_default();
        let action_name = action_name(action.action);
        notes.push(format!(
            "last action: {action_name}{on} at {}: {}",
            action.time.0, action.reason
        ));
    }
    Node {
        name: monitor.name_any(),
        kind: "Monitor",
        status: format!("{icon} {word}"),
        since: monitor.metadata.creation_timestamp.as_ref().map(time),
        info,
        notes,
        ..Node::default()
    }
}

/// The trees of `keep`'s objects (every object when `None`): Datasets at the root, their
/// TrainingJobs below, the ModelDeployments that serve a TrainingJob's model below it (with
/// their revisions and Monitors); what has no parent in the snapshot is a root of its own.
fn forest(snapshot: &Snapshot, keep: Option<&BTreeSet<Key>>) -> Vec<Node> {
    let kept = |kind: Kind, name: String| keep.is_none_or(|k| k.contains(&(kind, name)));
    let names = snapshot.keys();
    let has = |kind: Kind, name: &str| names.contains(&(kind, name.to_owned()));
    let monitors_of = |md: &str| -> Vec<&Monitor> {
        let mut of: Vec<&Monitor> = snapshot
            .monitors
            .iter()
            .filter(|m| m.spec.target_ref.name == md)
            .collect();
        of.sort_by_key(|m| m.name_any());
        of
    };
    let deployments_of = |job: Option<&str>| -> Vec<Node> {
        let mut mds: Vec<&ModelDeployment> = snapshot
            .deployments
            .iter()
            .filter(|md| kept(Kind::ModelDeployment, md.name_any()))
            .filter(|md| {
                let spec_job = md
                    .spec
                    .model
                    .training_job_ref
                    .as_ref()
                    .map(|j| j.name.as_str());
                match job {
                    Some(job) => spec_job == Some(job),
                    None => spec_job.is_none_or(|j| !has(Kind::TrainingJob, j)),
                }
            })
            .collect();
        mds.sort_by_key(|md| md.name_any());
        mds.into_iter()
            .map(|md| deployment_node(md, &monitors_of(&md.name_any())))
            .collect()
    };
    let jobs_of = |dataset: Option<&str>| -> Vec<Node> {
        let mut jobs: Vec<&TrainingJob> = snapshot
            .jobs
            .iter()
            .filter(|j| kept(Kind::TrainingJob, j.name_any()))
            .filter(|j| match dataset {
                Some(d) => j.spec.dataset_ref.name == d,
                None => !has(Kind::Dataset, &j.spec.dataset_ref.name),
            })
            .collect();
        jobs.sort_by_key(|j| j.name_any());
        jobs.into_iter()
            .map(|j| {
                let mut node = job_node(j);
                node.children = deployments_of(Some(&j.name_any()));
                node
            })
            .collect()
    };
    let mut datasets: Vec<&Dataset> = snapshot
        .datasets
        .iter()
        .filter(|d| kept(Kind::Dataset, d.name_any()))
        .collect();
    datasets.sort_by_key(|d| d.name_any());
    let mut roots: Vec<Node> = datasets
        .into_iter()
        .map(|d| {
            let mut node = dataset_node(d);
            node.children = jobs_of(Some(&d.name_any()));
            node
        })
        .collect();
    roots.extend(jobs_of(None));
    roots.extend(deployments_of(None));
    let mut orphans: Vec<&Monitor> = snapshot
        .monitors
        .iter()
        .filter(|m| kept(Kind::Monitor, m.name_any()))
        .filter(|m| !has(Kind::ModelDeployment, &m.spec.target_ref.name))
        .collect();
    orphans.sort_by_key(|m| m.name_any());
    roots.extend(orphans.into_iter().map(|m| {
        let mut node = monitor_node(m);
        node.notes.insert(
            0,
            format!(
                "its target, ModelDeployment {:?}, does not exist",
                m.spec.target_ref.name
            ),
        );
        node
    }));
    roots
}

/// A line laid out by [`layout`]: the tree's prefix and name, then the columns.
struct Line {
    name: String,
    /// The tree's prefix for the lines under this row.
    under: String,
    node: Node,
}

fn flatten(nodes: &[Node], prefix: &str, lines: &mut Vec<Line>, root: bool) {
    for (i, node) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let (branch, next) = match (root, last) {
            (true, _) => ("", ""),
            (false, false) => ("├─", "│ "),
            (false, true) => ("└─", "  "),
        };
        let under = format!("{prefix}{next}");
        lines.push(Line {
            name: format!("{prefix}{branch}{}", node.name),
            under: under.clone(),
            node: node.clone(),
        });
        flatten(&node.children, &under, lines, false);
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// `text` cut to `max` columns, with `…` where it was cut.
pub fn fit(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// `text` broken into lines of at most `max` columns, at spaces where it can be.
pub fn wrap(text: &str, max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_owned();
        while width(&word) > max {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(max).collect();
            word = word.chars().skip(max).collect();
            lines.push(head);
        }
        if word.is_empty() {
            continue;
        }
        if line.is_empty() {
            line = word;
        } else if width(&line) + 1 + width(&word) <= max {
            line.push(' ');
            line.push_str(&word);
        } else {
            lines.push(std::mem::replace(&mut line, word));
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A table of `rows` (the first is the header), columns padded to their widest cell, the last
/// column cut so that each line fits [`WIDTH`].
fn table(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| width(s))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    let room = WIDTH.saturating_sub(width(&line));
                    line.push_str(&fit(cell, room));
                } else {
                    line.push_str(&fit(cell, widths[c]));
                    line.push_str(&" ".repeat(widths[c].saturating_sub(width(cell)) + 2));
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}

/// The pipelines of the snapshot as trees: one row per object (name, kind, status, age, what it
/// holds), the conditions' messages and reasons under the rows they belong to. Only the
/// pipeline of `target` when one is given.
pub fn tree(snapshot: &Snapshot, target: Option<&Target>) -> Result<String, String> {
    let keep = match target {
        Some(target) => Some(snapshot.pipeline_of(&snapshot.find(target)?)),
        None => None,
    };
    let roots = forest(snapshot, keep.as_ref());
    let mut out = format!("Namespace:  {}\n", snapshot.namespace);
    if roots.is_empty() {
        out.push_str("No Datasets, TrainingJobs, ModelDeployments or Monitors.\n");
        return Ok(out);
    }
    let mut lines = Vec::new();
    flatten(&roots, "", &mut lines, true);
    // The name column takes what it needs, up to 40 columns.
    let name_width = lines
        .iter()
        .map(|l| width(&l.name))
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    let mut rows = vec![vec![
        "NAME".to_owned(),
        "KIND".to_owned(),
        "STATUS".to_owned(),
        "AGE".to_owned(),
        "INFO".to_owned(),
    ]];
    for line in &lines {
        rows.push(vec![
            fit(&line.name, name_width),
            line.node.kind.to_owned(),
            line.node.status.clone(),
            line.node
                .since
                .map(|s| age(s, snapshot.now))
                .unwrap_or_default(),
            line.node.info.clone(),
        ]);
    }
    let laid = table(&rows);
    out.push('\n');
    out.push_str(&laid[0]);
    out.push('\n');
    for (line, text) in lines.iter().zip(&laid[1..]) {
        out.push_str(text);
        out.push('\n');
        // Notes hang under the row, inside its branch of the tree.
        let indent = format!(
            "{}{}  ",
            line.under,
            if line.node.children.is_empty() {
                ""
            } else {
                "│"
            }
        );
        let indent = if width(&indent) > WIDTH / 2 {
            " ".repeat(4)
        } else {
            indent
        };
        for note in &line.node.notes {
            for piece in wrap(note, WIDTH - width(&indent)) {
                out.push_str(&indent);
                out.push_str(&piece);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// The revisions of ModelDeployment `name`, newest first: state, age, model, TrainingJob and
/// the Monitors' verdicts on each, then why each is in its state and what the Monitors did.
pub fn history(snapshot: &Snapshot, name: &str) -> Result<String, String> {
    let md = snapshot
        .deployments
        .iter()
        .find(|md| md.name_any() == name)
        .ok_or_else(|| {
            format!(
                "no ModelDeployment named {name:?} in namespace {}",
                snapshot.namespace
            )
        })?;
    let status = md.status.clone().unwrap_or_default();
    let mut monitors: Vec<&Monitor> = snapshot
        .monitors
        .iter()
        .filter(|m| m.spec.target_ref.name == name)
        .collect();
    monitors.sort_by_key(|m| m.name_any());
    let mut out = format!(
        "ModelDeployment {name} in namespace {}: {}\n",
        snapshot.namespace,
        match (status.stable_revision, status.current_revision) {
            (Some(s), Some(c)) if s != c => format!("stable r{s}, current r{c}"),
            (Some(s), _) => format!("stable r{s}"),
            _ => "no stable revision".to_owned(),
        }
    );
    if status.revisions.is_empty() {
        out.push_str("No revisions yet.\n");
        return Ok(out);
    }
    let mut rows = vec![vec![
        "REVISION".to_owned(),
        "STATE".to_owned(),
        "AGE".to_owned(),
        "MODEL".to_owned(),
        "TRAININGJOB".to_owned(),
        "VERDICTS".to_owned(),
    ]];
    for r in &status.revisions {
        let verdicts = verdict_cells(r.revision, &monitors);
        rows.push(vec![
            format!("r{}", r.revision),
            format!("{} {:?}", state_icon(r.state), r.state),
            age(time(&r.since), snapshot.now),
            short_digest(&r.model_digest),
            r.training_job.clone().unwrap_or_else(|| "-".to_owned()),
            if verdicts.is_empty() {
                "-".to_owned()
            } else {
                verdicts.join(", ")
            },
        ]);
    }
    out.push('\n');
    for line in table(&rows) {
        out.push_str(&line);
        out.push('\n');
    }
    for r in &status.revisions {
        out.push('\n');
        out.push_str(&fit(
            &format!(
                "r{} {:?} since {} (model {})",
                r.revision, r.state, r.since.0, r.model_digest
            ),
            WIDTH,
        ));
        out.push('\n');
        let mut notes: Vec<String> = r.reason.iter().cloned().collect();
        let rolled_back = status.conditions.get(types::ROLLED_BACK);
        if let Some(c) = rolled_back.filter(|c| c.status == "True")
            && r.state == RevisionState::RolledBack
            && status.current_revision == Some(r.revision)
        {
            notes.push(format!("{}: {}", c.reason, c.message));
        }
        notes.extend(verdicts_on(r.revision, &monitors));
        for note in notes {
            for piece in wrap(&note, WIDTH - 2) {
                out.push_str("  ");
                out.push_str(&piece);
                out.push('\n');
            }
        }
    }
    let mut actions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &monitors {
        for a in m.status.iter().flat_map(|s| &s.actions) {
            let action = action_name(a.action);
            let on = a.revision.map(|r| format!(" r{r}")).unwrap_or_default();
            actions
                .entry(m.name_any())
                .or_default()
                .push(format!("{} {action}{on}: {}", a.time.0, a.reason));
        }
    }
    for (monitor, list) in actions {
        out.push_str(&format!("\nActions of Monitor {monitor}:\n"));
        for action in list {
            for (i, piece) in wrap(&action, WIDTH - 4).into_iter().enumerate() {
                out.push_str(if i == 0 { "  " } else { "    " });
                out.push_str(&piece);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelops_api::trainingjob::EpochFigures;
    use serde_json::json;

    fn object<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
        serde_json::from_value(value).unwrap()
    }

    fn now() -> Timestamp {
        "2026-12-03T12:00:00Z".parse().unwrap()
    }

    /// The demo's namespace after the rollback: two data sets, a good and a bad model, one
    /// ModelDeployment whose revision 2 (the bad model) was rolled back, and its Monitor.
    fn demo() -> Snapshot {
        let meta = |name: &str| json!({"name": name, "creationTimestamp": "2026-12-03T11:50:00Z"});
        let dataset = |name: &str, map: &str| -> Dataset {
            object(json!({
                "apiVersion": "modelops.dev/v1alpha1", "kind": "Dataset", "metadata": meta(name),
                "spec": {"source": {"configMap": {"name": map, "key": "digits.csv"}},
                         "format": "csv", "schema": {"label": "label"}},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Prepared",
                           "message": "", "lastTransitionTime": "2026-12-03T11:51:00Z"}],
                           "rows": {"total": 1797, "train": 1257, "validation": 270, "test": 270},
                           "classes": ["0","1","2","3","4","5","6","7","8","9"]}
            }))
        };
        let job = |name: &str, ds: &str, accuracy: f64, digest: &str| -> TrainingJob {
            object(json!({
                "apiVersion": "modelops.dev/v1alpha1", "kind": "TrainingJob", "metadata": meta(name),
                "spec": {"datasetRef": {"name": ds}, "task": "classification",
                         "model": {"architecture": "cnn", "cnn": {"inputShape": [1, 8, 8]}}},
                "status": {"phase": "Succeeded", "attempts": 1,
                           "model": {"uri": "s3://b/m", "digest": digest, "architecture": "cnn",
                                     "datasetDigest": "sha256:00", "metrics": {"testAccuracy": accuracy}}}
            }))
        };
        let good = format!("sha256:{}", "a".repeat(64));
        let bad = format!("sha256:{}", "b".repeat(64));
        let reason = "Monitor digits failed revision 2 (AccuracyBelowMinimum: accuracy 0.104 is below 0.85 on 120 labelled requests); revision 1 serves instead";
        let md: ModelDeployment = object(json!({
            "apiVersion": "modelops.dev/v1alpha1", "kind": "ModelDeployment", "metadata": meta("digits"),
            "spec": {"model": {"trainingJobRef": {"name": "digits-shuffled"}}, "replicas": 2,
                     "strategy": {"type": "Canary", "canary": {"steps": [{"weight": 50}],
                                  "analysis": {"monitorRef": {"name": "digits"}}}}},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Available", "message": "2 replicas ready", "lastTransitionTime": "2026-12-03T11:55:00Z"},
                    {"type": "RolledBack", "status": "True", "reason": "AnalysisFailed", "message": reason, "lastTransitionTime": "2026-12-03T11:59:00Z"}],
                "currentRevision": 2, "stableRevision": 1, "canaryWeight": 0, "readyReplicas": 2,
                "revisions": [
                    {"revision": 2, "modelDigest": bad, "trainingJob": "digits-shuffled", "state": "RolledBack",
                     "since": "2026-12-03T11:59:00Z", "reason": reason},
                    {"revision": 1, "modelDigest": good, "trainingJob": "digits", "state": "Stable",
                     "since": "2026-12-03T11:55:00Z", "reason": "FirstRevision"}]}
        }));
        let monitor: Monitor = object(json!({
            "apiVersion": "modelops.dev/v1alpha1", "kind": "Monitor", "metadata": meta("digits"),
            "spec": {"targetRef": {"name": "digits"}, "metrics": [{"accuracy": {"min": 0.85}}]},
            "status": {
                "lastEvaluation": {"time": "2026-12-03T11:59:55Z", "revision": 1, "values": {"accuracy": 0.97},
                                   "thresholds": {"accuracy": 0.85}, "verdict": "Pass", "reason": "WithinThresholds"},
                "revisions": [
                    {"revision": 2, "verdict": "Fail", "reason": "AccuracyBelowMinimum", "values": {"accuracy": 0.104}},
                    {"revision": 1, "verdict": "Pass", "reason": "WithinThresholds", "values": {"accuracy": 0.97}}],
                "actions": [{"time": "2026-12-03T11:59:00Z", "action": "rollback", "revision": 2,
                             "reason": "accuracy 0.104 below 0.85"}]}
        }));
        Snapshot {
            namespace: "modelops-demo".into(),
            now: now(),
            datasets: vec![
                dataset("digits", "digits-data"),
                dataset("digits-shuffled", "digits-shuffled"),
            ],
            jobs: vec![
                job("digits", "digits", 0.972, &good),
                job("digits-shuffled", "digits-shuffled", 0.1, &bad),
            ],
            deployments: vec![md],
            monitors: vec![monitor],
        }
    }

    fn assert_fits(text: &str) {
        for line in text.lines() {
            assert!(width(line) <= WIDTH, "{} columns: {line}", width(line));
        }
    }

    #[test]
    fn the_demo_after_its_rollback_reads_as_one_tree_with_the_reason() {
        let text = tree(&demo(), None).unwrap();
        println!("{text}");
        assert_fits(&text);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("modelops-demo"));
        let row = |start: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no row {start:?} in\n{text}"))
                .to_string()
        };
        assert!(row("digits ").contains("✔ Ready"));
        assert!(row("└─digits-shuffled").contains("TrainingJob"));
        assert!(row("  └─digits ").contains("✖ RolledBack"));
        let r2 = row("    ├─r2");
        assert!(
            r2.contains("✖ RolledBack") && r2.contains("sha256:bbbbbbbbbbbb"),
            "{r2}"
        );
        assert!(row("    ├─r1").contains("✔ Stable"));
        assert!(row("    └─digits").contains("Monitor"));
        // The reason is printed in full (wrapped) under revision 2.
        let joined = text
            .split_whitespace()
            .filter(|w| *w != "│")
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            joined.contains(
                "accuracy 0.104 is below 0.85 on 120 labelled requests); revision 1 serves instead"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_target_keeps_only_its_pipeline() {
        let mut snapshot = demo();
        let mut other = snapshot.datasets[0].clone();
        other.metadata.name = Some("iris".into());
        snapshot.datasets.push(other);
        let all = tree(&snapshot, None).unwrap();
        assert!(all.contains("\niris "));
        let one = tree(&snapshot, Some(&Target::parse("mdep/digits").unwrap())).unwrap();
        assert!(!one.contains("\niris "), "{one}");
        // The revision's TrainingJob belongs to the pipeline, with its Dataset.
        assert!(one.contains("\ndigits "), "{one}");
        assert_eq!(
            tree(&snapshot, Some(&Target::parse("monitor/nope").unwrap())).unwrap_err(),
            "no Monitor named \"nope\" in namespace modelops-demo"
        );
        assert!(
            Target::parse("pods/x")
                .unwrap_err()
                .contains("not a kind of modelops")
        );
    }

    #[test]
    fn history_lists_revisions_verdicts_reasons_and_actions() {
        let text = history(&demo(), "digits").unwrap();
        println!("{text}");
        assert_fits(&text);
        assert!(text.contains("stable r1, current r2"));
        let r2 = text.lines().find(|l| l.starts_with("r2 ")).unwrap();
        assert!(
            r2.contains("RolledBack")
                && r2.contains("digits-shuffled")
                && r2.contains("digits Fail"),
            "{r2}"
        );
        assert!(text.contains("Monitor digits: Fail (AccuracyBelowMinimum) accuracy 0.104"));
        assert!(text.contains("rollback r2: accuracy 0.104 below 0.85"));
        assert!(history(&demo(), "x").is_err());
        // The Monitor no longer keeps a verdict on the rolled-back revision: its action says
        // how it judged it.
        let mut snapshot = demo();
        let monitor = snapshot.monitors[0].status.as_mut().unwrap();
        monitor.revisions.retain(|v| v.revision != 2);
        let text = history(&snapshot, "digits").unwrap();
        let r2 = text.lines().find(|l| l.starts_with("r2 ")).unwrap();
        assert!(r2.contains("digits Fail"), "{text}");
        assert!(
            text.contains("Monitor digits: rollback at 2026-12-03T11:59:00Z"),
            "{text}"
        );
        assert!(
            text.contains("AnalysisFailed: Monitor digits failed revision 2"),
            "{text}"
        );
    }

    #[test]
    fn long_names_and_texts_are_cut_or_wrapped_to_the_width() {
        let mut snapshot = demo();
        snapshot.datasets[0].metadata.name = Some("d".repeat(60));
        snapshot.jobs[0].spec.dataset_ref.name = "d".repeat(60);
        let md = &mut snapshot.deployments[0];
        let status = md.status.as_mut().unwrap();
        status.revisions[0].reason = Some("x".repeat(300));
        let text = tree(&snapshot, None).unwrap();
        assert_fits(&text);
        assert_fits(&history(&snapshot, "digits").unwrap());
        assert_eq!(wrap("a bb ccc", 4), vec!["a bb", "ccc"]);
        assert_eq!(fit("abcdef", 4), "abc…");
    }

    #[test]
    fn learning_curves_show_as_sparklines_under_the_job() {
        assert_eq!(sparkline(&[1.0, 0.5, 0.25, 0.0], 16), "█▅▃▁");
        assert_eq!(
            sparkline(&(0..100).map(f64::from).collect::<Vec<_>>(), 10)
                .chars()
                .count(),
            10
        );
        assert_eq!(sparkline(&[0.5, 0.5], 4), "▄▄");
        let mut snapshot = demo();
        let figures: Vec<EpochFigures> = (1..=30)
            .map(|epoch| EpochFigures {
                epoch,
                train_loss: Some(1.0 / f64::from(epoch)),
                validation_loss: None,
                validation_accuracy: Some(1.0 - 1.0 / f64::from(epoch)),
            })
            .collect();
        snapshot.jobs[0].status.as_mut().unwrap().curves =
            Some(LearningCurves::from_epochs(&figures, 100));
        let text = tree(&snapshot, None).unwrap();
        assert_fits(&text);
        let line = text
            .lines()
            .find(|l| l.contains("epochs 1-30"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            line.contains("train loss █") && line.contains("val acc ▁") && line.ends_with("0.967"),
            "{line}"
        );
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(age(at("2026-12-03T11:59:30Z"), now()), "30s");
        assert_eq!(age(at("2026-12-03T11:00:00Z"), now()), "60m");
        assert_eq!(age(at("2026-12-01T12:00:00Z"), now()), "2d");
        assert_eq!(age(at("2026-12-03T13:00:00Z"), now()), "0s");
    }
}
