//! The Open Inference Protocol v2 (KServe) in JSON, as modelops serves it: reading an inference
//! request into validated rows, and writing responses and metadata.
//!
//! Everything here is pure (bytes in, rows or a [`RequestError`] out), so every way a request
//! can be wrong is unit-tested without a server. A table model takes one input of shape
//! `[n, features]` (numbers, flat or nested one row per array); a text model one BYTES input of
//! shape `[n]` or `[n, 1]` (one string per row). The input's name is not checked: clients name it
//! as they like (`input`, `input-0`).

use modelops_api::serving::{
    OUTPUT_FEEDBACK_ID, OUTPUT_LABEL, OUTPUT_PREDICTION, OUTPUT_PROBABILITIES,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// The status and message of a request the server refuses; the body is `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The HTTP status.
    pub status: u16,
    /// What is wrong, for the client.
    pub message: String,
}

impl RequestError {
    /// A 400 Bad Request.
    pub fn bad(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
        }
    }

    /// An error with another status.
    pub fn status(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// What a model reads.
#[derive(Debug, Clone, PartialEq)]
pub enum InputKind {
    /// Numeric features, in this order.
    Table {
        /// Feature names.
        features: Vec<String>,
    },
    /// One text per row.
    Text,
}

/// What a model predicts.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputKind {
    /// One of these classes.
    Classes(Vec<String>),
    /// A number.
    Value,
}

/// The served model, as the protocol describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// The ModelDeployment's name: the model name in paths.
    pub name: String,
    /// The revision: the model's only version.
    pub revision: i32,
    /// `modelops-<architecture>`.
    pub platform: String,
    /// `sha256:<hex>` of the weights.
    pub digest: String,
    /// What it reads.
    pub input: InputKind,
    /// What it predicts.
    pub output: OutputKind,
}

impl ModelInfo {
    /// The version as the protocol writes it.
    pub fn version(&self) -> String {
        self.revision.to_string()
    }

    /// The output names, in response order.
    pub fn output_names(&self) -> &'static [&'static str] {
        match self.output {
            OutputKind::Classes(_) => &[OUTPUT_LABEL, OUTPUT_PROBABILITIES, OUTPUT_FEEDBACK_ID],
            OutputKind::Value => &[OUTPUT_PREDICTION, OUTPUT_FEEDBACK_ID],
        }
    }

    /// `GET /v2/models/{name}`.
    pub fn metadata(&self) -> Value {
        let input = match &self.input {
            InputKind::Table { features } => json!({
                "name": "input", "datatype": "FP32", "shape": [-1, features.len()],
                "parameters": {"features": features},
            }),
            InputKind::Text => json!({"name": "text", "datatype": "BYTES", "shape": [-1]}),
        };
        let (outputs, parameters) = match &self.output {
            OutputKind::Classes(classes) => (
                json!([
                    {"name": OUTPUT_LABEL, "datatype": "BYTES", "shape": [-1]},
                    {"name": OUTPUT_PROBABILITIES, "datatype": "FP32", "shape": [-1, classes.len()]},
                    {"name": OUTPUT_FEEDBACK_ID, "datatype": "BYTES", "shape": [-1]},
                ]),
                json!({"task": "classification", "classes": classes, "digest": self.digest}),
            ),
            OutputKind::Value => (
                json!([
                    {"name": OUTPUT_PREDICTION, "datatype": "FP32", "shape": [-1]},
                    {"name": OUTPUT_FEEDBACK_ID, "datatype": "BYTES", "shape": [-1]},
                ]),
                json!({"task": "regression", "digest": self.digest}),
            ),
        };
        json!({
            "name": self.name,
            "versions": [self.version()],
            "platform": self.platform,
            "inputs": [input],
            "outputs": outputs,
            "parameters": parameters,
        })
    }
}

/// `GET /v2`.
pub fn server_metadata() -> Value {
    json!({
        "name": "modelops-worker",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [],
    })
}

/// One row of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// Raw feature values, in the model's feature order.
    Features(Vec<f64>),
    /// A text.
    Text(String),
}

/// What the model predicted for one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOutput {
    /// Index into the classes, and every class's probability.
    Class {
        /// The most probable class.
        index: usize,
        /// One probability per class.
        probabilities: Vec<f32>,
    },
    /// A regression value.
    Value(f32),
}

/// A validated inference request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    /// The client's request id, echoed in the response.
    pub id: Option<String>,
    /// The rows, at least one.
    pub rows: Vec<Row>,
    /// The outputs asked for (all when `None`).
    pub outputs: Option<Vec<String>>,
}

/// The body of an inference request. Fields the protocol's clients add that the server does not
/// use (`model_name`, `model_version` of KServe's client, a tensor's extra keys) are ignored, as
/// the Open Inference Protocol's servers do; parameters that would change the answer and are not
/// supported are refused by name ([`unsupported_parameter`]).
#[derive(Deserialize)]
struct RawRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<RawInput>,
    #[serde(default)]
    outputs: Option<Vec<RawOutput>>,
    #[serde(default)]
    parameters: Option<Value>,
}

#[derive(Deserialize)]
struct RawInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Element,
    #[serde(default)]
    parameters: Option<Value>,
}

/// One element of an input's `data`, read straight from the JSON: building a `serde_json::Value`
/// for every number would cost more than the forward pass of a small model.
#[derive(Debug, Clone, PartialEq)]
enum Element {
    Number(f64),
    Text(String),
    Array(Vec<Element>),
    /// `null`, `true`, `false` or an object, as the error message names it.
    Other(&'static str),
}

impl std::fmt::Display for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Element::Number(number) => write!(f, "{number}"),
            Element::Text(text) => write!(f, "{text:?}"),
            Element::Array(_) => f.write_str("an array"),
            Element::Other(what) => f.write_str(what),
        }
    }
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ElementVisitor;

        impl<'de> serde::de::Visitor<'de> for ElementVisitor {
            type Value = Element;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number, a string or an array")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Element, E> {
                Ok(Element::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Element, E> {
                Ok(Element::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Element, E> {
                Ok(Element::Number(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<Element, E> {
                Ok(Element::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Element, E> {
                Ok(Element::Text(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Element, E> {
                Ok(Element::Other(if v { "true" } else { "false" }))
            }
            fn visit_unit<E>(self) -> Result<Element, E> {
                Ok(Element::Other("null"))
            }
            fn visit_none<E>(self) -> Result<Element, E> {
                Ok(Element::Other("null"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Element, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Element::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Element, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Element::Other("an object"))
            }
        }

        deserializer.deserialize_any(ElementVisitor)
    }
}

#[derive(Deserialize)]
struct RawOutput {
    name: String,
    #[serde(default)]
    parameters: Option<Value>,
}

/// The first parameter of the request that asks for what the server does not do, with the fix:
/// the binary tensor extension (`binary_data_output`, `binary_data`, `binary_data_size`) and the
/// classification extension (`classification`). A parameter set to `false` or 0 asks for nothing.
fn unsupported_parameter(request: &RawRequest) -> Option<String> {
    let set = |parameters: &Option<Value>, key: &str| {
        parameters
            .as_ref()
            .and_then(|p| p.get(key))
            .is_some_and(|v| !matches!(v, Value::Bool(false) | Value::Null) && v != &json!(0))
    };
    let binary = "the binary tensor extension is not supported: send and ask for JSON tensors";
    if set(&request.parameters, "binary_data_output") {
        return Some(format!(
            "parameters.binary_data_output: {binary} (binary_data_output false)"
        ));
    }
    for input in &request.inputs {
        if set(&input.parameters, "binary_data_size") {
            return Some(format!(
                "input {:?}: parameters.binary_data_size: {binary} (the tensor in `data`)",
                input.name
            ));
        }
    }
    for output in request.outputs.iter().flatten() {
        if set(&output.parameters, "binary_data") {
            return Some(format!(
                "output {:?}: parameters.binary_data: {binary} (binary_data false)",
                output.name
            ));
        }
        if set(&output.parameters, "classification") {
            return Some(format!(
                "output {:?}: parameters.classification: the classification extension is not supported; the `{OUTPUT_LABEL}` and `{OUTPUT_PROBABILITIES}` outputs give each row's class and its probabilities",
                output.name
            ));
        }
    }
    None
}

/// The numeric datatypes a table model accepts, with the range of values each can hold.
fn numeric_range(datatype: &str) -> Option<(f64, f64, bool)> {
    // (min, max, integers only)
    Some(match datatype {
        "FP32" => (f32::MIN as f64, f32::MAX as f64, false),
        "FP64" => (f64::MIN, f64::MAX, false),
        "INT8" => (i8::MIN as f64, i8::MAX as f64, true),
        "INT16" => (i16::MIN as f64, i16::MAX as f64, true),
        "INT32" => (i32::MIN as f64, i32::MAX as f64, true),
        "INT64" => (i64::MIN as f64, i64::MAX as f64, true),
        "UINT8" => (0.0, u8::MAX as f64, true),
        "UINT16" => (0.0, u16::MAX as f64, true),
        "UINT32" => (0.0, u32::MAX as f64, true),
        "UINT64" => (0.0, u64::MAX as f64, true),
        _ => return None,
    })
}

/// Reads the body of `POST /v2/models/{name}/infer` for `model`.
pub fn parse_infer(body: &[u8], model: &ModelInfo) -> Result<InferRequest, RequestError> {
    let request: RawRequest = serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                RequestError::bad(format!("the body is not valid JSON: {e}"))
            }
            Category::Data => RequestError::bad(format!(
                "the body is not an inference request ({{\"inputs\": [{{\"name\", \"shape\", \"datatype\", \"data\"}}]}}): {e}"
            )),
        }
    })?;
    if let Some(message) = unsupported_parameter(&request) {
        return Err(RequestError::bad(message));
    }
    let input = match request.inputs.as_slice() {
        [input] => input,
        [] => {
            return Err(RequestError::bad(format!(
                "the request has no inputs; model {:?} takes one input: {}",
                model.name,
                expected_input(model)
            )));
        }
        inputs => {
            return Err(RequestError::bad(format!(
                "the request has {} inputs ({}); model {:?} takes one: {}",
                inputs.len(),
                inputs
                    .iter()
                    .map(|i| format!("{:?}", i.name))
                    .collect::<Vec<_>>()
                    .join(", "),
                model.name,
                expected_input(model)
            )));
        }
    };
    let rows = match &model.input {
        InputKind::Table { features } => table_rows(input, features.len(), model)?,
        InputKind::Text => text_rows(input, model)?,
    };
    let outputs = match request.outputs {
        Some(outputs) => {
            let known = model.output_names();
            for output in &outputs {
                if !known.contains(&output.name.as_str()) {
                    return Err(RequestError::bad(format!(
                        "unknown output {:?}; model {:?} has the outputs {}",
                        output.name,
                        model.name,
                        known.join(", ")
                    )));
                }
            }
            Some(outputs.into_iter().map(|o| o.name).collect())
        }
        None => None,
    };
    Ok(InferRequest {
        id: request.id,
        rows,
        outputs,
    })
}

fn expected_input(model: &ModelInfo) -> String {
    match &model.input {
        InputKind::Table { features } => format!(
            "FP32 or FP64 (or INT*) of shape [n, {}] holding the raw features {}",
            features.len(),
            feature_list(features)
        ),
        InputKind::Text => "BYTES of shape [n], one string per row".to_owned(),
    }
}

fn feature_list(features: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut list = features
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if features.len() > SHOWN {
        list.push_str(&format!(", … ({} in all)", features.len()));
    }
    list
}

/// The number of rows a shape declares, checked against `[n, width]` (`width` None: `[n]` or
/// `[n, 1]`).
fn rows_of_shape(
    input: &RawInput,
    width: Option<usize>,
    model: &ModelInfo,
) -> Result<usize, RequestError> {
    let shape = &input.shape;
    let expected = || match width {
        Some(width) => format!("[n, {width}]"),
        None => "[n] or [n, 1]".to_owned(),
    };
    let fits = match (shape.as_slice(), width) {
        ([n, w], Some(width)) => *n >= 0 && *w == width as i64,
        ([n], None) => *n >= 0,
        ([n, 1], None) => *n >= 0,
        _ => false,
    };
    if !fits {
        return Err(RequestError::bad(format!(
            "input {:?} has shape {shape:?}; model {:?} expects {}: {}",
            input.name,
            model.name,
            expected(),
            expected_input(model)
        )));
    }
    let rows = shape[0] as usize;
    if rows == 0 {
        return Err(RequestError::bad(format!(
            "input {:?} has shape {shape:?}: no rows to predict",
            input.name
        )));
    }
    Ok(rows)
}

/// The elements of `data`, flat or nested one level (one array per row of `row_width`).
fn flatten(input: &RawInput, rows: usize, row_width: usize) -> Result<Vec<&Element>, RequestError> {
    let Element::Array(items) = &input.data else {
        return Err(RequestError::bad(format!(
            "input {:?}: data must be an array (flat, or one array per row)",
            input.name
        )));
    };
    let expected = rows
        .checked_mul(row_width)
        .ok_or_else(|| RequestError::bad(format!("input {:?}: shape too large", input.name)))?;
    let nested = matches!(items.first(), Some(Element::Array(_)));
    let flat: Vec<&Element> = if nested {
        if items.len() != rows {
            return Err(RequestError::bad(format!(
                "input {:?} has shape {:?} but {} rows of data",
                input.name,
                input.shape,
                items.len()
            )));
        }
        let mut flat = Vec::with_capacity(expected);
        for (index, row) in items.iter().enumerate() {
            match row {
                Element::Array(values) if values.len() == row_width => flat.extend(values),
                Element::Array(values) => {
                    return Err(RequestError::bad(format!(
                        "input {:?}: row {index} has {} values; the shape {:?} says {row_width}",
                        input.name,
                        values.len(),
                        input.shape
                    )));
                }
                _ => {
                    return Err(RequestError::bad(format!(
                        "input {:?}: row {index} is not an array; nest every row or none",
                        input.name
                    )));
                }
            }
        }
        flat
    } else {
        items.iter().collect()
    };
    if flat.len() != expected {
        return Err(RequestError::bad(format!(
            "input {:?} has shape {:?} ({expected} values) but {} values of data",
            input.name,
            input.shape,
            flat.len()
        )));
    }
    Ok(flat)
}

fn table_rows(input: &RawInput, width: usize, model: &ModelInfo) -> Result<Vec<Row>, RequestError> {
    let Some((min, max, integers)) = numeric_range(&input.datatype) else {
        let hint = if input.datatype == "BYTES" {
            format!("model {:?} reads numbers, not text", model.name)
        } else {
            format!("datatype {:?} is not supported", input.datatype)
        };
        return Err(RequestError::bad(format!(
            "input {:?} has datatype {}: {hint}; send {}",
            input.name,
            input.datatype,
            expected_input(model)
        )));
    };
    let rows = rows_of_shape(input, Some(width), model)?;
    let flat = flatten(input, rows, width)?;
    let mut values = Vec::with_capacity(flat.len());
    for (index, value) in flat.into_iter().enumerate() {
        let number = match value {
            Element::Number(number) if number.is_finite() => Some(*number),
            _ => None,
        }
        .ok_or_else(|| {
            RequestError::bad(format!(
                "input {:?}: value {index} (row {}, feature {:?}) is {value}, not a number",
                input.name,
                index / width,
                feature_name(model, index % width)
            ))
        })?;
        if number < min || number > max || (integers && number.fract() != 0.0) {
            return Err(RequestError::bad(format!(
                "input {:?}: value {index} ({number}) is not a valid {}",
                input.name, input.datatype
            )));
        }
        values.push(number);
    }
    Ok(values
        .chunks(width)
        .map(|row| Row::Features(row.to_vec()))
        .collect())
}

fn feature_name(model: &ModelInfo, index: usize) -> &str {
    match &model.input {
        InputKind::Table { features } => features.get(index).map_or("?", String::as_str),
        InputKind::Text => "text",
    }
}

fn text_rows(input: &RawInput, model: &ModelInfo) -> Result<Vec<Row>, RequestError> {
    if input.datatype != "BYTES" {
        return Err(RequestError::bad(format!(
            "input {:?} has datatype {}: model {:?} reads text; send {}",
            input.name,
            input.datatype,
            model.name,
            expected_input(model)
        )));
    }
    let rows = rows_of_shape(input, None, model)?;
    let flat = flatten(input, rows, 1)?;
    flat.into_iter()
        .enumerate()
        .map(|(index, value)| match value {
            Element::Text(text) => Ok(Row::Text(text.clone())),
            other => Err(RequestError::bad(format!(
                "input {:?}: row {index} is {other}, not a string",
                input.name
            ))),
        })
        .collect()
}

/// The body of an inference response. `feedback_ids` has one id per row (none when the
/// `feedback_id` output is not asked for).
pub fn infer_response(
    model: &ModelInfo,
    id: &str,
    outputs: &[RowOutput],
    feedback_ids: &[String],
    wanted: Option<&[String]>,
) -> Value {
    let rows = outputs.len();
    let wants = |name: &str| wanted.is_none_or(|w| w.iter().any(|n| n == name));
    let mut tensors = Vec::new();
    match &model.output {
        OutputKind::Classes(classes) => {
            if wants(OUTPUT_LABEL) {
                let labels: Vec<&str> = outputs
                    .iter()
                    .map(|o| match o {
                        RowOutput::Class { index, .. } => classes[*index].as_str(),
                        RowOutput::Value(_) => "",
                    })
                    .collect();
                tensors.push(json!({"name": OUTPUT_LABEL, "datatype": "BYTES", "shape": [rows], "data": labels}));
            }
            if wants(OUTPUT_PROBABILITIES) {
                let probabilities: Vec<f32> = outputs
                    .iter()
                    .flat_map(|o| match o {
                        RowOutput::Class { probabilities, .. } => probabilities.clone(),
                        RowOutput::Value(_) => Vec::new(),
                    })
                    .collect();
                tensors.push(json!({"name": OUTPUT_PROBABILITIES, "datatype": "FP32", "shape": [rows, classes.len()], "data": probabilities}));
            }
        }
        OutputKind::Value => {
            if wants(OUTPUT_PREDICTION) {
                let values: Vec<f32> = outputs
                    .iter()
                    .map(|o| match o {
                        RowOutput::Value(v) => *v,
                        RowOutput::Class { .. } => f32::NAN,
                    })
                    .collect();
                tensors.push(json!({"name": OUTPUT_PREDICTION, "datatype": "FP32", "shape": [rows], "data": values}));
            }
        }
    }
    if wants(OUTPUT_FEEDBACK_ID) {
        tensors.push(json!({"name": OUTPUT_FEEDBACK_ID, "datatype": "BYTES", "shape": [rows], "data": feedback_ids}));
    }
    json!({
        "id": id,
        "model_name": model.name,
        "model_version": model.version(),
        "outputs": tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ModelInfo {
        ModelInfo {
            name: "iris".into(),
            revision: 2,
            platform: "modelops-mlp".into(),
            digest: "sha256:ab".into(),
            input: InputKind::Table {
                features: vec!["a".into(), "b".into(), "c".into()],
            },
            output: OutputKind::Classes(vec!["x".into(), "y".into()]),
        }
    }

    fn text() -> ModelInfo {
        ModelInfo {
            input: InputKind::Text,
            ..table()
        }
    }

    fn parse(body: Value, model: &ModelInfo) -> Result<InferRequest, RequestError> {
        parse_infer(body.to_string().as_bytes(), model)
    }

    fn error(body: Value, model: &ModelInfo) -> String {
        let error = parse(body, model).unwrap_err();
        assert_eq!(error.status, 400);
        error.message
    }

    fn input(shape: Value, datatype: &str, data: Value) -> Value {
        json!({"inputs": [{"name": "input-0", "shape": shape, "datatype": datatype, "data": data}]})
    }

    #[test]
    fn flat_and_nested_rows_of_any_numeric_type_read_alike() {
        let flat = parse(
            input(json!([2, 3]), "FP32", json!([1, 2, 3.5, 4, 5, 6])),
            &table(),
        )
        .unwrap();
        let nested = parse(
            input(json!([2, 3]), "FP64", json!([[1, 2, 3.5], [4, 5, 6]])),
            &table(),
        )
        .unwrap();
        assert_eq!(flat.rows, nested.rows);
        assert_eq!(flat.rows[0], Row::Features(vec![1.0, 2.0, 3.5]));
        let ints = parse(input(json!([1, 3]), "INT64", json!([1, -2, 3])), &table()).unwrap();
        assert_eq!(ints.rows, [Row::Features(vec![1.0, -2.0, 3.0])]);
        let with_id = parse(
            json!({"id": "req-1", "inputs": [{"name": "x", "shape": [1, 3], "datatype": "UINT8", "data": [0, 255, 7]}], "parameters": {"a": 1}}),
            &table(),
        )
        .unwrap();
        assert_eq!(with_id.id.as_deref(), Some("req-1"));
    }

    #[test]
    fn texts_read_flat_or_as_one_column() {
        let flat = parse(input(json!([2]), "BYTES", json!(["a b", "c"])), &text()).unwrap();
        let column = parse(
            input(json!([2, 1]), "BYTES", json!([["a b"], ["c"]])),
            &text(),
        )
        .unwrap();
        assert_eq!(flat.rows, column.rows);
        assert_eq!(flat.rows[1], Row::Text("c".into()));
    }

    #[test]
    fn malformed_json_is_named() {
        for body in ["", "{", "{\"inputs\": [}", "not json"] {
            let error = parse_infer(body.as_bytes(), &table()).unwrap_err();
            assert_eq!(error.status, 400);
            assert!(
                error.message.starts_with("the body is not valid JSON"),
                "{body:?}: {}",
                error.message
            );
        }
    }

    #[test]
    fn a_body_that_is_not_a_request_is_named() {
        for (body, expected) in [
            (json!([1, 2]), "not an inference request"),
            (json!({}), "missing field `inputs`"),
            (json!({"input": []}), "missing field `inputs`"),
            (
                json!({"inputs": [{"name": "x", "datatype": "FP32", "data": []}]}),
                "missing field `shape`",
            ),
            (
                json!({"inputs": [{"name": "x", "shape": [1, 3], "data": []}]}),
                "missing field `datatype`",
            ),
            (
                json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32"}]}),
                "missing field `data`",
            ),
            (
                json!({"inputs": [{"name": "x", "shape": ["1", 3], "datatype": "FP32", "data": []}]}),
                "invalid type",
            ),
        ] {
            let message = error(body.clone(), &table());
            assert!(message.contains(expected), "{body}: {message}");
        }
    }

    #[test]
    fn what_the_protocols_clients_add_is_ignored_and_unsupported_extensions_are_named() {
        // KServe's InferenceRESTClient sends model_name (and model_version); others add keys
        // to tensors and parameters the server has no use for.
        let mut body = input(json!([1, 3]), "FP32", json!([1, 2, 3]));
        body["model_name"] = json!("iris");
        body["model_version"] = json!("1");
        body["inputs"][0]["parameters"] = json!({"content_type": "np", "binary_data_size": 0});
        body["inputs"][0]["tags"] = json!(["x"]);
        body["parameters"] = json!({"binary_data_output": false, "priority": 1});
        body["outputs"] = json!([{"name": "label", "parameters": {"binary_data": false}, "x": 1}]);
        let request = parse(body.clone(), &table()).expect("a request with extra fields");
        assert_eq!(request.rows.len(), 1);
        assert_eq!(request.outputs, Some(vec!["label".to_owned()]));
        for (change, expected) in [
            (
                json!({"parameters": {"binary_data_output": true}}),
                "parameters.binary_data_output: the binary tensor extension is not supported",
            ),
            (
                json!({"outputs": [{"name": "label", "parameters": {"binary_data": true}}]}),
                "output \"label\": parameters.binary_data",
            ),
            (
                json!({"outputs": [{"name": "label", "parameters": {"classification": 2}}]}),
                "output \"label\": parameters.classification: the classification extension is not supported",
            ),
        ] {
            let mut refused = body.clone();
            for (key, value) in change.as_object().unwrap() {
                refused[key] = value.clone();
            }
            let message = error(refused, &table());
            assert!(message.contains(expected), "{change}: {message}");
        }
        let mut binary_input = body.clone();
        binary_input["inputs"][0]["parameters"] = json!({"binary_data_size": 12});
        let message = error(binary_input, &table());
        assert!(
            message.contains("input \"input-0\": parameters.binary_data_size"),
            "{message}"
        );
    }

    #[test]
    fn missing_and_extra_inputs_are_refused() {
        let message = error(json!({"inputs": []}), &table());
        assert!(message.contains("no inputs"), "{message}");
        assert!(message.contains("[n, 3]"), "{message}");
        let two = json!({"inputs": [
            {"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
            {"name": "b", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
        ]});
        let message = error(two, &table());
        assert!(message.contains("2 inputs (\"a\", \"b\")"), "{message}");
    }

    #[test]
    fn a_wrong_shape_names_the_expected_one() {
        for (shape, data, expected) in [
            (json!([1, 4]), json!([1, 2, 3, 4]), "expects [n, 3]"),
            (json!([3]), json!([1, 2, 3]), "expects [n, 3]"),
            (json!([1, 3, 1]), json!([1, 2, 3]), "expects [n, 3]"),
            (json!([-1, 3]), json!([1, 2, 3]), "expects [n, 3]"),
            (json!([0, 3]), json!([]), "no rows"),
            (json!([2, 3]), json!([1, 2, 3]), "(6 values) but 3 values"),
            (json!([2, 3]), json!([[1, 2, 3]]), "but 1 rows"),
            (json!([1, 3]), json!([[1, 2]]), "row 0 has 2 values"),
            (
                json!([2, 3]),
                json!([[1, 2, 3], 4]),
                "row 1 is not an array",
            ),
            (json!([1, 3]), json!({"a": 1}), "data must be an array"),
            (
                json!([9_000_000_000_000_000_000i64, 3]),
                json!([1, 2, 3]),
                "shape too large",
            ),
        ] {
            let message = error(input(shape.clone(), "FP32", data), &table());
            assert!(message.contains(expected), "{shape}: {message}");
        }
    }

    #[test]
    fn a_wrong_datatype_or_value_is_refused() {
        let message = error(
            input(json!([1, 3]), "BYTES", json!(["1", "2", "3"])),
            &table(),
        );
        assert!(message.contains("reads numbers, not text"), "{message}");
        let message = error(
            input(json!([1, 3]), "BOOL", json!([true, false, true])),
            &table(),
        );
        assert!(message.contains("\"BOOL\" is not supported"), "{message}");
        let message = error(input(json!([1, 3]), "FP32", json!([1, "2", 3])), &table());
        assert!(
            message.contains("value 1 (row 0, feature \"b\") is \"2\", not a number"),
            "{message}"
        );
        let message = error(input(json!([1, 3]), "FP32", json!([1, null, 3])), &table());
        assert!(message.contains("null, not a number"), "{message}");
        let message = error(input(json!([1, 3]), "INT32", json!([1, 2.5, 3])), &table());
        assert!(message.contains("is not a valid INT32"), "{message}");
        let message = error(input(json!([1, 3]), "UINT8", json!([1, 256, 3])), &table());
        assert!(message.contains("is not a valid UINT8"), "{message}");
        let message = error(input(json!([1, 3]), "FP32", json!([1, 1e300, 3])), &table());
        assert!(message.contains("is not a valid FP32"), "{message}");
        let message = error(input(json!([1]), "FP32", json!([1])), &text());
        assert!(message.contains("reads text; send BYTES"), "{message}");
        let message = error(input(json!([2]), "BYTES", json!(["a", 1])), &text());
        assert!(message.contains("row 1 is 1, not a string"), "{message}");
        let message = error(input(json!([1, 2]), "BYTES", json!([["a", "b"]])), &text());
        assert!(message.contains("expects [n] or [n, 1]"), "{message}");
    }

    #[test]
    fn unknown_outputs_are_refused_and_known_ones_kept() {
        let mut body = input(json!([1, 3]), "FP32", json!([1, 2, 3]));
        body["outputs"] = json!([{"name": "label"}]);
        assert_eq!(
            parse(body.clone(), &table()).unwrap().outputs,
            Some(vec!["label".to_owned()])
        );
        body["outputs"] = json!([{"name": "logits"}]);
        let message = error(body, &table());
        assert!(
            message.contains("unknown output \"logits\"; model \"iris\" has the outputs label, probabilities, feedback_id"),
            "{message}"
        );
    }

    #[test]
    fn responses_carry_id_version_and_the_outputs_asked_for() {
        let outputs = [
            RowOutput::Class {
                index: 1,
                probabilities: vec![0.25, 0.75],
            },
            RowOutput::Class {
                index: 0,
                probabilities: vec![0.5, 0.5],
            },
        ];
        let ids = ["f1".to_owned(), "f2".to_owned()];
        let response = infer_response(&table(), "req", &outputs, &ids, None);
        assert_eq!(response["id"], "req");
        assert_eq!(response["model_name"], "iris");
        assert_eq!(response["model_version"], "2");
        assert_eq!(response["outputs"][0]["data"], json!(["y", "x"]));
        assert_eq!(response["outputs"][1]["shape"], json!([2, 2]));
        assert_eq!(
            response["outputs"][1]["data"],
            json!([0.25, 0.75, 0.5, 0.5])
        );
        assert_eq!(response["outputs"][2]["data"], json!(["f1", "f2"]));
        let only = infer_response(&table(), "req", &outputs, &ids, Some(&["label".to_owned()]));
        assert_eq!(only["outputs"].as_array().unwrap().len(), 1);

        let regression = ModelInfo {
            output: OutputKind::Value,
            ..table()
        };
        let ids = ["f1".to_owned()];
        let response = infer_response(&regression, "r", &[RowOutput::Value(1.5)], &ids, None);
        assert_eq!(response["outputs"][0]["name"], "prediction");
        assert_eq!(response["outputs"][0]["data"], json!([1.5]));
        assert_eq!(response["outputs"][1]["name"], "feedback_id");
        assert_eq!(response["outputs"][1]["shape"], json!([1]));
        assert_eq!(response["outputs"][1]["data"], json!(["f1"]));
        let only = infer_response(
            &regression,
            "r",
            &[RowOutput::Value(1.5)],
            &[],
            Some(&["prediction".to_owned()]),
        );
        assert_eq!(only["outputs"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn metadata_describes_inputs_outputs_and_versions() {
        let metadata = table().metadata();
        assert_eq!(metadata["versions"], json!(["2"]));
        assert_eq!(metadata["inputs"][0]["shape"], json!([-1, 3]));
        assert_eq!(metadata["outputs"][1]["shape"], json!([-1, 2]));
        assert_eq!(metadata["parameters"]["classes"], json!(["x", "y"]));
        assert_eq!(text().metadata()["inputs"][0]["datatype"], "BYTES");
        let regression = ModelInfo {
            output: OutputKind::Value,
            ..table()
        };
        let metadata = regression.metadata();
        assert_eq!(metadata["parameters"]["task"], "regression");
        assert_eq!(
            metadata["outputs"],
            json!([
                {"name": "prediction", "datatype": "FP32", "shape": [-1]},
                {"name": "feedback_id", "datatype": "BYTES", "shape": [-1]},
            ])
        );
        assert_eq!(
            regression.output_names(),
            ["prediction", "feedback_id"],
            "an inference request may ask for either"
        );
    }

    mod fuzzed {
        use super::*;
        use crate::serve::fuzz::{request_like, valid_for};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2500))]

            /// Any structured request to a table or a text model: rows that fit the model, or a
            /// 4xx that says why. Never a panic, never a server error.
            #[test]
            fn any_request_parses_or_is_a_4xx(body in prop_oneof![request_like(), valid_for(3)]) {
                for model in [table(), text()] {
                    match parse(body.clone(), &model) {
                        Ok(request) => {
                            prop_assert!(!request.rows.is_empty());
                            if let InputKind::Table { features } = &model.input {
                                for row in &request.rows {
                                    let Row::Features(values) = row else { panic!("a text row for a table model") };
                                    prop_assert_eq!(values.len(), features.len());
                                }
                            }
                        }
                        Err(e) => prop_assert!((400..500).contains(&e.status), "{} {}", e.status, e.message),
                    }
                }
            }

            /// Any bytes at all: a 4xx, never a panic.
            #[test]
            fn any_bytes_parse_or_are_a_4xx(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                if let Err(e) = parse_infer(&bytes, &table()) {
                    prop_assert!((400..500).contains(&e.status), "{} {}", e.status, e.message);
                }
            }
        }
    }
}
