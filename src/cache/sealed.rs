//! Entries as stored in Redis and on disk: serialized, LZ4-compressed above a threshold, and
//! encrypted with AES-256-GCM under the keyring's current key.
//!
//! Layout: `FC` magic, format version, key id (length byte + bytes), cache key (u16 length +
//! bytes), 12-byte nonce, then the ciphertext with its tag. Everything before the ciphertext
//! is authenticated as associated data, so a value moved to another key, or a header edited,
//! fails to open exactly like a flipped ciphertext bit.

use std::sync::Arc;
use std::time::Duration;

use super::entry::Entry;
use super::keyring::{DecryptError, EncryptError, Keyring, NONCE_BYTES};
use super::watermark::Watermark;

const MAGIC: &[u8; 2] = b"FC";
const FORMAT_VERSION: u8 = 1;
const FLAG_PLAIN: u8 = 0;
const FLAG_LZ4: u8 = 1;
/// Largest decompressed entry accepted: far above any analysis result, far below memory.
const MAX_DECOMPRESSED: usize = 256 * 1024 * 1024;

/// Why stored bytes could not be turned back into an entry. Every case is a miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("not a sealed cache entry (bad magic, version or header)")]
    Format,
    #[error("sealed for another cache key")]
    WrongKey,
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    #[error("the decrypted entry does not decompress or parse")]
    Corrupt,
}

impl Unreadable {
    /// A metric label for the reason.
    pub fn label(&self) -> &'static str {
        match self {
            Unreadable::Format => "format",
            Unreadable::WrongKey => "wrong_key",
            Unreadable::Decrypt(DecryptError::UnknownKey) => "unknown_key",
            Unreadable::Decrypt(DecryptError::Inauthentic) => "inauthentic",
            Unreadable::Corrupt => "corrupt",
        }
    }
}

/// Seals and opens entries with one keyring and compression threshold.
#[derive(Debug, Clone)]
pub struct Sealer {
    keyring: Arc<Keyring>,
    compression_threshold: usize,
}

impl Sealer {
    /// A sealer compressing serialized entries longer than `compression_threshold` bytes.
    pub fn new(keyring: Arc<Keyring>, compression_threshold: usize) -> Sealer {
        Sealer { keyring, compression_threshold }
    }

    /// The stored form of `entry` under `cache_key`.
    pub fn seal(&self, cache_key: &str, entry: &Entry) -> Result<Vec<u8>, EncryptError> {
        let body = encode_entry(entry);
        let mut plaintext = Vec::with_capacity(body.len() + 1);
        if body.len() > self.compression_threshold {
            plaintext.push(FLAG_LZ4);
            plaintext.extend_from_slice(&lz4_flex::compress_prepend_size(&body));
        } else {
            plaintext.push(FLAG_PLAIN);
            plaintext.extend_from_slice(&body);
        }
        let key_id = self.keyring.current_id().as_bytes();
        let cache_key = cache_key.as_bytes();
        let mut sealed = Vec::with_capacity(plaintext.len() + cache_key.len() + 64);
        sealed.extend_from_slice(MAGIC);
        sealed.push(FORMAT_VERSION);
        // Key ids are at most 32 bytes (checked when the keyring is built).
        sealed.push(key_id.len() as u8);
        sealed.extend_from_slice(key_id);
        let cache_key_len = u16::try_from(cache_key.len()).map_err(|_| EncryptError)?;
        sealed.extend_from_slice(&cache_key_len.to_be_bytes());
        sealed.extend_from_slice(cache_key);
        let (nonce, ciphertext) = self.keyring.encrypt(&associated(&sealed), &plaintext)?;
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// The entry sealed in `bytes`, which must have been sealed for `cache_key` (`None`
    /// accepts any key: a disk scan learns the key from the header).
    pub fn open(&self, cache_key: Option<&str>, bytes: &[u8]) -> Result<(String, Entry), Unreadable> {
        let header = Header::parse(bytes)?;
        if cache_key.is_some_and(|k| k != header.cache_key) {
            return Err(Unreadable::WrongKey);
        }
        let header_bytes = &bytes[..header.nonce_at];
        let nonce: [u8; NONCE_BYTES] =
            bytes[header.nonce_at..header.nonce_at + NONCE_BYTES].try_into().map_err(|_| Unreadable::Format)?;
        let ciphertext = &bytes[header.nonce_at + NONCE_BYTES..];
        let plaintext = self.keyring.decrypt(header.key_id, &nonce, &associated(header_bytes), ciphertext)?;
        let (flag, rest) = plaintext.split_first().ok_or(Unreadable::Corrupt)?;
        let entry = match *flag {
            FLAG_PLAIN => decode_entry(rest)?,
            FLAG_LZ4 => {
                let declared = rest.get(..4).ok_or(Unreadable::Corrupt)?;
                let declared = u32::from_le_bytes(declared.try_into().map_err(|_| Unreadable::Corrupt)?) as usize;
                if declared > MAX_DECOMPRESSED {
                    return Err(Unreadable::Corrupt);
                }
                decode_entry(&lz4_flex::decompress_size_prepended(rest).map_err(|_| Unreadable::Corrupt)?)?
            }
            _ => return Err(Unreadable::Corrupt),
        };
        Ok((header.cache_key.to_string(), entry))
    }
}

/// Associated data: the header, and the format version spelled out once more so a future
/// format cannot be confused with this one.
fn associated(header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + 8);
    aad.extend_from_slice(b"frontier");
    aad.extend_from_slice(header);
    aad
}

struct Header<'a> {
    key_id: &'a str,
    cache_key: &'a str,
    nonce_at: usize,
}

impl<'a> Header<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Header<'a>, Unreadable> {
        let mut reader = Reader { bytes, at: 0 };
        if reader.take(2)? != MAGIC || reader.u8()? != FORMAT_VERSION {
            return Err(Unreadable::Format);
        }
        let key_id_len = reader.u8()? as usize;
        let key_id = std::str::from_utf8(reader.take(key_id_len)?).map_err(|_| Unreadable::Format)?;
        let cache_key_len = reader.u16()? as usize;
        let cache_key = std::str::from_utf8(reader.take(cache_key_len)?).map_err(|_| Unreadable::Format)?;
        let nonce_at = reader.at;
        // Nonce plus the 16-byte tag at least.
        if bytes.len() < nonce_at + NONCE_BYTES + 16 {
            return Err(Unreadable::Format);
        }
        Ok(Header { key_id, cache_key, nonce_at })
    }
}

/// Big-endian fixed fields, the watermark, then tags, then the payload as the rest.
fn encode_entry(entry: &Entry) -> Vec<u8> {
    let tags_len: usize = entry.tags.iter().map(|t| t.len() + 2).sum();
    let mut out = Vec::with_capacity(48 + tags_len + entry.payload.len());
    out.extend_from_slice(&entry.created_at_ms.to_be_bytes());
    out.extend_from_slice(&(entry.ttl.as_millis() as u64).to_be_bytes());
    out.extend_from_slice(&(entry.grace.as_millis() as u64).to_be_bytes());
    out.extend_from_slice(&(entry.compute_cost.as_micros() as u64).to_be_bytes());
    // One pair per partition of the invalidation topic: far below u16::MAX.
    let offsets = &entry.watermark.offsets()[..entry.watermark.offsets().len().min(u16::MAX as usize)];
    out.extend_from_slice(&(offsets.len() as u16).to_be_bytes());
    for (partition, offset) in offsets {
        out.extend_from_slice(&partition.to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
    }
    // Tags longer than u16::MAX or more than u16::MAX tags are cut: never produced by the
    // serving worker, and a cut tag only makes an invalidation miss, not a wrong answer.
    let tags: Vec<&[u8]> =
        entry.tags.iter().take(u16::MAX as usize).map(|t| &t.as_bytes()[..t.len().min(u16::MAX as usize)]).collect();
    out.extend_from_slice(&(tags.len() as u16).to_be_bytes());
    for tag in tags {
        out.extend_from_slice(&(tag.len() as u16).to_be_bytes());
        out.extend_from_slice(tag);
    }
    out.extend_from_slice(&entry.payload);
    out
}

fn decode_entry(bytes: &[u8]) -> Result<Entry, Unreadable> {
    let corrupt = |_| Unreadable::Corrupt;
    let mut reader = Reader { bytes, at: 0 };
    let created_at_ms = reader.i64().map_err(corrupt)?;
    let ttl = Duration::from_millis(reader.u64().map_err(corrupt)?);
    let grace = Duration::from_millis(reader.u64().map_err(corrupt)?);
    let compute_cost = Duration::from_micros(reader.u64().map_err(corrupt)?);
    let pairs = reader.u16().map_err(corrupt)? as usize;
    let mut offsets = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        let partition = reader.i32().map_err(corrupt)?;
        offsets.push((partition, reader.i64().map_err(corrupt)?));
    }
    let watermark = Watermark::from_offsets(offsets);
    let count = reader.u16().map_err(corrupt)? as usize;
    let mut tags = Vec::with_capacity(count);
    for _ in 0..count {
        let len = reader.u16().map_err(corrupt)? as usize;
        // A cut tag may end inside a UTF-8 sequence; keep what is valid.
        tags.push(String::from_utf8_lossy(reader.take(len).map_err(corrupt)?).into_owned());
    }
    let payload: Arc<[u8]> = Arc::from(&bytes[reader.at..]);
    Ok(Entry { payload, created_at_ms, ttl, grace, tags, watermark, compute_cost })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Unreadable> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len()).ok_or(Unreadable::Format)?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn u8(&mut self) -> Result<u8, Unreadable> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Unreadable> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().map_err(|_| Unreadable::Format)?))
    }
    fn u64(&mut self) -> Result<u64, Unreadable> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| Unreadable::Format)?))
    }
    fn i32(&mut self) -> Result<i32, Unreadable> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().map_err(|_| Unreadable::Format)?))
    }
    fn i64(&mut self) -> Result<i64, Unreadable> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().map_err(|_| Unreadable::Format)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::settings::CachePolicy;

    fn sealer(keys: &[(&str, u8)], current: &str, threshold: usize) -> Sealer {
        let keys = keys.iter().map(|(id, byte)| (id.to_string(), [*byte; 32])).collect();
        Sealer::new(Arc::new(Keyring::new(keys, current).unwrap()), threshold)
    }

    fn entry(payload: &[u8]) -> Entry {
        let policy = CachePolicy { ttl: Duration::from_secs(60), grace: Duration::from_secs(30) };
        Entry::new(
            Arc::from(payload),
            policy,
            vec!["symbol:AAPL".into(), "tenant:acme".into()],
            Watermark::from_offsets([(0, 42), (5, 7)]),
            Duration::from_millis(7),
            1_764_230_400_000,
        )
    }

    #[test]
    fn seal_then_open_gives_the_entry_back() {
        let sealer = sealer(&[("k1", 1)], "k1", 1024);
        let original = entry(b"{\"vol\": 0.21}");
        let sealed = sealer.seal("market.volatility:ab", &original).unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"vol\": "), "payload visible in the sealed bytes");
        let (key, opened) = sealer.open(Some("market.volatility:ab"), &sealed).unwrap();
        assert_eq!((key.as_str(), opened), ("market.volatility:ab", original));
    }

    #[test]
    fn any_flipped_bit_is_unreadable_never_a_panic() {
        let sealer = sealer(&[("k1", 1)], "k1", 1024);
        let sealed = sealer.seal("k:1", &entry(b"payload")).unwrap();
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert!(sealer.open(Some("k:1"), &tampered).is_err(), "byte {i} flipped still opened");
        }
        for len in 0..sealed.len() {
            assert!(sealer.open(Some("k:1"), &sealed[..len]).is_err());
        }
        assert_eq!(sealer.open(Some("k:2"), &sealed).unwrap_err(), Unreadable::WrongKey);
    }

    #[test]
    fn rotated_keys_still_open_old_entries_and_retired_keys_do_not() {
        let old = sealer(&[("k1", 1)], "k1", 1024);
        let sealed_by_old = old.seal("k:1", &entry(b"old")).unwrap();
        let rotated = sealer(&[("k1", 1), ("k2", 2)], "k2", 1024);
        assert_eq!(&*rotated.open(Some("k:1"), &sealed_by_old).unwrap().1.payload, b"old");
        let sealed_by_new = rotated.seal("k:1", &entry(b"new")).unwrap();
        let retired = sealer(&[("k2", 2)], "k2", 1024);
        assert_eq!(&*retired.open(Some("k:1"), &sealed_by_new).unwrap().1.payload, b"new");
        assert_eq!(retired.open(Some("k:1"), &sealed_by_old).unwrap_err().label(), "unknown_key");
        // Same id, different key material: inauthentic.
        let impostor = sealer(&[("k1", 9)], "k1", 1024);
        assert_eq!(impostor.open(Some("k:1"), &sealed_by_old).unwrap_err().label(), "inauthentic");
    }

    #[test]
    fn values_above_the_threshold_are_compressed() {
        let sealer = sealer(&[("k1", 1)], "k1", 256);
        let big = entry(&vec![b'a'; 10_000]);
        let small = entry(&[b'a'; 100]);
        let sealed_big = sealer.seal("k:1", &big).unwrap();
        let sealed_small = sealer.seal("k:1", &small).unwrap();
        assert!(sealed_big.len() < 1_000, "10 kB of one byte sealed to {} bytes", sealed_big.len());
        assert!(sealed_small.len() > 100);
        assert_eq!(sealer.open(Some("k:1"), &sealed_big).unwrap().1, big);
        assert_eq!(sealer.open(Some("k:1"), &sealed_small).unwrap().1, small);
    }

    #[test]
    fn the_same_entry_seals_differently_each_time() {
        let sealer = sealer(&[("k1", 1)], "k1", 1024);
        let e = entry(b"same");
        assert_ne!(sealer.seal("k:1", &e).unwrap(), sealer.seal("k:1", &e).unwrap());
    }
}
