//! Strategies for the property tests of the serving code (tests only): what clients send,
//! well-formed or not.

use proptest::prelude::*;
use serde_json::{Value, json};

/// A JSON value of the kinds an inference body holds: numbers (huge and tiny ones too),
/// strings, booleans, nulls, nested arrays and objects.
pub fn json_like() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|v| serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An inference request, well-formed or not: one or more inputs with a name, a shape, a
/// datatype (known or not) and data, and now and then `outputs`, `id` and extra fields.
pub fn request_like() -> impl Strategy<Value = Value> {
    let datatype = prop_oneof![
        Just("FP32"),
        Just("FP64"),
        Just("INT64"),
        Just("UINT8"),
        Just("BYTES"),
        Just("BOOL"),
        Just("fp32"),
    ];
    let shape = prop::collection::vec(prop_oneof![-2i64..6, any::<i64>()], 0..4);
    let data = prop_oneof![
        prop::collection::vec(-1e6f64..1e6, 0..16).prop_map(|v| json!(v)),
        prop::collection::vec(prop::collection::vec(any::<f32>(), 0..5), 0..5)
            .prop_map(|v| json!(v)),
        json_like(),
    ];
    let input = ("[a-z]{0,5}", shape, datatype, data)
            .prop_map(|(name, shape, datatype, data)| json!({"name": name, "shape": shape, "datatype": datatype, "data": data}));
    (
        prop::collection::vec(input, 0..3),
        prop::option::of(prop::collection::vec("[a-z_]{0,12}", 0..3)),
        prop::option::of(json_like()),
    )
        .prop_map(|(inputs, outputs, extra)| {
            let mut body = json!({"inputs": inputs});
            if let Some(outputs) = outputs {
                body["outputs"] = json!(
                    outputs
                        .iter()
                        .map(|n| json!({"name": n}))
                        .collect::<Vec<_>>()
                );
            }
            if let Some(extra) = extra {
                body["id"] = extra;
            }
            body
        })
}

/// A well-formed request to a table model of `features` features: 1 to 12 rows of numbers, in
/// one of the datatypes, flat or nested; the parser must take it (or refuse only what a limit
/// refuses).
pub fn valid_for(features: usize) -> impl Strategy<Value = Value> {
    let datatype = prop_oneof![Just("FP32"), Just("FP64")];
    (1usize..=12, datatype, any::<bool>()).prop_flat_map(move |(rows, datatype, nested)| {
        prop::collection::vec(-1e3f64..1e3, rows * features).prop_map(move |values| {
            let data = if nested {
                json!(values.chunks(features).collect::<Vec<_>>())
            } else {
                json!(values)
            };
            json!({"inputs": [{"name": "input", "shape": [rows, features], "datatype": datatype, "data": data}]})
        })
    })
}
