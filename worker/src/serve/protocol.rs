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
use serde::{Deserialize, Serialize};
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

/// `GET /v2`. The extensions are named as Triton names them: `binary_tensor_data` is the binary
/// tensor extension (raw inputs and outputs after the JSON), the one this server implements.
pub fn server_metadata() -> Value {
    json!({
        "name": "modelops-worker",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
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
    /// The outputs asked for as raw tensors after the JSON (the binary tensor extension).
    pub binary_outputs: Vec<String>,
}

/// The body of an inference request. Fields the protocol's clients add that the server does not
/// use (`model_name`, `model_version` of KServe's client, a tensor's extra keys) are ignored, as
/// the Open Inference Protocol's servers do; parameters that would change the answer and are not
/// supported are refused by name ([`unsupported_parameter`]).
#[derive(Debug, PartialEq, Deserialize)]
pub(super) struct RawRequest {
    #[serde(default)]
    pub(super) id: Option<String>,
    pub(super) inputs: Vec<RawInput>,
    #[serde(default)]
    pub(super) outputs: Option<Vec<RawOutput>>,
    #[serde(default)]
    pub(super) parameters: Option<Value>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub(super) struct RawInput {
    pub(super) name: String,
    pub(super) shape: Vec<i64>,
    pub(super) datatype: String,
    /// The values; `None` when they follow the JSON as raw bytes (`binary_data_size`).
    #[serde(default)]
    pub(super) data: Option<Element>,
    #[serde(default)]
    pub(super) parameters: Option<Value>,
}

/// One element of an input's `data`, read straight from the JSON: building a `serde_json::Value`
/// for every number would cost more than the forward pass of a small model.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Element {
    Number(f64),
    /// An array of numbers only (a row, or a flat tensor): 8 bytes a number, not an element
    /// each.
    Numbers(Vec<f64>),
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
            Element::Array(_) | Element::Numbers(_) => f.write_str("an array"),
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
                // Numbers while they are numbers; elements from the first that is not.
                let capacity = seq.size_hint().unwrap_or(0).min(4096);
                let mut numbers = Vec::with_capacity(capacity);
                let first_other = loop {
                    match seq.next_element()? {
                        None => return Ok(Element::Numbers(numbers)),
                        Some(Element::Number(number)) => numbers.push(number),
                        Some(other) => break other,
                    }
                };
                let mut items: Vec<Element> = numbers.into_iter().map(Element::Number).collect();
                items.push(first_other);
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

#[derive(Debug, PartialEq, Deserialize)]
pub(super) struct RawOutput {
    pub(super) name: String,
    #[serde(default)]
    pub(super) parameters: Option<Value>,
}

/// Whether a parameter, when present, is set: neither `false`, 0 nor `null`.
fn parameter(parameters: &Option<Value>, key: &str) -> Option<bool> {
    parameters
        .as_ref()
        .and_then(|p| p.get(key))
        .map(|v| !matches!(v, Value::Bool(false) | Value::Null) && v != &json!(0))
}

/// A parameter that is present and set.
fn is_set(parameters: &Option<Value>, key: &str) -> bool {
    parameter(parameters, key).unwrap_or(false)
}

/// The first parameter of the request that asks for what the server does not do, with the fix:
/// the classification extension (`classification`).
fn unsupported_parameter(request: &RawRequest) -> Option<String> {
    for output in request.outputs.iter().flatten() {
        if is_set(&output.parameters, "classification") {
            return Some(format!(
                "output {:?}: parameters.classification: the classification extension is not supported; the `{OUTPUT_LABEL}` and `{OUTPUT_PROBABILITIES}` outputs give each row's class and its probabilities",
                output.name
            ));
        }
    }
    None
}

/// The header of the binary tensor extension: the length of the JSON that starts the body, raw
/// tensors following it.
pub const BINARY_HEADER_LENGTH: &str = "inference-header-content-length";

/// The size in bytes of one element of a fixed-size datatype.
fn element_size(datatype: &str) -> Option<usize> {
    Some(match datatype {
        "INT8" | "UINT8" | "BOOL" => 1,
        "INT16" | "UINT16" | "FP16" | "BF16" => 2,
        "INT32" | "UINT32" | "FP32" => 4,
        "INT64" | "UINT64" | "FP64" => 8,
        _ => return None,
    })
}

/// The number of elements of a shape, when it is a valid one (no negative dimension, no
/// overflow).
fn elements_of(shape: &[i64]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| {
        usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
    })
}

/// The values of a raw tensor (the binary tensor extension's bytes after the JSON, or a gRPC
/// request's `raw_input_contents`): little-endian numbers of the datatype's size, or for BYTES
/// each element as a 4-byte little-endian length and that many bytes (UTF-8 text here). The
/// number of values is checked against the shape by the caller; the byte count of a fixed-size
/// datatype is checked here.
pub(super) fn decode_raw(
    input: &str,
    datatype: &str,
    shape: &[i64],
    bytes: &[u8],
) -> Result<Element, RequestError> {
    fn le<const N: usize>(chunk: &[u8]) -> [u8; N] {
        chunk.try_into().expect("chunks of the element size")
    }
    if datatype == "BYTES" {
        let mut values = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let index = values.len();
            let Some((length, tail)) = rest.split_first_chunk::<4>() else {
                return Err(RequestError::bad(format!(
                    "input {input:?}: element {index} of the raw BYTES tensor is cut short: each element is a 4-byte little-endian length, then that many bytes"
                )));
            };
            let length = u32::from_le_bytes(*length) as usize;
            if length > tail.len() {
                return Err(RequestError::bad(format!(
                    "input {input:?}: element {index} of the raw BYTES tensor says {length} bytes but {} remain",
                    tail.len()
                )));
            }
            let (text, tail) = tail.split_at(length);
            let text = std::str::from_utf8(text).map_err(|e| {
                RequestError::bad(format!(
                    "input {input:?}: element {index} is not UTF-8 text: {e}"
                ))
            })?;
            values.push(Element::Text(text.to_owned()));
            rest = tail;
        }
        return Ok(Element::Array(values));
    }
    let Some(size) = element_size(datatype) else {
        return Err(RequestError::bad(format!(
            "input {input:?} has datatype {datatype:?}, which has no raw form; send a numeric datatype (FP32, FP64, INT*, UINT*) or BYTES"
        )));
    };
    let expected = elements_of(shape).and_then(|n| n.checked_mul(size));
    if expected != Some(bytes.len()) {
        let wanted = expected.map_or("an impossible number of".to_owned(), |n| n.to_string());
        return Err(RequestError::bad(format!(
            "input {input:?}: the raw tensor has {} bytes; shape {shape:?} of {datatype} takes {wanted} bytes",
            bytes.len()
        )));
    }
    let number = |chunk: &[u8]| -> f64 {
        match datatype {
            "FP32" => f32::from_le_bytes(le(chunk)) as f64,
            "FP64" => f64::from_le_bytes(le(chunk)),
            "INT8" => i8::from_le_bytes(le(chunk)) as f64,
            "INT16" => i16::from_le_bytes(le(chunk)) as f64,
            "INT32" => i32::from_le_bytes(le(chunk)) as f64,
            "INT64" => i64::from_le_bytes(le(chunk)) as f64,
            "UINT8" => chunk[0] as f64,
            "UINT16" => u16::from_le_bytes(le(chunk)) as f64,
            "UINT32" => u32::from_le_bytes(le(chunk)) as f64,
            "UINT64" => u64::from_le_bytes(le(chunk)) as f64,
            // BOOL, FP16 and BF16 have a size but no table model reads them: `table_rows`
            // refuses the datatype by name.
            _ => f64::NAN,
        }
    };
    Ok(Element::Numbers(
        bytes.chunks_exact(size).map(number).collect(),
    ))
}

/// Reads the raw tensors of the binary tensor extension into the inputs that declare
/// `binary_data_size`, in order; every byte after the JSON must belong to one.
fn read_binary_inputs(request: &mut RawRequest, mut binary: &[u8]) -> Result<(), RequestError> {
    for input in &mut request.inputs {
        let Some(size) = input
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_size"))
        else {
            continue;
        };
        let Some(size) = size.as_u64().and_then(|s| usize::try_from(s).ok()) else {
            return Err(RequestError::bad(format!(
                "input {:?}: parameters.binary_data_size is {size}; it is the tensor's size in bytes, a whole number",
                input.name
            )));
        };
        if input.data.is_some() {
            return Err(RequestError::bad(format!(
                "input {:?} has both data and parameters.binary_data_size: send its values in one place",
                input.name
            )));
        }
        if size > binary.len() {
            return Err(RequestError::bad(format!(
                "input {:?}: parameters.binary_data_size is {size} bytes but {} bytes of raw tensors remain after the JSON header",
                input.name,
                binary.len()
            )));
        }
        let (bytes, rest) = binary.split_at(size);
        input.data = Some(decode_raw(
            &input.name,
            &input.datatype,
            &input.shape,
            bytes,
        )?);
        binary = rest;
    }
    if !binary.is_empty() {
        return Err(RequestError::bad(format!(
            "{} bytes follow the JSON header that no input claims: the inputs' parameters.binary_data_size must add up to the body's length less {BINARY_HEADER_LENGTH}",
            binary.len()
        )));
    }
    Ok(())
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

/// Reads the body of `POST /v2/models/{name}/infer` for `model`. With the binary tensor
/// extension, `header_length` (the `Inference-Header-Content-Length` header) says how much of the
/// body is JSON; raw tensors follow it.
pub fn parse_infer(
    body: &[u8],
    header_length: Option<usize>,
    model: &ModelInfo,
) -> Result<InferRequest, RequestError> {
    let (json_part, binary) = match header_length {
        Some(length) if length > body.len() => {
            return Err(RequestError::bad(format!(
                "{BINARY_HEADER_LENGTH} is {length} but the body has {} bytes",
                body.len()
            )));
        }
        Some(length) => body.split_at(length),
        None => (body, &[][..]),
    };
    // The plain form in one pass; any other through serde_json, which words what is wrong.
    let mut request = match super::plain_request::read(json_part) {
        Some(request) => request,
        None => read_request(json_part)?,
    };
    if header_length.is_some() {
        read_binary_inputs(&mut request, binary)?;
    } else if let Some(input) = request
        .inputs
        .iter()
        .find(|i| is_set(&i.parameters, "binary_data_size"))
    {
        return Err(RequestError::bad(format!(
            "input {:?}: parameters.binary_data_size without the {BINARY_HEADER_LENGTH} header: send the header with the JSON's length, or the values in `data`",
            input.name
        )));
    }
    let binary_outputs = binary_outputs(&request, model);
    let mut parsed = validate(request, model)?;
    parsed.binary_outputs = binary_outputs;
    Ok(parsed)
}

/// A request's JSON read by serde_json, or the error it found, worded for the client.
fn read_request(json: &[u8]) -> Result<RawRequest, RequestError> {
    serde_json::from_slice(json).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                RequestError::bad(format!("the body is not valid JSON: {e}"))
            }
            Category::Data => RequestError::bad(format!(
                "the body is not an inference request ({{\"inputs\": [{{\"name\", \"shape\", \"datatype\", \"data\"}}]}}): {e}"
            )),
        }
    })
}

/// The outputs to send raw: all when the request's `binary_data_output` is set (except those
/// whose own `binary_data` is false), else those whose `binary_data` is set.
fn binary_outputs(request: &RawRequest, model: &ModelInfo) -> Vec<String> {
    let all = is_set(&request.parameters, "binary_data_output");
    match &request.outputs {
        Some(outputs) => outputs
            .iter()
            .filter(|o| parameter(&o.parameters, "binary_data").unwrap_or(all))
            .map(|o| o.name.clone())
            .collect(),
        None if all => model
            .output_names()
            .iter()
            .map(|n| (*n).to_owned())
            .collect(),
        None => Vec::new(),
    }
}

/// Checks a request read from JSON (or from a gRPC message) against `model`.
pub(super) fn validate(
    mut request: RawRequest,
    model: &ModelInfo,
) -> Result<InferRequest, RequestError> {
    if let Some(message) = unsupported_parameter(&request) {
        return Err(RequestError::bad(message));
    }
    let input = match request.inputs.as_mut_slice() {
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
        binary_outputs: Vec::new(),
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

/// One value of `data`: a number of an array of numbers, or an element of a mixed array.
#[derive(Clone, Copy)]
enum Item<'a> {
    Number(f64),
    Element(&'a Element),
}

impl Item<'_> {
    fn number(self) -> Option<f64> {
        match self {
            Item::Number(number) => Some(number),
            Item::Element(Element::Number(number)) => Some(*number),
            Item::Element(_) => None,
        }
    }
}

impl std::fmt::Display for Item<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Number(number) => write!(f, "{number}"),
            Item::Element(element) => element.fmt(f),
        }
    }
}

/// Appends the values of an array element to `flat`: how many, or `None` when it is not an
/// array (nothing appended).
fn push_items<'a>(element: &'a Element, flat: &mut Vec<Item<'a>>) -> Option<usize> {
    Some(match element {
        Element::Numbers(numbers) => {
            flat.extend(numbers.iter().map(|n| Item::Number(*n)));
            numbers.len()
        }
        Element::Array(items) => {
            flat.extend(items.iter().map(Item::Element));
            items.len()
        }
        _ => return None,
    })
}

/// The values of `data`, flat or nested one level (one array per row of `row_width`).
fn flatten(input: &RawInput, rows: usize, row_width: usize) -> Result<Vec<Item<'_>>, RequestError> {
    // Checked once the data is known to be an array, as its errors come first.
    let expected = || {
        rows.checked_mul(row_width)
            .ok_or_else(|| RequestError::bad(format!("input {:?}: shape too large", input.name)))
    };
    let items = match &input.data {
        Some(Element::Array(items)) => items.as_slice(),
        Some(Element::Numbers(numbers)) => {
            // Flat, numbers only.
            let expected = expected()?;
            return if numbers.len() == expected {
                Ok(numbers.iter().map(|n| Item::Number(*n)).collect())
            } else {
                Err(wrong_count(input, expected, numbers.len()))
            };
        }
        Some(_) => {
            return Err(RequestError::bad(format!(
                "input {:?}: data must be an array (flat, or one array per row)",
                input.name
            )));
        }
        None => {
            return Err(RequestError::bad(format!(
                "input {:?} has no data: send its values in `data`, or raw after the JSON with parameters.binary_data_size",
                input.name
            )));
        }
    };
    let expected = expected()?;
    let nested = matches!(items.first(), Some(Element::Array(_) | Element::Numbers(_)));
    let flat: Vec<Item<'_>> = if nested {
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
            match push_items(row, &mut flat) {
                Some(values) if values == row_width => {}
                Some(values) => {
                    return Err(RequestError::bad(format!(
                        "input {:?}: row {index} has {values} values; the shape {:?} says {row_width}",
                        input.name, input.shape
                    )));
                }
                None => {
                    return Err(RequestError::bad(format!(
                        "input {:?}: row {index} is not an array; nest every row or none",
                        input.name
                    )));
                }
            }
        }
        flat
    } else {
        items.iter().map(Item::Element).collect()
    };
    if flat.len() != expected {
        return Err(wrong_count(input, expected, flat.len()));
    }
    Ok(flat)
}

/// The error of `data` with `found` values where the shape says `expected`.
fn wrong_count(input: &RawInput, expected: usize, found: usize) -> RequestError {
    RequestError::bad(format!(
        "input {:?} has shape {:?} ({expected} values) but {found} values of data",
        input.name, input.shape
    ))
}

fn table_rows(
    input: &mut RawInput,
    width: usize,
    model: &ModelInfo,
) -> Result<Vec<Row>, RequestError> {
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
    // Without short cuts (`&`, not `&&`): a row's numbers are checked as a vector.
    let valid = |number: f64| {
        number.is_finite()
            & (number >= min)
            & (number <= max)
            & !(integers & (number.fract() != 0.0))
    };
    if let Some(rows) = numeric_rows(input, rows, width, valid) {
        return Ok(rows);
    }
    let flat = flatten(input, rows, width)?;
    let mut values = Vec::with_capacity(flat.len());
    for (index, value) in flat.into_iter().enumerate() {
        let number = value
            .number()
            .filter(|number| number.is_finite())
            .ok_or_else(|| {
                RequestError::bad(format!(
                    "input {:?}: value {index} (row {}, feature {:?}) is {value}, not a number",
                    input.name,
                    index / width,
                    feature_name(model, index % width)
                ))
            })?;
        if !valid(number) {
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

/// The rows of `data` when it holds nothing but `valid` numbers in the shape's count, flat or one
/// array per row (almost every request): taken from the request (its rows moved, not copied),
/// without [`flatten`]'s item per value. `None` otherwise, with the data left for the general
/// path to find and word what is wrong.
fn numeric_rows(
    input: &mut RawInput,
    rows: usize,
    width: usize,
    valid: impl Fn(f64) -> bool,
) -> Option<Vec<Row>> {
    let all_valid = |values: &[f64]| values.iter().fold(true, |all, &value| all & valid(value));
    if width == 0 {
        return None;
    }
    let numeric = match input.data.as_ref()? {
        Element::Numbers(numbers) => {
            Some(numbers.len()) == rows.checked_mul(width) && all_valid(numbers)
        }
        Element::Array(items) => {
            items.len() == rows
                && items.iter().all(|item| {
                    matches!(item, Element::Numbers(row) if row.len() == width && all_valid(row))
                })
        }
        _ => false,
    };
    if !numeric {
        return None;
    }
    // Checked: the rows move out of the request (one array per row) or are cut from it.
    match input.data.take()? {
        Element::Numbers(numbers) => Some(
            numbers
                .chunks(width)
                .map(|row| Row::Features(row.to_vec()))
                .collect(),
        ),
        Element::Array(items) => Some(
            items
                .into_iter()
                .filter_map(|item| match item {
                    Element::Numbers(row) => Some(Row::Features(row)),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
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
            Item::Element(Element::Text(text)) => Ok(Row::Text(text.clone())),
            other => Err(RequestError::bad(format!(
                "input {:?}: row {index} is {other}, not a string",
                input.name
            ))),
        })
        .collect()
}

/// The body of an inference response, written as JSON straight from the outputs (FP32 values in
/// f32's shortest form: the digits that read back as the same f32), or with outputs moved raw
/// after the JSON ([`InferResponse::split_binary_outputs`]) and into gRPC's raw contents. Fields
/// are in alphabetical order, as a JSON object map writes them.
#[derive(Debug, Serialize)]
pub struct InferResponse<'a> {
    /// The request's id.
    pub id: &'a str,
    /// The model's name.
    pub model_name: &'a str,
    /// The model's version (its revision).
    pub model_version: String,
    /// The outputs asked for, in the model's output order.
    pub outputs: Vec<OutputTensor<'a>>,
}

impl InferResponse<'_> {
    /// The response as JSON, written into a buffer sized for it at the start (growing one
    /// from a few bytes copied a 32-row answer six times).
    pub fn to_json(&self) -> Vec<u8> {
        let size = 128
            + self.id.len()
            + self.model_name.len()
            + self
                .outputs
                .iter()
                .map(|o| {
                    96 + match &o.data {
                        Some(OutputData::Texts(texts)) => {
                            texts.iter().map(|t| t.len() + 3).sum::<usize>()
                        }
                        // The longest FP32 in its shortest form and a comma.
                        Some(OutputData::Numbers(numbers)) => numbers.len() * 16,
                        None => 0,
                    }
                })
                .sum::<usize>();
        let mut json = Vec::with_capacity(size);
        serde_json::to_writer(&mut json, self).expect("a response serialises");
        json
    }
}

/// One output tensor of an [`InferResponse`].
#[derive(Debug, Serialize)]
pub struct OutputTensor<'a> {
    /// The values; `None` once moved raw after the JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<OutputData<'a>>,
    /// `BYTES` or `FP32`.
    pub datatype: &'static str,
    /// The output's name.
    pub name: &'static str,
    /// Set when the values follow the JSON raw (the binary tensor extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<RawSize>,
    /// `[rows]` or `[rows, classes]`.
    pub shape: Vec<usize>,
}

/// The parameters of an output sent raw: its size in bytes.
#[derive(Debug, Serialize)]
pub struct RawSize {
    /// Bytes of the raw tensor.
    pub binary_data_size: usize,
}

/// The values of an output tensor.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum OutputData<'a> {
    /// BYTES: one string per element.
    Texts(Vec<&'a str>),
    /// FP32.
    Numbers(Vec<f32>),
}

impl OutputData<'_> {
    /// Appends the values in their raw form (what `decode_raw` reads): BYTES as length-prefixed
    /// strings, FP32 as little-endian floats.
    pub fn encode_raw(&self, out: &mut Vec<u8>) {
        match self {
            OutputData::Texts(texts) => {
                for text in texts {
                    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
                    out.extend_from_slice(text.as_bytes());
                }
            }
            OutputData::Numbers(numbers) => {
                out.reserve(numbers.len() * 4);
                for number in numbers {
                    out.extend_from_slice(&number.to_le_bytes());
                }
            }
        }
    }
}

/// The body of an inference response. `feedback_ids` has one id per row (none when the
/// `feedback_id` output is not asked for).
pub fn infer_response<'a>(
    model: &'a ModelInfo,
    id: &'a str,
    outputs: &[RowOutput],
    feedback_ids: &'a [String],
    wanted: Option<&[String]>,
) -> InferResponse<'a> {
    let rows = outputs.len();
    let wants = |name: &str| wanted.is_none_or(|w| w.iter().any(|n| n == name));
    let tensor = |name, datatype, shape, data| OutputTensor {
        data: Some(data),
        datatype,
        name,
        parameters: None,
        shape,
    };
    let mut tensors = Vec::new();
    match &model.output {
        OutputKind::Classes(classes) => {
            if wants(OUTPUT_LABEL) {
                let labels = outputs
                    .iter()
                    .map(|o| match o {
                        RowOutput::Class { index, .. } => classes[*index].as_str(),
                        RowOutput::Value(_) => "",
                    })
                    .collect();
                tensors.push(tensor(
                    OUTPUT_LABEL,
                    "BYTES",
                    vec![rows],
                    OutputData::Texts(labels),
                ));
            }
            if wants(OUTPUT_PROBABILITIES) {
                let mut probabilities = Vec::with_capacity(rows * classes.len());
                for output in outputs {
                    if let RowOutput::Class {
                        probabilities: p, ..
                    } = output
                    {
                        probabilities.extend_from_slice(p);
                    }
                }
                tensors.push(tensor(
                    OUTPUT_PROBABILITIES,
                    "FP32",
                    vec![rows, classes.len()],
                    OutputData::Numbers(probabilities),
                ));
            }
        }
        OutputKind::Value => {
            if wants(OUTPUT_PREDICTION) {
                let values = outputs
                    .iter()
                    .map(|o| match o {
                        RowOutput::Value(v) => *v,
                        RowOutput::Class { .. } => f32::NAN,
                    })
                    .collect();
                tensors.push(tensor(
                    OUTPUT_PREDICTION,
                    "FP32",
                    vec![rows],
                    OutputData::Numbers(values),
                ));
            }
        }
    }
    if wants(OUTPUT_FEEDBACK_ID) {
        tensors.push(tensor(
            OUTPUT_FEEDBACK_ID,
            "BYTES",
            vec![rows],
            OutputData::Texts(feedback_ids.iter().map(String::as_str).collect()),
        ));
    }
    InferResponse {
        id,
        model_name: &model.name,
        model_version: model.version(),
        outputs: tensors,
    }
}

impl InferResponse<'_> {
    /// Moves the outputs named in `binary` out of the JSON into raw tensors after it (the binary
    /// tensor extension): each such output loses its `data` and gains
    /// `parameters.binary_data_size`. Returns the raw bytes, in output order.
    pub fn split_binary_outputs(&mut self, binary: &[String]) -> Vec<u8> {
        let mut raw = Vec::new();
        for output in &mut self.outputs {
            if !binary.iter().any(|b| b == output.name) {
                continue;
            }
            let before = raw.len();
            if let Some(data) = output.data.take() {
                data.encode_raw(&mut raw);
            }
            output.parameters = Some(RawSize {
                binary_data_size: raw.len() - before,
            });
        }
        raw
    }
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
        parse_infer(body.to_string().as_bytes(), None, model)
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
            let error = parse_infer(body.as_bytes(), None, &table()).unwrap_err();
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
                "input \"x\" has no data",
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
        let mut refused = body.clone();
        refused["outputs"] = json!([{"name": "label", "parameters": {"classification": 2}}]);
        let message = error(refused, &table());
        assert!(
            message.contains("output \"label\": parameters.classification: the classification extension is not supported"),
            "{message}"
        );
    }

    /// A body of the binary tensor extension: the JSON header, then each raw input in order.
    fn binary_body(mut header: Value, raw: &[&[u8]]) -> (Vec<u8>, usize) {
        for (input, raw) in header["inputs"].as_array_mut().unwrap().iter_mut().zip(raw) {
            input["parameters"] = json!({"binary_data_size": raw.len()});
        }
        let mut body = header.to_string().into_bytes();
        let length = body.len();
        for raw in raw {
            body.extend_from_slice(raw);
        }
        (body, length)
    }

    fn le_bytes<T: Copy, const N: usize>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
        values.iter().flat_map(|v| to(*v)).collect()
    }

    #[test]
    fn raw_tensors_after_the_json_read_as_their_json_forms_do() {
        let json_form = parse(
            input(json!([2, 3]), "FP32", json!([1, 2, 3, 4, 5, 6])),
            &table(),
        )
        .unwrap();
        let values = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        for (datatype, raw) in [
            ("FP32", le_bytes(&values, f32::to_le_bytes)),
            ("FP64", le_bytes(&values.map(f64::from), f64::to_le_bytes)),
            (
                "INT64",
                le_bytes(&values.map(|v| v as i64), i64::to_le_bytes),
            ),
            ("UINT8", values.map(|v| v as u8).to_vec()),
            (
                "INT16",
                le_bytes(&values.map(|v| v as i16), i16::to_le_bytes),
            ),
        ] {
            let header = json!({"inputs": [{"name": "x", "shape": [2, 3], "datatype": datatype}]});
            let (body, length) = binary_body(header, &[&raw]);
            let request = parse_infer(&body, Some(length), &table()).unwrap();
            assert_eq!(request.rows, json_form.rows, "{datatype}");
            assert!(request.binary_outputs.is_empty());
        }
        // BYTES: each element a 4-byte little-endian length, then its UTF-8.
        let mut raw = Vec::new();
        for text in ["héllo", "", "world"] {
            raw.extend_from_slice(&(text.len() as u32).to_le_bytes());
            raw.extend_from_slice(text.as_bytes());
        }
        let header = json!({"inputs": [{"name": "t", "shape": [3, 1], "datatype": "BYTES"}]});
        let (body, length) = binary_body(header, &[&raw]);
        let request = parse_infer(&body, Some(length), &text()).unwrap();
        assert_eq!(
            request.rows,
            ["héllo", "", "world"].map(|t| Row::Text(t.into())).to_vec()
        );
    }

    #[test]
    fn raw_tensors_that_do_not_fit_their_header_are_named() {
        let header = || json!({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32"}]});
        let six = le_bytes(&[1.0f32; 6], f32::to_le_bytes);
        let error_of = |body: &[u8], length: usize, model: &ModelInfo| {
            parse_infer(body, Some(length), model).unwrap_err().message
        };
        // Fewer or more bytes than the shape takes.
        let (body, length) = binary_body(header(), &[&six[..20]]);
        let message = error_of(&body, length, &table());
        assert!(
            message.contains("the raw tensor has 20 bytes; shape [2, 3] of FP32 takes 24 bytes"),
            "{message}"
        );
        // A size past the end of the body.
        let (mut body, length) = binary_body(header(), &[&six]);
        body.truncate(body.len() - 4);
        let message = error_of(&body, length, &table());
        assert!(
            message.contains("binary_data_size is 24 bytes but 20 bytes"),
            "{message}"
        );
        // Bytes no input claims.
        let (mut body, length) = binary_body(header(), &[&six]);
        body.extend_from_slice(&[0; 3]);
        let message = error_of(&body, length, &table());
        assert!(
            message.contains("3 bytes follow the JSON header that no input claims"),
            "{message}"
        );
        // A header length past the body, or inside the JSON.
        let (body, _) = binary_body(header(), &[&six]);
        let message = error_of(&body, body.len() + 1, &table());
        assert!(
            message.contains(&format!("{BINARY_HEADER_LENGTH} is {}", body.len() + 1)),
            "{message}"
        );
        let message = error_of(&body, 10, &table());
        assert!(message.contains("not valid JSON"), "{message}");
        // A size that is not a byte count, data given twice, a size without the header.
        let mut twice = header();
        twice["inputs"][0]["data"] = json!([1, 2, 3, 4, 5, 6]);
        let (body, length) = binary_body(twice.clone(), &[&six]);
        let message = error_of(&body, length, &table());
        assert!(
            message.contains("has both data and parameters.binary_data_size"),
            "{message}"
        );
        let mut negative = header();
        negative["inputs"][0]["parameters"] = json!({"binary_data_size": -1});
        let body = negative.to_string();
        let message = error_of(body.as_bytes(), body.len(), &table());
        assert!(message.contains("binary_data_size is -1"), "{message}");
        let message = error(negative.clone(), &table());
        assert!(
            message.contains("without the inference-header-content-length header"),
            "{message}"
        );
        // No data at all.
        let message = error(header(), &table());
        assert!(message.contains("input \"x\" has no data"), "{message}");
        // A raw form of a datatype with none (BYTES elements cut short, not UTF-8).
        for (raw, expected) in [
            (vec![5, 0, 0, 0, b'a'], "says 5 bytes but 1 remain"),
            (vec![1, 0], "element 0 of the raw BYTES tensor is cut short"),
            (vec![1, 0, 0, 0, 0xff], "element 0 is not UTF-8"),
        ] {
            let header = json!({"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES"}]});
            let (body, length) = binary_body(header, &[&raw]);
            let message = error_of(&body, length, &text());
            assert!(message.contains(expected), "{message}");
        }
        let header = json!({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "BOOL"}]});
        let (body, length) = binary_body(header, &[&[1u8; 6]]);
        let message = error_of(&body, length, &table());
        assert!(
            message.contains("datatype \"BOOL\" is not supported"),
            "{message}"
        );
    }

    #[test]
    fn outputs_asked_for_raw_follow_the_json_with_their_sizes() {
        let body = |extra: Value| {
            let mut body = input(json!([1, 3]), "FP32", json!([1, 2, 3]));
            for (key, value) in extra.as_object().unwrap() {
                body[key] = value.clone();
            }
            parse(body, &table()).unwrap().binary_outputs
        };
        assert!(body(json!({})).is_empty());
        assert_eq!(
            body(json!({"parameters": {"binary_data_output": true}})),
            table().output_names().to_vec()
        );
        assert_eq!(
            body(
                json!({"parameters": {"binary_data_output": true}, "outputs": [{"name": "label"}, {"name": "probabilities", "parameters": {"binary_data": false}}]})
            ),
            vec!["label"]
        );
        assert_eq!(
            body(
                json!({"outputs": [{"name": "label"}, {"name": "probabilities", "parameters": {"binary_data": true}}]})
            ),
            vec!["probabilities"]
        );

        let outputs = [RowOutput::Class {
            index: 1,
            probabilities: vec![0.25, 0.75],
        }];
        let ids = ["id-1".to_owned()];
        let info = table();
        let mut response = infer_response(&info, "r", &outputs, &ids, None);
        let json_form = serde_json::to_value(&response).unwrap();
        let raw = response.split_binary_outputs(&["label".into(), "probabilities".into()]);
        let response = serde_json::to_value(&response).unwrap();
        let label = json_form["outputs"][0]["data"][0].as_str().unwrap();
        let mut expected = (label.len() as u32).to_le_bytes().to_vec();
        expected.extend_from_slice(label.as_bytes());
        expected.extend(le_bytes(&[0.25f32, 0.75], f32::to_le_bytes));
        assert_eq!(raw, expected);
        assert_eq!(
            response["outputs"][0]["parameters"]["binary_data_size"],
            json!(4 + label.len())
        );
        assert!(response["outputs"][0].get("data").is_none());
        assert_eq!(
            response["outputs"][1]["parameters"]["binary_data_size"],
            json!(8)
        );
        // The feedback id stays JSON; shapes and datatypes are kept.
        assert_eq!(response["outputs"][2], json_form["outputs"][2]);
        assert_eq!(
            response["outputs"][1]["shape"],
            json_form["outputs"][1]["shape"]
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
        let info = table();
        let value = |response: InferResponse<'_>| serde_json::to_value(&response).unwrap();
        let response = value(infer_response(&info, "req", &outputs, &ids, None));
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
        let only = value(infer_response(
            &info,
            "req",
            &outputs,
            &ids,
            Some(&["label".to_owned()]),
        ));
        assert_eq!(only["outputs"].as_array().unwrap().len(), 1);

        let regression = ModelInfo {
            output: OutputKind::Value,
            ..table()
        };
        let ids = ["f1".to_owned()];
        let response = value(infer_response(
            &regression,
            "r",
            &[RowOutput::Value(1.5)],
            &ids,
            None,
        ));
        assert_eq!(response["outputs"][0]["name"], "prediction");
        assert_eq!(response["outputs"][0]["data"], json!([1.5]));
        assert_eq!(response["outputs"][1]["name"], "feedback_id");
        assert_eq!(response["outputs"][1]["shape"], json!([1]));
        assert_eq!(response["outputs"][1]["data"], json!(["f1"]));
        let only = value(infer_response(
            &regression,
            "r",
            &[RowOutput::Value(1.5)],
            &[],
            Some(&["prediction".to_owned()]),
        ));
        assert_eq!(only["outputs"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn fp32_outputs_are_written_in_their_shortest_form() {
        let outputs = [RowOutput::Class {
            index: 0,
            probabilities: vec![0.1, 0.9],
        }];
        let info = table();
        let text = serde_json::to_string(&infer_response(&info, "r", &outputs, &[], None)).unwrap();
        assert!(text.contains(r#""data":[0.1,0.9]"#), "{text}");
        // Read back as f32, the same values; a value that is not a number is null.
        let regression = ModelInfo {
            output: OutputKind::Value,
            ..table()
        };
        let nan = [RowOutput::Value(f32::NAN), RowOutput::Value(1.0e-7)];
        let text =
            serde_json::to_string(&infer_response(&regression, "r", &nan, &[], None)).unwrap();
        assert!(text.contains(r#""data":[null,1e-7]"#), "{text}");
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
                if let Err(e) = parse_infer(&bytes, None, &table()) {
                    prop_assert!((400..500).contains(&e.status), "{} {}", e.status, e.message);
                }
            }

            /// A binary body whose header, sizes and raw bytes are arbitrary: rows of the
            /// declared shape, or a 4xx; never a panic or a read past the body.
            #[test]
            fn any_binary_body_parses_or_is_a_4xx(
                rows in -1i64..4,
                size in prop_oneof![Just(None), (0u64..64).prop_map(Some), Just(Some(u64::MAX))],
                datatype in prop::sample::select(vec!["FP32", "FP64", "INT8", "UINT64", "BYTES", "BOOL", "FP16"]),
                raw in prop::collection::vec(any::<u8>(), 0..64),
                header_delta in -3i64..3,
            ) {
                let mut input = json!({"name": "x", "shape": [rows, 3], "datatype": datatype});
                if let Some(size) = size {
                    input["parameters"] = json!({"binary_data_size": size});
                }
                let header = json!({"inputs": [input]}).to_string();
                let mut body = header.clone().into_bytes();
                body.extend_from_slice(&raw);
                let length = (header.len() as i64 + header_delta).max(0) as usize;
                for model in [table(), text()] {
                    match parse_infer(&body, Some(length), &model) {
                        Ok(request) => prop_assert_eq!(request.rows.len() as i64, rows),
                        Err(e) => prop_assert!((400..500).contains(&e.status), "{} {}", e.status, e.message),
                    }
                }
            }
        }
    }
}
