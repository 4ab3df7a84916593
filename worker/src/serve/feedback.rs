//! Feedback ids: what a client sends back with the true label (or, for a regression model, the
//! true value) of a prediction.
//!
//! Feedback drives the accuracy (or error) a Monitor checks, and a failing one rolls a deployment
//! back, so a client must not be able to invent feedback. And any replica of any revision may receive
//! it (one Service spans them all), so a replica must be able to check an id it never issued. The
//! id is therefore self-contained and authenticated, with one HMAC-SHA256 per response and a
//! SipHash per row:
//!
//! `base64url(2 ‖ revision ‖ issued ‖ nonce ‖ row ‖ predicted ‖ tag)`
//!
//! - `2`: the format's version (one byte); `revision`: i32, little-endian; `issued`: the issue
//!   time in Unix seconds, u64 LE; `nonce`: 16 random bytes drawn once per response; `row`: the
//!   row's index in its response, u32 LE; `predicted`: the class name, or for a regression model
//!   the predicted FP32 value as its shortest round-trip decimal ([`value_text`]), UTF-8, up to
//!   the tag;
//! - the response's key: the first 16 bytes of HMAC-SHA256(key, `"modelops-feedback-v2\0"` ‖
//!   the model name's length (u64 LE) ‖ model name ‖ revision ‖ issued ‖ nonce);
//! - `tag`: SipHash-2-4 of (row ‖ predicted) under the response's key, 8 bytes LE.
//!
//! The key is shared by every replica of a ModelDeployment (`MODELOPS_FEEDBACK_KEY`). A replica
//! computes the response's key with its own model name (the name is bound, not carried: an id of
//! another model is not authentic here), checks the tag in constant time, then the age, and counts
//! the feedback under the revision the id names.
//!
//! Why this holds: the response's key is HMAC's output over a fresh random nonce, a key of its own
//! that no client sees; SipHash-2-4 is a pseudorandom function made to authenticate short inputs,
//! so a client holding the ids of its rows can compute neither another row's tag nor the tag of
//! another label (forging one takes 2^63 tries on average, each a feedback request), nor learn the
//! key. Changing the revision, time, nonce or model changes the response's key; changing the row
//! or the label changes what SipHash reads (the row is of fixed length, so the two read back one
//! way only). The cost: one HMAC per response and about 20 ns per row, where an HMAC per row
//! cost 0.2 us, and an id of 56 characters for a one-character class (the first format's JSON
//! claim took 144).
//!
//! Ids of the first format, `base64url(JSON claim) "." base64url(HMAC-SHA256(key,
//! "modelops-feedback-v1\0" claim))` with the claim's model `m`, revision `r`, prediction `p`,
//! issue time `t` and nonce `n` ([`FeedbackClaim`]), are still verified, so that ids handed out
//! before an upgrade count until they expire.
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
use siphasher::sip::SipHasher24;
use std::collections::{HashSet, VecDeque};
use std::hash::Hasher;
use subtle::ConstantTimeEq;

/// Binds the MAC of a first-format id to this use and that format.
const DOMAIN: &[u8] = b"modelops-feedback-v1\0";

/// Binds a response's key to this use and the format of version [`VERSION`].
const DOMAIN_V2: &[u8] = b"modelops-feedback-v2\0";

/// The version byte that starts an id of the current format.
const VERSION: u8 = 2;

/// The longest id looked at: anything longer is not ours.
pub const MAX_ID_LENGTH: usize = 2048;

/// Random bytes in each id's nonce.
pub const NONCE_BYTES: usize = 16;

/// An id's bytes before its prediction: version, revision, issue time, nonce, row.
const HEAD_BYTES: usize = 1 + 4 + 8 + NONCE_BYTES + 4;

/// Bytes of a row's tag.
const TAG_BYTES: usize = 8;

/// How far in the future an id's time may be (clocks of replicas differ a little).
pub const CLOCK_SKEW_SECONDS: u64 = 300;

/// The HMAC key shared by every replica of a ModelDeployment.
#[derive(Clone)]
pub struct FeedbackKey {
    length: usize,
    /// The MAC keyed and fed the domain once; each id clones it.
    keyed: Hmac<Sha256>,
    /// The same, fed the current format's domain: each response clones it.
    keyed_v2: Hmac<Sha256>,
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
        let keyed = Hmac::<Sha256>::new_from_slice(bytes).expect("HMAC takes any key length");
        let mut keyed_v1 = keyed.clone();
        keyed_v1.update(DOMAIN);
        let mut keyed_v2 = keyed;
        keyed_v2.update(DOMAIN_V2);
        Self {
            length: bytes.len(),
            keyed: keyed_v1,
            keyed_v2,
        }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(payload);
        mac
    }

    /// The SipHash key of a response: what every row's tag is computed under. `head` is an
    /// id's head (version, revision, time, nonce, row), the row not read.
    fn response_key(&self, model: &str, head: &[u8]) -> [u8; 16] {
        let mut mac = self.keyed_v2.clone();
        mac.update(&(model.len() as u64).to_le_bytes());
        mac.update(model.as_bytes());
        mac.update(&head[1..HEAD_BYTES - 4]);
        let bytes = mac.finalize().into_bytes();
        bytes[..16].try_into().expect("32 bytes")
    }
}

/// A row's tag under its response's key: SipHash-2-4 of the row's index and its prediction.
fn row_tag(response_key: &[u8; 16], row_and_predicted: &[u8]) -> [u8; TAG_BYTES] {
    let mut hasher = SipHasher24::new_with_key(response_key);
    hasher.write(row_and_predicted);
    hasher.finish().to_le_bytes()
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
    /// What tells this id from every other (and replays recognisable): the first format's
    /// random nonce, base64url; of the current format, the response's nonce, `/` and the row.
    #[serde(rename = "n")]
    pub nonce: String,
}

impl FeedbackClaim {
    /// A claim with a fresh random nonce.
    pub fn new(model: &str, revision: i32, predicted: &str, issued_at: u64) -> Self {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the system's random source");
        Self {
            model: model.to_owned(),
            revision,
            predicted: predicted.to_owned(),
            issued_at,
            nonce: URL_SAFE_NO_PAD.encode(nonce),
        }
    }

    /// The claim's id in the first format: the payload (this claim as serde_json writes it) and
    /// its MAC. Servers no longer issue these; they verify them.
    pub fn sign_v1(&self, key: &FeedbackKey) -> String {
        let payload = serde_json::to_vec(self).expect("a claim serialises");
        let tag = key.mac(&payload).finalize().into_bytes();
        let mut id = String::with_capacity((payload.len() + tag.len()).div_ceil(3) * 4 + 1);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut id);
        id.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut id);
        id
    }
}

/// Signs the ids of a response's rows (what a server does for every row it answers): the
/// response's key computed once (one HMAC), each row's id written from one buffer and tagged
/// by a SipHash.
pub struct ResponseSigner {
    /// The rows' key.
    key: [u8; 16],
    /// The id's head, then the row's index and prediction, then its tag.
    id: Vec<u8>,
}

impl ResponseSigner {
    /// A signer for the predictions of `revision` of `model`, issued at `issued_at` (Unix
    /// seconds) with the response's `nonce` (random bytes, drawn once per response).
    pub fn new(
        key: &FeedbackKey,
        model: &str,
        revision: i32,
        issued_at: u64,
        nonce: &[u8; NONCE_BYTES],
    ) -> Self {
        let mut id = Vec::with_capacity(HEAD_BYTES + 32 + TAG_BYTES);
        id.push(VERSION);
        id.extend_from_slice(&revision.to_le_bytes());
        id.extend_from_slice(&issued_at.to_le_bytes());
        id.extend_from_slice(nonce);
        id.extend_from_slice(&[0; 4]);
        Self {
            key: key.response_key(model, &id),
            id,
        }
    }

    /// The id of the response's row `row`, which predicted `predicted` (a class name, or
    /// [`value_text`] of a value).
    pub fn sign(&mut self, row: usize, predicted: &str) -> String {
        let row = u32::try_from(row).expect("fewer than 2^32 rows in a response");
        self.id.truncate(HEAD_BYTES - 4);
        self.id.extend_from_slice(&row.to_le_bytes());
        self.id.extend_from_slice(predicted.as_bytes());
        let tag = row_tag(&self.key, &self.id[HEAD_BYTES - 4..]);
        self.id.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(&self.id)
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

/// Checks an id of `model` and returns its claim. `now` and `max_age` in seconds.
pub fn verify(
    key: &FeedbackKey,
    model: &str,
    id: &str,
    now: u64,
    max_age: u64,
) -> Result<FeedbackClaim, FeedbackError> {
    if id.len() > MAX_ID_LENGTH {
        return Err(FeedbackError::Malformed);
    }
    let claim = match id.split_once('.') {
        Some((payload, tag)) => verify_v1(key, payload, tag)?,
        None => verify_v2(key, model, id)?,
    };
    if claim.issued_at > now.saturating_add(CLOCK_SKEW_SECONDS) {
        return Err(FeedbackError::FromTheFuture);
    }
    let age = now.saturating_sub(claim.issued_at);
    if age > max_age {
        return Err(FeedbackError::Expired { age, max_age });
    }
    Ok(claim)
}

/// The claim of an id of the current format, once its tag is checked.
fn verify_v2(key: &FeedbackKey, model: &str, id: &str) -> Result<FeedbackClaim, FeedbackError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(id)
        .map_err(|_| FeedbackError::Malformed)?;
    if bytes.len() < HEAD_BYTES + TAG_BYTES || bytes[0] != VERSION {
        return Err(FeedbackError::Malformed);
    }
    let (signed, tag) = bytes.split_at(bytes.len() - TAG_BYTES);
    // The tag first: nothing of an unauthenticated id is trusted.
    let expected = row_tag(&key.response_key(model, signed), &signed[HEAD_BYTES - 4..]);
    if !bool::from(expected.ct_eq(tag)) {
        return Err(FeedbackError::BadSignature);
    }
    let field = |at: usize, length: usize| &signed[at..at + length];
    let revision = i32::from_le_bytes(field(1, 4).try_into().expect("4 bytes"));
    let issued_at = u64::from_le_bytes(field(5, 8).try_into().expect("8 bytes"));
    let nonce = field(13, NONCE_BYTES);
    let row = u32::from_le_bytes(field(HEAD_BYTES - 4, 4).try_into().expect("4 bytes"));
    let predicted =
        std::str::from_utf8(&signed[HEAD_BYTES..]).map_err(|_| FeedbackError::Malformed)?;
    Ok(FeedbackClaim {
        model: model.to_owned(),
        revision,
        predicted: predicted.to_owned(),
        issued_at,
        nonce: format!("{}/{row}", URL_SAFE_NO_PAD.encode(nonce)),
    })
}

/// The claim of a first-format id (its payload and MAC, each base64url), once its MAC is
/// checked.
fn verify_v1(key: &FeedbackKey, payload: &str, tag: &str) -> Result<FeedbackClaim, FeedbackError> {
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
    serde_json::from_slice(&payload).map_err(|_| FeedbackError::Malformed)
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

    /// The ids of a response's rows, signed as a server signs them.
    fn signed(model: &str, revision: i32, predicted: &[&str], issued_at: u64) -> Vec<String> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).unwrap();
        let mut signer = ResponseSigner::new(&key(), model, revision, issued_at, &nonce);
        predicted
            .iter()
            .enumerate()
            .map(|(row, p)| signer.sign(row, p))
            .collect()
    }

    #[test]
    fn a_signed_id_verifies_to_its_claim() {
        let predicted = ["7", "", "é \\ \u{1}", "0.1", "7"];
        let ids = signed("a \"quoted\" model\n", -2, &predicted, NOW);
        assert_eq!(ids[0].len(), 56, "{}", ids[0]);
        let mut nonces = HashSet::new();
        for (id, predicted) in ids.iter().zip(predicted) {
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)),
                "an id is URL-safe: {id}"
            );
            let claim = verify(&key(), "a \"quoted\" model\n", id, NOW + 10, HOUR).unwrap();
            assert_eq!(
                (
                    claim.model.as_str(),
                    claim.revision,
                    claim.predicted.as_str()
                ),
                ("a \"quoted\" model\n", -2, predicted)
            );
            assert_eq!(claim.issued_at, NOW);
            nonces.insert(claim.nonce);
        }
        // Every row is its own feedback, even of the same prediction; so is every response.
        assert_eq!(nonces.len(), ids.len());
        assert_ne!(ids[0], ids[4]);
        assert_ne!(
            signed("digits", 3, &["7"], NOW),
            signed("digits", 3, &["7"], NOW)
        );
        // An id of the first format still counts.
        let claim = FeedbackClaim::new("digits", 3, "7", NOW);
        assert_eq!(
            verify(&key(), "digits", &claim.sign_v1(&key()), NOW + 10, HOUR),
            Ok(claim)
        );
    }

    #[test]
    fn a_tampered_or_forged_id_is_refused() {
        let ids = signed("digits", 3, &["7", "1"], NOW);
        let bytes = URL_SAFE_NO_PAD.decode(&ids[0]).unwrap();
        let check =
            |bytes: &[u8]| verify(&key(), "digits", &URL_SAFE_NO_PAD.encode(bytes), NOW, HOUR);
        assert!(check(&bytes).is_ok());
        // Any bit changed anywhere (the version, the revision, the time, the nonce, the row, the
        // prediction or the tag) is refused.
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut altered = bytes.clone();
                altered[at] ^= 1 << bit;
                let refused = check(&altered).unwrap_err();
                let expected = if at == 0 {
                    FeedbackError::Malformed
                } else {
                    FeedbackError::BadSignature
                };
                assert_eq!(refused, expected, "byte {at} bit {bit}");
            }
        }
        // Another row's prediction claimed, or another row's index, with this row's tag.
        let other = URL_SAFE_NO_PAD.decode(&ids[1]).unwrap();
        let mut swapped = bytes.clone();
        swapped[HEAD_BYTES] = other[HEAD_BYTES];
        assert_eq!(check(&swapped), Err(FeedbackError::BadSignature));
        let mut moved = bytes.clone();
        moved[HEAD_BYTES - 4..HEAD_BYTES].copy_from_slice(&other[HEAD_BYTES - 4..HEAD_BYTES]);
        assert_eq!(check(&moved), Err(FeedbackError::BadSignature));
        // Another model's id, and one signed with another key (a client's forgery).
        assert_eq!(
            verify(&key(), "digits-2", &ids[0], NOW, HOUR),
            Err(FeedbackError::BadSignature)
        );
        let other_key = FeedbackKey::from_hex(&"aa".repeat(32), 16).unwrap();
        let mut signer = ResponseSigner::new(&other_key, "digits", 3, NOW, &[9; NONCE_BYTES]);
        assert_eq!(
            verify(&key(), "digits", &signer.sign(0, "7"), NOW, HOUR),
            Err(FeedbackError::BadSignature)
        );
        // Cut short, or too short to hold a head and a tag.
        assert_eq!(
            check(&bytes[..bytes.len() - 1]),
            Err(FeedbackError::BadSignature)
        );
        assert_eq!(
            check(&bytes[..HEAD_BYTES + TAG_BYTES - 1]),
            Err(FeedbackError::Malformed)
        );
        for malformed in [
            "",
            "abc",
            "a.b.c",
            "!!!.###",
            "!!!",
            &"a".repeat(MAX_ID_LENGTH + 1),
        ] {
            assert_eq!(
                verify(&key(), "digits", malformed, NOW, HOUR),
                Err(FeedbackError::Malformed),
                "{malformed}"
            );
        }
        // A prediction that is not UTF-8, correctly signed, is not a claim.
        let mut signer = ResponseSigner::new(&key(), "digits", 3, NOW, &[9; NONCE_BYTES]);
        let mut odd = URL_SAFE_NO_PAD.decode(signer.sign(0, "ab")).unwrap();
        odd.truncate(HEAD_BYTES);
        odd.push(0xff);
        let tag = row_tag(&key().response_key("digits", &odd), &odd[HEAD_BYTES - 4..]);
        odd.extend_from_slice(&tag);
        assert_eq!(check(&odd), Err(FeedbackError::Malformed));
    }

    #[test]
    fn a_tampered_or_forged_id_of_the_first_format_is_refused() {
        let id = FeedbackClaim::new("digits", 3, "7", NOW).sign_v1(&key());
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
            verify(&key(), "digits", &altered, NOW, HOUR),
            Err(FeedbackError::BadSignature)
        );
        // Signed with another key: a client's forgery.
        let other = FeedbackKey::from_hex(&"aa".repeat(32), 16).unwrap();
        let forged = FeedbackClaim::new("digits", 3, "7", NOW).sign_v1(&other);
        assert_eq!(
            verify(&key(), "digits", &forged, NOW, HOUR),
            Err(FeedbackError::BadSignature)
        );
        // A flipped bit of the MAC.
        let mut bytes = URL_SAFE_NO_PAD.decode(tag).unwrap();
        bytes[0] ^= 1;
        let flipped = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(
            verify(&key(), "digits", &flipped, NOW, HOUR),
            Err(FeedbackError::BadSignature)
        );
        // A correctly signed payload that is not a claim.
        let payload = b"{\"m\": 1}";
        let tag = key().mac(payload).finalize().into_bytes();
        let odd = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        );
        assert_eq!(
            verify(&key(), "digits", &odd, NOW, HOUR),
            Err(FeedbackError::Malformed)
        );
    }

    #[test]
    fn an_old_or_future_id_is_refused() {
        let old = FeedbackClaim::new("digits", 3, "7", NOW).sign_v1(&key());
        for id in [signed("digits", 3, &["7"], NOW).remove(0), old] {
            let verify = |now| verify(&key(), "digits", &id, now, HOUR);
            assert!(verify(NOW + HOUR).is_ok());
            assert_eq!(
                verify(NOW + HOUR + 1),
                Err(FeedbackError::Expired {
                    age: HOUR + 1,
                    max_age: HOUR
                })
            );
            assert!(verify(NOW - CLOCK_SKEW_SECONDS).is_ok());
            assert_eq!(
                verify(NOW - CLOCK_SKEW_SECONDS - 1),
                Err(FeedbackError::FromTheFuture)
            );
        }
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
