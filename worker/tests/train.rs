//! `modelops-worker train` end to end on the real example data: accuracy, the model card,
//! reproducibility, resuming after a kill, every architecture, and the model API serving uses.

mod common;

use common::*;
use modelops_api::profile::{BINS, Histogram};
use modelops_api::workorder::WorkOrder;
use modelops_worker::artifact::sha256_hex;
use modelops_worker::model::predict::{LoadedModel, Prediction};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

fn card(dir: &std::path::Path, result: &Value) -> Value {
    serde_json::from_slice(&std::fs::read(model_dir(dir, result).join("model.json")).unwrap())
        .unwrap()
}

/// Raw digits rows and labels, straight from the CSV.
fn digits_rows() -> (Vec<Vec<f64>>, Vec<String>) {
    let text = std::fs::read_to_string(example("data/digits.csv")).unwrap();
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for line in text.lines().skip(1) {
        let mut values: Vec<&str> = line.split(',').collect();
        labels.push(values.pop().unwrap().to_owned());
        rows.push(values.iter().map(|v| v.parse().unwrap()).collect());
    }
    (rows, labels)
}

#[test]
fn an_mlp_learns_digits_and_its_card_matches_its_weights() {
    let dir = temp_dir("mlp");
    let dataset = prepare(&dir, &digits_dataset());
    let run = run(
        "train",
        &train_order(&dir, &dataset, "mlp", digits_mlp(1)),
        &dir,
    );
    let result = run.ok();
    let accuracy = result["metrics"]["testAccuracy"].as_f64().unwrap();
    assert!(
        accuracy >= 0.95,
        "test accuracy {accuracy}:\n{}",
        run.stdout()
    );
    assert_eq!(result["architecture"], "mlp");
    assert_eq!(result["datasetDigest"], dataset.1.as_str());
    assert_eq!(result["epochs"], 20);
    assert_eq!(
        result["curves"]["epochs"].as_array().map(Vec::len),
        Some(20)
    );
    assert!(
        run.stdout().contains("epoch 20/20 trainLoss="),
        "{}",
        run.stdout()
    );

    // The card records what serving needs, and the weights are what it says.
    let model = model_dir(&dir, result);
    let card = card(&dir, result);
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    assert_eq!(card["weights"]["sha256"], sha256_hex(&weights).as_str());
    // The model's digest is the card's.
    let digest = sha256_hex(&std::fs::read(model.join("model.json")).unwrap());
    assert_eq!(result["modelDigest"], format!("sha256:{digest}"));
    assert_eq!(model.file_name().unwrap().to_str().unwrap(), digest);
    assert_eq!(
        card["metrics"]["testAccuracy"],
        result["metrics"]["testAccuracy"]
    );
    assert_eq!(card["metrics"]["testLoss"], result["metrics"]["testLoss"]);
    assert_eq!(
        card["architecture"],
        json!({"type": "mlp", "hiddenLayers": [64, 32], "activation": "relu", "dropout": 0.0})
    );
    assert_eq!(
        card["classes"],
        json!(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"])
    );
    assert_eq!(card["input"]["features"].as_array().unwrap().len(), 64);
    assert_eq!(card["input"]["normalization"]["method"], "standard");
    assert!(
        card.get("predictions").is_none(),
        "a classifier has no prediction histogram"
    );
    assert_eq!(card["datasetDigest"], dataset.1.as_str());
    assert_eq!(card["hyperparameters"]["optimizer"]["learningRate"], 0.002);

    // progress.json is what TrainingJob.status.progress reads.
    let progress: Value =
        serde_json::from_slice(&std::fs::read(dir.join("checkpoints/mlp/progress.json")).unwrap())
            .unwrap();
    assert_eq!(
        (progress["epoch"].as_u64(), progress["totalEpochs"].as_u64()),
        (Some(20), Some(20))
    );
    assert!(progress["validationAccuracy"].as_f64().unwrap() > 0.9);
    // With the learning curves of every epoch so far, as status.curves keeps them.
    let curves: modelops_api::trainingjob::LearningCurves =
        serde_json::from_value(progress["curves"].clone()).unwrap();
    assert_eq!(curves.epochs, (1..=20).collect::<Vec<_>>());
    assert_eq!(curves.validation_accuracy.len(), 20);
    let status: modelops_api::trainingjob::TrainingProgress =
        serde_json::from_value(progress).unwrap();
    assert_eq!(status.epoch, 20);

    // The model API predicts from raw pixel values, normalising them itself.
    let loaded = LoadedModel::load(
        &model,
        Some(result["modelDigest"].as_str().unwrap()),
        tch::Device::Cpu,
    )
    .unwrap();
    let (rows, labels) = digits_rows();
    let Prediction::Classes {
        labels: predicted,
        probabilities,
    } = loaded.predict_rows(&rows).unwrap()
    else {
        panic!("digits is a classification model");
    };
    let correct = predicted
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count();
    assert!(
        correct as f64 / labels.len() as f64 > 0.95,
        "{correct} of {}",
        labels.len()
    );
    assert!((probabilities[0].iter().sum::<f32>() - 1.0).abs() < 1e-4);
    let error = loaded
        .predict_rows(&[vec![0.0; 3]])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("has 3 values; the model expects 64"),
        "{error}"
    );

    // A server refuses weights that are not the card's, or not the expected model.
    let other = "0".repeat(64);
    let error = LoadedModel::load(&model, Some(&other), tch::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(error.contains("not the expected"), "{error}");
    let mut tampered = weights.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    std::fs::write(model.join("model.safetensors"), &tampered).unwrap();
    let error = LoadedModel::load(&model, None, tch::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(error.contains("damaged or was altered"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_same_seed_gives_the_same_model() {
    let dir = temp_dir("seed");
    let dataset = prepare(&dir, &digits_dataset());
    let digest = |checkpoints: &str, seed: u64| {
        let run = run(
            "train",
            &train_order(&dir, &dataset, checkpoints, digits_mlp(seed)),
            &dir,
        );
        run.ok()["modelDigest"].as_str().unwrap().to_owned()
    };
    let first = digest("a", 5);
    assert_eq!(first, digest("b", 5), "same seed, same data: same weights");
    assert_ne!(first, digest("c", 6), "another seed gives another model");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_killed_training_resumes_from_its_last_checkpoint() {
    let dir = temp_dir("resume");
    let dataset = prepare(&dir, &digits_dataset());
    let mut spec = digits_mlp(3);
    spec["hyperparameters"]["epochs"] = json!(40);
    spec["hyperparameters"]["learningRateSchedule"] =
        json!({"type": "cosine", "minLearningRate": 0.0001});

    // Kill the first attempt once it reports its third epoch (written after the checkpoint).
    let order = train_order(&dir, &dataset, "killed", spec.clone());
    let mut child = worker("train", &order, &dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().starts_with("epoch 3/40 ") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let resumed = run("train", &order, &dir);
    let result = resumed.ok().clone();
    let stdout = resumed.stdout();
    let epoch: usize = stdout
        .lines()
        .find_map(|line| line.strip_prefix("resuming from epoch "))
        .unwrap_or_else(|| panic!("no resume line:\n{stdout}"))
        .parse()
        .unwrap();
    assert!((3..40).contains(&epoch), "resumed from epoch {epoch}");
    assert!(
        !stdout.contains("epoch 1/40 "),
        "the resumed run trained epoch 1 again:\n{stdout}"
    );
    assert!(
        result["metrics"]["testAccuracy"].as_f64().unwrap() >= 0.95,
        "{result}"
    );
    assert_eq!(result["epochs"], 40);

    // Every epoch reseeds from (seed, epoch): the resumed model is the uninterrupted one.
    let uninterrupted = run("train", &train_order(&dir, &dataset, "whole", spec), &dir);
    assert_eq!(uninterrupted.ok()["modelDigest"], result["modelDigest"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_digits_example_trains_its_cnn() {
    let dir = temp_dir("cnn");
    let order = prepare_order(
        "digits",
        Some(&example("data/digits.csv")),
        example_spec("digits/dataset.yaml"),
    );
    let dataset = prepare(&dir, &order);
    let spec = example_spec("digits/trainingjob.yaml");
    assert_eq!(spec["model"]["architecture"], "cnn");
    let run = run("train", &train_order(&dir, &dataset, "cnn", spec), &dir);
    let accuracy = run.ok()["metrics"]["testAccuracy"].as_f64().unwrap();
    assert!(
        accuracy >= 0.93,
        "test accuracy {accuracy}:\n{}",
        run.stdout()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_text_example_tells_news_from_blogs_in_english_and_chinese() {
    let dir = temp_dir("text");
    let order = prepare_order(
        "news-or-blog",
        Some(&example("text/news-or-blog.jsonl")),
        example_spec("text/dataset.yaml"),
    );
    let dataset = prepare(&dir, &order);
    let spec = example_spec("text/trainingjob.yaml");
    assert_eq!(spec["model"]["architecture"], "textLstm");
    let run = run("train", &train_order(&dir, &dataset, "lstm", spec), &dir);
    let result = run.ok();
    let accuracy = result["metrics"]["testAccuracy"].as_f64().unwrap();
    assert!(
        accuracy >= 0.9,
        "test accuracy {accuracy}:\n{}",
        run.stdout()
    );

    let card = card(&dir, result);
    let vocabulary = card["input"]["tokenizer"]["vocabulary"].as_array().unwrap();
    assert_eq!(vocabulary[..2], [json!("<pad>"), json!("<oov>")]);
    assert!(vocabulary.contains(&json!("据")) && vocabulary.contains(&json!("honestly")));

    let model = LoadedModel::load(&model_dir(&dir, result), None, tch::Device::Cpu).unwrap();
    let texts = [
        "The central bank said on Monday that interest rates will rise, according to a statement.",
        "Honestly, my friends keep asking what I think about the new bike lane, so here are my thoughts!",
        "据国家统计局消息，股市第三季度同比增长5%，相关部门已于周一发布通知。",
        "这个周末终于去了海边，说实话真的超出我的预期，推荐给大家！",
    ];
    let Prediction::Classes { labels, .. } = model.predict_texts(&texts).unwrap() else {
        panic!()
    };
    assert_eq!(labels, ["news", "blog", "news", "blog"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_regression_mlp_predicts_petal_width_with_early_stopping() {
    let dir = temp_dir("regression");
    let order = prepare_order(
        "iris-petals",
        Some(&example("data/iris.csv")),
        json!({
            "source": {"volume": {"claimName": "data", "path": "iris.csv"}},
            "format": "csv",
            "schema": {"label": "petal_width", "labelKind": "numeric", "features": ["sepal_length", "sepal_width", "petal_length"]},
            "preprocessing": {"normalize": "minmax"},
            "split": {"train": 0.6, "validation": 0.2, "test": 0.2, "seed": 1},
        }),
    );
    let dataset = prepare(&dir, &order);
    let spec = json!({
        "datasetRef": {"name": "iris-petals"},
        "task": "regression",
        "model": {"architecture": "mlp", "mlp": {"hiddenLayers": [16], "activation": "tanh"}},
        "hyperparameters": {
            "epochs": 300, "batchSize": 16, "seed": 2,
            "optimizer": {"type": "sgd", "learningRate": 0.05, "momentum": 0.9},
            "learningRateSchedule": {"type": "step", "stepSize": 50, "gamma": 0.5},
            "earlyStopping": {"metric": "validationLoss", "patience": 10},
        },
    });
    let run = run(
        "train",
        &train_order(&dir, &dataset, "regression", spec),
        &dir,
    );
    let result = run.ok();
    let rmse = result["metrics"]["testRmse"].as_f64().unwrap();
    assert!(rmse < 0.3, "test RMSE {rmse} cm:\n{}", run.stdout());
    assert!(result["metrics"]["testAccuracy"].is_null());
    let epochs = result["epochs"].as_u64().unwrap();
    assert!(
        epochs < 300,
        "early stopping never stopped:\n{}",
        run.stdout()
    );
    let card = card(&dir, result);
    assert_eq!(card["training"]["stoppedEarly"], true);
    assert!(card["training"]["bestEpoch"].as_u64().unwrap() < epochs);
    // The reference of prediction drift: every training prediction, in cm, on equal-width bins.
    let predictions: Histogram = serde_json::from_value(card["predictions"].clone()).unwrap();
    assert_eq!(predictions.check(), Ok(()));
    assert_eq!(predictions.edges.len(), BINS + 1);
    let profile: Value =
        serde_json::from_slice(&std::fs::read(dataset.0.join("profile.json")).unwrap()).unwrap();
    let counted: u64 = predictions.bins().map(|(_, count)| count).sum();
    assert_eq!(counted, profile["rows"].as_u64().unwrap());
    assert_eq!(
        (predictions.underflow, predictions.overflow),
        (0, 0),
        "the bins span the predictions"
    );
    let (low, high) = (predictions.edges[0], predictions.edges[BINS]);
    assert!(
        -0.5 < low && low < 0.8 && 1.8 < high && high < 3.0,
        "petal widths run from 0.1 to 2.5 cm, not {low} to {high}"
    );

    let model = LoadedModel::load(&model_dir(&dir, result), None, tch::Device::Cpu).unwrap();
    // A large flower: 7.7 cm sepal, 6.7 cm petal (iris virginica, petal width about 2.2 cm).
    let Prediction::Values(values) = model.predict_rows(&[vec![7.7, 3.8, 6.7]]).unwrap() else {
        panic!()
    };
    assert!((values[0] - 2.2).abs() < 0.5, "{values:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_torchscript_module_is_trained_through_libtorch() {
    let dir = temp_dir("torchscript");
    std::fs::create_dir_all(dir.join("user-models")).unwrap();
    let module = dir.join("user-models/net.pt");
    // The venv that provides libtorch for the build also has torch for Python.
    let python =
        std::env::var("VIRTUAL_ENV").map_or("python3".into(), |venv| format!("{venv}/bin/python"));
    // TorchScript reads the module's source, so the script is a file.
    let status = std::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/script_iris_net.py"))
        .arg(&module)
        .status()
        .expect("run python");
    assert!(status.success(), "{python} could not script the module");

    let order = prepare_order(
        "iris",
        Some(&example("data/iris.csv")),
        json!({
            "source": {"configMap": {"name": "iris", "key": "iris.csv"}},
            "format": "csv",
            "schema": {"label": "species"},
            "preprocessing": {"normalize": "standard"},
            "split": {"train": 0.6, "validation": 0.2, "test": 0.2, "seed": 1},
        }),
    );
    let dataset = prepare(&dir, &order);
    let spec = json!({
        "datasetRef": {"name": "iris"},
        "task": "classification",
        "model": {"architecture": "torchscript", "torchscript": {"path": "user-models/net.pt"}},
        "hyperparameters": {"epochs": 60, "batchSize": 16, "optimizer": {"type": "adamw", "learningRate": 0.01, "weightDecay": 0.01}, "seed": 1},
    });
    let mut order = train_order(&dir, &dataset, "torchscript", spec);
    if let WorkOrder::Train(train) = &mut order {
        train.module_uri = Some(format!("{ROOT}/user-models/net.pt"));
    }
    let run = run("train", &order, &dir);
    let result = run.ok();
    let accuracy = result["metrics"]["testAccuracy"].as_f64().unwrap();
    assert!(
        accuracy >= 0.85,
        "test accuracy {accuracy}:\n{}",
        run.stdout()
    );
    let model = model_dir(&dir, result);
    assert!(model.join("module.pt").exists());
    let loaded = LoadedModel::load(&model, None, tch::Device::Cpu).unwrap();
    let Prediction::Classes { labels, .. } =
        loaded.predict_rows(&[vec![5.1, 3.5, 1.4, 0.2]]).unwrap()
    else {
        panic!()
    };
    assert_eq!(labels, ["setosa"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_spec_that_does_not_fit_the_data_fails_with_its_reason() {
    let dir = temp_dir("misfit");
    let dataset = prepare(&dir, &digits_dataset());
    let mut spec = digits_mlp(1);
    spec["model"] = json!({"architecture": "cnn", "cnn": {"inputShape": [1, 7, 7]}});
    let run = run("train", &train_order(&dir, &dataset, "misfit", spec), &dir);
    let failure = run.failed();
    assert_eq!(failure["reason"], "InvalidSpec");
    assert_eq!(failure["retryable"], false);
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("holds 49 values but the data set has 64 features"),
        "{failure}"
    );

    let mut order = train_order(&dir, &dataset, "pinned", digits_mlp(1));
    if let WorkOrder::Train(train) = &mut order {
        train.dataset_digest = format!("sha256:{}", "0".repeat(64));
    }
    assert_eq!(run_failed_reason(&order, &dir), "DigestMismatch");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn run_failed_reason(order: &WorkOrder, dir: &std::path::Path) -> String {
    run("train", order, dir).failed()["reason"]
        .as_str()
        .unwrap()
        .to_owned()
}
