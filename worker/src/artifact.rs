//! Files the worker writes into the artifact store: content digests, atomic writes and
//! publication of content-addressed folders, safetensors in memory, and the termination log.
//!
//! Every file another pod may read (progress, checkpoints, prepared data, models) is written to a
//! temporary name and renamed, so a reader never sees half a file and a killed pod leaves no
//! partial artifact behind.

use anyhow::{Context, Result, bail};
use safetensors::tensor::{Dtype, SafeTensors, View};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// The lowercase hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of named files, in the order given: each file contributes its name, its length
/// and its content, so that renaming or moving bytes between files changes the digest.
pub fn digest_files(files: &[(&str, &[u8])]) -> String {
    let mut hasher = Sha256::new();
    for (name, content) in files {
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((content.len() as u64).to_le_bytes());
        hasher.update(content);
    }
    hex(&hasher.finalize())
}

/// A temporary name beside `path`, unique to this process.
fn temporary_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("creating folder {}", parent.display()))?;
    }
    let temporary = temporary_beside(path);
    fs::write(&temporary, bytes).with_context(|| format!("writing {}", temporary.display()))?;
    fs::rename(&temporary, path)
        .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))
}

/// Publishes the files of a content-addressed folder: written into a temporary folder beside
/// `target`, then renamed into place. When `target` already exists the content is the same by
/// construction (its name is the digest), so nothing is written and `false` is returned.
pub fn publish_folder(target: &Path, files: &[(&str, &[u8])]) -> Result<bool> {
    if target.is_dir() {
        return Ok(false);
    }
    let parent = target
        .parent()
        .context("a content-addressed folder needs a parent folder")?;
    fs::create_dir_all(parent).with_context(|| format!("creating folder {}", parent.display()))?;
    let temporary = temporary_beside(target);
    if temporary.exists() {
        fs::remove_dir_all(&temporary).with_context(|| {
            format!("removing a stale temporary folder {}", temporary.display())
        })?;
    }
    fs::create_dir(&temporary).with_context(|| format!("creating {}", temporary.display()))?;
    for (name, content) in files {
        let path = temporary.join(name);
        fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    match fs::rename(&temporary, target) {
        Ok(()) => Ok(true),
        // Another pod published the same digest first: same content, keep theirs.
        Err(_) if target.is_dir() => {
            let _ = fs::remove_dir_all(&temporary);
            Ok(false)
        }
        Err(error) => Err(error)
            .with_context(|| format!("renaming {} to {}", temporary.display(), target.display())),
    }
}

/// One tensor's bytes, copied out of libtorch, ready for the safetensors writer.
struct TensorBytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &TensorBytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn dtype_of(kind: Kind) -> Result<Dtype> {
    Ok(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        other => bail!("tensors of kind {other:?} are not written by modelops"),
    })
}

fn kind_of(dtype: Dtype) -> Result<Kind> {
    Ok(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        other => bail!("safetensors dtype {other:?} is not read by modelops"),
    })
}

/// Serialises named tensors to safetensors bytes. The format sorts tensors by dtype and name and
/// this writes no metadata, so equal tensors always give equal bytes (and an equal digest).
pub fn safetensors_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let mut copies = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let tensor = tensor.to_device(tch::Device::Cpu).contiguous();
        let numel = tensor.numel();
        let mut data = vec![0u8; numel * tensor.kind().elt_size_in_bytes()];
        tensor
            .f_copy_data_u8(&mut data, numel)
            .with_context(|| format!("copying tensor {name} out of libtorch"))?;
        let shape = tensor.size().iter().map(|&d| d as usize).collect();
        copies.push((
            name.as_str(),
            TensorBytes {
                dtype: dtype_of(tensor.kind())?,
                shape,
                data,
            },
        ));
    }
    let views = copies.iter().map(|(name, bytes)| (*name, bytes));
    safetensors::tensor::serialize(views, &None).context("serialising safetensors")
}

/// Parses safetensors bytes into named CPU tensors, in name order.
pub fn read_safetensors_bytes(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let parsed = SafeTensors::deserialize(bytes).context("parsing safetensors")?;
    let mut tensors = Vec::new();
    for (name, view) in parsed.tensors() {
        let size: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let tensor = Tensor::f_from_data_size(view.data(), &size, kind_of(view.dtype())?)
            .with_context(|| format!("loading tensor {name}"))?;
        tensors.push((name, tensor));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

/// Environment variable that moves the termination log (tests; the kubelet's default path
/// otherwise).
pub const TERMINATION_LOG_ENV: &str = "MODELOPS_TERMINATION_LOG";

/// Writes the run's result (one JSON line) to `/dev/termination-log`, which the kubelet turns
/// into the container's termination message, when that file exists.
pub fn write_termination_message(message: &str) {
    let path = std::env::var(TERMINATION_LOG_ENV)
        .unwrap_or_else(|_| modelops_api::workorder::TERMINATION_LOG_PATH.to_owned());
    // Outside a pod the file does not exist; creating it would litter the machine.
    if Path::new(&path).exists() {
        let _ = fs::write(&path, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_round_trip_and_are_deterministic() {
        let tensors = vec![
            (
                "b".to_owned(),
                Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]),
            ),
            ("a".to_owned(), Tensor::from_slice(&[7i64, 8])),
        ];
        let bytes = safetensors_bytes(&tensors).unwrap();
        let reversed: Vec<_> = tensors
            .iter()
            .rev()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect();
        assert_eq!(
            bytes,
            safetensors_bytes(&reversed).unwrap(),
            "order of input must not matter"
        );
        let back = read_safetensors_bytes(&bytes).unwrap();
        assert_eq!(back[0].0, "a");
        assert_eq!(Vec::<i64>::try_from(&back[0].1).unwrap(), vec![7, 8]);
        assert_eq!(back[1].1.size(), vec![2, 2]);
        assert_eq!(back[1].1.double_value(&[1, 0]), 3.0);
    }

    #[test]
    fn digests_depend_on_names_and_content() {
        let a = digest_files(&[("x", b"12"), ("y", b"3")]);
        assert_eq!(a, digest_files(&[("x", b"12"), ("y", b"3")]));
        assert_ne!(a, digest_files(&[("x", b"1"), ("y", b"23")]));
        assert_ne!(a, digest_files(&[("z", b"12"), ("y", b"3")]));
        assert_eq!(sha256_hex(b"abc").len(), 64);
    }

    #[test]
    fn publishing_twice_keeps_the_first_folder() {
        let dir = std::env::temp_dir().join(format!("modelops-publish-{}", std::process::id()));
        let target = dir.join("abc");
        assert!(publish_folder(&target, &[("f", b"1")]).unwrap());
        assert!(!publish_folder(&target, &[("f", b"2")]).unwrap());
        assert_eq!(fs::read(target.join("f")).unwrap(), b"1");
        fs::remove_dir_all(&dir).unwrap();
    }
}
