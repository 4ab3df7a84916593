//! The binary as kubectl runs it: `kubectl modelops ...` finds `kubectl-modelops` on the PATH.
//! (What it prints about a real pipeline is checked in tests/rollback.rs.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kubectl-modelops"))
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn help_fits_100_columns_and_names_every_subcommand() {
    for args in [
        vec!["--help"],
        vec!["get", "--help"],
        vec!["history", "--help"],
        vec!["logs", "--help"],
    ] {
        let output = Command::new(binary())
            .args(&args)
            .env("COLUMNS", "200")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        let (stdout, _) = text(&output);
        for line in stdout.lines() {
            assert!(line.chars().count() <= 100, "{args:?}: {line}");
        }
        if args == ["--help"] {
            for sub in ["get", "history", "logs"] {
                assert!(stdout.contains(sub), "{stdout}");
            }
        }
    }
}

#[test]
fn without_a_cluster_it_says_so_and_fails() {
    let output = Command::new(binary())
        .args(["get", "-n", "default"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let (_, stderr) = text(&output);
    assert!(stderr.contains("no cluster to talk to"), "{stderr}");
}

#[test]
fn a_bad_target_names_the_kinds() {
    let output = Command::new(binary())
        .args(["get", "pods/x", "-n", "default"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let (_, stderr) = text(&output);
    // The cluster is looked for first; either way the user learns what is wrong.
    assert!(
        stderr.contains("no cluster to talk to") || stderr.contains("not a kind of modelops"),
        "{stderr}"
    );
}

/// The test bed's kubeconfig, when the test bed is up (scripts/test requires it).
fn cluster() -> Option<PathBuf> {
    let dir = std::env::var("MODELOPS_CLUSTER_DIR").unwrap_or("/tmp/modelops-cluster".into());
    let kubeconfig = Path::new(&dir).join("kubeconfig");
    let required = std::env::var("MODELOPS_REQUIRE_CLUSTER").as_deref() == Ok("1");
    if kubeconfig.exists() {
        Some(kubeconfig)
    } else if required {
        panic!(
            "MODELOPS_REQUIRE_CLUSTER=1 but there is no {}",
            kubeconfig.display()
        );
    } else {
        eprintln!("skipped: no test bed ({} missing)", kubeconfig.display());
        None
    }
}

#[test]
fn kubectl_finds_the_plugin_and_it_reads_the_cluster() {
    let Some(kubeconfig) = cluster() else { return };
    let dir = std::env::var("MODELOPS_CLUSTER_DIR").unwrap_or("/tmp/modelops-cluster".into());
    // kubectl from the test bed, the plugin's folder first on the PATH.
    let path = format!(
        "{}:{dir}/bin:{}",
        binary().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .arg("modelops")
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap()
    };
    let output = kubectl(&["get", "-n", "kube-system"]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("Namespace:  kube-system\n"), "{stdout}");
    assert!(stdout.contains("No Datasets, TrainingJobs"), "{stdout}");

    let output = kubectl(&["history", "nothing-here", "-n", "kube-system"]);
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("no ModelDeployment named \"nothing-here\" in namespace kube-system"),
        "{stderr}"
    );
    let output = kubectl(&["logs", "nothing-here", "-n", "kube-system"]);
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("no TrainingJob named \"nothing-here\""),
        "{stderr}"
    );
}
