//! The CRDs in `crds/` against the test bed's real kube-apiserver: the example manifests are
//! accepted, defaults are filled in by the server, and each invalid manifest is refused at
//! `kubectl apply` time with a message that names the field (docs/validation.md lists the
//! rules). Objects are created with server-side dry run, so nothing is stored.

mod common;

use common::*;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use modelops_api::{Dataset, ModelDeployment, Monitor, TrainingJob};
use serde_json::{Value, json};

/// An invalid manifest: a JSON merge patch (RFC 7386) on a valid base, and the texts the
/// refusal must contain (the field path first).
struct Refused {
    what: &'static str,
    patch: Value,
    expect: &'static [&'static str],
}

fn refused(what: &'static str, patch: Value, expect: &'static [&'static str]) -> Refused {
    Refused {
        what,
        patch,
        expect,
    }
}

/// Applies a JSON merge patch: objects merge, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(members) => {
            if !target.is_object() {
                *target = json!({});
            }
            let object = target.as_object_mut().unwrap();
            for (key, value) in members {
                if value.is_null() {
                    object.remove(key);
                } else {
                    merge_patch(object.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// `base` with `patch` merged in.
fn with(base: &Value, patch: Value) -> Value {
    let mut manifest = base.clone();
    merge_patch(&mut manifest, &patch);
    manifest
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("valid YAML")
}

/// An untyped API for a kind, so that manifests the Rust types could not even hold reach the
/// server.
fn api_for<K>(client: &Client, namespace: &str) -> Api<DynamicObject>
where
    K: kube::Resource<DynamicType = ()>,
{
    Api::namespaced_with(client.clone(), namespace, &ApiResource::erase::<K>(&()))
}

async fn dry_run_create(api: &Api<DynamicObject>, manifest: &Value) -> kube::Result<DynamicObject> {
    let object: DynamicObject = serde_json::from_value(manifest.clone()).expect("an object");
    let params = PostParams {
        dry_run: true,
        field_manager: Some(TEST_FIELD_MANAGER.into()),
    };
    api.create(&params, &object).await
}

/// Creates each manifest (dry run) and fails naming every one the server refused.
async fn expect_accepted(api: &Api<DynamicObject>, manifests: &[(&str, Value)]) {
    let mut failures = Vec::new();
    for (what, manifest) in manifests {
        if let Err(e) = dry_run_create(api, manifest).await {
            failures.push(format!("{what}: refused: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "valid manifests were refused:\n{}",
        failures.join("\n")
    );
}

/// Creates each invalid variant of `base` (dry run) and fails naming every one the server
/// accepted, or refused without the expected texts in its message.
async fn expect_refused(api: &Api<DynamicObject>, base: &Value, cases: Vec<Refused>) {
    let total = cases.len();
    let mut failures = Vec::new();
    for case in cases {
        let manifest = with(base, case.patch);
        match dry_run_create(api, &manifest).await {
            Ok(_) => failures.push(format!("{}: accepted", case.what)),
            Err(kube::Error::Api(status)) if status.code == 422 => {
                let missing: Vec<_> = case
                    .expect
                    .iter()
                    .filter(|text| !status.message.contains(*text))
                    .collect();
                if !missing.is_empty() {
                    failures.push(format!(
                        "{}: the message lacks {missing:?}: {}",
                        case.what, status.message
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: refused with another error: {e}", case.what)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} invalid manifests were not refused as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn dataset_rules() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "crd-dataset").await;
    let api = api_for::<Dataset>(&client, &ns.name);
    let digits = yaml(include_str!("../examples/digits/dataset.yaml"));
    let iris = yaml(include_str!("../examples/iris/dataset.yaml"));

    let text = with(
        &digits,
        json!({"metadata": {"name": "reviews"}, "spec": {
            "source": {"configMap": null, "volume": {"claimName": "corpora", "path": "reviews/train.jsonl"}},
            "format": "jsonl",
            "schema": {"label": "sentiment", "text": "body"},
            "preprocessing": {"normalize": "none"},
        }}),
    );
    let whole_numbers = with(
        &iris,
        json!({"spec": {"split": {"train": 1, "validation": 0, "test": 0}}}),
    );
    let regression = with(
        &iris,
        json!({"spec": {
            "source": {"configMap": null, "http": {"url": "https://example.org/houses.csv",
                "sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
            "schema": {"label": "price", "labelKind": "numeric", "features": null},
            "split": {"stratify": false},
        }}),
    );
    expect_accepted(
        &api,
        &[
            ("examples/digits/dataset.yaml", digits.clone()),
            ("examples/iris/dataset.yaml", iris),
            ("a jsonl text Dataset on a volume", text),
            ("split fractions written as integers", whole_numbers),
            ("a numeric label over http", regression),
            (
                "resources as quantities, cpu as an integer",
                with(
                    &digits,
                    json!({"spec": {"resources": {"cpu": 2, "memory": "1.5Gi"}}}),
                ),
            ),
            (
                "resources as quantities, cpu in millicores",
                with(
                    &digits,
                    json!({"spec": {"resources": {"cpu": "500m", "memory": 2147483648_u64}}}),
                ),
            ),
        ],
    )
    .await;

    let jsonl = |extra: Value| {
        with(
            &json!({"spec": {"format": "jsonl", "preprocessing": {"normalize": "none"}}}),
            extra,
        )
    };
    expect_refused(
        &api,
        &digits,
        vec![
            refused(
                "a name too long for its Job",
                json!({"metadata": {"name": "d".repeat(41)}}),
                &["metadata.name", "at most 40 characters"],
            ),
            refused(
                "two sources",
                json!({"spec": {"source": {"http": {"url": "https://example.org/d.csv"}}}}),
                &["spec.source", "set exactly one of http, configMap, volume or s3"],
            ),
            refused(
                "an object beside the ConfigMap",
                json!({"spec": {"source": {"s3": {"uri": "s3://modelops/team-a/raw/d.csv"}}}}),
                &["spec.source", "set exactly one of http, configMap, volume or s3"],
            ),
            refused(
                "an s3 source that is no s3:// URI",
                json!({"spec": {"source": {"configMap": null, "s3": {"uri": "https://example.org/d.csv"}}}}),
                &["spec.source.s3.uri", "should match"],
            ),
            refused(
                "no source",
                json!({"spec": {"source": {"configMap": null}}}),
                &["spec.source", "set exactly one of http, configMap, volume or s3"],
            ),
            refused(
                "split fractions adding up to 1.2",
                json!({"spec": {"split": {"train": 0.8, "validation": 0.3, "test": 0.1}}}),
                &["spec.split", "must add up to 1"],
            ),
            refused(
                "a split fraction above 1",
                json!({"spec": {"split": {"train": 0.5, "validation": 0.5, "test": 1.5}}}),
                &["spec.split.test", "less than or equal to 1"],
            ),
            refused(
                "a negative split fraction",
                json!({"spec": {"split": {"train": 1.2, "validation": -0.2, "test": 0}}}),
                &["spec.split.validation", "greater than or equal to 0"],
            ),
            refused(
                "no train rows",
                json!({"spec": {"split": {"train": 0, "validation": 0.5, "test": 0.5}}}),
                &["spec.split.train", "greater than 0"],
            ),
            refused(
                "jsonl without schema.text",
                jsonl(json!({})),
                &["spec.schema.text", "Required value", "required when spec.format is jsonl"],
            ),
            refused(
                "csv with schema.text",
                json!({"spec": {"schema": {"text": "body"}}}),
                &["spec.schema.text", "Forbidden", "applies to jsonl only"],
            ),
            refused(
                "jsonl with schema.features",
                jsonl(json!({"spec": {"schema": {"text": "body", "features": ["title"]}}})),
                &["spec.schema.features", "Forbidden", "applies to csv only"],
            ),
            refused(
                "jsonl with normalize",
                jsonl(json!({"spec": {"schema": {"text": "body"}, "preprocessing": {"normalize": "standard"}}})),
                &["spec.preprocessing.normalize", "set it to none for jsonl"],
            ),
            refused(
                "an unknown normalize",
                json!({"spec": {"preprocessing": {"normalize": "zscore"}}}),
                &["spec.preprocessing.normalize", "Unsupported value: \"zscore\""],
            ),
            refused(
                "an unknown format",
                json!({"spec": {"format": "parquet"}}),
                &["spec.format", "Unsupported value: \"parquet\""],
            ),
            refused(
                "the label among the features",
                json!({"spec": {"schema": {"features": ["pixel_0", "label"]}}}),
                &["spec.schema.features", "must not include the label column"],
            ),
            refused(
                "a feature listed twice",
                json!({"spec": {"schema": {"features": ["pixel_0", "pixel_0"]}}}),
                &["spec.schema.features[1]", "Duplicate value"],
            ),
            refused(
                "text and label the same field",
                jsonl(json!({"spec": {"schema": {"text": "label"}}})),
                &["spec.schema.text", "must name different fields"],
            ),
            refused(
                "stratified numeric labels",
                json!({"spec": {"schema": {"labelKind": "numeric"}, "split": {"stratify": true}}}),
                &["spec.split.stratify", "needs class labels"],
            ),
            refused(
                "a malformed sha256",
                json!({"spec": {"source": {"configMap": null, "http": {"url": "https://example.org/d.csv", "sha256": "abc"}}}}),
                &["spec.source.http.sha256", "should match"],
            ),
            refused(
                "a volume path that climbs out",
                json!({"spec": {"source": {"configMap": null, "volume": {"claimName": "data", "path": "../etc/passwd"}}}}),
                &["spec.source.volume.path", "should match"],
            ),
            refused(
                "a URL that is not http",
                json!({"spec": {"source": {"configMap": null, "http": {"url": "ftp://example.org/d.csv"}}}}),
                &["spec.source.http.url", "should match"],
            ),
            refused(
                "a missing label",
                json!({"spec": {"schema": {"label": null}}}),
                &["spec.schema.label", "Required value"],
            ),
            refused(
                "a cpu that is not a quantity",
                json!({"spec": {"resources": {"cpu": "two"}}}),
                &["spec.resources.cpu", "must be a positive Kubernetes quantity"],
            ),
            refused(
                "a negative memory",
                json!({"spec": {"resources": {"memory": "-1Gi"}}}),
                &["spec.resources.memory", "must be a positive Kubernetes quantity"],
            ),
            refused(
                "a cpu of 0",
                json!({"spec": {"resources": {"cpu": 0}}}),
                &["spec.resources.cpu", "must be a positive Kubernetes quantity"],
            ),
        ],
    )
    .await;
    ns.delete().await;
}

#[tokio::test]
async fn trainingjob_rules() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "crd-trainingjob").await;
    let api = api_for::<TrainingJob>(&client, &ns.name);
    let digits = yaml(include_str!("../examples/digits/trainingjob.yaml"));
    let iris = yaml(include_str!("../examples/iris/trainingjob.yaml"));

    let minimal = yaml(
        r#"
apiVersion: modelops.dev/v1alpha1
kind: TrainingJob
metadata: {name: minimal}
spec:
  datasetRef: {name: iris}
  task: classification
  model: {architecture: mlp}
"#,
    );
    let regression = with(
        &minimal,
        json!({"spec": {"task": "regression", "hyperparameters": {"loss": "mse",
            "learningRateSchedule": {"type": "step", "stepSize": 10, "gamma": 0.5},
            "optimizer": {"type": "sgd", "momentum": 0.9}}}}),
    );
    let scripted = with(
        &minimal,
        json!({"spec": {"model": {"architecture": "torchscript", "torchscript": {"path": "user-models/net.pt"}},
            "search": {"strategy": "random", "maxTrials": 8,
                "parameters": [{"name": "learningRate", "min": 0.0001, "max": 0.1, "scale": "log"}],
                "objective": {"metric": "validationAccuracy", "goal": "maximize"}}}}),
    );
    let text = with(
        &minimal,
        json!({"spec": {"model": {"architecture": "textLstm", "textLstm": {"bidirectional": true}},
            "hyperparameters": {"earlyStopping": {"metric": "validationAccuracy", "patience": 2}},
            "template": {"image": "modelops/worker:dev", "imagePullPolicy": "IfNotPresent",
                "nodeSelector": {"gpu": "true"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
            "runPolicy": {"suspend": true}}}),
    );
    expect_accepted(
        &api,
        &[
            ("examples/digits/trainingjob.yaml", digits.clone()),
            ("examples/iris/trainingjob.yaml", iris.clone()),
            ("a minimal job", minimal),
            ("a regression with sgd and a step schedule", regression),
            ("a torchscript module with a random search", scripted),
            ("a suspended text model with a pod template", text),
        ],
    )
    .await;

    expect_refused(
        &api,
        &iris,
        vec![
            refused(
                "a name too long for its Jobs",
                json!({"metadata": {"name": "t".repeat(41)}}),
                &["metadata.name", "at most 40 characters"],
            ),
            refused(
                "cnn without its options",
                json!({"spec": {"model": {"architecture": "cnn", "mlp": null}}}),
                &["spec.model.cnn", "Required value", "inputShape"],
            ),
            refused(
                "mlp options on a cnn",
                json!({"spec": {"model": {"architecture": "cnn", "cnn": {"inputShape": [1, 2, 2]}}}}),
                &["spec.model.mlp", "Forbidden", "architecture is not mlp"],
            ),
            refused(
                "an input shape of two numbers",
                json!({"spec": {"model": {"architecture": "cnn", "mlp": null, "cnn": {"inputShape": [8, 8]}}}}),
                &["spec.model.cnn.inputShape", "at least 3 items"],
            ),
            refused(
                "torchscript without a path",
                json!({"spec": {"model": {"architecture": "torchscript", "mlp": null}}}),
                &["spec.model.torchscript", "Required value", "spec.model.torchscript.path"],
            ),
            refused(
                "an unknown architecture",
                json!({"spec": {"model": {"architecture": "transformer", "mlp": null}}}),
                &["spec.model.architecture", "Unsupported value: \"transformer\""],
            ),
            refused(
                "mse for a classification",
                json!({"spec": {"hyperparameters": {"loss": "mse"}}}),
                &["spec.hyperparameters.loss", "mse is for task regression"],
            ),
            refused(
                "crossEntropy for a regression",
                json!({"spec": {"task": "regression", "hyperparameters": {"loss": "crossEntropy"}}}),
                &["spec.hyperparameters.loss", "crossEntropy and bce are for task classification"],
            ),
            refused(
                "zero epochs",
                json!({"spec": {"hyperparameters": {"epochs": 0}}}),
                &["spec.hyperparameters.epochs", "greater than or equal to 1"],
            ),
            refused(
                "a zero batch size",
                json!({"spec": {"hyperparameters": {"batchSize": 0}}}),
                &["spec.hyperparameters.batchSize", "greater than or equal to 1"],
            ),
            refused(
                "a zero learning rate",
                json!({"spec": {"hyperparameters": {"optimizer": {"learningRate": 0}}}}),
                &["spec.hyperparameters.optimizer.learningRate", "greater than 0"],
            ),
            refused(
                "momentum with adam",
                json!({"spec": {"hyperparameters": {"optimizer": {"momentum": 0.9}}}}),
                &["spec.hyperparameters.optimizer.momentum", "applies to type sgd only"],
            ),
            refused(
                "an exponential schedule without gamma",
                json!({"spec": {"hyperparameters": {"learningRateSchedule": {"type": "exponential"}}}}),
                &["spec.hyperparameters.learningRateSchedule.gamma", "Required value"],
            ),
            refused(
                "a step schedule without stepSize",
                json!({"spec": {"hyperparameters": {"learningRateSchedule": {"type": "step"}}}}),
                &["spec.hyperparameters.learningRateSchedule.stepSize", "Required value"],
            ),
            refused(
                "stepSize on a constant schedule",
                json!({"spec": {"hyperparameters": {"learningRateSchedule": {"type": "constant", "stepSize": 5}}}}),
                &["spec.hyperparameters.learningRateSchedule.stepSize", "applies to type step only"],
            ),
            refused(
                "minLearningRate on an exponential schedule",
                json!({"spec": {"hyperparameters": {"learningRateSchedule": {"type": "exponential", "gamma": 0.9, "minLearningRate": 0.0001}}}}),
                &["spec.hyperparameters.learningRateSchedule.minLearningRate", "applies to type cosine only"],
            ),
            refused(
                "early stopping on accuracy for a regression",
                json!({"spec": {"task": "regression", "hyperparameters": {"earlyStopping": {"metric": "validationAccuracy"}}}}),
                &["spec.hyperparameters.earlyStopping.metric", "needs task classification"],
            ),
            refused(
                "a negative GPU count",
                json!({"spec": {"resources": {"gpu": -1}}}),
                &["spec.resources.gpu", "greater than or equal to 0"],
            ),
            refused(
                "a memory that is not a quantity",
                json!({"spec": {"resources": {"memory": "4 GB"}}}),
                &["spec.resources.memory", "must be a positive Kubernetes quantity"],
            ),
            refused(
                "zero trials",
                json!({"spec": {"search": {"maxTrials": 0}}}),
                &["spec.search.maxTrials", "greater than or equal to 1"],
            ),
            refused(
                "zero parallelism",
                json!({"spec": {"search": {"parallelism": 0}}}),
                &["spec.search.parallelism", "greater than or equal to 1"],
            ),
            refused(
                "a grid over a range",
                json!({"spec": {"search": {"parameters": [{"name": "learningRate", "min": 0.001, "max": 0.1}]}}}),
                &["spec.search.parameters", "strategy grid needs values or choices"],
            ),
            refused(
                "values and a range together",
                json!({"spec": {"search": {"strategy": "random", "parameters": [{"name": "learningRate", "values": [0.1], "min": 0.001, "max": 0.1}]}}}),
                &["spec.search.parameters[0]", "exactly one of values, choices, or min and max"],
            ),
            refused(
                "a range with min above max",
                json!({"spec": {"search": {"strategy": "random", "parameters": [{"name": "dropout", "min": 0.5, "max": 0.1}]}}}),
                &["spec.search.parameters[0].min", "must be less than max"],
            ),
            refused(
                "a log range from 0",
                json!({"spec": {"search": {"strategy": "random", "parameters": [{"name": "learningRate", "min": 0, "max": 0.1, "scale": "log"}]}}}),
                &["spec.search.parameters[0].min", "scale log needs min greater than 0"],
            ),
            refused(
                "numeric values for the optimizer",
                json!({"spec": {"search": {"parameters": [{"name": "optimizer", "values": [1, 2]}]}}}),
                &["spec.search.parameters[0].choices", "optimizer takes choices"],
            ),
            refused(
                "choices for a numeric parameter",
                json!({"spec": {"search": {"parameters": [{"name": "batchSize", "choices": ["adam"]}]}}}),
                &["spec.search.parameters[0].choices", "for the optimizer parameter only"],
            ),
            refused(
                "a parameter searched twice",
                json!({"spec": {"search": {"parameters": [{"name": "learningRate", "values": [0.1]}, {"name": "learningRate", "values": [0.2]}]}}}),
                &["spec.search.parameters[1]", "Duplicate value"],
            ),
            refused(
                "maximizing a loss",
                json!({"spec": {"search": {"objective": {"metric": "validationLoss", "goal": "maximize"}}}}),
                &["spec.search.objective.goal", "validationLoss is minimized"],
            ),
            refused(
                "a negative backoff limit",
                json!({"spec": {"runPolicy": {"backoffLimit": -1}}}),
                &["spec.runPolicy.backoffLimit", "greater than or equal to 0"],
            ),
            refused(
                "a missing datasetRef",
                json!({"spec": {"datasetRef": null}}),
                &["spec.datasetRef", "Required value"],
            ),
        ],
    )
    .await;
    ns.delete().await;
}

#[tokio::test]
async fn trainingjob_defaults_are_filled_in_by_the_server() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "crd-defaults").await;
    let api = api_for::<TrainingJob>(&client, &ns.name);
    let created = dry_run_create(
        &api,
        &yaml(
            r#"
apiVersion: modelops.dev/v1alpha1
kind: TrainingJob
metadata: {name: defaults}
spec:
  datasetRef: {name: iris}
  task: classification
  model: {architecture: mlp}
"#,
        ),
    )
    .await
    .unwrap();
    // What the server stored must read as the typed object, with the documented defaults.
    let job: TrainingJob = serde_json::from_value(serde_json::to_value(&created).unwrap()).unwrap();
    let stored = &created.data["spec"];
    assert_eq!(stored["hyperparameters"]["epochs"], 10, "{stored}");
    assert_eq!(
        stored["hyperparameters"]["optimizer"]["type"], "adam",
        "{stored}"
    );
    assert_eq!(stored["runPolicy"]["backoffLimit"], 3, "{stored}");
    assert_eq!(job.spec.hyperparameters.batch_size, 32);
    ns.delete().await;
}

#[tokio::test]
async fn modeldeployment_rules() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "crd-modeldeployment").await;
    let api = api_for::<ModelDeployment>(&client, &ns.name);
    let canary = yaml(
        r#"
apiVersion: modelops.dev/v1alpha1
kind: ModelDeployment
metadata: {name: digits}
spec:
  model: {trainingJobRef: {name: digits}}
  replicas: 2
  serving: {maxBatchSize: 16, batchTimeout: 2ms, maxRowsPerRequest: 256, maxConcurrentRequests: 32}
  strategy:
    type: Canary
    canary:
      steps: [{weight: 10, pause: 1m}, {weight: 50, pause: 1m30s}, {weight: 100}]
      analysis: {monitorRef: {name: digits}}
  revisionHistoryLimit: 2
"#,
    );
    let artifact = yaml(&format!(
        r#"
apiVersion: modelops.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: pinned}}
spec:
  model:
    artifact:
      uri: pvc://modelops-artifacts/models/{hex}
      digest: sha256:{hex}
  resources: {{cpu: 500m, memory: 256Mi}}
"#,
        hex = "ab".repeat(32)
    ));
    let on_s3 = with(
        &artifact,
        json!({"metadata": {"name": "pinned-s3"}, "spec": {"model": {"artifact": {
            "uri": format!("s3://modelops/team-a/models/{}", "ab".repeat(32))}}}}),
    );
    let timed = with(
        &canary,
        json!({"metadata": {"name": "timed"}, "spec": {"strategy": {"canary": {"analysis": {
            "inconclusiveTimeout": "10m", "onInconclusiveTimeout": "hold"}}}}}),
    );
    expect_accepted(
        &api,
        &[
            ("a canary", canary.clone()),
            ("a pinned artifact", artifact),
            ("a pinned artifact in S3", on_s3),
            ("a canary with an inconclusive timeout", timed),
        ],
    )
    .await;

    let digest = format!("sha256:{}", "ab".repeat(32));
    expect_refused(
        &api,
        &canary,
        vec![
            refused(
                "a name too long for its Deployments",
                json!({"metadata": {"name": "m".repeat(51)}}),
                &["metadata.name", "at most 50 characters"],
            ),
            refused(
                "a name that is no Service name",
                json!({"metadata": {"name": "1digits"}}),
                &["metadata.name", "DNS label"],
            ),
            refused(
                "a negative cpu",
                json!({"spec": {"resources": {"cpu": "-500m"}}}),
                &["spec.resources.cpu", "must be a positive Kubernetes quantity"],
            ),
            refused(
                "both a TrainingJob and an artifact",
                json!({"spec": {"model": {"artifact": {"uri": "pvc://modelops-artifacts/models/x", "digest": digest}}}}),
                &["spec.model", "set exactly one of trainingJobRef or artifact"],
            ),
            refused(
                "no model",
                json!({"spec": {"model": {"trainingJobRef": null}}}),
                &["spec.model", "set exactly one of trainingJobRef or artifact"],
            ),
            refused(
                "a digest that is not sha256",
                json!({"spec": {"model": {"trainingJobRef": null, "artifact": {"uri": "pvc://modelops-artifacts/models/x", "digest": "md5:abc"}}}}),
                &["spec.model.artifact.digest", "should match"],
            ),
            refused(
                "an artifact URI of no store",
                json!({"spec": {"model": {"trainingJobRef": null, "artifact": {"uri": "https://example.com/model", "digest": digest}}}}),
                &["spec.model.artifact.uri", "should match"],
            ),
            refused(
                "Canary without canary",
                json!({"spec": {"strategy": {"canary": null}}}),
                &["spec.strategy.canary", "Required value", "required when spec.strategy.type is Canary"],
            ),
            refused(
                "canary with Replace",
                json!({"spec": {"strategy": {"type": "Replace"}}}),
                &["spec.strategy.canary", "Forbidden", "applies to type Canary only"],
            ),
            refused(
                "decreasing weights",
                json!({"spec": {"strategy": {"canary": {"steps": [{"weight": 50}, {"weight": 10}]}}}}),
                &["spec.strategy.canary.steps", "weights must increase"],
            ),
            refused(
                "a repeated weight",
                json!({"spec": {"strategy": {"canary": {"steps": [{"weight": 10}, {"weight": 10}]}}}}),
                &["spec.strategy.canary.steps", "weights must increase"],
            ),
            refused(
                "a zero weight",
                json!({"spec": {"strategy": {"canary": {"steps": [{"weight": 0}]}}}}),
                &["spec.strategy.canary.steps[0].weight", "greater than or equal to 1"],
            ),
            refused(
                "a weight above 100",
                json!({"spec": {"strategy": {"canary": {"steps": [{"weight": 101}]}}}}),
                &["spec.strategy.canary.steps[0].weight", "less than or equal to 100"],
            ),
            refused(
                "no steps",
                json!({"spec": {"strategy": {"canary": {"steps": []}}}}),
                &["spec.strategy.canary.steps", "at least 1 items"],
            ),
            refused(
                "a pause that is not a duration",
                json!({"spec": {"strategy": {"canary": {"steps": [{"weight": 10, "pause": "soon"}]}}}}),
                &["spec.strategy.canary.steps[0].pause", "should match"],
            ),
            refused(
                "an inconclusive timeout that is not a duration",
                json!({"spec": {"strategy": {"canary": {"analysis": {"inconclusiveTimeout": "ten minutes"}}}}}),
                &["spec.strategy.canary.analysis.inconclusiveTimeout", "should match"],
            ),
            refused(
                "a zero inconclusive timeout",
                json!({"spec": {"strategy": {"canary": {"analysis": {"inconclusiveTimeout": "0s"}}}}}),
                &["spec.strategy.canary.analysis.inconclusiveTimeout", "must be greater than 0"],
            ),
            refused(
                "an inconclusive timeout action without a timeout",
                json!({"spec": {"strategy": {"canary": {"analysis": {"onInconclusiveTimeout": "promote"}}}}}),
                &["spec.strategy.canary.analysis.onInconclusiveTimeout", "Forbidden", "needs spec.strategy.canary.analysis.inconclusiveTimeout"],
            ),
            refused(
                "an unknown inconclusive timeout action",
                json!({"spec": {"strategy": {"canary": {"analysis": {"inconclusiveTimeout": "10m", "onInconclusiveTimeout": "retry"}}}}}),
                &["spec.strategy.canary.analysis.onInconclusiveTimeout", "Unsupported value: \"retry\""],
            ),
            refused(
                "an unknown strategy",
                json!({"spec": {"strategy": {"type": "BlueGreen"}}}),
                &["spec.strategy.type", "Unsupported value: \"BlueGreen\""],
            ),
            refused(
                "zero replicas",
                json!({"spec": {"replicas": 0}}),
                &["spec.replicas", "greater than or equal to 1"],
            ),
            refused(
                "a zero batch size",
                json!({"spec": {"serving": {"maxBatchSize": 0}}}),
                &["spec.serving.maxBatchSize", "greater than or equal to 1"],
            ),
            refused(
                "no rows per request",
                json!({"spec": {"serving": {"maxRowsPerRequest": 0}}}),
                &["spec.serving.maxRowsPerRequest", "greater than or equal to 1"],
            ),
            refused(
                "an unbounded concurrency",
                json!({"spec": {"serving": {"maxConcurrentRequests": 100000}}}),
                &["spec.serving.maxConcurrentRequests", "less than or equal to 10000"],
            ),
        ],
    )
    .await;
    ns.delete().await;
}

#[tokio::test]
async fn monitor_rules() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::create(&client, "crd-monitor").await;
    let api = api_for::<Monitor>(&client, &ns.name);
    let monitor = yaml(
        r#"
apiVersion: modelops.dev/v1alpha1
kind: Monitor
metadata: {name: digits}
spec:
  targetRef: {name: digits}
  interval: 30s
  window: {samples: 500, maxAge: 30m}
  metrics:
    - accuracy: {min: 0.9, minSamples: 50}
    - inputDrift: {method: psi, max: 0.2}
    - predictionDrift: {method: ks, max: 0.3}
    - latency: {p99Max: 250ms}
    - errorRate: {max: 0.05}
  failureThreshold: 2
  action: rollback
"#,
    );
    let minimal = yaml(
        r#"
apiVersion: modelops.dev/v1alpha1
kind: Monitor
metadata: {name: minimal}
spec:
  targetRef: {name: digits}
  metrics: [{accuracy: {min: 0.8}}]
"#,
    );
    let sequential = yaml(
        r#"
apiVersion: modelops.dev/v1alpha1
kind: Monitor
metadata: {name: sequential}
spec:
  targetRef: {name: digits}
  metrics: [{accuracy: {min: 0.85, minSamples: 20, mode: sequential, confidence: 0.995}}]
"#,
    );
    let regression = yaml(
        r#"
apiVersion: modelops.dev/v1alpha1
kind: Monitor
metadata: {name: regression}
spec:
  targetRef: {name: petal-width}
  metrics:
    - rmse: {max: 0.35, minSamples: 20, mode: sequential, confidence: 0.99}
    - mae: {max: 0.3}
    - predictionDrift: {max: 0.25}
"#,
    );
    expect_accepted(
        &api,
        &[
            ("every kind of metric", monitor.clone()),
            ("a minimal Monitor", minimal),
            ("a sequential accuracy test", sequential),
            (
                "a regression Monitor (rmse, mae, prediction drift)",
                regression,
            ),
            ("examples/digits/promql-monitor.yaml", {
                // As its header says: with the address of a Prometheus the cluster allows.
                let mut promql = yaml(include_str!("../examples/digits/promql-monitor.yaml"));
                promql["spec"]["metrics"][0]["prometheus"]["address"] = json!(prometheus_url());
                promql
            }),
        ],
    )
    .await;

    expect_refused(
        &api,
        &monitor,
        vec![
            refused(
                "an item with two kinds",
                json!({"spec": {"metrics": [{"accuracy": {"min": 0.9}, "errorRate": {"max": 0.1}}]}}),
                &["spec.metrics[0]", "exactly one of accuracy, rmse, mae, inputDrift, predictionDrift, latency, errorRate or prometheus"],
            ),
            refused(
                "an empty item",
                json!({"spec": {"metrics": [{"latency": {"p99Max": "1s"}}, {}]}}),
                &["spec.metrics[1]", "exactly one of accuracy"],
            ),
            refused(
                "the same kind twice",
                json!({"spec": {"metrics": [{"accuracy": {"min": 0.9}}, {"accuracy": {"min": 0.8}}]}}),
                &["spec.metrics", "may appear at most once"],
            ),
            refused(
                "no metrics",
                json!({"spec": {"metrics": []}}),
                &["spec.metrics", "at least 1 items"],
            ),
            refused(
                "an accuracy above 1",
                json!({"spec": {"metrics": [{"accuracy": {"min": 1.5}}]}}),
                &["spec.metrics[0].accuracy.min", "less than or equal to 1"],
            ),
            refused(
                "an unknown accuracy mode",
                json!({"spec": {"metrics": [{"accuracy": {"min": 0.9, "mode": "bayesian"}}]}}),
                &["spec.metrics[0].accuracy.mode", "Unsupported value: \"bayesian\""],
            ),
            refused(
                "a sequential test against an accuracy of 1",
                json!({"spec": {"metrics": [{"accuracy": {"min": 1, "mode": "sequential"}}]}}),
                &["spec.metrics[0].accuracy.min", "mode sequential needs 0 < min < 1"],
            ),
            refused(
                "a sequential test against an accuracy of 0",
                json!({"spec": {"metrics": [{"accuracy": {"min": 0, "mode": "sequential"}}]}}),
                &["spec.metrics[0].accuracy.min", "mode sequential needs 0 < min < 1"],
            ),
            refused(
                "a confidence of 1",
                json!({"spec": {"metrics": [{"accuracy": {"min": 0.9, "mode": "sequential", "confidence": 1}}]}}),
                &["spec.metrics[0].accuracy.confidence", "must be in (0.5, 1)"],
            ),
            refused(
                "a confidence of one half",
                json!({"spec": {"metrics": [{"accuracy": {"min": 0.9, "mode": "sequential", "confidence": 0.5}}]}}),
                &["spec.metrics[0].accuracy.confidence", "must be in (0.5, 1)"],
            ),
            refused(
                "a confidence without mode sequential",
                json!({"spec": {"metrics": [{"accuracy": {"min": 0.9, "confidence": 0.99}}]}}),
                &["spec.metrics[0].accuracy.confidence", "applies to mode sequential only"],
            ),
            refused(
                "rmse twice",
                json!({"spec": {"metrics": [{"rmse": {"max": 1}}, {"rmse": {"max": 2}}]}}),
                &["spec.metrics", "may appear at most once"],
            ),
            refused(
                "a zero rmse maximum",
                json!({"spec": {"metrics": [{"rmse": {"max": 0}}]}}),
                &["spec.metrics[0].rmse.max", "greater than 0"],
            ),
            refused(
                "a negative mae maximum",
                json!({"spec": {"metrics": [{"mae": {"max": -1}}]}}),
                &["spec.metrics[0].mae.max", "greater than 0"],
            ),
            refused(
                "an mae confidence without mode sequential",
                json!({"spec": {"metrics": [{"mae": {"max": 1, "confidence": 0.99}}]}}),
                &["spec.metrics[0].mae.confidence", "applies to mode sequential only"],
            ),
            refused(
                "an rmse confidence of 1",
                json!({"spec": {"metrics": [{"rmse": {"max": 1, "mode": "sequential", "confidence": 1}}]}}),
                &["spec.metrics[0].rmse.confidence", "must be in (0.5, 1)"],
            ),
            refused(
                "an unknown rmse mode",
                json!({"spec": {"metrics": [{"rmse": {"max": 1, "mode": "bayesian"}}]}}),
                &["spec.metrics[0].rmse.mode", "Unsupported value: \"bayesian\""],
            ),
            refused(
                "a zero drift maximum",
                json!({"spec": {"metrics": [{"inputDrift": {"max": 0}}]}}),
                &["spec.metrics[0].inputDrift.max", "greater than 0"],
            ),
            refused(
                "a ks distance above 1",
                json!({"spec": {"metrics": [{"inputDrift": {"method": "ks", "max": 2}}]}}),
                &["spec.metrics[0].inputDrift.max", "a ks distance is at most 1"],
            ),
            refused(
                "an unknown drift method",
                json!({"spec": {"metrics": [{"predictionDrift": {"method": "chi2", "max": 0.2}}]}}),
                &["spec.metrics[0].predictionDrift.method", "Unsupported value: \"chi2\""],
            ),
            refused(
                "a prometheus metric with both bounds",
                json!({"spec": {"metrics": [{"prometheus": {"address": "http://prometheus:9090", "query": "up", "min": 1, "max": 2}}]}}),
                &["spec.metrics[0].prometheus", "set exactly one of min"],
            ),
            refused(
                "a prometheus metric with no bound",
                json!({"spec": {"metrics": [{"prometheus": {"address": "http://prometheus:9090", "query": "up"}}]}}),
                &["spec.metrics[0].prometheus", "set exactly one of min"],
            ),
            refused(
                "a prometheus address that is not an http URL",
                json!({"spec": {"metrics": [{"prometheus": {"address": "file:///etc/passwd", "query": "up", "max": 1}}]}}),
                &["spec.metrics[0].prometheus.address", "should match"],
            ),
            refused(
                "an empty PromQL query",
                json!({"spec": {"metrics": [{"prometheus": {"address": "http://prometheus:9090", "query": "", "max": 1}}]}}),
                &["spec.metrics[0].prometheus.query", "at least 1 chars"],
            ),
            refused(
                "a negative error rate",
                json!({"spec": {"metrics": [{"errorRate": {"max": -0.1}}]}}),
                &["spec.metrics[0].errorRate.max", "greater than or equal to 0"],
            ),
            refused(
                "a zero latency maximum",
                json!({"spec": {"metrics": [{"latency": {"p99Max": "0s"}}]}}),
                &["spec.metrics[0].latency.p99Max", "must be greater than 0"],
            ),
            refused(
                "a zero failure threshold",
                json!({"spec": {"failureThreshold": 0}}),
                &["spec.failureThreshold", "greater than or equal to 1"],
            ),
            refused(
                "an unknown action",
                json!({"spec": {"action": "page"}}),
                &["spec.action", "Unsupported value: \"page\""],
            ),
            refused(
                "an interval under a second",
                json!({"spec": {"interval": "100ms"}}),
                &["spec.interval", "must be at least 1s"],
            ),
            refused(
                "an interval that is not a duration",
                json!({"spec": {"interval": "often"}}),
                &["spec.interval", "should match"],
            ),
            refused(
                "a zero window",
                json!({"spec": {"window": {"samples": 0}}}),
                &["spec.window.samples", "greater than or equal to 1"],
            ),
        ],
    )
    .await;
    ns.delete().await;
}
