//! The dashboard's pages, rendered on the server from a [`View`] of one namespace: HTML with
//! inline SVG charts, no script and nothing fetched but `/style.css` (embedded in the binary).
//! Pages of objects that change refresh themselves every few seconds. Pure functions: every
//! page is a unit test.

use std::collections::BTreeMap;
use std::fmt::Write;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use modelops_api::conditions::Conditions;
use modelops_api::monitor::{Evaluation, Verdict};
use modelops_api::profile::{ClassBalance, Histogram, Profile};
use modelops_api::trainingjob::{LearningCurves, TrainingPhase};
use modelops_api::{Dataset, ModelDeployment, Monitor, TrainingJob};

/// The stylesheet, served at `/style.css`.
pub const STYLE: &str = include_str!("style.css");

/// How often a page of objects that may change reloads itself, in seconds.
pub const REFRESH_SECONDS: u32 = 5;

/// The four kinds of one namespace, as read at `now`.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// The namespace.
    pub namespace: String,
    /// When it was read.
    pub now: Option<Timestamp>,
    /// Its Datasets.
    pub datasets: Vec<Dataset>,
    /// Its TrainingJobs.
    pub jobs: Vec<TrainingJob>,
    /// Its ModelDeployments.
    pub deployments: Vec<ModelDeployment>,
    /// Its Monitors.
    pub monitors: Vec<Monitor>,
}

/// `text` safe inside HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment safe in a link (object names are DNS names already; this is belt and braces).
fn seg(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .collect()
}

/// A whole page: `crumbs` (label, link) lead to `title`.
pub fn layout(title: &str, crumbs: &[(String, String)], body: &str, refresh: bool) -> String {
    let mut nav = String::from("<a href=\"/\">modelops</a>");
    for (label, href) in crumbs {
        let _ = write!(nav, " / <a href=\"{}\">{}</a>", esc(href), esc(label));
    }
    let refresh = if refresh {
        format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">")
    } else {
        String::new()
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <title>{} · modelops</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\
         <body><nav>{nav}</nav><main><h1>{}</h1>\n{body}</main></body></html>\n",
        esc(title),
        esc(title)
    )
}

/// The page that lists the namespaces with modelops objects.
pub fn namespaces(list: &[(String, [usize; 4])]) -> String {
    let mut body = String::new();
    if list.is_empty() {
        body.push_str("<p class=\"empty\">No Datasets, TrainingJobs, ModelDeployments or Monitors you may see.</p>");
    } else {
        body.push_str("<table class=\"namespaces\"><tr><th>Namespace</th><th>Datasets</th><th>TrainingJobs</th><th>ModelDeployments</th><th>Monitors</th></tr>");
        for (ns, counts) in list {
            let _ = write!(
                body,
                "<tr><td><a href=\"/namespaces/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                seg(ns),
                esc(ns),
                counts[0],
                counts[1],
                counts[2],
                counts[3]
            );
        }
        body.push_str("</table>");
    }
    layout("Namespaces", &[], &body, false)
}

fn ns_link(ns: &str) -> (String, String) {
    (ns.to_owned(), format!("/namespaces/{}", seg(ns)))
}

fn object_href(ns: &str, kind: &str, name: &str) -> String {
    format!("/namespaces/{}/{kind}/{}", seg(ns), seg(name))
}

/// A link to an object's page, or its name alone when the object is not in the view.
fn object_link(view: &View, kind: &str, name: &str) -> String {
    let exists = match kind {
        "datasets" => view.datasets.iter().any(|o| o.name_any() == name),
        "trainingjobs" => view.jobs.iter().any(|o| o.name_any() == name),
        "modeldeployments" => view.deployments.iter().any(|o| o.name_any() == name),
        _ => false,
    };
    if exists {
        format!(
            "<a class=\"link\" href=\"{}\">{}</a>",
            object_href(&view.namespace, kind, name),
            esc(name)
        )
    } else {
        format!("<span class=\"missing\">{} (not found)</span>", esc(name))
    }
}

/// The conditions as a table: type, status, reason, message, since.
fn conditions(conditions: &Conditions) -> String {
    if conditions.0.is_empty() {
        return "<p class=\"empty\">No conditions yet.</p>".to_owned();
    }
    let mut out = String::from(
        "<table class=\"conditions\"><tr><th>Type</th><th>Status</th><th>Reason</th><th>Message</th><th>Since</th></tr>",
    );
    for c in &conditions.0 {
        let _ = write!(
            out,
            "<tr class=\"condition {}\" data-type=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.status.to_lowercase()),
            esc(&c.type_),
            esc(&c.type_),
            esc(&c.status),
            esc(&c.reason),
            esc(&c.message),
            c.last_transition_time.0
        );
    }
    out.push_str("</table>");
    out
}

/// A one-word state with its class (`good`, `bad`, `busy`).
fn badge(word: &str, class: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", esc(word))
}

fn dataset_state(ds: &Dataset) -> String {
    let c = ds.status.as_ref().map(|s| &s.conditions);
    match c {
        Some(c) if c.is_true("Stalled") => badge("Stalled", "bad"),
        Some(c) if c.is_true("Ready") => badge("Ready", "good"),
        _ => badge("Preparing", "busy"),
    }
}

fn job_state(job: &TrainingJob) -> String {
    let phase = job
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(TrainingPhase::Pending);
    let class = match phase {
        TrainingPhase::Succeeded => "good",
        TrainingPhase::Failed => "bad",
        _ => "busy",
    };
    badge(phase.as_str(), class)
}

fn deployment_state(md: &ModelDeployment) -> String {
    let c = md.status.as_ref().map(|s| &s.conditions);
    match c {
        Some(c) if c.is_true("RolledBack") => badge("RolledBack", "bad"),
        Some(c) if c.is_true("Stalled") => badge("Stalled", "bad"),
        Some(c) if c.is_true("Degraded") => badge("Degraded", "bad"),
        Some(c) if c.is_true("Progressing") => badge("Progressing", "busy"),
        Some(c) if c.is_true("Ready") => badge("Ready", "good"),
        _ => badge("Pending", "busy"),
    }
}

fn verdict_badge(verdict: Verdict) -> String {
    let class = match verdict {
        Verdict::Pass => "good",
        Verdict::Fail => "bad",
        Verdict::Inconclusive => "busy",
    };
    badge(verdict.as_str(), class)
}

fn monitor_state(monitor: &Monitor) -> String {
    match monitor
        .status
        .as_ref()
        .and_then(|s| s.last_evaluation.as_ref())
    {
        Some(e) => verdict_badge(e.verdict),
        None => badge("Pending", "busy"),
    }
}

fn number(value: f64) -> String {
    if value == value.trunc() && value.abs() < 1e9 {
        format!("{value:.0}")
    } else {
        format!("{value:.4}")
    }
}

fn changing(view: &View) -> bool {
    let jobs = view.jobs.iter().any(|j| {
        !matches!(
            j.status.as_ref().and_then(|s| s.phase),
            Some(TrainingPhase::Succeeded | TrainingPhase::Failed)
        )
    });
    jobs || !view.deployments.is_empty() || !view.monitors.is_empty()
}

/// A namespace: every object with its state and conditions, and how they link: data → training
/// → deployment → monitor.
pub fn overview(view: &View) -> String {
    let ns = &view.namespace;
    let mut body = String::new();
    // The pipelines, one line each: a ModelDeployment and what feeds and guards it.
    let mut pipelines = String::new();
    for md in &view.deployments {
        let mut chain = Vec::new();
        if let Some(job_name) = md.spec.model.training_job_ref.as_ref().map(|r| &r.name) {
            if let Some(job) = view.jobs.iter().find(|j| &j.name_any() == job_name) {
                chain.push(object_link(view, "datasets", &job.spec.dataset_ref.name));
            }
            chain.push(object_link(view, "trainingjobs", job_name));
        } else {
            chain.push("<span class=\"artifact\">model artifact</span>".to_owned());
        }
        chain.push(object_link(view, "modeldeployments", &md.name_any()));
        for m in view
            .monitors
            .iter()
            .filter(|m| m.spec.target_ref.name == md.name_any())
        {
            chain.push(format!(
                "<span class=\"monitor\">{}</span>",
                esc(&m.name_any())
            ));
        }
        let _ = write!(
            pipelines,
            "<li class=\"pipeline\">{}</li>",
            chain.join(" → ")
        );
    }
    if !pipelines.is_empty() {
        let _ = write!(
            body,
            "<h2>Pipelines</h2><ul class=\"pipelines\">{pipelines}</ul>"
        );
    }
    let section = |body: &mut String, title: &str, rows: Vec<String>, head: &str| {
        let _ = write!(body, "<h2>{title}</h2>");
        if rows.is_empty() {
            body.push_str("<p class=\"empty\">None.</p>");
        } else {
            let _ = write!(
                body,
                "<table class=\"objects\"><tr>{head}</tr>{}</table>",
                rows.concat()
            );
        }
    };
    let head = "<th>Name</th><th>State</th><th>Links</th><th>Conditions</th>";
    section(
        &mut body,
        "Datasets",
        view.datasets
            .iter()
            .map(|d| {
                let c = d.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
                format!(
                    "<tr class=\"object\" data-kind=\"Dataset\" data-name=\"{}\"><td>{}</td><td>{}</td><td></td><td>{}</td></tr>",
                    esc(&d.name_any()),
                    object_link(view, "datasets", &d.name_any()),
                    dataset_state(d),
                    conditions(&c)
                )
            })
            .collect(),
        head,
    );
    section(
        &mut body,
        "TrainingJobs",
        view.jobs
            .iter()
            .map(|j| {
                let c = j.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
                format!(
                    "<tr class=\"object\" data-kind=\"TrainingJob\" data-name=\"{}\"><td>{}</td><td>{}</td><td>data: {}</td><td>{}</td></tr>",
                    esc(&j.name_any()),
                    object_link(view, "trainingjobs", &j.name_any()),
                    job_state(j),
                    object_link(view, "datasets", &j.spec.dataset_ref.name),
                    conditions(&c)
                )
            })
            .collect(),
        head,
    );
    section(
        &mut body,
        "ModelDeployments",
        view.deployments
            .iter()
            .map(|md| {
                let c = md.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
                let source = match &md.spec.model.training_job_ref {
                    Some(r) => format!("model: {}", object_link(view, "trainingjobs", &r.name)),
                    None => "model: artifact".to_owned(),
                };
                format!(
                    "<tr class=\"object\" data-kind=\"ModelDeployment\" data-name=\"{}\"><td>{}</td><td>{}</td><td>{source}</td><td>{}</td></tr>",
                    esc(&md.name_any()),
                    object_link(view, "modeldeployments", &md.name_any()),
                    deployment_state(md),
                    conditions(&c)
                )
            })
            .collect(),
        head,
    );
    section(
        &mut body,
        "Monitors",
        view.monitors
            .iter()
            .map(|m| {
                let c = m.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
                format!(
                    "<tr class=\"object\" data-kind=\"Monitor\" data-name=\"{}\"><td>{}</td><td>{}</td><td>target: {}</td><td>{}</td></tr>",
                    esc(&m.name_any()),
                    esc(&m.name_any()),
                    monitor_state(m),
                    object_link(view, "modeldeployments", &m.spec.target_ref.name),
                    conditions(&c)
                )
            })
            .collect(),
        head,
    );
    layout(ns, &[ns_link(ns)], &body, changing(view))
}

/// A line chart of `series` (name, values) over `epochs`: one polyline and one
/// `<circle class="point">` per epoch and series, the axes labelled with the ranges.
pub fn curve_chart(class: &str, epochs: &[i32], series: &[(&str, &[f64])]) -> String {
    const W: f64 = 560.0;
    const H: f64 = 220.0;
    const PAD: f64 = 36.0;
    let series: Vec<&(&str, &[f64])> = series
        .iter()
        .filter(|(_, values)| values.len() == epochs.len() && !values.is_empty())
        .collect();
    if epochs.is_empty() || series.is_empty() {
        return format!("<p class=\"empty {class}\">No finished epoch yet.</p>");
    }
    let first = f64::from(*epochs.first().unwrap_or(&1));
    let last = f64::from(*epochs.last().unwrap_or(&1)).max(first + 1.0);
    let values = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite());
    let (mut low, mut high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !low.is_finite() {
        (low, high) = (0.0, 1.0);
    }
    if high - low < 1e-9 {
        high = low + 1.0;
    }
    let x = |epoch: i32| PAD + (f64::from(epoch) - first) / (last - first) * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD - (v - low) / (high - low) * (H - 2.0 * PAD);
    let mut svg = format!(
        "<svg class=\"chart {class}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\">\
         <line class=\"axis\" x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
         <line class=\"axis\" x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{}\"/>\
         <text x=\"{PAD}\" y=\"{}\" class=\"tick\">epoch {}</text><text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"end\">{}</text>\
         <text x=\"2\" y=\"{}\" class=\"tick\">{}</text><text x=\"2\" y=\"{}\" class=\"tick\">{}</text>",
        H - PAD,
        W - PAD,
        H - PAD,
        H - PAD,
        H - 12.0,
        epochs[0],
        W - PAD,
        H - 12.0,
        epochs[epochs.len() - 1],
        PAD - 4.0,
        number(high),
        H - PAD,
        number(low),
    );
    for (index, (name, values)) in series.iter().enumerate() {
        let points: Vec<String> = epochs
            .iter()
            .zip(values.iter())
            .map(|(e, v)| format!("{:.1},{:.1}", x(*e), y(*v)))
            .collect();
        let _ = write!(
            svg,
            "<g class=\"series s{index}\" data-series=\"{}\"><polyline points=\"{}\"/>",
            esc(name),
            points.join(" ")
        );
        for (e, v) in epochs.iter().zip(values.iter()) {
            let _ = write!(
                svg,
                "<circle class=\"point\" data-epoch=\"{e}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"><title>{} epoch {e}: {}</title></circle>",
                x(*e),
                y(*v),
                esc(name),
                number(*v)
            );
        }
        let _ = write!(
            svg,
            "<text class=\"legend\" x=\"{}\" y=\"{}\">{}</text></g>",
            W - PAD - 150.0,
            PAD + 14.0 * index as f64,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The learning curves as two charts: the losses, and the accuracy (classification).
fn curves_charts(curves: &LearningCurves, class: &str) -> String {
    let mut out = curve_chart(
        &format!("{class} losses"),
        &curves.epochs,
        &[
            ("train loss", &curves.train_loss),
            ("validation loss", &curves.validation_loss),
        ],
    );
    if !curves.validation_accuracy.is_empty() {
        out.push_str(&curve_chart(
            &format!("{class} accuracy"),
            &curves.epochs,
            &[("validation accuracy", &curves.validation_accuracy)],
        ));
    }
    out
}

fn table(rows: &[(String, String)], class: &str) -> String {
    let mut out = format!("<table class=\"{class}\">");
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{}</th><td>{v}</td></tr>", esc(k));
    }
    out.push_str("</table>");
    out
}

fn time(t: &Time) -> String {
    t.0.to_string()
}

/// A TrainingJob: its learning curves (live while it trains), its trials side by side, and its
/// model card (what status records of it).
pub fn trainingjob(view: &View, job: &TrainingJob) -> String {
    let ns = &view.namespace;
    let name = job.name_any();
    let status = job.status.clone().unwrap_or_default();
    let mut body = format!(
        "<p>{} on Dataset {}</p>",
        job_state(job),
        object_link(view, "datasets", &job.spec.dataset_ref.name)
    );
    body.push_str("<h2>Learning curves</h2>");
    match &status.curves {
        Some(curves) => body.push_str(&curves_charts(curves, "job")),
        None => body.push_str("<p class=\"empty\">No finished epoch yet.</p>"),
    }
    if let Some(p) = &status.progress {
        let mut rows = vec![(
            "epoch".to_owned(),
            format!("{} of {}", p.epoch, p.total_epochs),
        )];
        if let Some(trial) = p.trial {
            rows.push(("trial".to_owned(), trial.to_string()));
        }
        for (k, v) in [
            ("train loss", p.train_loss),
            ("validation loss", p.validation_loss),
            ("validation accuracy", p.validation_accuracy),
            ("samples per second", p.samples_per_second),
        ] {
            if let Some(v) = v {
                rows.push((k.to_owned(), number(v)));
            }
        }
        body.push_str("<h2>Progress</h2>");
        body.push_str(&table(&rows, "progress"));
    }
    if !status.trials.is_empty() {
        body.push_str("<h2>Trials</h2><div class=\"trials\">");
        for t in &status.trials {
            let best = if status.best_trial == Some(t.index) {
                " best"
            } else {
                ""
            };
            let parameters: Vec<String> = t
                .parameters
                .iter()
                .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
                .collect();
            let _ = write!(
                body,
                "<div class=\"trial{best}\" data-trial=\"{}\"><h3>trial {}{}</h3><p>{} {}</p><p>objective {}</p>{}{}</div>",
                t.index,
                t.index,
                if best.is_empty() { "" } else { " (best)" },
                badge(
                    t.phase.as_str(),
                    match t.phase {
                        TrainingPhase::Succeeded => "good",
                        TrainingPhase::Failed => "bad",
                        _ => "busy",
                    }
                ),
                parameters.join(", "),
                t.objective.map(number).unwrap_or_else(|| "-".to_owned()),
                t.curves
                    .as_ref()
                    .map(|c| curves_charts(c, "trial"))
                    .unwrap_or_default(),
                t.message
                    .as_deref()
                    .map(|m| format!("<p class=\"message\">{}</p>", esc(m)))
                    .unwrap_or_default(),
            );
        }
        body.push_str("</div>");
    }
    body.push_str("<h2>Model card</h2>");
    match &status.model {
        Some(model) => {
            let mut rows = vec![
                (
                    "digest".to_owned(),
                    format!("<code>{}</code>", esc(&model.digest)),
                ),
                (
                    "uri".to_owned(),
                    format!("<code>{}</code>", esc(&model.uri)),
                ),
                ("architecture".to_owned(), esc(model.architecture.as_str())),
                (
                    "dataset digest".to_owned(),
                    format!("<code>{}</code>", esc(&model.dataset_digest)),
                ),
            ];
            let m = &model.metrics;
            for (k, v) in [
                ("test accuracy", m.test_accuracy),
                ("test loss", m.test_loss),
                ("test rmse", m.test_rmse),
                ("test mae", m.test_mae),
                ("validation accuracy", m.validation_accuracy),
                ("validation loss", m.validation_loss),
            ] {
                if let Some(v) = v {
                    rows.push((k.to_owned(), number(v)));
                }
            }
            body.push_str(&table(&rows, "card"));
        }
        None => body.push_str("<p class=\"empty\">No model yet.</p>"),
    }
    body.push_str("<h2>Conditions</h2>");
    body.push_str(&conditions(&status.conditions));
    let refresh = !matches!(
        status.phase,
        Some(TrainingPhase::Succeeded | TrainingPhase::Failed)
    );
    layout(
        &format!("TrainingJob {name}"),
        &[ns_link(ns)],
        &body,
        refresh,
    )
}

/// A Dataset's profile as a serving pod answered it: which revision, of which data.
#[derive(Clone, Debug)]
pub struct ServedProfile {
    /// The profile.
    pub profile: std::sync::Arc<Profile>,
    /// The ModelDeployment whose pod served it.
    pub deployment: String,
    /// Its revision.
    pub revision: i32,
    /// The data digest its model trained on, where the TrainingJob tells.
    pub data_digest: Option<String>,
}

/// The most features drawn on a Dataset page.
pub const MAX_HISTOGRAMS: usize = 256;

/// One small bar chart of a histogram (`class="histogram"`, a `rect class="bin"` per bin).
pub fn histogram_chart(name: &str, h: &Histogram, caption: &str) -> String {
    const W: f64 = 150.0;
    const H: f64 = 64.0;
    const BASE: f64 = 50.0;
    let peak = h.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let width = W / h.counts.len().max(1) as f64;
    let mut svg = format!(
        "<figure class=\"histogram\" data-feature=\"{}\"><svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\"><title>{}</title>",
        esc(name),
        esc(caption),
    );
    for (i, &count) in h.counts.iter().enumerate() {
        let height = count as f64 / peak * (BASE - 4.0);
        let _ = write!(
            svg,
            "<rect class=\"bin\" data-count=\"{count}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\"/>",
            i as f64 * width + 0.5,
            BASE - height,
            (width - 1.0).max(0.5),
        );
    }
    let (low, high) = (
        h.edges.first().copied().unwrap_or(0.0),
        h.edges.last().copied().unwrap_or(0.0),
    );
    let _ = write!(
        svg,
        "<text class=\"tick\" x=\"1\" y=\"61\">{}</text><text class=\"tick\" x=\"149\" y=\"61\" text-anchor=\"end\">{}</text></svg><figcaption>{}</figcaption></figure>",
        number(low),
        number(high),
        esc(name)
    );
    svg
}

fn class_balance(title: &str, balance: &ClassBalance) -> String {
    let total = balance.counts.iter().sum::<u64>().max(1) as f64;
    let mut html = format!("<h3>{}</h3><table class=\"balance\">", esc(title));
    for (class, &count) in balance.classes.iter().zip(&balance.counts) {
        let _ = write!(
            html,
            "<tr data-class=\"{0}\"><td>{0}</td><td>{count}</td><td><span class=\"bar\" style=\"width:{1:.0}px\"></span> {2:.1}%</td></tr>",
            esc(class),
            count as f64 / total * 200.0,
            count as f64 / total * 100.0,
        );
    }
    html.push_str("</table>");
    html
}

/// The profile's part of a Dataset page: a histogram per feature and the class balance.
fn profile_section(ds: &Dataset, served: Option<&ServedProfile>) -> String {
    let mut body = String::from("<h2>Profile</h2>");
    let Some(served) = served else {
        body.push_str(
            "<p class=\"empty profile\">The histograms show once a model trained on this data \
             serves: the operator reads no artifact store, it asks a serving pod for its \
             model's profile, as the Monitor does.</p>",
        );
        return body;
    };
    let digest = ds.status.as_ref().and_then(|s| s.digest.as_deref());
    let of = match (&served.data_digest, digest) {
        (Some(trained), Some(now)) if trained != now => format!(
            " of an earlier version of the data (<code>{}</code>)",
            esc(trained)
        ),
        _ => String::new(),
    };
    let p = &served.profile;
    let _ = write!(
        body,
        "<p class=\"profile-source\">The train split's {} rows{of}, as revision {} of {} serves it.</p><div class=\"histograms\">",
        p.rows,
        served.revision,
        esc(&served.deployment),
    );
    for f in p.features.iter().take(MAX_HISTOGRAMS) {
        let caption = format!(
            "{}: min {} max {} mean {} std {}",
            f.name,
            number(f.min),
            number(f.max),
            number(f.mean),
            number(f.std)
        );
        body.push_str(&histogram_chart(&f.name, &f.histogram, &caption));
    }
    body.push_str("</div>");
    if p.features.len() > MAX_HISTOGRAMS {
        let _ = write!(
            body,
            "<p class=\"empty\">and {} more features.</p>",
            p.features.len() - MAX_HISTOGRAMS
        );
    }
    if let Some(predictions) = &p.predictions {
        body.push_str(&histogram_chart(
            "predictions",
            predictions,
            "the model's predictions on the train split",
        ));
    }
    if let Some(balance) = &p.class_balance {
        body.push_str(&class_balance("Classes in the train split", balance));
    }
    body
}

/// A Dataset: its split, the rows rejected and why, its classes, the profile's histograms (as a
/// serving pod answers them), where its data and profile are.
pub fn dataset(view: &View, ds: &Dataset, served: Option<&ServedProfile>) -> String {
    let ns = &view.namespace;
    let status = ds.status.clone().unwrap_or_default();
    let mut body = format!("<p>{}</p>", dataset_state(ds));
    body.push_str("<h2>Split</h2>");
    match status.rows {
        Some(rows) => {
            let total = rows.total.max(1) as f64;
            let mut bars = String::from("<div class=\"split\">");
            for (part, n) in [
                ("train", rows.train),
                ("validation", rows.validation),
                ("test", rows.test),
            ] {
                let _ = write!(
                    bars,
                    "<div class=\"part {part}\" data-rows=\"{n}\" style=\"width:{:.1}%\">{part} {n}</div>",
                    n as f64 / total * 100.0
                );
            }
            bars.push_str("</div>");
            body.push_str(&bars);
            body.push_str(&table(
                &[
                    ("rows kept".to_owned(), rows.total.to_string()),
                    ("rows rejected".to_owned(), rows.rejected.to_string()),
                    (
                        "first rejected".to_owned(),
                        status
                            .first_rejection
                            .as_deref()
                            .map_or_else(|| "none".to_owned(), esc),
                    ),
                ],
                "rows",
            ));
        }
        None => body.push_str("<p class=\"empty\">Not prepared yet.</p>"),
    }
    if !status.classes.is_empty() {
        let classes: Vec<String> = status.classes.iter().map(|c| esc(c)).collect();
        let _ = write!(
            body,
            "<h2>Classes</h2><p class=\"classes\">{}</p>",
            classes.join(", ")
        );
    }
    body.push_str(&profile_section(ds, served));
    let mut rows = Vec::new();
    if let Some(d) = &status.digest {
        rows.push(("digest".to_owned(), format!("<code>{}</code>", esc(d))));
    }
    if let Some(a) = &status.artifact {
        rows.push(("data".to_owned(), format!("<code>{}</code>", esc(&a.uri))));
    }
    if let Some(p) = &status.profile {
        rows.push((
            "profile".to_owned(),
            format!("<code>{}</code>", esc(&p.uri)),
        ));
    }
    if !rows.is_empty() {
        body.push_str("<h2>Artifacts</h2>");
        body.push_str(&table(&rows, "artifacts"));
    }
    let users: Vec<String> = view
        .jobs
        .iter()
        .filter(|j| j.spec.dataset_ref.name == ds.name_any())
        .map(|j| object_link(view, "trainingjobs", &j.name_any()))
        .collect();
    if !users.is_empty() {
        let _ = write!(body, "<h2>Trained on by</h2><p>{}</p>", users.join(", "));
    }
    body.push_str("<h2>Conditions</h2>");
    body.push_str(&conditions(&status.conditions));
    let refresh = !status.conditions.is_true("Ready");
    layout(
        &format!("Dataset {}", ds.name_any()),
        &[ns_link(ns)],
        &body,
        refresh,
    )
}

/// A ModelDeployment: its revisions on a timeline (when each entered its state, the Monitors'
/// evaluations as dots, rollbacks marked), the canary's weight, and each Monitor's evidence.
pub fn modeldeployment(view: &View, md: &ModelDeployment) -> String {
    let ns = &view.namespace;
    let name = md.name_any();
    let status = md.status.clone().unwrap_or_default();
    let monitors: Vec<&Monitor> = view
        .monitors
        .iter()
        .filter(|m| m.spec.target_ref.name == name)
        .collect();
    let mut body = format!("<p>{}", deployment_state(md));
    if let Some(stable) = status.stable_revision {
        let _ = write!(body, " stable revision {stable}");
    }
    if let (Some(current), Some(weight)) = (status.current_revision, status.canary_weight)
        && weight > 0
    {
        let _ = write!(
            body,
            " · <span class=\"canary\" data-weight=\"{weight}\">canary revision {current} at {weight}%</span>"
        );
    }
    if let Some(endpoint) = &status.endpoint {
        let _ = write!(body, " · <code>{}</code>", esc(endpoint));
    }
    body.push_str("</p>");
    body.push_str("<h2>Revisions</h2>");
    body.push_str(&timeline(view, &status.revisions, &monitors));
    let mut rows = String::from(
        "<table class=\"revisions\"><tr><th>Revision</th><th>State</th><th>Since</th><th>Model</th><th>TrainingJob</th><th>Why</th></tr>",
    );
    for r in &status.revisions {
        let state = format!("{:?}", r.state);
        let class = match state.as_str() {
            "Stable" => "good",
            "Canary" => "busy",
            "RolledBack" | "Failed" => "bad",
            _ => "idle",
        };
        let _ = write!(
            rows,
            "<tr class=\"revision\" data-revision=\"{}\" data-state=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            r.revision,
            esc(&state),
            r.revision,
            badge(&state, class),
            time(&r.since),
            esc(&r.model_digest),
            r.training_job
                .as_deref()
                .map(|j| object_link(view, "trainingjobs", j))
                .unwrap_or_default(),
            esc(r.reason.as_deref().unwrap_or_default())
        );
    }
    rows.push_str("</table>");
    body.push_str(&rows);
    for m in &monitors {
        body.push_str(&monitor_evidence(m));
    }
    body.push_str("<h2>Conditions</h2>");
    body.push_str(&conditions(&status.conditions));
    layout(
        &format!("ModelDeployment {name}"),
        &[ns_link(ns)],
        &body,
        true,
    )
}

/// The revisions on a time axis, one row each: a mark where it entered its state, the Monitors'
/// evaluations of it as dots (by verdict), and each rollback as a red marker.
fn timeline(
    view: &View,
    revisions: &[modelops_api::modeldeployment::RevisionStatus],
    monitors: &[&Monitor],
) -> String {
    const W: f64 = 760.0;
    const ROW: f64 = 28.0;
    const LEFT: f64 = 60.0;
    if revisions.is_empty() {
        return "<p class=\"empty\">No revision yet.</p>".to_owned();
    }
    let mut times: Vec<i64> = revisions.iter().map(|r| r.since.0.as_second()).collect();
    times.extend(
        revisions
            .iter()
            .flat_map(|r| r.weights.iter().map(|w| w.since.0.as_second())),
    );
    for m in monitors {
        if let Some(s) = &m.status {
            times.extend(s.history.iter().map(|h| h.time.0.as_second()));
            times.extend(s.actions.iter().map(|a| a.time.0.as_second()));
        }
    }
    if let Some(now) = view.now {
        times.push(now.as_second());
    }
    let start = times.iter().copied().min().unwrap_or(0);
    let end = times.iter().copied().max().unwrap_or(0).max(start + 1);
    let x = |t: i64| LEFT + (t - start) as f64 / (end - start) as f64 * (W - LEFT - 20.0);
    let mut order: Vec<i32> = revisions.iter().map(|r| r.revision).collect();
    order.sort_unstable();
    let row = |revision: i32| -> f64 {
        let i = order.iter().position(|r| *r == revision).unwrap_or(0);
        16.0 + ROW * i as f64
    };
    let height = 28.0 + ROW * order.len() as f64;
    let mut svg = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {W} {height}\" width=\"{W}\" height=\"{height}\" role=\"img\">"
    );
    let last = end;
    for r in revisions {
        let y = row(r.revision);
        // The traffic it took: a band as tall as its weight, from each change to the next.
        for (i, w) in r.weights.iter().enumerate() {
            let from = w.since.0.as_second();
            let to = r
                .weights
                .get(i + 1)
                .map_or(last, |next| next.since.0.as_second());
            let height = f64::from(w.weight.clamp(0, 100)) / 100.0 * 12.0;
            let _ = write!(
                svg,
                "<rect class=\"weight\" data-revision=\"{}\" data-weight=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\"><title>r{} at {}% from {}</title></rect>",
                r.revision,
                w.weight,
                x(from),
                y - height,
                (x(to) - x(from)).max(1.0),
                r.revision,
                w.weight,
                w.since.0
            );
        }
        let state = format!("{:?}", r.state);
        let _ = write!(
            svg,
            "<g class=\"lane\" data-revision=\"{}\"><text x=\"4\" y=\"{:.1}\" class=\"tick\">r{}</text>\
             <line class=\"lane-line\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
             <rect class=\"state {}\" x=\"{:.1}\" y=\"{:.1}\" width=\"8\" height=\"14\"><title>r{} {} since {}: {}</title></rect></g>",
            r.revision,
            y + 4.0,
            r.revision,
            W - 20.0,
            esc(&state.to_lowercase()),
            x(r.since.0.as_second()) - 4.0,
            y - 7.0,
            r.revision,
            esc(&state),
            r.since.0,
            esc(r.reason.as_deref().unwrap_or_default())
        );
    }
    for m in monitors {
        let Some(s) = &m.status else { continue };
        for h in &s.history {
            let Some(revision) = h.revision.filter(|r| order.contains(r)) else {
                continue;
            };
            let _ = write!(
                svg,
                "<circle class=\"evaluation {}\" data-revision=\"{revision}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{} {}: {} ({})</title></circle>",
                h.verdict.as_str().to_lowercase(),
                x(h.time.0.as_second()),
                row(revision),
                esc(&m.name_any()),
                h.time.0,
                h.verdict.as_str(),
                esc(&h.reason)
            );
        }
        for a in &s.actions {
            let Some(revision) = a.revision.filter(|r| order.contains(r)) else {
                continue;
            };
            let cx = x(a.time.0.as_second());
            let y = row(revision);
            let action = serde_json::to_value(a.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = write!(
                svg,
                "<g class=\"action {}\" data-revision=\"{revision}\"><path d=\"M{:.1} {:.1} l6 10 l-12 0 z\"/><title>{} {action} of r{revision} at {}: {}</title></g>",
                esc(&action),
                cx,
                y - 12.0,
                esc(&m.name_any()),
                a.time.0,
                esc(&a.reason)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The input features that drifted most in an evaluation (the `inputDrift.<feature>` values,
/// largest first), as horizontal bars against the `inputDrift` maximum: a `g class="feature"`
/// per feature with its `data-feature` and `data-drift`, its bar `class="bar over"` when above
/// the maximum, and a `line class="threshold"`. Empty without such values.
pub fn feature_drift_chart(e: &Evaluation) -> String {
    use modelops_core::monitor::evaluate::keys;
    let prefix = format!("{}.", keys::INPUT_DRIFT);
    let mut features: Vec<(&str, f64)> = e
        .values
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?, *v)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    if features.is_empty() {
        return String::new();
    }
    features.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    const LABEL: f64 = 130.0;
    const BARS: f64 = 300.0;
    const ROW: f64 = 18.0;
    let max = e.thresholds.get(keys::INPUT_DRIFT).copied();
    let top = features[0]
        .1
        .max(max.unwrap_or(0.0) * 1.25)
        .max(f64::MIN_POSITIVE);
    let scale = |v: f64| (v.max(0.0) / top * BARS).min(BARS);
    let height = ROW * features.len() as f64 + 20.0;
    let width = LABEL + BARS + 70.0;
    let mut svg = format!(
        "<figure class=\"feature-drift\"><figcaption>input drift per feature, against the \
         Dataset profile{}</figcaption><svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" \
         height=\"{height}\" role=\"img\">",
        max.map(|m| format!(" (max {})", number(m)))
            .unwrap_or_default()
    );
    for (i, (feature, value)) in features.iter().enumerate() {
        let y = ROW * i as f64 + 4.0;
        let over = max.is_some_and(|m| *value > m);
        let _ = write!(
            svg,
            "<g class=\"feature\" data-feature=\"{0}\" data-drift=\"{1}\"><text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{0}</text><rect class=\"bar{4}\" x=\"{5}\" y=\"{y:.1}\" width=\"{6:.1}\" height=\"{7:.1}\"/><text class=\"value\" x=\"{8:.1}\" y=\"{3:.1}\">{1}</text></g>",
            esc(feature),
            number(*value),
            LABEL - 6.0,
            y + ROW - 6.0,
            if over { " over" } else { "" },
            LABEL,
            scale(*value),
            ROW - 4.0,
            LABEL + scale(*value) + 4.0,
        );
    }
    if let Some(m) = max {
        let x = LABEL + scale(m);
        let _ = write!(
            svg,
            "<line class=\"threshold\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"0\" y2=\"{:.1}\"/>",
            height - 14.0
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// A Monitor's evidence: its last evaluation (values against thresholds, the worst feature of a
/// drift), its verdict on each revision, and what it did.
fn monitor_evidence(m: &Monitor) -> String {
    let status = m.status.clone().unwrap_or_default();
    let mut out = format!(
        "<section class=\"monitor\" data-name=\"{}\"><h2>Monitor {} {}</h2>",
        esc(&m.name_any()),
        esc(&m.name_any()),
        monitor_state(m)
    );
    match &status.last_evaluation {
        Some(e) => {
            let _ = write!(
                out,
                "<p>last evaluation {} of revision {}: {} {}</p>",
                e.time.0,
                e.revision
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "-".into()),
                esc(&e.reason),
                esc(e.message.as_deref().unwrap_or_default())
            );
            let mut rows = String::from(
                "<table class=\"evidence\"><tr><th>Metric</th><th>Value</th><th>Threshold</th></tr>",
            );
            let names: BTreeMap<&String, ()> = e
                .values
                .keys()
                .chain(e.thresholds.keys())
                .map(|k| (k, ()))
                .collect();
            for name in names.keys() {
                let _ = write!(
                    rows,
                    "<tr data-metric=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(name),
                    esc(name),
                    e.values
                        .get(*name)
                        .map(|v| number(*v))
                        .unwrap_or_else(|| "-".into()),
                    e.thresholds
                        .get(*name)
                        .map(|v| number(*v))
                        .unwrap_or_else(|| "-".into())
                );
            }
            rows.push_str("</table>");
            out.push_str(&rows);
            out.push_str(&feature_drift_chart(e));
            if let Some(feature) = &e.worst_feature {
                let _ = write!(
                    out,
                    "<p class=\"drift\">most drifted feature: <code>{}</code> ({})</p>",
                    esc(feature),
                    esc(e.worst_metric.as_deref().unwrap_or_default())
                );
            }
        }
        None => out.push_str("<p class=\"empty\">No evaluation yet.</p>"),
    }
    if !status.revisions.is_empty() {
        out.push_str("<table class=\"verdicts\"><tr><th>Revision</th><th>Verdict</th><th>Reason</th><th>Values</th></tr>");
        for v in &status.revisions {
            let values: Vec<String> = v
                .values
                .iter()
                .map(|(k, x)| format!("{}={}", esc(k), number(*x)))
                .collect();
            let _ = write!(
                out,
                "<tr data-revision=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                v.revision,
                v.revision,
                verdict_badge(v.verdict),
                esc(&v.reason),
                values.join(", ")
            );
        }
        out.push_str("</table>");
    }
    if !status.actions.is_empty() {
        out.push_str("<ul class=\"actions\">");
        for a in &status.actions {
            let action = serde_json::to_value(a.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = write!(
                out,
                "<li class=\"action {}\">{} {} of revision {}: {}</li>",
                esc(&action),
                a.time.0,
                esc(&action),
                a.revision
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "-".into()),
                esc(&a.reason)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
        serde_json::from_value(value).unwrap()
    }

    /// A namespace after a rollback; a hostile tenant's message included.
    fn view() -> View {
        let meta = |name: &str| json!({"name": name, "namespace": "team-a", "creationTimestamp": "2026-12-03T11:50:00Z"});
        let ready = json!([{"type": "Ready", "status": "True", "reason": "Prepared",
                            "message": "<script>alert(1)</script>", "lastTransitionTime": "2026-12-03T11:51:00Z"}]);
        let dataset: Dataset = object(json!({
            "apiVersion": "modelops.dev/v1alpha1", "kind": "Dataset", "metadata": meta("digits"),
            "spec": {"source": {"configMap": {"name": "d", "key": "digits.csv"}}, "format": "csv", "schema": {"label": "label"}},
            "status": {"conditions": ready, "rows": {"total": 1797, "train": 1439, "validation": 179, "test": 179, "rejected": 3},
                       "classes": ["0", "1"], "digest": "sha256:00"}
        }));
        let job: TrainingJob = object(json!({
            "apiVersion": "modelops.dev/v1alpha1", "kind": "TrainingJob", "metadata": meta("good"),
            "spec": {"datasetRef": {"name": "digits"}, "task": "classification", "model": {"architecture": "mlp"}},
            "status": {"phase": "Succeeded", "attempts": 1,
                       "curves": {"epochs": [1, 2, 3], "trainLoss": [1.0, 0.5, 0.25],
                                  "validationLoss": [1.1, 0.6, 0.3], "validationAccuracy": [0.5, 0.8, 0.9]},
                       "model": {"uri": "s3://b/m", "digest": "sha256:aa", "architecture": "mlp",
                                 "datasetDigest": "sha256:00", "metrics": {"testAccuracy": 0.95}}}
        }));
        let md: ModelDeployment = object(json!({
            "apiVersion": "modelops.dev/v1alpha1", "kind": "ModelDeployment", "metadata": meta("digits"),
            "spec": {"model": {"trainingJobRef": {"name": "good"}}},
            "status": {"conditions": [{"type": "RolledBack", "status": "True", "reason": "AnalysisFailed",
                                       "message": "revision 2 rolled back", "lastTransitionTime": "2026-12-03T11:59:00Z"}],
                       "currentRevision": 2, "stableRevision": 1, "canaryWeight": 0,
                       "revisions": [
                           {"revision": 2, "modelDigest": "sha256:bb", "trainingJob": "bad", "state": "RolledBack",
                            "since": "2026-12-03T11:59:00Z", "reason": "MonitorFailed",
                            "weights": [{"weight": 20, "since": "2026-12-03T11:57:00Z"},
                                        {"weight": 50, "since": "2026-12-03T11:58:00Z"},
                                        {"weight": 0, "since": "2026-12-03T11:59:00Z"}]},
                           {"revision": 1, "modelDigest": "sha256:aa", "trainingJob": "good", "state": "Stable",
                            "since": "2026-12-03T11:55:00Z", "reason": "FirstRevision"}]}
        }));
        let monitor: Monitor = object(json!({
            "apiVersion": "modelops.dev/v1alpha1", "kind": "Monitor", "metadata": meta("guard"),
            "spec": {"targetRef": {"name": "digits"}, "metrics": [{"accuracy": {"min": 0.8}}]},
            "status": {
                "lastEvaluation": {"time": "2026-12-03T11:59:55Z", "revision": 1, "values": {"accuracy": 0.97},
                                   "thresholds": {"accuracy": 0.8}, "verdict": "Pass", "reason": "WithinThresholds"},
                "revisions": [{"revision": 2, "verdict": "Fail", "reason": "AccuracyBelowMinimum", "values": {"accuracy": 0.1}}],
                "history": [{"time": "2026-12-03T11:58:00Z", "revision": 2, "verdict": "Fail", "reason": "AccuracyBelowMinimum"},
                            {"time": "2026-12-03T11:59:50Z", "revision": 1, "verdict": "Pass", "reason": "WithinThresholds"}],
                "actions": [{"time": "2026-12-03T11:59:00Z", "action": "rollback", "revision": 2, "reason": "AccuracyBelowMinimum"}]}
        }));
        View {
            namespace: "team-a".into(),
            now: Some("2026-12-03T12:00:00Z".parse().unwrap()),
            datasets: vec![dataset],
            jobs: vec![job],
            deployments: vec![md],
            monitors: vec![monitor],
        }
    }

    #[test]
    fn a_training_job_has_one_point_per_epoch_in_each_curve() {
        let v = view();
        let page = trainingjob(&v, &v.jobs[0]);
        // Three series (two losses, one accuracy) of three epochs.
        assert_eq!(page.matches("class=\"point\"").count(), 9, "{page}");
        assert_eq!(page.matches("data-epoch=\"3\"").count(), 3);
        assert!(page.contains("data-series=\"validation accuracy\""));
        assert!(page.contains("sha256:aa") && page.contains("0.9500"));
        // Finished: nothing to refresh for.
        assert!(!page.contains("http-equiv=\"refresh\""));
    }

    #[test]
    fn a_rollback_is_marked_on_the_timeline() {
        let v = view();
        let page = modeldeployment(&v, &v.deployments[0]);
        assert!(
            page.contains("class=\"action rollback\" data-revision=\"2\""),
            "{page}"
        );
        assert!(page.contains("data-revision=\"2\" data-state=\"RolledBack\""));
        assert_eq!(page.matches("class=\"evaluation ").count(), 2);
        // The canary's weights as bands: 20 %, then 50 %, then none.
        for weight in [20, 50, 0] {
            assert!(
                page.contains(&format!(
                    "class=\"weight\" data-revision=\"2\" data-weight=\"{weight}\""
                )),
                "{page}"
            );
        }
        assert!(page.contains(
            "<tr data-metric=\"accuracy\"><td>accuracy</td><td>0.9700</td><td>0.8000</td></tr>"
        ));
        assert!(page.contains("http-equiv=\"refresh\""));
    }

    #[test]
    fn the_overview_links_the_pipeline_and_escapes_what_tenants_wrote() {
        let v = view();
        let page = overview(&v);
        assert!(page.contains("href=\"/namespaces/team-a/datasets/digits\""));
        assert!(page.contains("href=\"/namespaces/team-a/trainingjobs/good\""));
        assert!(page.contains("href=\"/namespaces/team-a/modeldeployments/digits\""));
        assert!(page.contains("<li class=\"pipeline\">"));
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
        let ds = dataset(&v, &v.datasets[0], None);
        assert!(
            ds.contains("data-rows=\"1439\"") && ds.contains("<td>3</td>"),
            "{ds}"
        );
        assert!(ds.contains("class=\"empty profile\""), "{ds}");
        let served = ServedProfile {
            profile: std::sync::Arc::new(modelops_api::profile::example_profile()),
            deployment: "digits".into(),
            revision: 2,
            data_digest: Some("sha256:old".into()),
        };
        let ds = dataset(&v, &v.datasets[0], Some(&served));
        let features = served.profile.features.len();
        assert_eq!(ds.matches("class=\"histogram\"").count(), features, "{ds}");
        let bins: usize = served
            .profile
            .features
            .iter()
            .map(|f| f.histogram.counts.len())
            .sum();
        assert_eq!(ds.matches("class=\"bin\"").count(), bins, "{ds}");
        assert!(ds.contains("as revision 2 of digits serves it"), "{ds}");
    }

    #[test]
    fn drift_per_feature_is_drawn_largest_first_against_the_maximum() {
        let evaluation: Evaluation = object(json!({
            "time": "2026-12-03T12:00:00Z", "verdict": "Fail", "reason": "InputDriftAboveMaximum",
            "values": {"inputDrift": 1.8, "inputDrift.pixel_20": 1.8, "inputDrift.pixel_3": 0.1,
                       "inputDrift.<b>": 0.7, "accuracy": 0.9},
            "thresholds": {"inputDrift": 0.5}
        }));
        let chart = feature_drift_chart(&evaluation);
        let order: Vec<&str> = chart
            .split("data-feature=\"")
            .skip(1)
            .map(|rest| &rest[..rest.find('"').unwrap()])
            .collect();
        assert_eq!(order, ["pixel_20", "&lt;b&gt;", "pixel_3"], "{chart}");
        assert_eq!(chart.matches("class=\"bar over\"").count(), 2, "{chart}");
        assert_eq!(chart.matches("class=\"threshold\"").count(), 1, "{chart}");
        assert!(chart.contains("(max 0.5"), "{chart}");
        // Without per-feature values (an accuracy Monitor) there is no chart.
        let mut accuracy = evaluation;
        accuracy.values.retain(|k, _| k == "accuracy");
        assert_eq!(feature_drift_chart(&accuracy), "");
    }

    #[test]
    fn a_chart_without_epochs_says_so() {
        assert!(curve_chart("x", &[], &[("a", &[])]).contains("No finished epoch"));
        // Misaligned series are left out rather than drawn wrong.
        assert!(curve_chart("x", &[1, 2], &[("a", &[1.0])]).contains("No finished epoch"));
    }
}
