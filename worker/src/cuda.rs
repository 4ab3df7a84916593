//! Loading libtorch's CUDA backend at start, when the pod can see a GPU.
//!
//! The worker links libtorch with the toolchain's default `--as-needed`, which drops
//! `libtorch_cuda.so` because no symbol is referenced from it directly; its CUDA kernels and
//! device hooks register themselves from static constructors when the library is loaded. So the
//! worker loads it explicitly, and only when a GPU is visible: the CPU image does not carry the
//! CUDA libraries at all, and a node without an NVIDIA driver never needs them.

use std::path::{Path, PathBuf};

/// What happened to libtorch's CUDA backend at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaLoad {
    /// No GPU is visible to this process, so the CUDA backend was not looked for.
    NoGpuVisible,
    /// The CUDA backend was loaded from this path.
    Loaded(PathBuf),
    /// A GPU is visible but the backend could not be loaded (the CPU image, or a broken install).
    Failed(String),
}

/// True when an NVIDIA GPU is exposed to this process (the device plugin or the NVIDIA container
/// runtime mounts `/dev/nvidiactl`), or when `MODELOPS_LOAD_CUDA=1` asks for the load anyway.
fn gpu_visible() -> bool {
    std::env::var("MODELOPS_LOAD_CUDA").is_ok_and(|v| v == "1")
        || Path::new("/dev/nvidiactl").exists()
        || Path::new("/proc/driver/nvidia/version").exists()
}

/// Where `libtorch_cuda.so` may be: `MODELOPS_LIBTORCH_CUDA`, then beside the binary in the image
/// layout, then the libtorch this binary was built against.
fn candidates() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Ok(path) = std::env::var("MODELOPS_LIBTORCH_CUDA") {
        paths.push(PathBuf::from(path));
    }
    if let Some(bin_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        paths.push(bin_dir.join("../lib/libtorch_cuda.so"));
    }
    let built_against = env!("MODELOPS_LIBTORCH_LIB");
    if !built_against.is_empty() {
        paths.push(Path::new(built_against).join("libtorch_cuda.so"));
    }
    paths
}

/// Loads libtorch's CUDA backend when a GPU is visible. The library stays loaded for the life of
/// the process.
pub fn load_if_gpu_visible() -> CudaLoad {
    if !gpu_visible() {
        return CudaLoad::NoGpuVisible;
    }
    let mut errors = Vec::new();
    for path in candidates() {
        if !path.exists() {
            continue;
        }
        match load_global(&path) {
            Ok(()) => return CudaLoad::Loaded(path),
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    if errors.is_empty() {
        errors.push("libtorch_cuda.so not found (this is the CPU image)".to_owned());
    }
    CudaLoad::Failed(errors.join("; "))
}

/// The FFI edge: `dlopen` with `RTLD_GLOBAL`, so that libtorch's dispatcher sees the CUDA kernels,
/// and never closed, since unloading a library that registered kernels would leave dangling entries.
#[allow(unsafe_code)]
fn load_global(path: &Path) -> Result<(), libloading::Error> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading libtorch_cuda runs its static constructors, which only register CUDA
    // kernels with the libtorch already loaded into this process; nothing else runs concurrently
    // this early in `main`.
    let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL)? };
    std::mem::forget(library);
    Ok(())
}
