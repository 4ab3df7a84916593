//! Prints the CRD of every modelops kind as YAML, generated from the Rust types in `api/src/`.
//!
//! `crdgen` prints them all as one multi-document stream; `crdgen --out-dir DIR` writes one file
//! per kind, `DIR/<plural>.modelops.dev.yaml` (what `scripts/crdgen` does for `crds/`).
#![forbid(unsafe_code)]

use modelops_api::crds;
use modelops_operator::crdgen::{crd_file_name, crd_yaml};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out_dir = match (args.next().as_deref(), args.next()) {
        (None, _) => None,
        (Some("--out-dir"), Some(dir)) => Some(PathBuf::from(dir)),
        _ => anyhow::bail!("usage: crdgen [--out-dir DIR]"),
    };
    match out_dir {
        None => {
            for crd in crds() {
                print!("---\n{}", crd_yaml(&crd));
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for crd in crds() {
                let path = dir.join(crd_file_name(&crd));
                std::fs::write(&path, crd_yaml(&crd))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
