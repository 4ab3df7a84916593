//! The operator's configuration: where workers come from and where artifacts live. Set by flags
//! (see `main.rs`), which the chart fills from its values.

use modelops_api::store::{
    ArtifactUri, NAMESPACE_PLACEHOLDER, Scheme, check_root_template, owner_of, root_for,
};

/// How the per-namespace artifact claim of a `pvc://` store is provided. Worker and serving
/// pods run in the namespace of the object they work for, and a claim can only be mounted in its
/// own namespace, so every namespace that has modelops objects gets the claim the root names.
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
    /// A `hostPath` PersistentVolume per namespace, each on its own subfolder
    /// `<path>/<namespace>` of the node folder and bound to that namespace's claim: for
    /// one-node clusters. A namespace's pods see only their own subfolder.
    HostPath {
        /// The node folder.
        path: String,
    },
    /// The claims exist already (made by an administrator); the operator only uses them.
    Existing,
}

/// Artifact store settings (docs/artifacts.md).
#[derive(Debug, Clone)]
pub struct ArtifactsConfig {
    /// The root template: each namespace's root is this with `{namespace}` replaced
    /// (`s3://modelops/{namespace}`, or `pvc://<claim>` for a claim per namespace).
    pub root: String,
    /// For `s3://`: the Secret in each workload namespace whose keys worker and serving pods get
    /// as environment variables.
    pub secret: String,
    /// For `pvc://`: how the claims come to exist.
    pub provisioning: ArtifactsProvisioning,
}

impl ArtifactsConfig {
    /// A store of `root`, checked.
    pub fn new(
        root: &str,
        secret: &str,
        provisioning: ArtifactsProvisioning,
    ) -> Result<Self, String> {
        check_root_template(root)?;
        Ok(Self {
            root: root.to_owned(),
            secret: secret.to_owned(),
            provisioning,
        })
    }

    /// The root of `namespace`.
    pub fn root_for(&self, namespace: &str) -> ArtifactUri {
        root_for(&self.root, namespace).expect("a checked template gives a valid root")
    }

    /// The URI of `path` below the root of `namespace`.
    pub fn uri(&self, namespace: &str, path: &str) -> String {
        self.root_for(namespace).join(path).to_string()
    }

    /// The claim every namespace mounts, when the store is `pvc://`.
    pub fn claim(&self) -> Option<String> {
        let root = ArtifactUri::parse(&self.root.replace(NAMESPACE_PLACEHOLDER, "ns")).ok()?;
        (root.scheme == Scheme::Pvc).then(|| self.root_for("ns").container)
    }

    /// Checks a URI a user wrote in an object of `namespace` (a ModelDeployment's artifact, a
    /// Dataset source): well formed, of the store's scheme, and not in another namespace's
    /// root. Says what is wrong, naming `field`.
    pub fn check_user_uri(&self, namespace: &str, field: &str, uri: &str) -> Result<(), String> {
        let parsed = ArtifactUri::parse(uri).map_err(|e| format!("{field}: {e}"))?;
        let root = self.root_for(namespace);
        if parsed.scheme != root.scheme {
            return Err(format!(
                "{field}: {uri} is a {}:// URI, but this cluster's artifact store is {}://; use a URI in {root}",
                parsed.scheme.as_str(),
                root.scheme.as_str()
            ));
        }
        if parsed.scheme == Scheme::Pvc && parsed.container != root.container {
            return Err(format!(
                "{field}: {uri} is on claim {}, but pods mount only {}; use a URI in {root}",
                parsed.container, root.container
            ));
        }
        match owner_of(&self.root, &parsed) {
            Some(owner) if owner != namespace => Err(format!(
                "{field}: {uri} is in the artifact store of namespace {owner}, not of {namespace}; a namespace may only use its own store ({root})"
            )),
            _ => Ok(()),
        }
    }
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
    /// How worker and serving pods log: `text` or `json` (`MODELOPS_LOG_FORMAT` in their pods).
    pub worker_log_format: String,
    /// The artifact store.
    pub artifacts: ArtifactsConfig,
    /// The key from which every ModelDeployment's feedback key is derived (see
    /// `Context::feedback_key`).
    pub feedback_master_key: Vec<u8>,
    /// What `spec.template` may name (images, ServiceAccounts, priority classes).
    pub policy: modelops_core::policy::WorkloadPolicy,
    /// The namespaces whose objects the operator reconciles; empty: every namespace.
    pub watch_namespaces: Vec<String>,
}

impl OperatorConfig {
    /// A configuration for tests: the test bed's images, an S3 store with a prefix per
    /// namespace.
    pub fn for_tests() -> Self {
        Self {
            worker_image: "modelops/worker:dev".into(),
            worker_gpu_image: "modelops/worker:dev".into(),
            image_pull_policy: "IfNotPresent".into(),
            worker_log_format: "text".into(),
            policy: modelops_core::policy::WorkloadPolicy {
                images: vec!["modelops/worker:dev".into()],
                ..Default::default()
            },
            watch_namespaces: Vec::new(),
            artifacts: ArtifactsConfig::new(
                "s3://modelops/{namespace}",
                modelops_api::workorder::DEFAULT_ARTIFACTS_SECRET,
                ArtifactsProvisioning::Existing,
            )
            .expect("a valid root"),
            feedback_master_key: b"modelops-tests".to_vec(),
        }
    }

    /// The same with a `pvc://` store on host folders under `path`.
    pub fn for_tests_on_host_path(path: &str) -> Self {
        Self {
            artifacts: ArtifactsConfig::new(
                "pvc://modelops-artifacts",
                modelops_api::workorder::DEFAULT_ARTIFACTS_SECRET,
                ArtifactsProvisioning::HostPath {
                    path: path.to_owned(),
                },
            )
            .expect("a valid root"),
            ..Self::for_tests()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_uris_must_be_in_the_namespaces_own_store() {
        let config = OperatorConfig::for_tests().artifacts;
        assert!(
            config
                .check_user_uri(
                    "team-b",
                    "spec.model.artifact.uri",
                    "s3://modelops/team-b/models/x"
                )
                .is_ok()
        );
        // Outside every namespace's root: the store's own rules decide (a shared bucket).
        assert!(
            config
                .check_user_uri("team-b", "f", "s3://public-data/x.csv")
                .is_ok()
        );
        let error = config
            .check_user_uri(
                "team-b",
                "spec.model.artifact.uri",
                "s3://modelops/team-a/models/x",
            )
            .unwrap_err();
        assert!(error.contains("spec.model.artifact.uri"), "{error}");
        assert!(error.contains("namespace team-a"), "{error}");
        let error = config
            .check_user_uri("team-b", "f", "pvc://modelops-artifacts/x")
            .unwrap_err();
        assert!(error.contains("s3://modelops/team-b"), "{error}");
        let error = config
            .check_user_uri("team-b", "f", "s3://modelops/team-a/../team-b")
            .unwrap_err();
        assert!(error.contains("'..'"), "{error}");
        assert_eq!(config.claim(), None);
        let pvc = OperatorConfig::for_tests_on_host_path("/data").artifacts;
        assert_eq!(pvc.claim().as_deref(), Some("modelops-artifacts"));
        assert_eq!(
            pvc.uri("ns", "models/x"),
            "pvc://modelops-artifacts/models/x"
        );
        assert!(pvc.check_user_uri("ns", "f", "pvc://other/x").is_err());
    }
}
