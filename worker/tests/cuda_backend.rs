//! The worker's CUDA backend is loaded exactly when a GPU is visible, and a worker with the
//! backend loaded but no driver (this machine) still runs on the CPU.

use std::process::Command;

fn info(load_cuda: bool) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelops-worker"));
    cmd.arg("info");
    if load_cuda {
        // Stands in for /dev/nvidiactl, which only a GPU node has.
        cmd.env("MODELOPS_LOAD_CUDA", "1");
    } else {
        cmd.env_remove("MODELOPS_LOAD_CUDA");
    }
    let out = cmd.output().expect("run modelops-worker info");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("info prints JSON")
}

#[test]
fn without_a_gpu_the_cuda_backend_is_not_loaded() {
    if std::path::Path::new("/dev/nvidiactl").exists() {
        return; // a GPU machine: the other test covers it
    }
    let info = info(false);
    assert_eq!(info["cudaBackend"], false, "{info}");
    assert_eq!(info["device"], "cpu", "{info}");
}

#[test]
fn with_a_gpu_visible_the_cuda_backend_registers() {
    let info = info(true);
    assert!(
        info["cudaLibrary"]
            .as_str()
            .unwrap()
            .starts_with("loaded from "),
        "{info}"
    );
    assert_eq!(
        info["cudaBackend"], true,
        "libtorch_cuda loaded but its hooks did not register: {info}"
    );
    // With a driver and a device this is cuda:0; without (CI), the CPU.
    let expected = if info["cudaAvailable"] == true {
        "cuda:0"
    } else {
        "cpu"
    };
    assert_eq!(info["device"], expected, "{info}");
}
