//! Feedback ids: what a client sends back with the true label (or, for a regression model, the
//! true value) of a prediction.
//!
//! Feedback drives the accuracy (or error) a Monitor checks, and a failing one rolls a deployment
//! back, so a client must not be able to invent feedback. And any replica of any revision may receive
//! it (one Service spans them all), so a replica must be able to check an id it never issued. The
//! id is therefore self-contained and authenticated:
//!
//! `base64url(payload) "." base64url(HMAC-SHA256(key, "modelops-feedback-v1\0" payload))`
//!
//! where the payload is compact JSON: model name `m`, revision `r`, prediction `p` (the class
//! name; for a regression model the predicted FP32 value as its shortest round-trip decimal,
//! [`value_text`]), issue time `t` (Unix seconds) and a random 128-bit nonce `n`. The key is
//! shared by every replica of a ModelDeployment (`MODELOPS_FEEDBACK_KEY`). A replica checks the
//! MAC (in constant time), the model name and the age, and counts the feedback under the revision
//! the id names.
//!
//! Limits: the payload is signed, not encrypted (a client can read the predicted label, which it
//! was given anyway). A replica refuses an id it has already counted ([`ReplayGuard`], bounded),
//! but another replica does not know that, so an id replayed across replicas within its validity
//! counts again — as many times as there are replicas at most.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::{HashSet, VecDeque};

/// Binds the MAC to this use and version of the format.
const DOMAIN: &[u8] = b"modelops-feedback-v1\0";

/// The longest id looked at: anything longer is not ours.
pub const MAX_ID_LENGTH: usize = 2048;

/// Random bytes in each id's nonce.
pub const NONCE_BYTES: usize = 16;

/// How far in the future an id's time may be (clocks of replicas differ a little).
pub const CLOCK_SKEW_SECONDS: u64 = 300;

/// The HMAC key shared by every replica of a ModelDeployment.
#[derive(Clone)]
pub struct FeedbackKey {
    length: usize,
    /// The MAC keyed and fed the domain once; each id clones it.
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for FeedbackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "FeedbackKey({} bytes)", self.length)
    }
}

impl FeedbackKey {
    /// Reads a key written in hex, at least `min_bytes` long.
    pub fn from_hex(text: &str, min_bytes: usize) -> Result<Self, String> {
        let text = text.trim();
        if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the feedback key must be written in hex digits".to_owned());
        }
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
            .collect();
        if bytes.len() < min_bytes {
            return Err(format!(
                "the feedback key has {} bytes; use at least {min_bytes} (for example `openssl rand -hex 32`)",
                bytes.len()
            ));
        }
        Ok(Self::of(&bytes))
    }

    /// A random key, for a server that runs alone (no other replica can check its ids).
    pub fn random() -> Self {
        let mut bytes = vec![0u8; 32];
        getrandom::fill(&mut bytes).expect("the system's random source");
        Self::of(&bytes)
    }

    fn of(bytes: &[u8]) -> Self {
        let mut keyed = Hmac::<Sha256>::new_from_slice(bytes).expect("HMAC takes any key length");
        keyed.update(DOMAIN);
        Self {
            length: bytes.len(),
            keyed,
        }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(payload);
        mac
    }
}

/// What a feedback id says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackClaim {
    /// The model name (the ModelDeployment's name).
    #[serde(rename = "m")]
    pub model: String,
    /// The revision that made the prediction.
    #[serde(rename = "r")]
    pub revision: i32,
    /// The predicted class name, or the predicted value written by [`value_text`].
    #[serde(rename = "p")]
    pub predicted: String,
    /// When the prediction was made, in Unix seconds.
    #[serde(rename = "t")]
    pub issued_at: u64,
    /// Random, base64url: makes every id unique (and replays recognisable).
    #[serde(rename = "n")]
    pub nonce: String,
}

impl FeedbackClaim {
    /// A claim with a fresh random nonce.
    pub fn new(model: &str, revision: i32, predicted: &str, issued_at: u64) -> Self {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the system's random source");
        Self::with_nonce(model, revision, predicted, issued_at, &nonce)
    }

    /// A claim with a nonce of the caller's (random bytes, drawn for many claims at once).
    pub fn with_nonce(
        model: &str,
        revision: i32,
        predicted: &str,
        issued_at: u64,
        nonce: &[u8],
    ) -> Self {
        Self {
            model: model.to_owned(),
            revision,
            predicted: predicted.to_owned(),
            issued_at,
            nonce: URL_SAFE_NO_PAD.encode(nonce),
        }
    }

    /// The id: the payload (this claim as serde_json writes it) and its MAC.
    pub fn sign(&self, key: &FeedbackKey) -> String {
        let payload = serde_json::to_vec(self).expect("a claim serialises");
        let tag = key.mac(&payload).finalize().into_bytes();
        id_of(&payload, &tag)
    }
}

/// An id from its payload and the payload's MAC: both in URL-safe base64, joined by a `.`
/// ([`verify`] splits them).
fn id_of(payload: &[u8], tag: &[u8]) -> String {
    let mut id = String::with_capacity((payload.len() + tag.len()).div_ceil(3) * 4 + 1);
    URL_SAFE_NO_PAD.encode_string(payload, &mut id);
    id.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut id);
    id
}

/// Signs the ids of a response's rows (what a server does for every row it answers): the
/// payload's fixed start (`{"m":..,"r":..,"p":`) written and fed to the MAC once, each row's
/// payload written into one buffer. Each id is the one `FeedbackClaim::sign` gives its claim.
pub struct ResponseSigner {
    /// Keyed, fed the domain and the payload's fixed start.
    started: Hmac<Sha256>,
    /// The payload's fixed start, then the row's rest.
    payload: Vec<u8>,
    start: usize,
}

impl ResponseSigner {
    /// A signer for the predictions of `revision` of `model`.
    pub fn new(key: &FeedbackKey, model: &str, revision: i32) -> Self {
        use std::io::Write;
        let mut payload = Vec::with_capacity(96 + model.len());
        // The fields in FeedbackClaim's order, written as serde_json writes them.
        payload.extend_from_slice(br#"{"m":"#);
        serde_json::to_writer(&mut payload, model).expect("a string serialises");
        write!(payload, r#","r":{revision},"p":"#).expect("a Vec takes writes");
        Self {
            started: key.mac(&payload),
            start: payload.len(),
            payload,
        }
    }

    /// The id of the claim that this revision predicted `predicted` at `issued_at` (Unix
    /// seconds), with `nonce` (random bytes).
    pub fn sign(&mut self, predicted: &str, issued_at: u64, nonce: &[u8]) -> String {
        use std::io::Write;
        self.payload.truncate(self.start);
        serde_json::to_writer(&mut self.payload, predicted).expect("a string serialises");
        write!(self.payload, r#","t":{issued_at},"n":""#).expect("a Vec takes writes");
        let at = self.payload.len();
        self.payload.resize(
            at + base64::encoded_len(nonce.len(), false).expect("a short nonce"),
            0,
        );
        URL_SAFE_NO_PAD
            .encode_slice(nonce, &mut self.payload[at..])
            .expect("sized for the nonce");
        self.payload.extend_from_slice(br#""}"#);
        let mut mac = self.started.clone();
        mac.update(&self.payload[self.start..]);
        id_of(&self.payload, &mac.finalize().into_bytes())
    }
}

/// How a claim writes a predicted value: the shortest decimal that reads back to the same f32
/// (`1.5`, `0.1`, `2`), the number the `prediction` output shows.
pub fn value_text(value: f32) -> String {
    format!("{value}")
}

/// Why an id is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedbackError {
    /// Not two base64url parts, or a payload that is not a claim.
    Malformed,
    /// The MAC does not match: forged, altered, or signed with another key.
    BadSignature,
    /// Older than the validity.
    Expired {
        /// Its age in seconds.
        age: u64,
        /// The validity in seconds.
        max_age: u64,
    },
    /// Issued further in the future than clocks can differ.
    FromTheFuture,
}

impl std::fmt::Display for FeedbackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedbackError::Malformed => f.write_str(
                "the feedback id is malformed; send an id from the feedback_id output of an inference response, unchanged",
            ),
            FeedbackError::BadSignature => f.write_str(
                "the feedback id is not authentic (its signature does not match): it was altered, or not issued by this model",
            ),
            FeedbackError::Expired { age, max_age } => write!(
                f,
                "the feedback id expired: its prediction is {age} s old and feedback is accepted for {max_age} s"
            ),
            FeedbackError::FromTheFuture => {
                f.write_str("the feedback id was issued in the future; check the clocks")
            }
        }
    }
}

/// Checks an id and returns its claim. `now` and `max_age` in seconds.
pub fn verify(
    key: &FeedbackKey,
    id: &str,
    now: u64,
    max_age: u64,
) -> Result<FeedbackClaim, FeedbackError> {
    if id.len() > MAX_ID_LENGTH {
        return Err(FeedbackError::Malformed);
    }
    let (payload, tag) = id.split_once('.').ok_or(FeedbackError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| FeedbackError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| FeedbackError::Malformed)?;
    // The MAC first: nothing of an unauthenticated payload is trusted, not even its JSON.
    key.mac(&payload)
        .verify_slice(&tag)
        .map_err(|_| FeedbackError::BadSignature)?;
    let claim: FeedbackClaim =
        serde_json::from_slice(&payload).map_err(|_| FeedbackError::Malformed)?;
    if claim.issued_at > now.saturating_add(CLOCK_SKEW_SECONDS) {
        return Err(FeedbackError::FromTheFuture);
    }
    let age = now.saturating_sub(claim.issued_at);
    if age > max_age {
        return Err(FeedbackError::Expired { age, max_age });
    }
    Ok(claim)
}

/// The nonces a replica has counted while their ids were valid, so that the same id is not
/// counted twice here. Bounded: past `capacity` the oldest are forgotten first.
#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    seen: HashSet<String>,
    /// (expiry, nonce), in the order counted.
    order: VecDeque<(u64, String)>,
}

impl ReplayGuard {
    /// A guard that remembers `capacity` nonces at most.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `nonce` (valid until `expires_at`) and says whether it is new.
    pub fn first_use(&mut self, nonce: &str, expires_at: u64, now: u64) -> bool {
        // Expired ids are refused before they get here, so their nonces can go.
        while let Some((expiry, _)) = self.order.front()
            && (*expiry < now || self.order.len() >= self.capacity)
        {
            let (_, old) = self.order.pop_front().expect("a front");
            self.seen.remove(&old);
        }
        if !self.seen.insert(nonce.to_owned()) {
            return false;
        }
        self.order.push_back((expires_at, nonce.to_owned()));
        true
    }

    /// Nonces remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;
    const NOW: u64 = 1_800_000_000;

    fn key() -> FeedbackKey {
        FeedbackKey::from_hex(&"0f".repeat(32), 16).unwrap()
    }

    #[test]
    fn a_signed_id_verifies_to_its_claim() {
        let claim = FeedbackClaim::new("digits", 3, "7", NOW);
        let id = claim.sign(&key());
        assert!(id.len() < 200, "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "an id is URL-safe: {id}"
        );
        assert_eq!(verify(&key(), &id, NOW + 10, HOUR), Ok(claim));
        // Signed from its parts by one signer for many rows, each row's id.
        let model = "a \"quoted\" model\n";
        let mut signer = ResponseSigner::new(&key(), model, -2);
        for (row, predicted) in ["7", "", "é \\ \u{1}", "0.1"].into_iter().enumerate() {
            let nonce = [row as u8; NONCE_BYTES];
            assert_eq!(
                signer.sign(predicted, NOW + row as u64, &nonce),
                FeedbackClaim::with_nonce(model, -2, predicted, NOW + row as u64, &nonce)
                    .sign(&key()),
                "{predicted:?}"
            );
        }
        // Every prediction gets its own id.
        assert_ne!(FeedbackClaim::new("digits", 3, "7", NOW).sign(&key()), id);
    }

    #[test]
    fn a_tampered_or_forged_id_is_refused() {
        let id = FeedbackClaim::new("digits", 3, "7", NOW).sign(&key());
        let (payload, tag) = id.split_once('.').unwrap();
        // The same payload claiming another label or revision, with the old MAC.
        let mut claim: FeedbackClaim =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claim.predicted = "1".into();
        let altered = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claim).unwrap())
        );
        assert_eq!(
            verify(&key(), &altered, NOW, HOUR),
            Err(FeedbackError::BadSignature)
        );
        // Signed with another key: a client's forgery.
        let other = FeedbackKey::from_hex(&"aa".repeat(32), 16).unwrap();
        let forged = FeedbackClaim::new("digits", 3, "7", NOW).sign(&other);
        assert_eq!(
            verify(&key(), &forged, NOW, HOUR),
            Err(FeedbackError::BadSignature)
        );
        // A flipped bit of the MAC.
        let mut bytes = URL_SAFE_NO_PAD.decode(tag).unwrap();
        bytes[0] ^= 1;
        let flipped = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(
            verify(&key(), &flipped, NOW, HOUR),
            Err(FeedbackError::BadSignature)
        );
        for malformed in [
            "",
            "abc",
            "a.b.c",
            "!!!.###",
            &"a".repeat(MAX_ID_LENGTH + 1),
        ] {
            assert_eq!(
                verify(&key(), malformed, NOW, HOUR),
                Err(FeedbackError::Malformed),
                "{malformed}"
            );
        }
        // A correctly signed payload that is not a claim.
        let payload = b"{\"m\": 1}";
        let tag = key().mac(payload).finalize().into_bytes();
        let odd = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        );
        assert_eq!(
            verify(&key(), &odd, NOW, HOUR),
            Err(FeedbackError::Malformed)
        );
    }

    #[test]
    fn an_old_or_future_id_is_refused() {
        let id = FeedbackClaim::new("digits", 3, "7", NOW).sign(&key());
        assert!(verify(&key(), &id, NOW + HOUR, HOUR).is_ok());
        assert_eq!(
            verify(&key(), &id, NOW + HOUR + 1, HOUR),
            Err(FeedbackError::Expired {
                age: HOUR + 1,
                max_age: HOUR
            })
        );
        assert!(verify(&key(), &id, NOW - CLOCK_SKEW_SECONDS, HOUR).is_ok());
        assert_eq!(
            verify(&key(), &id, NOW - CLOCK_SKEW_SECONDS - 1, HOUR),
            Err(FeedbackError::FromTheFuture)
        );
    }

    #[test]
    fn a_predicted_value_is_claimed_as_its_shortest_decimal() {
        assert_eq!(value_text(1.5), "1.5");
        assert_eq!(value_text(0.1), "0.1");
        assert_eq!(value_text(2.0), "2");
        assert_eq!(value_text(-1.25e-3), "-0.00125");
        let value = 1.0f32 / 3.0;
        assert_eq!(value_text(value).parse::<f32>(), Ok(value), "it reads back");
    }

    #[test]
    fn keys_are_hex_and_long_enough_and_never_printed() {
        assert!(FeedbackKey::from_hex("xyz", 16).is_err());
        assert!(FeedbackKey::from_hex("abc", 1).is_err());
        let short = FeedbackKey::from_hex(&"ab".repeat(8), 32).unwrap_err();
        assert!(short.contains("has 8 bytes"), "{short}");
        assert!(FeedbackKey::from_hex(&"AB".repeat(16), 16).is_ok());
        assert_eq!(format!("{:?}", key()), "FeedbackKey(32 bytes)");
    }

    #[test]
    fn the_replay_guard_counts_a_nonce_once_and_stays_bounded() {
        let mut guard = ReplayGuard::new(3);
        assert!(guard.first_use("a", NOW + HOUR, NOW));
        assert!(!guard.first_use("a", NOW + HOUR, NOW));
        assert!(guard.first_use("b", NOW + HOUR, NOW));
        assert!(guard.first_use("c", NOW + HOUR, NOW));
        // Full: the oldest is forgotten to make room.
        assert!(guard.first_use("d", NOW + HOUR, NOW));
        assert_eq!(guard.len(), 3);
        assert!(guard.first_use("a", NOW + HOUR, NOW));
        // Expired nonces go first.
        assert!(guard.first_use("e", NOW + 2 * HOUR, NOW + HOUR + 1));
        assert_eq!(guard.len(), 1);
    }
}
