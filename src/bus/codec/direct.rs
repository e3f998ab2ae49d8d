//! Avro binary straight into a Rust type, through serde, without the `Value` tree.
//!
//! Why: decoding through `apache_avro::types::Value` then `from_value` costs two dozen
//! allocations for a ten-field record (a `String` per field name, boxed unions, the strings
//! twice), and in a worker that hands the record to another thread (the SLA monitor's owner)
//! every one of them is freed across threads, which glibc's allocator makes expensive. Here
//! strings are lent to the visitor from the message bytes, and only the type's own fields
//! allocate. Bounds are the [`Decoder`]'s: every length and block count is checked against the
//! bytes left and the item and depth budget before anything is reserved.
//!
//! It reads a datum with the schema it was written with; a datum of an older version is
//! resolved through `Value` (see [`super::Identified::deserialize`]).

use std::fmt;

use apache_avro::Schema;
use apache_avro::schema::{Namespace, RecordSchema};
use serde::de::{self, DeserializeSeed, Visitor};

use super::decode::{DecodeError, Decoder};

/// Why a datum did not decode into the type.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    /// The bytes are not a datum of the schema (or break the limits).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The datum does not fit the Rust type (a missing field, another type).
    #[error("{0}")]
    Mismatch(String),
}

impl de::Error for DirectError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        DirectError::Mismatch(message.to_string())
    }
}

/// Deserializes one value of `schema` from the decoder.
pub(super) struct SchemaDeserializer<'s, 'd, 'de> {
    pub(super) decoder: &'d mut Decoder<'de>,
    pub(super) schema: &'s Schema,
    pub(super) namespace: &'s Namespace,
    pub(super) depth: usize,
}

impl<'s, 'd, 'de> SchemaDeserializer<'s, 'd, 'de> {
    /// The same decoder on another schema, one level deeper.
    fn nested<'t>(
        &mut self,
        schema: &'t Schema,
        namespace: &'t Namespace,
    ) -> Result<SchemaDeserializer<'t, '_, 'de>, DecodeError>
    where
        's: 't,
    {
        let depth = self.depth + 1;
        if depth > self.decoder.limits.max_depth {
            return Err(DecodeError::TooDeep { limit: self.decoder.limits.max_depth });
        }
        Ok(SchemaDeserializer { decoder: self.decoder, schema, namespace, depth })
    }
}

impl<'de> de::Deserializer<'de> for SchemaDeserializer<'_, '_, 'de> {
    type Error = DirectError;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, DirectError> {
        let decoder = &mut *self.decoder;
        match self.schema {
            Schema::Null => visitor.visit_unit(),
            Schema::Boolean => visitor.visit_bool(decoder.boolean()?),
            Schema::Int | Schema::Date | Schema::TimeMillis => visitor.visit_i32(decoder.int()?),
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => visitor.visit_i64(decoder.long()?),
            Schema::Float => visitor.visit_f32(decoder.float()?),
            Schema::Double => visitor.visit_f64(decoder.double()?),
            Schema::String | Schema::Uuid => visitor.visit_borrowed_str(decoder.str()?),
            Schema::Bytes => visitor.visit_borrowed_bytes(decoder.bytes()?),
            Schema::Fixed(fixed) => visitor.visit_borrowed_bytes(decoder.take(fixed.size)?),
            Schema::Enum(e) => visitor.visit_str(decoder.symbol(&e.symbols)?.1),
            Schema::Union(union) => {
                let (_, branch) = decoder.branch(union.variants())?;
                let namespace = self.namespace;
                self.nested(branch, namespace)?.deserialize_any(visitor)
            }
            Schema::Array(array) => {
                let min = decoder.min_size(&array.items, self.namespace, 0);
                visitor.visit_seq(Blocks { de: self.nested(&array.items, self.namespace)?, min, left: 0 })
            }
            Schema::Map(map) => {
                let min = 1 + decoder.min_size(&map.types, self.namespace, 0);
                visitor.visit_map(Blocks { de: self.nested(&map.types, self.namespace)?, min, left: 0 })
            }
            Schema::Record(RecordSchema { name, fields, .. }) => {
                let inner = name.fully_qualified_name(self.namespace).namespace;
                let schema = self.schema;
                let record = self.nested(schema, &inner)?;
                visitor.visit_map(Fields { de: record, fields, next: 0, namespace: &inner })
            }
            Schema::Ref { name } => {
                let full = name.fully_qualified_name(self.namespace);
                let names = self.decoder.names;
                let resolved = names.get(&full).ok_or_else(|| DecodeError::UnknownName(full.fullname(None)))?;
                self.nested(resolved, &full.namespace)?.deserialize_any(visitor)
            }
            Schema::Decimal(_) | Schema::BigDecimal | Schema::Duration => {
                Err(DecodeError::Unsupported("decimal and duration in a typed record").into())
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, DirectError> {
        match self.schema {
            Schema::Union(union) => {
                let (_, branch) = self.decoder.branch(union.variants())?;
                if matches!(branch, Schema::Null) {
                    visitor.visit_none()
                } else {
                    let namespace = self.namespace;
                    visitor.visit_some(self.nested(branch, namespace)?)
                }
            }
            Schema::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DirectError> {
        match self.schema {
            Schema::Ref { name: reference } => {
                let full = reference.fully_qualified_name(self.namespace);
                let names = self.decoder.names;
                let resolved = names.get(&full).ok_or_else(|| DecodeError::UnknownName(full.fullname(None)))?;
                self.nested(resolved, &full.namespace)?.deserialize_enum(name, variants, visitor)
            }
            Schema::Enum(e) => {
                let (_, symbol) = self.decoder.symbol(&e.symbols)?;
                visitor.visit_enum(de::value::StrDeserializer::<DirectError>::new(symbol))
            }
            // A string naming a variant reads as that variant too.
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// The items of an array (or entries of a map) block by block.
struct Blocks<'s, 'd, 'de> {
    de: SchemaDeserializer<'s, 'd, 'de>,
    /// Fewest bytes one item takes, to check a block count against the bytes left.
    min: usize,
    /// Items left in the current block.
    left: usize,
}

impl Blocks<'_, '_, '_> {
    /// Whether another item follows, reading the next block header when the block is done.
    fn more(&mut self) -> Result<bool, DecodeError> {
        if self.left == 0 {
            self.left = self.de.decoder.block(self.min)?;
        }
        Ok(self.left > 0)
    }
}

impl<'de> de::SeqAccess<'de> for Blocks<'_, '_, 'de> {
    type Error = DirectError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DirectError> {
        if !self.more()? {
            return Ok(None);
        }
        self.left -= 1;
        let (schema, namespace) = (self.de.schema, self.de.namespace);
        seed.deserialize(SchemaDeserializer { decoder: &mut *self.de.decoder, schema, namespace, depth: self.de.depth })
            .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        // Never an untrusted count: the current block's, already checked against the bytes.
        Some(self.left)
    }
}

impl<'de> de::MapAccess<'de> for Blocks<'_, '_, 'de> {
    type Error = DirectError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DirectError> {
        if !self.more()? {
            return Ok(None);
        }
        self.left -= 1;
        let key = self.de.decoder.str()?;
        seed.deserialize(de::value::BorrowedStrDeserializer::<DirectError>::new(key)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DirectError> {
        let (schema, namespace) = (self.de.schema, self.de.namespace);
        seed.deserialize(SchemaDeserializer { decoder: &mut *self.de.decoder, schema, namespace, depth: self.de.depth })
    }
}

/// The fields of a record, in schema order, named by the schema.
struct Fields<'s, 'd, 'de> {
    de: SchemaDeserializer<'s, 'd, 'de>,
    fields: &'s [apache_avro::schema::RecordField],
    next: usize,
    namespace: &'s Namespace,
}

impl<'de> de::MapAccess<'de> for Fields<'_, '_, 'de> {
    type Error = DirectError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DirectError> {
        let Some(field) = self.fields.get(self.next) else { return Ok(None) };
        seed.deserialize(de::value::StrDeserializer::<DirectError>::new(&field.name)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DirectError> {
        let field = &self.fields[self.next];
        self.next += 1;
        let depth = self.de.depth;
        seed.deserialize(SchemaDeserializer {
            decoder: &mut *self.de.decoder,
            schema: &field.schema,
            namespace: self.namespace,
            depth,
        })
    }
}
