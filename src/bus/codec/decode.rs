//! A bounded Avro binary decoder: bytes of an untrusted message to an `apache_avro` value.
//!
//! Why not apache-avro's own decoder: it reserves `count x size_of::<Value>()` for an array or
//! map block before reading a single item, so a 28-byte message announcing 500,000,000 items
//! aborts the process on a failed allocation; it allocates a string's announced length (up to
//! 512 MB) before checking that the bytes exist; and a datum cut short reads as `null` instead
//! of failing. Here every length and block count is checked against the bytes that remain and
//! against [`DecodeLimits`] before anything is reserved, and a short datum is an error. The
//! values it builds are the ones apache-avro builds (the codec benchmark and a differential
//! test compare them), so schema resolution and `from_value` work on them unchanged.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, Namespace, RecordSchema};
use apache_avro::types::Value;

/// What one datum may make the decoder do, whatever its bytes announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Array items and map entries in one datum, all blocks and levels together.
    pub max_items: usize,
    /// Deepest nesting of records, arrays, maps and unions (recursive schemas end here).
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        // A request's params or an inference job's inputs hold at most a few thousand items;
        // 100,000 bounds a decoded value at a few MB whatever its bytes claim.
        DecodeLimits { max_items: 100_000, max_depth: 64 }
    }
}

/// Why the bytes of a datum do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the datum ends early, at byte {at}")]
    UnexpectedEnd { at: usize },
    #[error("a variable-length integer at byte {at} is longer than 10 bytes")]
    VarintTooLong { at: usize },
    #[error("negative length {length} at byte {at}")]
    NegativeLength { length: i64, at: usize },
    #[error("a length of {length} bytes at byte {at} exceeds the {remaining} bytes that remain")]
    LengthExceedsInput { length: u64, remaining: usize, at: usize },
    #[error("a block of {count} items at byte {at} cannot fit in the {remaining} bytes that remain")]
    BlockExceedsInput { count: u64, remaining: usize, at: usize },
    #[error("more than {limit} array items and map entries in one datum")]
    TooManyItems { limit: usize },
    #[error("nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("invalid UTF-8 in a string at byte {at}")]
    InvalidUtf8 { at: usize },
    #[error("byte {value} at {at} is not a boolean")]
    InvalidBoolean { value: u8, at: usize },
    #[error("union branch {index} at byte {at} does not exist (the union has {branches})")]
    UnionBranch { index: i64, branches: usize, at: usize },
    #[error("enum index {index} at byte {at} does not exist (the enum has {symbols} symbols)")]
    EnumIndex { index: i64, symbols: usize, at: usize },
    #[error("the schema refers to `{0}`, which it does not define")]
    UnknownName(String),
    #[error("logical type {0} is not supported by this decoder")]
    Unsupported(&'static str),
    #[error("{extra} bytes follow the datum")]
    TrailingBytes { extra: usize },
}

impl DecodeError {
    /// Whether the datum broke a [`DecodeLimits`] bound rather than being malformed.
    pub fn is_limit(&self) -> bool {
        matches!(self, DecodeError::TooManyItems { .. } | DecodeError::TooDeep { .. })
    }
}

/// The named types of a schema by full name, collected once per schema so decoding never
/// resolves names.
pub(super) fn named_types(schema: &Schema) -> HashMap<Name, Schema> {
    fn walk(schema: &Schema, namespace: &Namespace, out: &mut HashMap<Name, Schema>) {
        match schema {
            Schema::Array(array) => walk(&array.items, namespace, out),
            Schema::Map(map) => walk(&map.types, namespace, out),
            Schema::Union(union) => union.variants().iter().for_each(|branch| walk(branch, namespace, out)),
            Schema::Enum(e) => {
                out.insert(e.name.fully_qualified_name(namespace), schema.clone());
            }
            Schema::Fixed(f) => {
                out.insert(f.name.fully_qualified_name(namespace), schema.clone());
            }
            Schema::Decimal(decimal) => walk(&decimal.inner, namespace, out),
            Schema::Record(record) => {
                let name = record.name.fully_qualified_name(namespace);
                let inner = name.namespace.clone();
                out.insert(name, schema.clone());
                record.fields.iter().for_each(|field| walk(&field.schema, &inner, out));
            }
            _ => {}
        }
    }
    let mut out = HashMap::new();
    walk(schema, &None, &mut out);
    out
}

/// Decodes one datum of `schema` from the start of `bytes`; returns the value and the number of
/// bytes it took.
pub(super) fn decode_datum(
    schema: &Schema,
    names: &HashMap<Name, Schema>,
    bytes: &[u8],
    limits: DecodeLimits,
) -> Result<(Value, usize), DecodeError> {
    let mut decoder = Decoder::new(bytes, names, limits);
    let value = decoder.value(schema, &None, 0)?;
    Ok((value, decoder.at))
}

/// Reads Avro's primitive encodings from one datum's bytes, within its budget.
pub(super) struct Decoder<'a> {
    bytes: &'a [u8],
    pub(super) at: usize,
    items_left: usize,
    pub(super) limits: DecodeLimits,
    pub(super) names: &'a HashMap<Name, Schema>,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `bytes`, whose schema's named types are `names`.
    pub(super) fn new(bytes: &'a [u8], names: &'a HashMap<Name, Schema>, limits: DecodeLimits) -> Self {
        Decoder { bytes, at: 0, items_left: limits.max_items, limits, names }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::UnexpectedEnd { at: self.bytes.len() });
        }
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    pub(super) fn long(&mut self) -> Result<i64, DecodeError> {
        let start = self.at;
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self.bytes.get(self.at).ok_or(DecodeError::UnexpectedEnd { at: self.bytes.len() })?;
            self.at += 1;
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // Zig-zag: the low bit is the sign.
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err(DecodeError::VarintTooLong { at: start })
    }

    pub(super) fn int(&mut self) -> Result<i32, DecodeError> {
        let at = self.at;
        let value = self.long()?;
        // An int written by a conforming writer always fits; a longer one is corrupt.
        i32::try_from(value).map_err(|_| DecodeError::VarintTooLong { at })
    }

    /// A byte length, checked against what remains before anything is allocated.
    fn length(&mut self) -> Result<usize, DecodeError> {
        let at = self.at;
        let length = self.long()?;
        if length < 0 {
            return Err(DecodeError::NegativeLength { length, at });
        }
        let remaining = self.remaining();
        usize::try_from(length).ok().filter(|&n| n <= remaining).ok_or(DecodeError::LengthExceedsInput {
            length: length as u64,
            remaining,
            at,
        })
    }

    /// The item count of the next array or map block (0 ends the sequence). The count is
    /// charged to the datum's item budget and checked against the bytes left, at `min_item_size`
    /// bytes per item at least, before the caller reserves anything.
    pub(super) fn block(&mut self, min_item_size: usize) -> Result<usize, DecodeError> {
        let at = self.at;
        let raw = self.long()?;
        let count = if raw < 0 {
            // A negative count is followed by the block's size in bytes (for skipping).
            self.long()?;
            raw.unsigned_abs()
        } else {
            raw as u64
        };
        let remaining = self.remaining();
        if count > self.items_left as u64 {
            return Err(DecodeError::TooManyItems { limit: self.limits.max_items });
        }
        if count.saturating_mul(min_item_size as u64) > remaining as u64 {
            return Err(DecodeError::BlockExceedsInput { count, remaining, at });
        }
        let count = count as usize; // at most items_left, a usize
        self.items_left -= count;
        Ok(count)
    }

    fn value(&mut self, schema: &Schema, namespace: &Namespace, depth: usize) -> Result<Value, DecodeError> {
        if depth > self.limits.max_depth {
            return Err(DecodeError::TooDeep { limit: self.limits.max_depth });
        }
        Ok(match schema {
            Schema::Null => Value::Null,
            Schema::Boolean => Value::Boolean(self.boolean()?),
            Schema::Int => Value::Int(self.int()?),
            Schema::Date => Value::Date(self.int()?),
            Schema::TimeMillis => Value::TimeMillis(self.int()?),
            Schema::Long => Value::Long(self.long()?),
            Schema::TimeMicros => Value::TimeMicros(self.long()?),
            Schema::TimestampMillis => Value::TimestampMillis(self.long()?),
            Schema::TimestampMicros => Value::TimestampMicros(self.long()?),
            Schema::TimestampNanos => Value::TimestampNanos(self.long()?),
            Schema::LocalTimestampMillis => Value::LocalTimestampMillis(self.long()?),
            Schema::LocalTimestampMicros => Value::LocalTimestampMicros(self.long()?),
            Schema::LocalTimestampNanos => Value::LocalTimestampNanos(self.long()?),
            Schema::Float => Value::Float(self.float()?),
            Schema::Double => Value::Double(self.double()?),
            Schema::Bytes => Value::Bytes(self.bytes()?.to_vec()),
            Schema::String => Value::String(self.str()?.to_owned()),
            Schema::Uuid => {
                let at = self.at;
                let text = self.str()?;
                Value::Uuid(apache_avro::Uuid::parse_str(text).map_err(|_| DecodeError::InvalidUtf8 { at })?)
            }
            Schema::Fixed(fixed) => Value::Fixed(fixed.size, self.take(fixed.size)?.to_vec()),
            Schema::Duration => {
                let mut raw = [0u8; 12];
                raw.copy_from_slice(self.take(12)?);
                Value::Duration(apache_avro::Duration::from(raw))
            }
            Schema::Decimal(decimal) => match self.value(&decimal.inner, namespace, depth + 1)? {
                Value::Fixed(_, bytes) | Value::Bytes(bytes) => Value::Decimal(apache_avro::Decimal::from(bytes)),
                _ => return Err(DecodeError::Unsupported("decimal over a type other than bytes or fixed")),
            },
            Schema::BigDecimal => return Err(DecodeError::Unsupported("big-decimal")),
            Schema::Array(array) => {
                let min = self.min_size(&array.items, namespace, 0);
                let mut items = Vec::new();
                loop {
                    let count = self.block(min)?;
                    if count == 0 {
                        break;
                    }
                    items.reserve(count);
                    for _ in 0..count {
                        items.push(self.value(&array.items, namespace, depth + 1)?);
                    }
                }
                Value::Array(items)
            }
            Schema::Map(map) => {
                // Every entry carries its key's length byte at least.
                let min = 1 + self.min_size(&map.types, namespace, 0);
                let mut entries = HashMap::new();
                loop {
                    let count = self.block(min)?;
                    if count == 0 {
                        break;
                    }
                    entries.reserve(count);
                    for _ in 0..count {
                        let key = self.str()?.to_owned();
                        let value = self.value(&map.types, namespace, depth + 1)?;
                        entries.insert(key, value);
                    }
                }
                Value::Map(entries)
            }
            Schema::Union(union) => {
                let (index, branch) = self.branch(union.variants())?;
                Value::Union(index, Box::new(self.value(branch, namespace, depth + 1)?))
            }
            Schema::Enum(e) => {
                let (index, symbol) = self.symbol(&e.symbols)?;
                Value::Enum(index, symbol.to_owned())
            }
            Schema::Record(RecordSchema { name, fields, .. }) => {
                let inner = name.fully_qualified_name(namespace).namespace;
                let mut values = Vec::with_capacity(fields.len());
                for field in fields {
                    values.push((field.name.clone(), self.value(&field.schema, &inner, depth + 1)?));
                }
                Value::Record(values)
            }
            Schema::Ref { name } => {
                let full = name.fully_qualified_name(namespace);
                let names = self.names;
                let resolved = names.get(&full).ok_or_else(|| DecodeError::UnknownName(full.fullname(None)))?;
                self.value(resolved, &full.namespace, depth + 1)?
            }
        })
    }

    pub(super) fn boolean(&mut self) -> Result<bool, DecodeError> {
        let at = self.at;
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::InvalidBoolean { value, at }),
        }
    }

    pub(super) fn float(&mut self) -> Result<f32, DecodeError> {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(self.take(4)?);
        Ok(f32::from_le_bytes(raw))
    }

    pub(super) fn double(&mut self) -> Result<f64, DecodeError> {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(self.take(8)?);
        Ok(f64::from_le_bytes(raw))
    }

    /// A length-prefixed byte string, lent from the datum.
    pub(super) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.length()?;
        self.take(n)
    }

    /// A length-prefixed UTF-8 string, lent from the datum.
    pub(super) fn str(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.at;
        let raw = self.bytes()?;
        std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8 { at: at + 1 })
    }

    /// The union branch an index picks, and the index.
    pub(super) fn branch<'s>(&mut self, branches: &'s [Schema]) -> Result<(u32, &'s Schema), DecodeError> {
        let at = self.at;
        let index = self.long()?;
        let found = u32::try_from(index).ok().and_then(|i| Some((i, branches.get(usize::try_from(i).ok()?)?)));
        found.ok_or(DecodeError::UnionBranch { index, branches: branches.len(), at })
    }

    /// The enum symbol an index picks, and the index.
    pub(super) fn symbol<'s>(&mut self, symbols: &'s [String]) -> Result<(u32, &'s str), DecodeError> {
        let at = self.at;
        let index = self.int()?;
        let found = u32::try_from(index).ok().and_then(|i| Some((i, symbols.get(usize::try_from(i).ok()?)?.as_str())));
        found.ok_or(DecodeError::EnumIndex { index: index.into(), symbols: symbols.len(), at })
    }

    /// The fewest bytes one value of `schema` can take, to check a block count against the
    /// bytes left. Deep or recursive schemas stop at a small depth and answer 0 (no bound from
    /// size; the item budget still holds).
    pub(super) fn min_size(&self, schema: &Schema, namespace: &Namespace, depth: usize) -> usize {
        if depth > 4 {
            return 0;
        }
        match schema {
            Schema::Null => 0,
            Schema::Float => 4,
            Schema::Double => 8,
            Schema::Duration => 12,
            Schema::Fixed(fixed) => fixed.size,
            Schema::Decimal(decimal) => self.min_size(&decimal.inner, namespace, depth + 1),
            Schema::Record(record) => {
                let inner = record.name.fully_qualified_name(namespace).namespace;
                record.fields.iter().map(|f| self.min_size(&f.schema, &inner, depth + 1)).sum()
            }
            Schema::Ref { name } => {
                let full = name.fully_qualified_name(namespace);
                self.names.get(&full).map_or(0, |s| self.min_size(s, &full.namespace, depth + 1))
            }
            // Every other type writes at least one byte: a varint, a length, a count, an index.
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(schema: &str, bytes: &[u8]) -> Result<Value, DecodeError> {
        let schema = Schema::parse_str(schema).unwrap();
        let names = named_types(&schema);
        decode_datum(&schema, &names, bytes, DecodeLimits::default()).map(|(v, _)| v)
    }

    #[test]
    fn a_huge_block_count_is_refused_before_anything_is_reserved() {
        // 500,000,000 strings announced, none present.
        let mut bytes = Vec::new();
        let mut raw = 500_000_000u64 << 1;
        while raw >= 0x80 {
            bytes.push((raw as u8) | 0x80);
            raw >>= 7;
        }
        bytes.push(raw as u8);
        let result = decode(r#"{"type":"array","items":"string"}"#, &bytes);
        assert_eq!(result, Err(DecodeError::TooManyItems { limit: 100_000 }));
    }

    #[test]
    fn a_block_count_larger_than_the_bytes_left_is_corrupt() {
        // 1,000 doubles announced (8,000 bytes), 8 present.
        let mut bytes = vec![0xd0, 0x0f];
        bytes.extend_from_slice(&1.0f64.to_le_bytes());
        let result = decode(r#"{"type":"array","items":"double"}"#, &bytes);
        assert!(matches!(result, Err(DecodeError::BlockExceedsInput { count: 1000, .. })), "{result:?}");
    }

    #[test]
    fn a_string_length_past_the_end_is_corrupt_not_allocated() {
        // A 2^40-byte string announced in a 6-byte datum.
        let result = decode(r#""string""#, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
        assert!(matches!(result, Err(DecodeError::LengthExceedsInput { .. })), "{result:?}");
    }

    #[test]
    fn a_datum_cut_short_is_an_error_not_a_null() {
        let schema =
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"boolean"}]}"#;
        assert!(matches!(decode(schema, &[0x02, b'x']), Err(DecodeError::UnexpectedEnd { .. })));
    }

    #[test]
    fn nulls_without_bytes_are_bounded_by_the_item_budget() {
        // 2^20 nulls take no bytes at all; the item budget still refuses them.
        let result = decode(r#"{"type":"array","items":"null"}"#, &[0x80, 0x80, 0x80, 0x01, 0x00]);
        assert_eq!(result, Err(DecodeError::TooManyItems { limit: 100_000 }));
    }

    #[test]
    fn a_union_index_out_of_range_is_corrupt() {
        let result = decode(r#"["null","string"]"#, &[0x04]);
        assert!(matches!(result, Err(DecodeError::UnionBranch { index: 2, branches: 2, .. })), "{result:?}");
    }

    #[test]
    fn recursion_stops_at_the_depth_limit() {
        let schema = r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#;
        // Branch 1 (a Node) 100 times: deeper than 64.
        let bytes = vec![0x02; 100];
        assert_eq!(decode(schema, &bytes), Err(DecodeError::TooDeep { limit: 64 }));
    }
}
