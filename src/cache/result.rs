//! How a result is stored in the cache: named f64s in a small binary form, bit for bit (JSON
//! text would do too, but serde_json's default float parser can be one unit in the last place
//! off, and an answer must equal the computation exactly, whichever layer it comes from).
//!
//! Layout: format byte `1`, then per entry a u16 LE name length, the UTF-8 name and the f64's
//! 8 bytes LE.

use std::collections::BTreeMap;

/// The error code of a result that cannot be stored or read back (a bug: never expected).
pub const CORRUPT_RESULT: &str = "internal_error";

/// The format byte of this layout.
const FORMAT: u8 = 1;

/// Why a result could not be stored or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultCodecError {
    /// A name longer than 65535 bytes.
    #[error("result name too long: {0} bytes")]
    NameTooLong(usize),
    /// Stored bytes that are not this layout.
    #[error("the stored result is malformed at byte {0}")]
    Malformed(usize),
}

/// Encodes a computation's result.
pub fn encode(result: &BTreeMap<String, f64>) -> Result<Vec<u8>, ResultCodecError> {
    let mut out = Vec::with_capacity(1 + result.len() * 32);
    out.push(FORMAT);
    for (name, &number) in result {
        let len = u16::try_from(name.len()).map_err(|_| ResultCodecError::NameTooLong(name.len()))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&number.to_le_bytes());
    }
    Ok(out)
}

/// Decodes what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<BTreeMap<String, f64>, ResultCodecError> {
    if bytes.first() != Some(&FORMAT) {
        return Err(ResultCodecError::Malformed(0));
    }
    let mut fields = BTreeMap::new();
    let mut at = 1;
    while at < bytes.len() {
        let len_bytes = bytes.get(at..at + 2).ok_or(ResultCodecError::Malformed(at))?;
        let len = usize::from(u16::from_le_bytes([len_bytes[0], len_bytes[1]]));
        let name = bytes.get(at + 2..at + 2 + len).ok_or(ResultCodecError::Malformed(at))?;
        let name = std::str::from_utf8(name).map_err(|_| ResultCodecError::Malformed(at + 2))?;
        let number = bytes.get(at + 2 + len..at + 10 + len).ok_or(ResultCodecError::Malformed(at + 2 + len))?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(number);
        fields.insert(name.to_owned(), f64::from_le_bytes(raw));
        at += 10 + len;
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), *value)).collect()
    }

    #[test]
    fn results_survive_bit_for_bit() {
        let value = result(&[
            ("std_dev_daily", 0.015214339644440189),
            ("volatility_annualized", 0.24152015436755767),
            ("n", 60.0),
        ]);
        let decoded = decode(&encode(&value).unwrap()).unwrap();
        assert_eq!(decoded["std_dev_daily"].to_bits(), 0.015214339644440189f64.to_bits());
        assert_eq!(decoded, value);
    }

    #[test]
    fn truncated_or_foreign_bytes_are_errors_not_panics() {
        let good = encode(&result(&[("abc", 1.5)])).unwrap();
        for cut in 0..good.len() {
            let _ = decode(&good[..cut]);
        }
        assert!(decode(&good[..good.len() - 1]).is_err());
        assert!(decode(b"{}").is_err());
    }
}
