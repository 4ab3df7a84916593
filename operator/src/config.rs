//! The operator's configuration: where workers come from and where artifacts live. Set by flags
//! (see `main.rs`), which the chart fills from its values.

use std::path::PathBuf;

/// How the per-namespace artifact claim is provided. Worker and serving pods run in the
/// namespace of the object they work for, and a claim can only be mounted in its own namespace,
/// so every namespace that has modelops objects gets a claim named [`ArtifactsConfig::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactsProvisioning {
    /// A claim of this StorageClass (it must support ReadWriteMany, e.g. NFS or CephFS) created
    /// in each namespace; every claim gets its own volume.
    StorageClass {
        /// The StorageClass name.
        class: String,
        /// The requested size, e.g. `20Gi`.
        size: String,
    },
    /// A `hostPath` PersistentVolume per namespace, all on the same node folder, each bound to
    /// that namespace's claim: for one-node clusters such as the test bed. The operator's own
    /// claim points at the same folder, so it sees every namespace's artifacts.
    HostPath {
        /// The folder on the node.
        path: String,
    },
    /// The claims exist already (made by an administrator); the operator only uses them.
    Existing,
}

/// Artifact store settings.
#[derive(Debug, Clone)]
pub struct ArtifactsConfig {
    /// The claim's name in every namespace.
    pub claim: String,
    /// How claims come to exist.
    pub provisioning: ArtifactsProvisioning,
    /// Where the operator itself sees the artifact store (its own mount), to read progress files,
    /// profiles and model cards.
    pub local_dir: PathBuf,
}

/// Everything the controllers need to know about their environment. (No `Debug`: it holds a key.)
#[derive(Clone)]
pub struct OperatorConfig {
    /// The worker image for CPU pods.
    pub worker_image: String,
    /// The worker image for pods that request GPUs (it carries libtorch's CUDA libraries).
    pub worker_gpu_image: String,
    /// `imagePullPolicy` of worker and serving pods.
    pub image_pull_policy: String,
    /// The artifact store.
    pub artifacts: ArtifactsConfig,
    /// The key from which every ModelDeployment's feedback key is derived (see
    /// `Context::feedback_key`).
    pub feedback_master_key: Vec<u8>,
}

impl OperatorConfig {
    /// A configuration for tests: the test bed's images, a host-path store under `dir`.
    pub fn for_tests(dir: PathBuf) -> Self {
        Self {
            worker_image: "modelops/worker:dev".into(),
            worker_gpu_image: "modelops/worker:dev".into(),
            image_pull_policy: "IfNotPresent".into(),
            artifacts: ArtifactsConfig {
                claim: modelops_api::workorder::DEFAULT_ARTIFACTS_CLAIM.into(),
                provisioning: ArtifactsProvisioning::HostPath {
                    path: dir.display().to_string(),
                },
                local_dir: dir,
            },
            feedback_master_key: b"modelops-tests".to_vec(),
        }
    }
}
