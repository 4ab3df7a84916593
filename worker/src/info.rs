//! `modelops-worker info`: what this worker would run on.

use crate::cuda::CudaLoad;
use serde_json::json;

/// The device training and serving would use: the first CUDA device if libtorch sees one.
pub fn device() -> tch::Device {
    tch::Device::cuda_if_available()
}

/// Prints the libtorch version, the CUDA load outcome and the chosen device as one JSON line.
pub fn print(cuda: &CudaLoad) -> anyhow::Result<()> {
    let (cuda_library, cuda_error) = match cuda {
        CudaLoad::NoGpuVisible => ("not loaded: no GPU visible".to_owned(), None),
        CudaLoad::Loaded(path) => (format!("loaded from {}", path.display()), None),
        CudaLoad::Failed(error) => ("failed".to_owned(), Some(error.clone())),
    };
    let device = match device() {
        tch::Device::Cuda(index) => format!("cuda:{index}"),
        _ => "cpu".to_owned(),
    };
    let info = json!({
        "worker": env!("CARGO_PKG_VERSION"),
        "libtorch": env!("MODELOPS_LIBTORCH_VERSION"),
        "cudaLibrary": cuda_library,
        "cudaError": cuda_error,
        // True once libtorch_cuda's hooks are registered, with or without a driver.
        "cudaBackend": tch::utils::has_cudart(),
        "cudaAvailable": tch::Cuda::is_available(),
        "cudaDevices": tch::Cuda::device_count(),
        "cudnnAvailable": tch::Cuda::cudnn_is_available(),
        "device": device,
        "threads": tch::get_num_threads(),
    });
    println!("{info}");
    Ok(())
}
