//! Reading a data set's rows and validating them against its schema.
//!
//! Two formats: CSV with a header row (numeric features and a label column) and JSON Lines with
//! one text record per line. A row that does not fit the schema is either dropped and counted
//! (`dropInvalidRows`) or stops the preparation with a message naming the first bad row.

use crate::failure::{Failure, Reason};
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The file format of a data set's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// JSON Lines: one JSON object per line (text records).
    Jsonl,
}

/// What the label holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LabelKind {
    /// Class names (strings or integers).
    Categorical,
    /// Numbers (a regression target); a row whose label is not a number is invalid.
    Numeric,
}

/// Which columns or fields hold what.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    /// The label column (CSV) or field (JSON Lines).
    pub label: String,
    /// What the label holds; `None` infers it (numeric labels with many values are numeric).
    pub label_kind: Option<LabelKind>,
    /// The feature columns, in order; `None` means every column but the label, in file order.
    pub features: Option<Vec<String>>,
    /// The text field of a JSON Lines record; `None` means `text`.
    pub text: Option<String>,
}

impl Schema {
    /// The text field of a JSON Lines record.
    pub fn text_field(&self) -> &str {
        self.text.as_deref().unwrap_or("text")
    }
}

/// A row that does not fit the schema, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// The 1-based data row (the header is not a row).
    pub row: usize,
    /// The 1-based line of the file where the row starts.
    pub line: u64,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {} (line {}): {}", self.row, self.line, self.problem)
    }
}

/// The valid rows of a data set.
#[derive(Debug, Clone, PartialEq)]
pub enum Records {
    /// Numeric features and a label per row.
    Table {
        /// Feature names, in the order of each row's values.
        feature_names: Vec<String>,
        /// One row of raw feature values per record.
        rows: Vec<Vec<f64>>,
        /// The label of each row, as written in the data.
        labels: Vec<String>,
    },
    /// A text and a label per record.
    Text {
        /// The record texts.
        texts: Vec<String>,
        /// The label of each record, as written in the data.
        labels: Vec<String>,
    },
}

impl Records {
    /// The labels, one per valid row.
    pub fn labels(&self) -> &[String] {
        match self {
            Records::Table { labels, .. } | Records::Text { labels, .. } => labels,
        }
    }
}

/// What reading a source gave: the valid rows and an account of the rejected ones.
#[derive(Debug, Clone)]
pub struct ReadOutcome {
    /// The rows that fit the schema.
    pub records: Records,
    /// Rows in the source (valid and rejected).
    pub total: usize,
    /// Rows dropped because they did not fit the schema.
    pub rejected: usize,
    /// The first rejected row, for the summary.
    pub first_rejection: Option<RowProblem>,
}

/// Reads and validates a source. With `drop_invalid_rows` false the first bad row is an error;
/// either way a source with no valid row is an error.
pub fn read(
    bytes: &[u8],
    format: Format,
    schema: &Schema,
    drop_invalid_rows: bool,
) -> Result<ReadOutcome> {
    let mut rejections = Rejections {
        drop_invalid_rows,
        count: 0,
        first: None,
    };
    let (records, total) = match format {
        Format::Csv => read_csv(bytes, schema, &mut rejections),
        Format::Jsonl => read_jsonl(bytes, schema, &mut rejections),
    }
    .reason("InvalidSchema", false)?;
    if records.labels().is_empty() {
        let message = match &rejections.first {
            Some(first) => {
                format!(
                    "no usable rows: all {total} rows are invalid (the first is {first}); fix the data or the schema"
                )
            }
            None => "no usable rows: the source has no data rows".to_owned(),
        };
        return Err(Failure::error("NoUsableRows", false, message));
    }
    Ok(ReadOutcome {
        records,
        total,
        rejected: rejections.count,
        first_rejection: rejections.first,
    })
}

/// Counts rejected rows, or turns the first one into an error.
struct Rejections {
    drop_invalid_rows: bool,
    count: usize,
    first: Option<RowProblem>,
}

impl Rejections {
    fn reject(&mut self, problem: RowProblem) -> Result<()> {
        if !self.drop_invalid_rows {
            return Err(Failure::error(
                "InvalidRow",
                false,
                format!(
                    "invalid {problem}; fix the data, or set preprocessing.dropInvalidRows: true to drop invalid rows"
                ),
            ));
        }
        self.count += 1;
        self.first.get_or_insert(problem);
        Ok(())
    }
}

/// Why a label value is unusable, if it is.
fn label_problem(label: &str, schema: &Schema) -> Option<String> {
    if label.is_empty() {
        return Some(format!("the label {:?} is missing", schema.label));
    }
    let numeric = label.parse::<f64>().is_ok_and(f64::is_finite);
    if schema.label_kind == Some(LabelKind::Numeric) && !numeric {
        return Some(format!(
            "the label {:?} is not a finite number: {label:?}",
            schema.label
        ));
    }
    None
}

/// Line numbers of byte offsets, counted incrementally (offsets only grow while reading).
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: u64,
}

impl LineCounter<'_> {
    /// The 1-based line of the record that starts at `offset`. The CSV reader reports a record
    /// after a CRLF ending as starting at that ending's `\n`, so line endings are skipped first.
    fn line_at(&mut self, offset: u64) -> u64 {
        let mut start = (offset as usize).min(self.bytes.len());
        while start < self.bytes.len() && matches!(self.bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        if start < self.offset {
            (self.offset, self.line) = (0, 1);
        }
        self.line += self.bytes[self.offset..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        self.offset = start;
        self.line
    }
}

/// Where the label and the features are among a CSV file's columns.
struct CsvColumns {
    /// The header's column names.
    header: Vec<String>,
    label: usize,
    feature_names: Vec<String>,
    features: Vec<usize>,
}

impl CsvColumns {
    /// Reads the header row and finds the schema's columns in it.
    fn of(reader: &mut csv::Reader<&[u8]>, schema: &Schema) -> Result<Self> {
        let header: Vec<String> = match reader.headers() {
            Ok(header) => header.iter().map(|h| h.trim().to_owned()).collect(),
            Err(error) => bail!("reading the CSV header row: {error}"),
        };
        if header.iter().all(String::is_empty) {
            bail!("the CSV source has no header row; the first line must name the columns");
        }
        let column = |name: &str, role: &str| -> Result<usize> {
            match header.iter().position(|h| h == name) {
                Some(index) => Ok(index),
                None => bail!(
                    "the {role} column {name:?} is not in the header; the columns are {}",
                    header.join(", ")
                ),
            }
        };
        let label = column(&schema.label, "label")?;
        let feature_names: Vec<String> = match &schema.features {
            Some(features) => features.clone(),
            None => header
                .iter()
                .filter(|h| **h != schema.label)
                .cloned()
                .collect(),
        };
        if feature_names.is_empty() {
            bail!(
                "the CSV source has no feature columns besides the label {:?}",
                schema.label
            );
        }
        let features = feature_names
            .iter()
            .map(|name| column(name, "feature"))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            header,
            label,
            feature_names,
            features,
        })
    }

    /// One record's label and feature values, or why the row is refused.
    fn parse<'r>(
        &self,
        record: &'r csv::StringRecord,
        schema: &Schema,
    ) -> std::result::Result<(&'r str, Vec<f64>), String> {
        if record.len() != self.header.len() {
            return Err(format!(
                "{} columns, expected {}",
                record.len(),
                self.header.len()
            ));
        }
        let label = record[self.label].trim();
        if let Some(message) = label_problem(label, schema) {
            return Err(message);
        }
        let mut values = Vec::with_capacity(self.features.len());
        for (name, &column) in self.feature_names.iter().zip(&self.features) {
            let text = record[column].trim();
            match text.parse::<f64>() {
                Ok(value) if value.is_finite() => values.push(value),
                _ => return Err(format!("feature {name:?} is not a finite number: {text:?}")),
            }
        }
        Ok((label, values))
    }
}

fn read_csv(
    bytes: &[u8],
    schema: &Schema,
    rejections: &mut Rejections,
) -> Result<(Records, usize)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(bytes);
    let columns = CsvColumns::of(&mut reader, schema)?;
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    let mut total = 0;
    let mut lines = LineCounter {
        bytes,
        offset: 0,
        line: 1,
    };
    for (index, record) in reader.records().enumerate() {
        let row = index + 1;
        total += 1;
        let parsed = match &record {
            Ok(record) => columns.parse(record, schema),
            Err(error) => Err(format!("unreadable: {error}")),
        };
        match parsed {
            Ok((label, values)) => {
                rows.push(values);
                labels.push(label.to_owned());
            }
            Err(problem) => {
                let position = match &record {
                    Ok(record) => record.position(),
                    Err(error) => error.position(),
                };
                let line = position.map_or(0, |p| lines.line_at(p.byte()));
                rejections.reject(RowProblem { row, line, problem })?;
            }
        }
    }
    Ok((
        Records::Table {
            feature_names: columns.feature_names,
            rows,
            labels,
        },
        total,
    ))
}

fn read_jsonl(
    bytes: &[u8],
    schema: &Schema,
    rejections: &mut Rejections,
) -> Result<(Records, usize)> {
    let text_field = schema.text_field();
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    let mut total = 0;
    for (index, raw_line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index as u64 + 1;
        if raw_line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        total += 1;
        let row = total;
        let problem = |problem: String| RowProblem { row, line, problem };
        let record: serde_json::Value = match serde_json::from_slice(raw_line) {
            Ok(value) => value,
            Err(error) => {
                rejections.reject(problem(format!("not a JSON object: {error}")))?;
                continue;
            }
        };
        let Some(object) = record.as_object() else {
            rejections.reject(problem("not a JSON object".to_owned()))?;
            continue;
        };
        let label = match object.get(&schema.label) {
            Some(serde_json::Value::String(label)) => label.trim().to_owned(),
            Some(value @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                value.to_string()
            }
            _ => String::new(),
        };
        if let Some(message) = label_problem(&label, schema) {
            rejections.reject(problem(message))?;
            continue;
        }
        let text = match object.get(text_field) {
            Some(serde_json::Value::String(text)) if !text.trim().is_empty() => text.clone(),
            _ => {
                rejections.reject(problem(format!(
                    "the text field {text_field:?} is missing or empty"
                )))?;
                continue;
            }
        };
        texts.push(text);
        labels.push(label);
    }
    Ok((Records::Text { texts, labels }, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(label: &str) -> Schema {
        Schema {
            label: label.to_owned(),
            ..Schema::default()
        }
    }

    const CSV: &str = "a,b,y\n1,2,cat\n3,x,dog\n4,5\n6,7,\n8,9,dog\n";

    #[test]
    fn invalid_csv_rows_are_dropped_and_counted() {
        let outcome = read(CSV.as_bytes(), Format::Csv, &schema("y"), true).unwrap();
        assert_eq!(outcome.total, 5);
        assert_eq!(outcome.rejected, 3);
        let first = outcome.first_rejection.unwrap();
        assert_eq!((first.row, first.line), (2, 3));
        assert!(
            first
                .problem
                .contains("\"b\" is not a finite number: \"x\""),
            "{}",
            first.problem
        );
        let Records::Table {
            feature_names,
            rows,
            labels,
        } = outcome.records
        else {
            panic!()
        };
        assert_eq!(feature_names, ["a", "b"]);
        assert_eq!(rows, vec![vec![1.0, 2.0], vec![8.0, 9.0]]);
        assert_eq!(labels, ["cat", "dog"]);
    }

    #[test]
    fn the_first_invalid_row_is_named_when_rows_are_not_dropped() {
        let error = read(CSV.as_bytes(), Format::Csv, &schema("y"), false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("row 2 (line 3)"), "{error}");
        assert!(error.contains("dropInvalidRows"), "{error}");
    }

    #[test]
    fn each_kind_of_invalid_csv_row_has_its_message() {
        let wrong_count = read(b"a,y\n1,2,3\n", Format::Csv, &schema("y"), false).unwrap_err();
        assert!(
            wrong_count.to_string().contains("3 columns, expected 2"),
            "{wrong_count}"
        );
        let missing_label = read(b"a,y\n1, \n", Format::Csv, &schema("y"), false).unwrap_err();
        assert!(
            missing_label
                .to_string()
                .contains("the label \"y\" is missing"),
            "{missing_label}"
        );
        let not_finite = read(b"a,y\nNaN,1\n", Format::Csv, &schema("y"), false).unwrap_err();
        assert!(
            not_finite.to_string().contains("not a finite number"),
            "{not_finite}"
        );
        let numeric = Schema {
            label_kind: Some(LabelKind::Numeric),
            ..schema("y")
        };
        let not_numeric = read(b"a,y\n1,cat\n", Format::Csv, &numeric, false).unwrap_err();
        assert!(
            not_numeric
                .to_string()
                .contains("the label \"y\" is not a finite number: \"cat\""),
            "{not_numeric}"
        );
    }

    #[test]
    fn lines_are_counted_with_any_line_ending() {
        for csv in ["a,y\n1,k\n\nx,k\n", "a,y\r\n1,k\r\n\r\nx,k\r\n"] {
            let error = read(csv.as_bytes(), Format::Csv, &schema("y"), false)
                .unwrap_err()
                .to_string();
            assert!(error.contains("row 2 (line 4)"), "{csv:?}: {error}");
        }
    }

    #[test]
    fn nothing_usable_is_an_error() {
        let error = read(b"a,y\nx,1\n", Format::Csv, &schema("y"), true)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("no usable rows: all 1 rows are invalid"),
            "{error}"
        );
        let error = read(b"a,y\n", Format::Csv, &schema("y"), true)
            .unwrap_err()
            .to_string();
        assert!(error.contains("no data rows"), "{error}");
    }

    #[test]
    fn unknown_columns_are_named() {
        let error = read(b"a,y\n1,2\n", Format::Csv, &schema("label"), true)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("label column \"label\" is not in the header; the columns are a, y"),
            "{error}"
        );
        let mut with_features = schema("y");
        with_features.features = Some(vec!["b".to_owned()]);
        let error = read(b"a,y\n1,2\n", Format::Csv, &with_features, true)
            .unwrap_err()
            .to_string();
        assert!(error.contains("feature column \"b\""), "{error}");
    }

    #[test]
    fn chosen_features_keep_their_order() {
        let mut chosen = schema("y");
        chosen.features = Some(vec!["c".to_owned(), "a".to_owned()]);
        let outcome = read(b"a,b,c,y\n1,2,3,k\n", Format::Csv, &chosen, false).unwrap();
        let Records::Table { rows, .. } = outcome.records else {
            panic!()
        };
        assert_eq!(rows, vec![vec![3.0, 1.0]]);
    }

    #[test]
    fn text_records_need_a_label_and_a_text() {
        let jsonl = "{\"text\":\"hello\",\"label\":\"blog\"}\n\n{\"text\":\" \",\"label\":\"news\"}\nnot json\n{\"text\":\"你好\",\"label\":\"news\"}\n{\"text\":\"x\"}\n";
        let outcome = read(jsonl.as_bytes(), Format::Jsonl, &schema("label"), true).unwrap();
        assert_eq!((outcome.total, outcome.rejected), (5, 3));
        assert_eq!(outcome.first_rejection.unwrap().line, 3);
        let Records::Text { texts, labels } = outcome.records else {
            panic!()
        };
        assert_eq!(texts, ["hello", "你好"]);
        assert_eq!(labels, ["blog", "news"]);
        let error = read(jsonl.as_bytes(), Format::Jsonl, &schema("label"), false)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("row 2 (line 3): the text field \"text\" is missing or empty"),
            "{error}"
        );
    }

    mod fuzzed {
        use super::*;
        use proptest::prelude::*;

        /// Text that looks like a CSV or JSONL source: a few columns, quotes, separators, numbers,
        /// words, empty fields and the odd control or multi-byte character.
        fn source_like() -> impl Strategy<Value = String> {
            let cell = prop_oneof![
                Just(String::new()),
                any::<f64>().prop_map(|v| v.to_string()),
                "[a-z]{1,6}",
                Just("\"".to_owned()),
                Just("\"a,b\"".to_owned()),
                Just("{\"x\": 1, \"y\": \"cat\"}".to_owned()),
                "\\PC{0,4}",
            ];
            let row = prop::collection::vec(cell, 0..5).prop_map(|cells| cells.join(","));
            prop::collection::vec(row, 0..12).prop_map(|rows| format!("x,y\n{}", rows.join("\n")))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2500))]

            /// Whatever the bytes, reading gives rows or an error that names a reason: never a
            /// panic, and every row counted as kept or rejected.
            #[test]
            fn any_source_reads_or_is_refused(text in source_like(), bytes in prop::collection::vec(any::<u8>(), 0..64), jsonl in any::<bool>(), drop in any::<bool>()) {
                let format = if jsonl { Format::Jsonl } else { Format::Csv };
                for source in [text.as_bytes(), bytes.as_slice()] {
                    if let Ok(outcome) = read(source, format, &schema("y"), drop) {
                        prop_assert_eq!(outcome.records.labels().len() + outcome.rejected, outcome.total);
                    }
                }
            }
        }
    }
}
