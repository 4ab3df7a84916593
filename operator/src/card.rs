//! The model card (`model.json`) as the operator reads it: for a search's best trial, whose Job
//! (and so its termination message) may be gone by the time the search ends, the model is read
//! back from its folder on the artifact volume.
//!
//! The training pod writes the card with the same type, `modelops_api::card::ModelCard`, so a
//! card that does not read, or that describes other weights than its folder's digest, is an
//! error naming the file, never a guess (a wrong architecture in the status would mislead every
//! ModelDeployment of the model).

use crate::config::ArtifactsConfig;
use modelops_api::card::ModelCard;
use modelops_api::trainingjob::ModelArtifact;
use modelops_api::workorder::layout;
use std::path::Path;

/// Why a model card could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The file could not be read.
    #[error("cannot read model card {path}: {source}")]
    Read {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the card of the model it should describe.
    #[error("model card {path} is not a valid model.json: {reason}")]
    Invalid {
        /// Where.
        path: String,
        /// Why.
        reason: String,
    },
}

impl CardError {
    /// The file.
    pub fn path(&self) -> &str {
        match self {
            CardError::Read { path, .. } | CardError::Invalid { path, .. } => path,
        }
    }
}

/// Reads the card at `path` and checks that it is the card of the model `digest` (its weights'
/// sha256; with or without `sha256:`).
pub fn read_card(path: &Path, digest: &str) -> Result<ModelCard, CardError> {
    let text = std::fs::read_to_string(path).map_err(|source| CardError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let invalid = |reason: String| CardError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    let card: ModelCard = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    card.check_format().map_err(invalid)?;
    let expected = layout::digest_hex(digest);
    if card.weights.sha256 != expected {
        return Err(invalid(format!(
            "its weights have sha256 {}, not the model's {expected}",
            card.weights.sha256
        )));
    }
    Ok(card)
}

/// The model `digest` as a TrainingJob's status records it, from its card in
/// `models/<hex digest>/`.
pub fn model_artifact(
    artifacts: &ArtifactsConfig,
    digest: &str,
) -> Result<ModelArtifact, CardError> {
    let dir = layout::model_dir(digest);
    let card = read_card(
        &artifacts.local_dir.join(&dir).join(layout::MODEL_JSON),
        digest,
    )?;
    Ok(ModelArtifact {
        uri: layout::pvc_uri(&artifacts.claim, &dir),
        digest: layout::sha256_digest(digest),
        architecture: card.architecture.kind(),
        metrics: card.model_metrics(),
        dataset_digest: card.dataset_digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OperatorConfig;
    use modelops_api::trainingjob::Architecture;

    /// A card as `modelops-worker train` writes it (a cnn, which the operator once read as an
    /// mlp).
    const CNN_CARD: &str = include_str!("../../api/tests/cards/cnn.json");
    const WEIGHTS: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_model_reads_back_from_its_card() {
        let dir = std::env::temp_dir().join(format!("modelops-card-{}", std::process::id()));
        let artifacts = OperatorConfig::for_tests(dir.clone()).artifacts;
        let folder = dir.join(layout::model_dir(WEIGHTS));
        std::fs::create_dir_all(&folder).unwrap();
        let file = folder.join(layout::MODEL_JSON);

        let missing = model_artifact(&artifacts, WEIGHTS).unwrap_err();
        assert!(matches!(missing, CardError::Read { .. }), "{missing}");
        assert_eq!(missing.path(), file.display().to_string());

        std::fs::write(&file, CNN_CARD).unwrap();
        let model = model_artifact(&artifacts, &format!("sha256:{WEIGHTS}")).unwrap();
        assert_eq!(model.architecture, Architecture::Cnn);
        assert_eq!(model.digest, format!("sha256:{WEIGHTS}"));
        assert_eq!(
            model.uri,
            format!("pvc://{}/models/{WEIGHTS}", artifacts.claim)
        );
        assert_eq!(model.metrics.test_accuracy, Some(0.95));
        assert!(model.dataset_digest.starts_with("sha256:"));

        // Another model's card in this folder.
        let other = CNN_CARD.replace(WEIGHTS, &"0".repeat(64));
        std::fs::write(&file, other).unwrap();
        let wrong = model_artifact(&artifacts, WEIGHTS).unwrap_err();
        assert!(wrong.to_string().contains("not the model's"), "{wrong}");

        // An architecture this operator does not know is an error, not an mlp.
        std::fs::write(
            &file,
            CNN_CARD.replace(r#""type":"cnn""#, r#""type":"rnn""#),
        )
        .unwrap();
        let unknown = model_artifact(&artifacts, WEIGHTS).unwrap_err();
        assert!(matches!(unknown, CardError::Invalid { .. }), "{unknown}");
        assert!(unknown.to_string().contains(&file.display().to_string()));

        std::fs::remove_dir_all(&dir).unwrap();
    }
}
