//! The modelops operator binary: parses its flags, then runs the controllers and a small HTTP
//! server for `/metrics`, `/healthz` and `/readyz`.
#![forbid(unsafe_code)]

use clap::Parser;
use modelops_core::policy::WorkloadPolicy;
use modelops_operator::config::{ArtifactsConfig, ArtifactsProvisioning, OperatorConfig};
use modelops_operator::controllers::{self, Context};
use modelops_operator::leader;
use modelops_operator::metrics::Metrics;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Command-line flags of the operator (each also read from the environment variable named).
#[derive(Debug, Parser)]
#[command(name = "modelops-operator", version = modelops_operator::VERSION, about)]
struct Flags {
    /// Log filter, in `tracing_subscriber::EnvFilter` syntax.
    #[arg(long, env = "MODELOPS_LOG", default_value = "info")]
    log: String,
    /// How log lines are written: `text`, or `json` (one object per line, with the reconcile's
    /// kind, namespace, object name and generation as span fields).
    #[arg(long, env = "MODELOPS_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Where to serve `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "MODELOPS_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Where to serve the read-only web dashboard (for example `0.0.0.0:8090`); off without it.
    #[arg(long, env = "MODELOPS_DASHBOARD_ADDR")]
    dashboard_addr: Option<SocketAddr>,
    /// Who may see the dashboard: `none` (whoever reaches the port: reach it with
    /// `kubectl port-forward`) or `kubernetes` (a bearer token, checked by TokenReview, whose
    /// user may list the four kinds in the namespace, checked by SubjectAccessReview).
    #[arg(
        long,
        env = "MODELOPS_DASHBOARD_AUTH",
        value_enum,
        default_value = "none"
    )]
    dashboard_auth: modelops_operator::dashboard::Auth,
    /// The worker image of CPU pods.
    #[arg(
        long,
        env = "MODELOPS_WORKER_IMAGE",
        default_value = "modelops/worker:dev"
    )]
    worker_image: String,
    /// The worker image of pods that request GPUs (default: the worker image).
    #[arg(long, env = "MODELOPS_WORKER_GPU_IMAGE")]
    worker_gpu_image: Option<String>,
    /// How worker and serving pods write their logs: `text`, or `json` (one object per line,
    /// with the command's and step's spans).
    #[arg(long, env = "MODELOPS_WORKER_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    worker_log_format: String,
    /// `imagePullPolicy` of worker and serving pods.
    #[arg(
        long,
        env = "MODELOPS_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    image_pull_policy: String,
    /// The artifact store: each namespace's root is this with `{namespace}` replaced, e.g.
    /// `s3://modelops/{namespace}` (S3, credentials from --artifacts-secret) or
    /// `pvc://modelops-artifacts` (that claim in every namespace). See docs/artifacts.md.
    #[arg(
        long,
        env = "MODELOPS_ARTIFACTS_ROOT",
        default_value = "s3://modelops/{namespace}"
    )]
    artifacts_root: String,
    /// For an `s3://` store: the Secret in each workload namespace that holds the store's
    /// credentials and endpoint (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL,
    /// AWS_REGION).
    #[arg(
        long,
        env = "MODELOPS_ARTIFACTS_SECRET",
        default_value = "modelops-artifacts"
    )]
    artifacts_secret: String,
    /// For a `pvc://` store: create each namespace's claim with this StorageClass
    /// (ReadWriteMany).
    #[arg(
        long,
        env = "MODELOPS_ARTIFACTS_STORAGE_CLASS",
        conflicts_with = "artifacts_host_path"
    )]
    artifacts_storage_class: Option<String>,
    /// Size of the claims made with --artifacts-storage-class.
    #[arg(long, env = "MODELOPS_ARTIFACTS_SIZE", default_value = "20Gi")]
    artifacts_size: String,
    /// For a `pvc://` store: back each namespace's claim with a hostPath volume on its own
    /// subfolder of this node folder (one-node clusters).
    #[arg(long, env = "MODELOPS_ARTIFACTS_HOST_PATH")]
    artifacts_host_path: Option<String>,
    /// The master key of feedback ids (a file, e.g. a mounted Secret). Without one the operator
    /// makes a random key at start, and feedback ids issued before a restart stop verifying on
    /// revisions created after it.
    #[arg(long, env = "MODELOPS_FEEDBACK_KEY_FILE")]
    feedback_key_file: Option<PathBuf>,
    /// Images `spec.template.image` may name besides the worker images (comma-separated): an
    /// entry ending in `/`, `:` or `@` is a prefix, any other one image; `*` allows any.
    #[arg(long, env = "MODELOPS_ALLOWED_IMAGES", value_delimiter = ',')]
    allowed_images: Vec<String>,
    /// ServiceAccounts `spec.template.serviceAccountName` may name (comma-separated; `*`: any).
    #[arg(long, env = "MODELOPS_ALLOWED_SERVICE_ACCOUNTS", value_delimiter = ',')]
    allowed_service_accounts: Vec<String>,
    /// Priority classes `spec.template.priorityClassName` may name (comma-separated; `*`: any).
    #[arg(long, env = "MODELOPS_ALLOWED_PRIORITY_CLASSES", value_delimiter = ',')]
    allowed_priority_classes: Vec<String>,
    /// Prometheus base URLs a Monitor's `prometheus` metric may query (comma-separated; each
    /// allows itself and the paths below it; `*`: any). Empty: none.
    #[arg(
        long,
        env = "MODELOPS_ALLOWED_PROMETHEUS_ADDRESSES",
        value_delimiter = ','
    )]
    allowed_prometheus_addresses: Vec<String>,
    /// Reconcile the objects of these namespaces only (comma-separated), with no cluster-wide
    /// watch: the chart's `watchNamespaces` gives the operator Roles in them and no ClusterRole
    /// for workloads. Empty: every namespace.
    #[arg(long, env = "MODELOPS_WATCH_NAMESPACES", value_delimiter = ',')]
    watch_namespaces: Vec<String>,
    /// Elect a leader among the operator's replicas on the Lease `modelops-operator` in this
    /// namespace (the chart sets the operator's own); only the leader reconciles. Without it,
    /// this process reconciles at once: run one replica only.
    #[arg(long, env = "MODELOPS_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// This replica's name in the Lease (the chart sets the pod's name), to which each process
    /// adds a random number.
    #[arg(long, env = "POD_NAME", default_value = "modelops-operator")]
    identity: String,
}

impl Flags {
    fn feedback_master_key(&self) -> anyhow::Result<Vec<u8>> {
        use anyhow::Context as _;
        match &self.feedback_key_file {
            Some(path) => {
                let key = std::fs::read(path)
                    .with_context(|| format!("reading --feedback-key-file {}", path.display()))?;
                anyhow::ensure!(
                    key.len() >= 16,
                    "--feedback-key-file {}: the key must have at least 16 bytes",
                    path.display()
                );
                Ok(key)
            }
            None => {
                tracing::warn!(
                    "no --feedback-key-file: using a random feedback master key for this run"
                );
                let mut key = vec![0u8; 32];
                std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
                Ok(key)
            }
        }
    }

    fn config(&self) -> anyhow::Result<OperatorConfig> {
        let provisioning = match (&self.artifacts_storage_class, &self.artifacts_host_path) {
            (Some(class), _) => ArtifactsProvisioning::StorageClass {
                class: class.clone(),
                size: self.artifacts_size.clone(),
            },
            (None, Some(path)) => ArtifactsProvisioning::HostPath { path: path.clone() },
            (None, None) => ArtifactsProvisioning::Existing,
        };
        let worker_gpu_image = self
            .worker_gpu_image
            .clone()
            .unwrap_or_else(|| self.worker_image.clone());
        let nonempty = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|e| e.trim().to_owned())
                .filter(|e| !e.is_empty())
                .collect()
        };
        let mut images = vec![self.worker_image.clone(), worker_gpu_image.clone()];
        images.extend(nonempty(&self.allowed_images));
        images.dedup();
        Ok(OperatorConfig {
            feedback_master_key: self.feedback_master_key()?,
            watch_namespaces: nonempty(&self.watch_namespaces),
            policy: WorkloadPolicy {
                images,
                service_accounts: nonempty(&self.allowed_service_accounts),
                priority_classes: nonempty(&self.allowed_priority_classes),
                prometheus_addresses: nonempty(&self.allowed_prometheus_addresses),
            },
            worker_gpu_image,
            worker_image: self.worker_image.clone(),
            image_pull_policy: self.image_pull_policy.clone(),
            worker_log_format: self.worker_log_format.clone(),
            artifacts: ArtifactsConfig::new(
                &self.artifacts_root,
                &self.artifacts_secret,
                provisioning,
            )
            .map_err(|e| anyhow::anyhow!("--artifacts-root: {e}"))?,
        })
    }
}

fn main() -> anyhow::Result<()> {
    // Before the runtime starts its threads.
    modelops_operator::memory::configure();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    // One thread runs the tasks (decoding, reconciles) unless TOKIO_WORKER_THREADS says more:
    // the operator waits on the API server, and a second thread only woke up to find nothing
    // to do (bench/operator: idle CPU 1.13 -> 1.02 % of a core at 5,000 TrainingJobs, with no
    // fewer reconciles per second). Blocking work still gets threads of its own.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        runtime.worker_threads(1);
    }
    runtime.enable_all().build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    // One TLS provider for the process (kube's and the PromQL client's): ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let flags = Flags::parse();
    let logs =
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(&flags.log));
    if flags.log_format == "json" {
        logs.json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        logs.init();
    }
    let config = flags.config()?;
    // Not the whole config: it holds the feedback master key.
    tracing::info!(
        version = modelops_operator::VERSION,
        worker_image = %config.worker_image,
        namespaces = ?config.watch_namespaces,
        artifacts = ?config.artifacts,
        "modelops operator starting"
    );
    let client = kube::Client::try_default().await?;
    let metrics = Metrics::default();
    let heap = metrics.clone();
    let trimming = tokio::spawn(modelops_operator::memory::trim_periodically(
        move |figures| heap.set_heap(figures),
    ));
    let scope = config.watch_namespaces.clone();
    let ctx = Context::new(client, config, metrics.clone());
    // The dashboard, like the probes, is served by every replica: the leader from its caches,
    // the others by listing.
    let dashboard = match flags.dashboard_addr {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address).await?;
            let dashboard = modelops_operator::dashboard::Dashboard::new(
                ctx.clone(),
                flags.dashboard_auth,
                scope,
            );
            Some(tokio::spawn(modelops_operator::dashboard::serve(
                listener, dashboard,
            )))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(flags.metrics_addr).await?;
    // Probes and metrics are served by every replica, the leader or not.
    let server = tokio::spawn(modelops_operator::http::serve(listener, metrics.clone()));
    let result = match &flags.leader_election_namespace {
        None => {
            metrics.set_leading(true);
            controllers::run(ctx).await;
            Ok(())
        }
        Some(namespace) => {
            // Unique per process: a container restarted in the same pod is a new candidate,
            // not the holder it replaced.
            let mut nonce = [0u8; 4];
            std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut nonce)?;
            let identity = format!("{}-{}", flags.identity, u32::from_be_bytes(nonce));
            match leader::acquire(ctx.client.clone(), namespace, &identity).await? {
                None => Ok(()),
                Some(mut leadership) => {
                    metrics.set_leading(true);
                    let lost = tokio::select! {
                        () = controllers::run(ctx) => false,
                        () = leadership.lost() => true,
                    };
                    leadership.release().await;
                    if lost {
                        Err(anyhow::anyhow!(
                            "lost the lease {}: stopping, so that only one replica reconciles",
                            leader::LEASE_NAME
                        ))
                    } else {
                        Ok(())
                    }
                }
            }
        }
    };
    server.abort();
    trimming.abort();
    if let Some(dashboard) = dashboard {
        dashboard.abort();
    }
    tracing::info!("modelops operator stopped");
    result
}
