//! The artifact store as the worker uses it: `s3://` URIs through the `object_store` crate's S3
//! client (credentials and endpoint from the pod's environment, which the namespace's Secret
//! fills), `pvc://` URIs through its local-file backend on the claim mounted at
//! [`ARTIFACTS_MOUNT_PATH`].
//!
//! The worker keeps local copies in a scratch folder: it downloads what it reads before it
//! starts, and uploads what it writes, a folder's marker file ([`layout::DATASET_JSON`],
//! [`layout::MODEL_JSON`], [`layout::CHECKPOINT_JSON`]) last, so that a reader that finds the
//! marker finds the whole folder. The calls block: the worker's data and training code is
//! synchronous, so the store runs on a runtime of its own.

use crate::failure::Failure;
use anyhow::{Context, Result};
use futures::StreamExt;
use modelops_api::store::{ArtifactUri, Scheme};
use modelops_api::workorder::{ARTIFACTS_MOUNT_PATH, DEFAULT_ARTIFACTS_SECRET};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Environment variable naming where the `pvc://` claim is mounted (default
/// [`ARTIFACTS_MOUNT_PATH`]; tests point it at a temporary folder).
pub const ARTIFACTS_DIR_ENV: &str = "MODELOPS_ARTIFACTS_DIR";

/// Objects larger than this are uploaded in parts of this size.
const PART_SIZE: usize = 8 << 20;

/// The runtime on which every store call runs.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("store")
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

/// Where the `pvc://` claim is mounted in this process.
pub fn artifacts_dir() -> PathBuf {
    std::env::var(ARTIFACTS_DIR_ENV)
        .unwrap_or_else(|_| ARTIFACTS_MOUNT_PATH.to_owned())
        .into()
}

/// One location in a store: an object, or a folder (a key prefix).
#[derive(Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    uri: ArtifactUri,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.uri)
    }
}

/// A failure of the store, as the operator shows it: access refused (a Secret or a URI to fix),
/// a missing object, or a store that does not answer (retried).
fn store_failure(uri: &ArtifactUri, doing: &str, error: object_store::Error) -> anyhow::Error {
    use object_store::Error as E;
    // Some refusals (a listing's 403) come as a generic error that carries the HTTP status and
    // the S3 error document: read them as what they are.
    let refused = |error: &E| {
        let text = error_text(error);
        text.contains("403 Forbidden")
            || text.contains("401 Unauthorized")
            || text.contains("<Code>AccessDenied</Code>")
            || text.contains("<Code>InvalidAccessKeyId</Code>")
            || text.contains("<Code>SignatureDoesNotMatch</Code>")
    };
    let error = match error {
        E::Generic { store, source } => {
            let generic = E::Generic { store, source };
            if refused(&generic) {
                E::PermissionDenied {
                    path: uri.to_string(),
                    source: Box::new(std::io::Error::other(error_text(&generic))),
                }
            } else {
                generic
            }
        }
        other => other,
    };
    match error {
        E::NotFound { .. } => Failure::error(
            "ArtifactNotFound",
            false,
            format!("{doing} {uri}: no such object"),
        ),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => Failure::error(
            "ArtifactAccessDenied",
            false,
            format!(
                "{doing} {uri}: the store refused access ({error}); check the credentials in Secret {DEFAULT_ARTIFACTS_SECRET} (or the one the chart names) and that the URI is in this namespace's store"
            ),
        ),
        other => Failure::error(
            "ArtifactStoreUnavailable",
            true,
            format!("{doing} {uri}: {other}"),
        ),
    }
}

/// An error and its sources, as text.
fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Whether the pod has some way to sign S3 requests: keys, a web identity (IRSA) or a container
/// credentials endpoint.
fn has_s3_credentials() -> bool {
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ]
    .iter()
    .any(|key| std::env::var(key).is_ok_and(|v| !v.is_empty()))
}

impl Location {
    /// Opens `uri`: an S3 client for its bucket, or the local claim.
    pub fn open(uri: &str) -> Result<Self> {
        let parsed = ArtifactUri::parse(uri)
            .map_err(|message| Failure::error("InvalidArtifactUri", false, message))?;
        let store: Arc<dyn ObjectStore> = match parsed.scheme {
            Scheme::S3 => {
                if !has_s3_credentials() {
                    return Err(Failure::error(
                        "ArtifactCredentialsMissing",
                        false,
                        format!(
                            "{uri}: the pod has no AWS_ACCESS_KEY_ID; create Secret {DEFAULT_ARTIFACTS_SECRET} in the namespace with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL and AWS_REGION (docs/artifacts.md)"
                        ),
                    ));
                }
                let http = std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .is_ok_and(|e| e.starts_with("http://"));
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(&parsed.container)
                    .with_allow_http(http)
                    .build()
                    .map_err(|e| {
                        Failure::error(
                            "ArtifactStoreMisconfigured",
                            false,
                            format!("{uri}: {e}; check the AWS_* keys of the artifact Secret"),
                        )
                    })?;
                Arc::new(s3)
            }
            Scheme::Pvc => {
                let root = artifacts_dir();
                let local = LocalFileSystem::new_with_prefix(&root)
                    .with_context(|| format!("opening the artifact claim at {}", root.display()))?
                    .with_automatic_cleanup(true);
                Arc::new(local)
            }
        };
        let path = object_path(&parsed.key)?;
        Ok(Self {
            store,
            path,
            uri: parsed,
        })
    }

    /// The URI, as statuses show it.
    pub fn uri(&self) -> String {
        self.uri.to_string()
    }

    /// The location of `relative` below this one.
    pub fn child(&self, relative: &str) -> Result<Self> {
        let uri = self.uri.join(relative);
        Ok(Self {
            store: self.store.clone(),
            path: object_path(&uri.key)?,
            uri,
        })
    }

    /// The object's bytes, `None` when there is no such object; an object larger than `limit`
    /// is refused.
    pub fn get(&self, limit: u64) -> Result<Option<Vec<u8>>> {
        runtime().block_on(async {
            let result = match self.store.get(&self.path).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(error) => return Err(store_failure(&self.uri, "reading", error)),
            };
            if result.meta.size > limit {
                return Err(too_large(&self.uri, result.meta.size, limit));
            }
            let bytes = result
                .bytes()
                .await
                .map_err(|e| store_failure(&self.uri, "reading", e))?;
            Ok(Some(bytes.to_vec()))
        })
    }

    /// Whether the object exists.
    pub fn exists(&self) -> Result<bool> {
        runtime().block_on(async {
            match self.store.head(&self.path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(error) => Err(store_failure(&self.uri, "looking up", error)),
            }
        })
    }

    /// Writes the object in one request (atomic: readers see the old object or the new one).
    pub fn put(&self, bytes: Vec<u8>) -> Result<()> {
        runtime().block_on(async {
            self.store
                .put(&self.path, PutPayload::from(bytes))
                .await
                .map_err(|e| store_failure(&self.uri, "writing", e))?;
            Ok(())
        })
    }

    /// Uploads a local file, in parts when it is large, never holding more than a few parts in
    /// memory.
    pub fn put_file(&self, file: &Path) -> Result<()> {
        let size = std::fs::metadata(file)
            .with_context(|| format!("reading {}", file.display()))?
            .len();
        if size <= PART_SIZE as u64 {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            return self.put(bytes);
        }
        runtime().block_on(async {
            let upload = self
                .store
                .put_multipart(&self.path)
                .await
                .map_err(|e| store_failure(&self.uri, "writing", e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut input = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("reading {}", file.display()))?;
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                use tokio::io::AsyncReadExt;
                let read = input
                    .read(&mut buffer)
                    .await
                    .with_context(|| format!("reading {}", file.display()))?;
                if read == 0 {
                    break;
                }
                writer
                    .wait_for_capacity(4)
                    .await
                    .map_err(|e| store_failure(&self.uri, "writing", e))?;
                writer.write(&buffer[..read]);
            }
            writer
                .finish()
                .await
                .map_err(|e| store_failure(&self.uri, "writing", e))?;
            Ok(())
        })
    }

    /// Streams the object into a local file (created with its folder); `false` when there is no
    /// such object. An object larger than `limit` is refused before anything is written.
    pub fn download(&self, file: &Path, limit: u64) -> Result<bool> {
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        runtime().block_on(async {
            let result = match self.store.get(&self.path).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(error) => return Err(store_failure(&self.uri, "reading", error)),
            };
            if result.meta.size > limit {
                return Err(too_large(&self.uri, result.meta.size, limit));
            }
            let mut output = std::fs::File::create(file)
                .with_context(|| format!("creating {}", file.display()))?;
            let mut stream = result.into_stream();
            let mut written = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| store_failure(&self.uri, "reading", e))?;
                written += chunk.len() as u64;
                if written > limit {
                    return Err(too_large(&self.uri, written, limit));
                }
                output
                    .write_all(&chunk)
                    .with_context(|| format!("writing {}", file.display()))?;
            }
            Ok(true)
        })
    }

    /// The objects below this folder, as paths relative to it, with their sizes (at most
    /// `limit` of them).
    pub fn list(&self, limit: usize) -> Result<Vec<(String, u64)>> {
        runtime().block_on(async {
            let mut stream = self.store.list(Some(&self.path));
            let mut found = Vec::new();
            while let Some(meta) = stream.next().await {
                let meta = meta.map_err(|e| store_failure(&self.uri, "listing", e))?;
                let Some(relative) = meta.location.prefix_match(&self.path) else {
                    continue;
                };
                let relative = relative.map(|p| p.as_ref().to_owned()).collect::<Vec<_>>();
                found.push((relative.join("/"), meta.size));
                if found.len() > limit {
                    return Err(Failure::error(
                        "ArtifactTooLarge",
                        false,
                        format!("{} holds more than {limit} objects", self.uri),
                    ));
                }
            }
            found.sort();
            Ok(found)
        })
    }

    /// The names of the folders right below this one.
    pub fn folders(&self) -> Result<Vec<String>> {
        runtime().block_on(async {
            let listing = self
                .store
                .list_with_delimiter(Some(&self.path))
                .await
                .map_err(|e| store_failure(&self.uri, "listing", e))?;
            Ok(listing
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_owned))
                .collect())
        })
    }

    /// Deletes the object (a missing one is not an error).
    pub fn delete(&self) -> Result<()> {
        runtime().block_on(async {
            match self.store.delete(&self.path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(error) => Err(store_failure(&self.uri, "deleting", error)),
            }
        })
    }

    /// Copies every object below this folder into `local` (at most `max_objects`, each at most
    /// `limit` bytes); returns how many.
    pub fn download_folder(&self, local: &Path, max_objects: usize, limit: u64) -> Result<usize> {
        let objects = self.list(max_objects)?;
        for (name, _) in &objects {
            self.child(name)?.download(&local.join(name), limit)?;
        }
        Ok(objects.len())
    }

    /// Uploads the files of the local folder `local` (not its subfolders) below this folder,
    /// `last` after every other, so that its presence means the folder is complete.
    pub fn upload_folder(&self, local: &Path, last: &str) -> Result<()> {
        let mut names = Vec::new();
        for entry in
            std::fs::read_dir(local).with_context(|| format!("reading {}", local.display()))?
        {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort_by_key(|name| (name == last, name.clone()));
        for name in names {
            self.child(&name)?.put_file(&local.join(&name))?;
        }
        Ok(())
    }
}

fn too_large(uri: &ArtifactUri, size: u64, limit: u64) -> anyhow::Error {
    Failure::error(
        "ArtifactTooLarge",
        false,
        format!("{uri} is {size} bytes, more than the {limit} the worker reads"),
    )
}

fn object_path(key: &str) -> Result<ObjectPath> {
    ObjectPath::parse(key).map_err(|e| {
        Failure::error(
            "InvalidArtifactUri",
            false,
            format!("{key:?} is not a valid object path: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `pvc://` location on a temporary folder (the local-file backend of the same code).
    fn local(dir: &Path, uri: &str) -> Location {
        let parsed = ArtifactUri::parse(uri).unwrap();
        Location {
            store: Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap()),
            path: object_path(&parsed.key).unwrap(),
            uri: parsed,
        }
    }

    fn temporary(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("modelops-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn refusals_are_told_apart_from_an_unavailable_store() {
        let uri = ArtifactUri::parse("s3://modelops/team-a/datasets/x").unwrap();
        let reason = |error: object_store::Error| {
            store_failure(&uri, "listing", error)
                .downcast::<Failure>()
                .unwrap()
                .reason
        };
        let generic = |text: &str| object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::other(text.to_owned())),
        };
        assert_eq!(
            reason(generic(
                "Server returned non-2xx status code: 403 Forbidden: <Error><Code>AccessDenied</Code></Error>"
            )),
            "ArtifactAccessDenied"
        );
        assert_eq!(
            reason(generic("error sending request: connection refused")),
            "ArtifactStoreUnavailable"
        );
        assert_eq!(
            reason(object_store::Error::NotFound {
                path: "x".into(),
                source: Box::new(std::io::Error::other("404")),
            }),
            "ArtifactNotFound"
        );
    }

    #[test]
    fn objects_round_trip_and_missing_ones_are_none() {
        let dir = temporary("round");
        let root = local(&dir, "pvc://claim/ns");
        let object = root.child("a/b.json").unwrap();
        assert_eq!(object.uri(), "pvc://claim/ns/a/b.json");
        assert_eq!(object.get(100).unwrap(), None);
        assert!(!object.exists().unwrap());
        object.put(b"{}".to_vec()).unwrap();
        assert!(object.exists().unwrap());
        assert_eq!(object.get(100).unwrap().unwrap(), b"{}");
        let error = object.get(1).unwrap_err();
        assert!(
            format!("{error:#}").contains("more than the 1"),
            "{error:#}"
        );
        object.delete().unwrap();
        object.delete().unwrap();
        assert!(!object.exists().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn folders_upload_with_the_marker_last_and_download_back() {
        let dir = temporary("folders");
        let source = dir.join("source");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("model.json"), b"card").unwrap();
        std::fs::write(source.join("model.safetensors"), vec![7u8; PART_SIZE + 5]).unwrap();
        let store = dir.join("store");
        std::fs::create_dir_all(&store).unwrap();
        let folder = local(&store, "pvc://claim/models/ab");
        folder.upload_folder(&source, "model.json").unwrap();
        let listed = folder.list(10).unwrap();
        assert_eq!(
            listed,
            vec![
                ("model.json".to_owned(), 4),
                ("model.safetensors".to_owned(), PART_SIZE as u64 + 5)
            ]
        );
        let copy = dir.join("copy");
        assert_eq!(folder.download_folder(&copy, 10, 1 << 30).unwrap(), 2);
        assert_eq!(std::fs::read(copy.join("model.json")).unwrap(), b"card");
        assert_eq!(
            std::fs::metadata(copy.join("model.safetensors"))
                .unwrap()
                .len(),
            PART_SIZE as u64 + 5
        );
        let root = local(&store, "pvc://claim/models");
        assert_eq!(root.folders().unwrap(), vec!["ab".to_owned()]);
        assert!(folder.list(1).is_err(), "more objects than the limit");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
