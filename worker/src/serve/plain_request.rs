//! The plain inference request read in one pass over its bytes: what almost every client sends
//! (`{"id": .., "inputs": [{"name", "shape", "datatype", "data"}]}` with numbers in `data`, flat
//! or one array per row). serde_json reads the same body at about 20 ns a number (a visitor call
//! and an [`Element`] per number); this reader at a third of that, which is a sixth of a 32-row
//! request's time in the server.
//!
//! It is a fast path, never a second opinion: it accepts a strict subset of JSON and of the
//! request's form, and answers exactly what serde_json would (the same [`RawRequest`]); for
//! anything else — another field, an escape or a non-ASCII byte in a string, text in `data`,
//! a number of more than 19 digits, any syntax error — it answers `None`, and the caller
//! reads the body with serde_json, which words the error. A property test holds it to that
//! on generated and corrupted bodies.
//!
//! Numbers: JSON's grammar exactly (no leading zeros, digits on both sides of a point), of at
//! most 19 digits (any longer goes to serde_json), converted with serde_json's own arithmetic
//! (its default, not `float_roundtrip`): the digits as a double, times or divided by the power of
//! ten; an integer is its digits as a double, `-0` is -0.0. So a body reads to the same doubles
//! whichever path reads it.

use super::protocol::{Element, RawInput, RawRequest};

/// The powers of ten a double holds exactly (the common ones, without a lock).
const POWERS_EXACT: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `body` as serde_json reads it into a [`RawRequest`], when it is a plain request; `None`
/// otherwise (read it with serde_json).
pub(super) fn read(body: &[u8]) -> Option<RawRequest> {
    let mut reader = Reader { bytes: body, at: 0 };
    let request = reader.request()?;
    reader.space();
    (reader.at == body.len()).then_some(request)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Skips JSON's white space.
    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// Skips white space and reads `byte`.
    fn eat(&mut self, byte: u8) -> bool {
        self.space();
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    /// Reads `byte` (after white space) or gives up.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// A string of printable ASCII without escapes (anything else: serde_json's).
    fn plain_string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let length = self.bytes[start..]
            .iter()
            .position(|&b| !(b' '..=b'~').contains(&b) || b == b'"' || b == b'\\')?;
        // The quote right after (not after white space: a tab inside is not plain).
        if self.bytes.get(start + length) != Some(&b'"') {
            return None;
        }
        self.at = start + length + 1;
        // Printable ASCII is UTF-8.
        std::str::from_utf8(&self.bytes[start..start + length]).ok()
    }

    /// The members of an object (its `{` read), key by key through `member`, to its `}`.
    fn members(&mut self, mut member: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<()> {
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.plain_string()?;
            self.expect(b':')?;
            member(self, key)?;
            if self.eat(b'}') {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    /// The items of an array (its `[` read) through `item`, to its `]`.
    fn items(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.eat(b']') {
            return Some(());
        }
        loop {
            item(self)?;
            if self.eat(b']') {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    /// An array, item by item through `item`.
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let mut list = Vec::new();
        self.expect(b'[')?;
        self.items(|reader| {
            list.push(item(reader)?);
            Some(())
        })?;
        Some(list)
    }

    fn request(&mut self) -> Option<RawRequest> {
        let (mut id, mut inputs) = (None, None);
        self.expect(b'{')?;
        self.members(|reader, key| {
            match key {
                "id" if id.is_none() => id = Some(reader.plain_string()?.to_owned()),
                "inputs" if inputs.is_none() => inputs = Some(reader.array(Self::input)?),
                // Another member, or one twice (serde_json refuses that): serde_json's.
                _ => return None,
            }
            Some(())
        })?;
        Some(RawRequest {
            id,
            inputs: inputs?,
            outputs: None,
            parameters: None,
        })
    }

    fn input(&mut self) -> Option<RawInput> {
        let (mut name, mut shape, mut datatype, mut data) = (None, None, None, None);
        self.expect(b'{')?;
        self.members(|reader, key| {
            match key {
                "name" if name.is_none() => name = Some(reader.plain_string()?.to_owned()),
                "datatype" if datatype.is_none() => {
                    datatype = Some(reader.plain_string()?.to_owned())
                }
                "shape" if shape.is_none() => shape = Some(reader.array(Self::dimension)?),
                "data" if data.is_none() => data = Some(reader.data()?),
                _ => return None,
            }
            Some(())
        })?;
        Some(RawInput {
            name: name?,
            shape: shape?,
            datatype: datatype?,
            data,
            parameters: None,
        })
    }

    /// An integer of a shape: at most 18 digits (an i64 without overflow).
    fn dimension(&mut self) -> Option<i64> {
        self.space();
        let negative = self.peek() == Some(b'-');
        self.at += usize::from(negative);
        let (digits, count) = self.digits(0);
        if count == 0 || count > 18 || (count > 1 && self.bytes[self.at - count] == b'0') {
            return None;
        }
        // A fraction, an exponent or `-0` is a double to serde_json: not a dimension.
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) || (negative && digits == 0) {
            return None;
        }
        let value = digits as i64;
        Some(if negative { -value } else { value })
    }

    /// Reads ASCII digits after those of `value`: the value of all (while it fits; count them
    /// to know) and the count of those read.
    fn digits(&mut self, mut value: u64) -> (u64, usize) {
        let start = self.at;
        while let Some(&byte) = self.bytes.get(self.at) {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
            self.at += 1;
        }
        (value, self.at - start)
    }

    /// An input's `data`: an array of numbers, or an array of arrays of numbers, as the
    /// [`Element`] serde_json reads it into.
    fn data(&mut self) -> Option<Element> {
        self.expect(b'[')?;
        self.space();
        if self.peek() != Some(b'[') {
            // One more number than commas before the array's end (numbers hold neither): room
            // for what this array holds, not for what the rest of the body could.
            let rest = &self.bytes[self.at..];
            let end = memchr::memchr(b']', rest)?;
            let commas = rest[..end].iter().filter(|&&b| b == b',').count();
            return self.numbers(commas + 1).map(Element::Numbers);
        }
        let mut rows = Vec::new();
        let mut width = 0;
        self.items(|reader| {
            reader.expect(b'[')?;
            let row = reader.numbers(width)?;
            width = row.len();
            rows.push(Element::Numbers(row));
            Some(())
        })?;
        Some(Element::Array(rows))
    }

    /// The numbers of an array whose `[` was read, through its `]`.
    fn numbers(&mut self, capacity: usize) -> Option<Vec<f64>> {
        let mut numbers = Vec::with_capacity(capacity);
        self.items(|reader| {
            reader.space();
            numbers.push(reader.number()?);
            Some(())
        })?;
        Some(numbers)
    }

    /// A number, converted as serde_json converts it; `None` for anything else, or one of more
    /// than 19 digits (serde_json reads those another way).
    fn number(&mut self) -> Option<f64> {
        let negative = self.peek() == Some(b'-');
        self.at += usize::from(negative);
        let start = self.at;
        let (mut digits, whole) = self.digits(0);
        if whole == 0 || (whole > 1 && self.bytes[start] == b'0') {
            return None;
        }
        let mut count = whole;
        let mut exponent: i32 = 0;
        if self.peek() == Some(b'.') {
            self.at += 1;
            let places;
            (digits, places) = self.digits(digits);
            if places == 0 {
                return None;
            }
            count += places;
            exponent = -(places as i32);
        }
        if count > MAX_DIGITS {
            return None;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            let negative = self.peek() == Some(b'-');
            if negative || self.peek() == Some(b'+') {
                self.at += 1;
            }
            let (written, count) = self.digits(0);
            if count == 0 || count > 4 {
                return None;
            }
            exponent += if negative {
                -(written as i32)
            } else {
                written as i32
            };
        }
        // A whole number written with a fraction ("13.0", "1500e-2"): when dividing by the
        // power of ten leaves a whole number, digits a double holds divided in integers give
        // the double serde_json's division gives (both exact), without a division. Zero is
        // zero at any exponent.
        if exponent < 0 && digits < 1 << 53 && digits != 0 {
            let (mut whole, mut power) = (digits, exponent);
            while power < 0 && whole % 10 == 0 {
                whole /= 10;
                power += 1;
            }
            if power == 0 {
                (digits, exponent) = (whole, 0);
            }
        }
        // An integer is its digits; so is any number at exponent 0 (times 1e0).
        let magnitude = if exponent == 0 || digits == 0 {
            digits as f64
        } else {
            from_parts(digits, exponent)?
        };
        Some(if negative { -magnitude } else { magnitude })
    }
}

/// Digits that always fit a u64 (serde_json reads longer numbers another way).
const MAX_DIGITS: usize = 19;

/// `digits × 10^exponent` computed as serde_json computes it (by default, without its
/// `float_roundtrip` feature): the digits as a double, multiplied or divided by the power of
/// ten as a double. `None` when that overflows (serde_json refuses the number).
fn from_parts(digits: u64, mut exponent: i32) -> Option<f64> {
    let mut value = digits as f64;
    loop {
        match power_of_ten(exponent.unsigned_abs()) {
            Some(power) if exponent >= 0 => {
                value *= power;
                return value.is_finite().then_some(value);
            }
            Some(power) => return Some(value / power),
            None if value == 0.0 => return Some(value),
            None if exponent >= 0 => return None,
            None => {
                value /= 1e308;
                exponent += 308;
            }
        }
    }
}

/// 10^n as the nearest double, for n up to 308.
fn power_of_ten(n: u32) -> Option<f64> {
    static POWERS: std::sync::LazyLock<Vec<f64>> = std::sync::LazyLock::new(|| {
        (0..=308)
            .map(|n| format!("1e{n}").parse().expect("a power of ten"))
            .collect()
    });
    match POWERS_EXACT.get(n as usize) {
        Some(&power) => Some(power),
        None => POWERS.get(n as usize).copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fuzz;
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn serde(body: &[u8]) -> Option<RawRequest> {
        serde_json::from_slice(body).ok()
    }

    /// What [`read`] makes of `body`, checked against serde_json: the same request, or `None`.
    fn read_checked(body: &[u8]) -> Option<RawRequest> {
        let quick = read(body);
        if let Some(request) = &quick {
            assert_eq!(
                Some(request),
                serde(body).as_ref(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        quick
    }

    /// A request with `data` written as given.
    fn body(data: &str) -> String {
        format!(r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP64","data":{data}}}]}}"#)
    }

    /// The numbers of `data` (its JSON text), read by [`read`].
    fn numbers(data: &str) -> Vec<f64> {
        let request = read_checked(body(data).as_bytes()).expect("a plain request");
        match request.inputs[0].data.clone() {
            Some(Element::Numbers(numbers)) => numbers,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_requests_read_as_serde_json_reads_them() {
        let flat =
            br#" { "id" : "a-1", "inputs":[{"name":"input-0","shape":[2, 2],"datatype":"FP32",
            "data":[1, -2.5,3e2 ,0.125E-1]} ] }
        "#;
        let request = read_checked(flat).expect("plain");
        assert_eq!(request.id.as_deref(), Some("a-1"));
        assert_eq!(
            request.inputs[0].data,
            Some(Element::Numbers(vec![1.0, -2.5, 300.0, 0.0125]))
        );
        let nested = br#"{"inputs":[{"data":[[0.0,13.0],[],[-0.0, 7]],"datatype":"INT64","shape":[-1,2],"name":"i"}]}"#;
        let request = read_checked(nested).expect("plain");
        assert_eq!(
            request.inputs[0].data,
            Some(Element::Array(vec![
                Element::Numbers(vec![0.0, 13.0]),
                Element::Numbers(vec![]),
                Element::Numbers(vec![-0.0, 7.0]),
            ]))
        );
        assert_eq!(request.inputs[0].shape, [-1, 2]);
        // No data, no inputs, an empty flat array.
        read_checked(br#"{"inputs":[{"name":"i","shape":[0],"datatype":"FP32"}]}"#).expect("plain");
        read_checked(br#"{"inputs":[]}"#).expect("plain");
        assert_eq!(numbers("[]"), Vec::<f64>::new());
    }

    #[test]
    fn arrays_reserve_room_for_what_they_hold() {
        let input = r#"{"name":"","shape":[],"datatype":"","data":[]}"#;
        let many = format!(r#"{{"inputs":[{}]}}"#, vec![input; 1000].join(","));
        let request = read_checked(many.as_bytes()).expect("plain");
        let reserved: usize = request
            .inputs
            .iter()
            .map(|input| match &input.data {
                Some(Element::Numbers(numbers)) => numbers.capacity(),
                other => panic!("{other:?}"),
            })
            .sum();
        assert!(
            reserved <= 1000,
            "{reserved} numbers reserved for 1000 empty arrays"
        );
        let request = read_checked(body(&format!("[{}]", vec!["1.5"; 300].join(", "))).as_bytes());
        match &request.expect("plain").inputs[0].data {
            Some(Element::Numbers(numbers)) => assert_eq!(numbers.capacity(), 300),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numbers_convert_as_serde_json_converts_them() {
        let text = "[0.1, 1e22, 123456.789e-3, -7, 1e23, 9007199254740993, 60685.625944129824, \
                    1e-400, 2.5e-320, 17976931348623157e292, 0.000, -0.0e999, 5E+2, 13.0, 1.50, \
                    90071992547409930.0, 9007199254740993.0, 123456789012345678.0, 330e-83, 1500e-2]";
        let expected: Vec<f64> = serde_json::from_str(text).expect("json");
        assert_eq!(numbers(text), expected);
        assert_eq!(expected[..4], [0.1, 1e22, 123.456789, -7.0]);
        // `-0` is -0.0 to serde_json, as `-0.0` is.
        let zeros = numbers("[-0, -0.0, 0]");
        assert!(zeros[0].is_sign_negative() && zeros[1].is_sign_negative());
        assert!(zeros[2].is_sign_positive());
        for text in [
            "[0.12345678901234567891]", // more digits than a u64 holds
            "[12345678901234567890]",
            "[1e00001]", // an exponent of more than 4 digits
            "[\"1\"]",
            "[1, [2]]",
            "[[1], 2]",
            "[[[1]]]",
            "7",
        ] {
            let body = body(text);
            assert!(read_checked(body.as_bytes()).is_none(), "{text}");
            assert!(serde(body.as_bytes()).is_some(), "{text} is valid JSON");
        }
    }

    #[test]
    fn anything_but_the_plain_form_goes_to_serde_json() {
        for body in [
            // Not JSON.
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[01]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[.5]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1e]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[+1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1,]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1 2]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}x"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],}"#,
            r#"{"inputs":[{"name":"x","shape":[01],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}"#,
            "{\"inputs\":[{\"name\":\"x\ty\",\"shape\":[1],\"datatype\":\"FP32\"}]}",
            "{\"id\":\"\r\",\"inputs\":[]}",
            "{\"id\":\"x\n\",\"inputs\":[]}",
            // JSON, but for serde_json to read or refuse.
            r#"{"inputs":[{"name":"x\"","shape":[1],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"é","shape":[1],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1.0],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[-0],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{}}]}"#,
            r#"{"inputs":[{"name":"x","name":"y","shape":[1],"datatype":"FP32"}]}"#,
            r#"{"inputs":[{"shape":[1],"datatype":"FP32"}]}"#,
            r#"{"inputs":[],"outputs":[{"name":"label"}]}"#,
            r#"{"inputs":[],"id":null}"#,
            r#"{"inputs":[],"inputs":[]}"#,
            r#"{"model_name":"digits","inputs":[]}"#,
            r#"{"id":"x"}"#,
            "[]",
            "",
        ] {
            assert!(read_checked(body.as_bytes()).is_none(), "{body}");
        }
    }

    /// An array of 1 to `most` numbers of the given parts (a sign, the whole part, maybe a
    /// fraction and an exponent, white space around), and the most digits of any.
    fn number_array(
        whole: &'static str,
        fraction: &'static str,
        exponent: &'static str,
        most: usize,
    ) -> impl Strategy<Value = (String, usize)> {
        let number = (
            "-?",
            whole,
            prop::option::of(fraction),
            prop::option::of(exponent),
            "[ \\t\\n]{0,2}",
        );
        prop::collection::vec(number, 1..=most).prop_map(|numbers| {
            let digits = numbers
                .iter()
                .map(|(_, whole, fraction, _, _)| {
                    whole.len() + fraction.as_ref().map_or(0, String::len)
                })
                .max()
                .unwrap_or(0);
            let texts: Vec<String> = numbers
                .into_iter()
                .map(|(sign, whole, fraction, exponent, space)| {
                    let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
                    let exponent = exponent.unwrap_or_default();
                    format!("{space}{sign}{whole}{fraction}{exponent}{space}")
                })
                .collect();
            (format!("[{}]", texts.join(",")), digits)
        })
    }

    proptest! {
        /// Numbers of any form JSON allows, in arrays: read as serde_json reads them, and by
        /// this reader when none has more than 19 digits (and serde_json reads them: within a
        /// double's range).
        #[test]
        fn numbers_of_any_form_read_as_serde_json_reads_them(
            (data, most_digits) in number_array("0|[1-9][0-9]{0,19}", "[0-9]{1,12}", "[eE][+-]?0?[0-9]{1,3}", 6),
        ) {
            let body = body(&data);
            let read = read_checked(body.as_bytes());
            let in_range = serde(body.as_bytes()).is_some();
            prop_assert_eq!(read.is_some(), most_digits <= MAX_DIGITS && in_range, "{}", data);
        }

        /// Number-like texts, JSON or not (leading zeros, a bare point, an empty exponent): never
        /// read as anything serde_json would not read them as.
        #[test]
        fn number_like_texts_are_never_misread(
            (data, _) in number_array("[0-9]{1,21}", "[0-9]{0,21}", "[eE][+-]?[0-9]{0,5}", 4),
        ) {
            read_checked(body(&data).as_bytes());
        }

        /// Every request the clients' strategy makes, written compact or pretty: the same
        /// request as serde_json's, or `None`.
        #[test]
        fn requests_read_as_serde_json_reads_them(request in fuzz::request_like(), pretty: bool) {
            let body = if pretty {
                serde_json::to_vec_pretty(&request)
            } else {
                serde_json::to_vec(&request)
            }
            .expect("json");
            read_checked(&body);
        }

        /// A plain request with a byte changed, cut short or with bytes inserted: never read
        /// as anything serde_json would not read it as.
        #[test]
        fn corrupted_requests_are_never_misread(
            rows in prop::collection::vec(prop::collection::vec(-1e6f64..1e6, 1..5), 1..4),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            how in 0..3u8,
        ) {
            let body = json!({"id": "r", "inputs": [
                {"name": "input-0", "shape": [rows.len(), rows[0].len()], "datatype": "FP32", "data": rows}
            ]});
            let mut body = body.to_string().into_bytes();
            prop_assert!(read_checked(&body).is_some());
            let at = at.index(body.len());
            match how {
                0 => body[at] = byte,
                1 => body.truncate(at),
                _ => body.insert(at, byte),
            }
            read_checked(&body);
        }
    }
}
