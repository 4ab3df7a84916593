//! `modelops-worker info`: what this worker would run on.

use crate::cuda::CudaLoad;
use serde_json::json;

/// The device training and serving would use: the first CUDA device if libtorch sees one.
pub fn device() -> tch::Device {
    tch::Device::cuda_if_available()
}

/// Whether libtorch has CUDA kernels registered, which is what loading `libtorch_cuda` is for.
/// With a device this is plain; without a driver, allocating on `cuda:0` tells the two apart: the
/// dispatcher refuses an unregistered backend ("… from the 'CUDA' backend"), while a registered
/// one gets as far as looking for the driver.
pub fn cuda_backend_registered() -> bool {
    if tch::Cuda::is_available() {
        return true;
    }
    match tch::Tensor::f_zeros([1], (tch::Kind::Float, tch::Device::Cuda(0))) {
        Ok(_) => true,
        Err(e) => !e.to_string().contains("'CUDA' backend"),
    }
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
        "cudaBackend": cuda_backend_registered(),
        "cudaAvailable": tch::Cuda::is_available(),
        "cudaDevices": tch::Cuda::device_count(),
        "cudnnAvailable": tch::Cuda::cudnn_is_available(),
        "device": device,
        "threads": tch::get_num_threads(),
    });
    println!("{info}");
    Ok(())
}
