//! Artifact URIs: where prepared data, checkpoints and models live (docs/decisions.md,
//! "Artifact store").
//!
//! Two schemes:
//! - `s3://<bucket>/<key>`: an S3-compatible object store (AWS S3, GCS interop, SeaweedFS, ...),
//!   reached with the credentials of the workload namespace's Secret;
//! - `pvc://<claim>/<path>`: a file on the namespace's PersistentVolumeClaim (one-node clusters),
//!   mounted at [`crate::workorder::ARTIFACTS_MOUNT_PATH`] in the pods that use it.
//!
//! Each namespace owns one location, its *root*, made from the operator's root template by
//! replacing `{namespace}` ([`root_for`]); every artifact the operator has written for a
//! namespace is below that root ([`crate::workorder::layout`] gives the paths under it).

use std::fmt;

/// The placeholder of the root template.
pub const NAMESPACE_PLACEHOLDER: &str = "{namespace}";

/// The scheme of an artifact URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `s3://`
    S3,
    /// `pvc://`
    Pvc,
}

impl Scheme {
    /// `s3` or `pvc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::Pvc => "pvc",
        }
    }
}

/// A parsed artifact URI: a scheme, a container (bucket or claim) and a key (a `/`-separated
/// path, possibly empty for the container's root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactUri {
    /// `s3` or `pvc`.
    pub scheme: Scheme,
    /// The bucket (`s3`) or the claim (`pvc`).
    pub container: String,
    /// The path inside it, without leading or trailing `/`.
    pub key: String,
}

impl fmt::Display for ArtifactUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.container)?;
        if !self.key.is_empty() {
            write!(f, "/{}", self.key)?;
        }
        Ok(())
    }
}

impl ArtifactUri {
    /// Parses `s3://bucket/key` or `pvc://claim/path`. The path must be plain: no empty, `.` or
    /// `..` segments, no backslashes or control characters, so that a URI never climbs out of
    /// its container or means two things.
    pub fn parse(uri: &str) -> Result<Self, String> {
        let (scheme, rest) = if let Some(rest) = uri.strip_prefix("s3://") {
            (Scheme::S3, rest)
        } else if let Some(rest) = uri.strip_prefix("pvc://") {
            (Scheme::Pvc, rest)
        } else {
            return Err(format!(
                "{uri:?} is not an artifact URI: use s3://<bucket>/<path> or pvc://<claim>/<path>"
            ));
        };
        let (container, key) = rest.split_once('/').unwrap_or((rest, ""));
        let key = key.trim_end_matches('/');
        let valid_container = !container.is_empty()
            && container.len() <= 253
            && container
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !container.starts_with(['-', '.'])
            && !container.ends_with(['-', '.']);
        if !valid_container {
            return Err(format!(
                "{uri:?}: {container:?} is not a valid {} name (lowercase letters, digits, '-' and '.')",
                match scheme {
                    Scheme::S3 => "bucket",
                    Scheme::Pvc => "claim",
                }
            ));
        }
        if !key.is_empty() {
            for segment in key.split('/') {
                if segment.is_empty() || segment == "." || segment == ".." {
                    return Err(format!(
                        "{uri:?}: the path has an empty, '.' or '..' segment; write a plain path"
                    ));
                }
                if segment.chars().any(|c| c.is_control() || c == '\\') {
                    return Err(format!(
                        "{uri:?}: the path has a control character or a backslash"
                    ));
                }
            }
        }
        Ok(Self {
            scheme,
            container: container.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The URI of `path` below this one (`path` is `/`-separated, relative).
    pub fn join(&self, path: &str) -> Self {
        let path = path.trim_matches('/');
        let key = match (self.key.is_empty(), path.is_empty()) {
            (_, true) => self.key.clone(),
            (true, false) => path.to_owned(),
            (false, false) => format!("{}/{path}", self.key),
        };
        Self {
            key,
            ..self.clone()
        }
    }

    /// Whether `self` is `other` or below it (same scheme and container, key under its key).
    pub fn is_within(&self, other: &ArtifactUri) -> bool {
        self.scheme == other.scheme
            && self.container == other.container
            && (other.key.is_empty()
                || self.key == other.key
                || self
                    .key
                    .strip_prefix(&other.key)
                    .is_some_and(|rest| rest.starts_with('/')))
    }

    /// The path of this URI relative to `root`, when it is within it.
    pub fn relative_to(&self, root: &ArtifactUri) -> Option<String> {
        if !self.is_within(root) {
            return None;
        }
        Some(
            self.key[root.key.len()..]
                .trim_start_matches('/')
                .to_owned(),
        )
    }
}

/// Checks a root template: an artifact URI with at most one `{namespace}`, which may stand for
/// a whole path segment or part of one (`s3://modelops/{namespace}`,
/// `s3://modelops-{namespace}`, `pvc://modelops-artifacts`).
pub fn check_root_template(template: &str) -> Result<(), String> {
    if template.matches(NAMESPACE_PLACEHOLDER).count() > 1 {
        return Err(format!(
            "artifact root {template:?} has {NAMESPACE_PLACEHOLDER} more than once"
        ));
    }
    ArtifactUri::parse(&template.replace(NAMESPACE_PLACEHOLDER, "ns")).map(|_| ())
}

/// The root of `namespace`: the template with `{namespace}` replaced.
pub fn root_for(template: &str, namespace: &str) -> Result<ArtifactUri, String> {
    ArtifactUri::parse(&template.replace(NAMESPACE_PLACEHOLDER, namespace))
}

/// The namespace whose root holds `uri`, when the template has `{namespace}` and `uri` is in
/// such a root; `None` for a URI outside every namespace's root (or a template without
/// `{namespace}`, where every namespace has a store of its own).
pub fn owner_of(template: &str, uri: &ArtifactUri) -> Option<String> {
    let (before, after) = template.split_once(NAMESPACE_PLACEHOLDER)?;
    let text = uri.to_string();
    let rest = text.strip_prefix(before)?;
    // A namespace is a DNS label: the candidate ends where the label's characters end.
    let end = rest
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    // The shortest label that, put into the template, gives a root holding the URI.
    (1..=end.min(63))
        .filter(|&len| !rest[..len].ends_with('-'))
        .map(|len| &rest[..len])
        .find(|namespace| {
            rest[namespace.len()..].starts_with(after)
                && root_for(template, namespace).is_ok_and(|root| uri.is_within(&root))
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_print_back() {
        for uri in [
            "s3://modelops/team-a/models/ab",
            "s3://bucket",
            "pvc://modelops-artifacts/datasets/digits/0a",
        ] {
            assert_eq!(ArtifactUri::parse(uri).unwrap().to_string(), uri);
        }
        let uri = ArtifactUri::parse("s3://b/x/y/").unwrap();
        assert_eq!(uri.key, "x/y");
        assert_eq!(uri.join("z/w.json").to_string(), "s3://b/x/y/z/w.json");
        assert_eq!(
            ArtifactUri::parse("s3://b").unwrap().join("/k").to_string(),
            "s3://b/k"
        );
    }

    #[test]
    fn bad_uris_are_refused_with_the_reason() {
        for (uri, says) in [
            ("http://x/y", "not an artifact URI"),
            ("s3:///key", "not a valid bucket"),
            ("s3://Bucket/key", "not a valid bucket"),
            ("pvc://claim_1/x", "not a valid claim"),
            ("s3://b/a/../c", "'..'"),
            ("s3://b/a//c", "empty"),
            ("s3://b/./c", "'.'"),
            ("s3://b/a\\c", "backslash"),
            ("s3://b/a\nc", "control"),
        ] {
            let error = ArtifactUri::parse(uri).unwrap_err();
            assert!(error.contains(says), "{uri}: {error}");
        }
    }

    #[test]
    fn within_compares_whole_segments() {
        let root = ArtifactUri::parse("s3://modelops/team-a").unwrap();
        let inside = ArtifactUri::parse("s3://modelops/team-a/models/x").unwrap();
        let sibling = ArtifactUri::parse("s3://modelops/team-ab/models/x").unwrap();
        assert!(inside.is_within(&root));
        assert!(root.is_within(&root));
        assert!(!sibling.is_within(&root));
        assert_eq!(inside.relative_to(&root).as_deref(), Some("models/x"));
        assert!(
            !ArtifactUri::parse("pvc://modelops/team-a/x")
                .unwrap()
                .is_within(&root)
        );
        let bucket = ArtifactUri::parse("s3://modelops").unwrap();
        assert!(inside.is_within(&bucket));
    }

    #[test]
    fn templates_give_each_namespace_its_root_and_find_the_owner() {
        assert!(check_root_template("s3://modelops/{namespace}").is_ok());
        assert!(check_root_template("s3://modelops-{namespace}/artifacts").is_ok());
        assert!(check_root_template("pvc://modelops-artifacts").is_ok());
        assert!(check_root_template("s3://{namespace}/{namespace}").is_err());
        assert!(check_root_template("gs://b/{namespace}").is_err());
        assert_eq!(
            root_for("s3://modelops/{namespace}", "team-a")
                .unwrap()
                .to_string(),
            "s3://modelops/team-a"
        );
        let uri = |u: &str| ArtifactUri::parse(u).unwrap();
        let prefix = "s3://modelops/{namespace}";
        assert_eq!(
            owner_of(prefix, &uri("s3://modelops/team-a/models/x")).as_deref(),
            Some("team-a")
        );
        assert_eq!(
            owner_of(prefix, &uri("s3://modelops/team-a")).as_deref(),
            Some("team-a")
        );
        assert_eq!(owner_of(prefix, &uri("s3://other/team-a/x")), None);
        let bucket = "s3://modelops-{namespace}/artifacts";
        assert_eq!(
            owner_of(bucket, &uri("s3://modelops-team-b/artifacts/models/x")).as_deref(),
            Some("team-b")
        );
        assert_eq!(
            owner_of(bucket, &uri("s3://modelops-team-b/elsewhere")),
            None
        );
        assert_eq!(
            owner_of(
                "pvc://modelops-artifacts",
                &uri("pvc://modelops-artifacts/x")
            ),
            None
        );
    }
}
