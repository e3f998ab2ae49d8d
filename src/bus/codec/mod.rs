//! Avro single-object encoding, the wire format of every Frontier topic.
//!
//! Each Kafka value is `C3 01`, the 8-byte little-endian CRC-64-AVRO (Rabin) fingerprint of the
//! writer schema's Parsing Canonical Form, then the binary datum. Any Avro library can read it
//! with the `.avsc` file alone, no schema registry needed. A reader keeps every schema version it
//! knows (`schemas/*.avsc` are current, `schemas/history/*.avsc` are older versions still on the
//! wire) and resolves a datum written with any of them to the current version of its record.
//!
//! Fingerprints are the specification's ([`canonical`]); records written before that fix carry
//! apache-avro's fingerprint of the same schema (it differs for schemas with logical types) and
//! stay readable: see [`KnownSchema::legacy_fingerprint`].

pub mod canonical;
mod decode;
mod direct;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use apache_avro::rabin::Rabin;
use apache_avro::schema::Name;
use apache_avro::types::Value;
use apache_avro::{Schema, to_avro_datum};
use serde::Serialize;

use crate::records::Record;

pub use decode::{DecodeError, DecodeLimits};
pub use direct::DirectError;

/// The two marker bytes that open a single-object encoded datum.
pub const MAGIC: [u8; 2] = [0xC3, 0x01];
/// Marker plus fingerprint.
pub const HEADER_LEN: usize = 10;

/// A schema's CRC-64-AVRO fingerprint, as it appears in the single-object header.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 8]);

impl Fingerprint {
    /// The fingerprint apache-avro 0.21 computes for a schema, which differs from the
    /// specification's for schemas with logical types (see [`canonical`]). Only for reading
    /// records written before the fix; never written.
    pub fn legacy_apache_avro(schema: &Schema) -> Self {
        let bytes = schema.fingerprint::<Rabin>().bytes;
        let mut out = [0u8; 8];
        // Rabin always yields 8 bytes; copy defensively rather than index.
        for (slot, byte) in out.iter_mut().zip(bytes) {
            *slot = byte;
        }
        Fingerprint(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Why bytes could not be decoded or a value could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not Avro single-object encoding: {0}")]
    NotSingleObject(&'static str),
    #[error("unknown schema fingerprint {0}: written with a schema this reader does not know")]
    UnknownFingerprint(Fingerprint),
    #[error("corrupt {schema} datum: {source}")]
    Corrupt {
        schema: String,
        #[source]
        source: DecodeError,
    },
    #[error("{schema} datum over the decoding limits: {source}")]
    OverLimit {
        schema: String,
        #[source]
        source: DecodeError,
    },
    #[error("{schema} datum does not resolve to the current version of its record: {source}")]
    Unresolvable {
        schema: String,
        #[source]
        source: apache_avro::Error,
    },
    #[error("{schema} datum has {extra} trailing bytes")]
    TrailingBytes { schema: String, extra: usize },
    #[error("value does not fit schema {schema}: {source}")]
    Encode {
        schema: String,
        #[source]
        source: apache_avro::Error,
    },
    #[error("no schema named `{0}` is loaded")]
    UnknownSchema(String),
    #[error("a {found} is not a {expected}: {reason}")]
    WrongRecord { expected: &'static str, found: String, reason: String },
    #[error("cannot read schema file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid schema file {path}: {source}")]
    InvalidSchema {
        path: PathBuf,
        #[source]
        source: apache_avro::Error,
    },
    #[error("schema file {path}: {source}")]
    NoCanonicalForm {
        path: PathBuf,
        #[source]
        source: canonical::CanonicalFormError,
    },
    #[error("schema file {path} is not a named record (every topic value is a record)")]
    NotARecord { path: PathBuf },
}

impl CodecError {
    /// A short, stable label for metrics and DLQ headers.
    pub fn kind(&self) -> &'static str {
        match self {
            CodecError::NotSingleObject(_) => "not_single_object",
            CodecError::UnknownFingerprint(_) => "unknown_fingerprint",
            CodecError::Corrupt { .. } | CodecError::TrailingBytes { .. } | CodecError::Unresolvable { .. } => {
                "corrupt"
            }
            CodecError::OverLimit { .. } => "too_large",
            CodecError::Encode { .. } => "encode",
            CodecError::WrongRecord { .. } => "unexpected_schema",
            _ => "schema",
        }
    }
}

/// One schema version the process knows.
pub struct KnownSchema {
    /// Full name of the record, e.g. `frontier.serving.AnalysisRequest`.
    pub name: String,
    /// File it was loaded from, relative to the schemas folder (`request.avsc`).
    pub file: String,
    pub schema: Schema,
    /// The specification's fingerprint: written in every header, read from any writer.
    pub fingerprint: Fingerprint,
    /// apache-avro 0.21's fingerprint of the same schema, which Frontier wrote until the
    /// canonical form was fixed; still read so older records decode. `None` where both agree.
    pub legacy_fingerprint: Option<Fingerprint>,
    header: [u8; HEADER_LEN],
    /// The schema's named types, resolved once rather than on every message.
    names: HashMap<Name, Schema>,
}

impl fmt::Debug for KnownSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnownSchema")
            .field("name", &self.name)
            .field("file", &self.file)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl KnownSchema {
    /// Parses one `.avsc` document.
    pub fn parse(file: &str, text: &str) -> Result<Self, CodecError> {
        let path = PathBuf::from(file);
        let schema =
            Schema::parse_str(text).map_err(|source| CodecError::InvalidSchema { path: path.clone(), source })?;
        let name = match &schema {
            Schema::Record(record) => record.name.fullname(None),
            _ => return Err(CodecError::NotARecord { path }),
        };
        let fingerprint = canonical::fingerprint(text)
            .map_err(|source| CodecError::NoCanonicalForm { path: path.clone(), source })?;
        let legacy = Fingerprint::legacy_apache_avro(&schema);
        let legacy_fingerprint = (legacy != fingerprint).then_some(legacy);
        let mut header = [0u8; HEADER_LEN];
        header[..2].copy_from_slice(&MAGIC);
        header[2..].copy_from_slice(&fingerprint.0);
        let names = decode::named_types(&schema);
        Ok(KnownSchema { name, file: file.to_string(), schema, fingerprint, legacy_fingerprint, header, names })
    }
}

/// Every schema version this process can read, and the current version of each record.
#[derive(Debug, Default)]
pub struct SchemaCatalog {
    by_fingerprint: HashMap<Fingerprint, Arc<KnownSchema>>,
    current_by_name: HashMap<String, Arc<KnownSchema>>,
    current_by_file: HashMap<String, Arc<KnownSchema>>,
    limits: DecodeLimits,
}

impl SchemaCatalog {
    /// Loads `dir/*.avsc` as current versions and `dir/history/*.avsc` as older versions.
    pub fn load_dir(dir: &Path) -> Result<Self, CodecError> {
        let mut catalog = SchemaCatalog::default();
        for (file, text) in read_avsc_files(dir)? {
            catalog.add_current(KnownSchema::parse(&file, &text)?);
        }
        let history = dir.join("history");
        if history.is_dir() {
            for (file, text) in read_avsc_files(&history)? {
                catalog.add_history(KnownSchema::parse(&format!("history/{file}"), &text)?);
            }
        }
        Ok(catalog)
    }

    /// The same catalog with other decoding limits (see [`DecodeLimits`]).
    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Registers the version writers use now.
    pub fn add_current(&mut self, known: KnownSchema) -> Arc<KnownSchema> {
        let known = Arc::new(known);
        self.by_fingerprint.insert(known.fingerprint, known.clone());
        if let Some(legacy) = known.legacy_fingerprint {
            self.by_fingerprint.insert(legacy, known.clone());
        }
        self.current_by_name.insert(known.name.clone(), known.clone());
        self.current_by_file.insert(known.file.clone(), known.clone());
        known
    }

    /// Registers an older version that may still be on the wire: readable, never written.
    pub fn add_history(&mut self, known: KnownSchema) {
        let known = Arc::new(known);
        for fingerprint in std::iter::once(known.fingerprint).chain(known.legacy_fingerprint) {
            self.by_fingerprint.entry(fingerprint).or_insert_with(|| known.clone());
        }
    }

    /// The current schema loaded from `file` (e.g. `request.avsc`).
    pub fn by_file(&self, file: &str) -> Result<Arc<KnownSchema>, CodecError> {
        self.current_by_file.get(file).cloned().ok_or_else(|| CodecError::UnknownSchema(file.into()))
    }

    /// The current schema of a record by full name.
    pub fn by_name(&self, name: &str) -> Result<Arc<KnownSchema>, CodecError> {
        self.current_by_name.get(name).cloned().ok_or_else(|| CodecError::UnknownSchema(name.into()))
    }

    /// All current schemas, sorted by file name.
    pub fn current(&self) -> Vec<Arc<KnownSchema>> {
        let mut all: Vec<_> = self.current_by_file.values().cloned().collect();
        all.sort_by(|a, b| a.file.cmp(&b.file));
        all
    }

    /// Checks the header and finds the writer schema and the current (reader) schema of its
    /// record, without decoding the body.
    pub fn identify(&self, bytes: &[u8]) -> Result<Identified, CodecError> {
        let fingerprint = read_header(bytes)?;
        let writer = self.by_fingerprint.get(&fingerprint).ok_or(CodecError::UnknownFingerprint(fingerprint))?;
        // A history version resolves to the current schema of the same record; a record whose
        // current version is unknown here is read as written.
        let reader = self.current_by_name.get(&writer.name).unwrap_or(writer);
        Ok(Identified { writer: writer.clone(), reader: reader.clone(), limits: self.limits })
    }

    /// Decodes a single-object datum, resolving it to the current version of its record.
    pub fn decode(&self, bytes: &[u8]) -> Result<Decoded, CodecError> {
        let identified = self.identify(bytes)?;
        let value = identified.decode(bytes)?;
        Ok(Decoded { value, schema: identified.reader })
    }

    /// Decodes a single-object datum as the record type `T`: an error when the bytes hold
    /// another record, or a value that does not fit `T`.
    pub fn decode_record<T: Record>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let decoded = self.decode(bytes)?;
        let wrong =
            |reason: String| CodecError::WrongRecord { expected: T::NAME, found: decoded.schema.name.clone(), reason };
        if decoded.schema.name != T::NAME {
            return Err(wrong("another record".into()));
        }
        apache_avro::from_value(&decoded.value).map_err(|error| wrong(error.to_string()))
    }

    /// Encodes an Avro value with `schema`.
    pub fn encode_value(schema: &KnownSchema, value: Value) -> Result<Vec<u8>, CodecError> {
        let value = value
            .resolve(&schema.schema)
            .map_err(|source| CodecError::Encode { schema: schema.name.clone(), source })?;
        let datum = to_avro_datum(&schema.schema, value)
            .map_err(|source| CodecError::Encode { schema: schema.name.clone(), source })?;
        let mut out = Vec::with_capacity(HEADER_LEN + datum.len());
        out.extend_from_slice(&schema.header);
        out.extend_from_slice(&datum);
        Ok(out)
    }

    /// The current schema of a record type.
    pub fn schema_of<T: Record>(&self) -> Result<Arc<KnownSchema>, CodecError> {
        self.by_name(T::NAME)
    }

    /// Encodes a record with the current version of its schema.
    pub fn encode_record<T: Record>(&self, record: &T) -> Result<Vec<u8>, CodecError> {
        Self::encode(&*self.schema_of::<T>()?, record)
    }

    /// Encodes a serde value (a worker's typed output) with `schema`.
    pub fn encode<T: Serialize>(schema: &KnownSchema, value: &T) -> Result<Vec<u8>, CodecError> {
        let value = apache_avro::to_value(value)
            .map_err(|source| CodecError::Encode { schema: schema.name.clone(), source })?;
        Self::encode_value(schema, value)
    }
}

/// The schemas of a datum whose header checked out.
#[derive(Debug, Clone)]
pub struct Identified {
    /// The version it was written with.
    pub writer: Arc<KnownSchema>,
    /// The current version it resolves to.
    pub reader: Arc<KnownSchema>,
    /// What decoding the body may cost.
    pub limits: DecodeLimits,
}

impl Identified {
    /// Decodes the whole datum (header included) and resolves it to the reader schema.
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        let writer = &self.writer;
        let body = bytes.get(HEADER_LEN..).ok_or(CodecError::NotSingleObject("shorter than the 10-byte header"))?;
        let (mut value, used) =
            decode::decode_datum(&writer.schema, &writer.names, body, self.limits).map_err(|source| {
                let schema = writer.name.clone();
                if source.is_limit() {
                    CodecError::OverLimit { schema, source }
                } else {
                    CodecError::Corrupt { schema, source }
                }
            })?;
        if used != body.len() {
            return Err(CodecError::TrailingBytes { schema: writer.name.clone(), extra: body.len() - used });
        }
        if !Arc::ptr_eq(&self.reader, writer) {
            value = value
                .resolve(&self.reader.schema)
                .map_err(|source| CodecError::Unresolvable { schema: writer.name.clone(), source })?;
        }
        Ok(value)
    }
}

impl Identified {
    /// Decodes the whole datum (header included) straight into `T`, without building an Avro
    /// value, when it was written with the current version of its schema; a datum of an older
    /// version is resolved to the current one through a value first.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, DirectError> {
        let writer = &self.writer;
        if !Arc::ptr_eq(&self.reader, writer) {
            let value = self.decode(bytes).map_err(|e| DirectError::Mismatch(e.to_string()))?;
            return apache_avro::from_value(&value).map_err(|e| DirectError::Mismatch(e.to_string()));
        }
        let body = bytes.get(HEADER_LEN..).ok_or(DirectError::Decode(DecodeError::UnexpectedEnd { at: 0 }))?;
        let mut decoder = decode::Decoder::new(body, &writer.names, self.limits);
        let value = T::deserialize(direct::SchemaDeserializer {
            decoder: &mut decoder,
            schema: &writer.schema,
            namespace: &None,
            depth: 0,
        })?;
        if decoder.at != body.len() {
            return Err(DirectError::Decode(DecodeError::TrailingBytes { extra: body.len() - decoder.at }));
        }
        Ok(value)
    }
}

/// A decoded datum and the schema it was resolved to.
#[derive(Debug)]
pub struct Decoded {
    pub value: Value,
    pub schema: Arc<KnownSchema>,
}

/// Splits off and checks the single-object header.
pub fn read_header(bytes: &[u8]) -> Result<Fingerprint, CodecError> {
    if bytes.len() < HEADER_LEN {
        return Err(CodecError::NotSingleObject("shorter than the 10-byte header"));
    }
    if bytes[..2] != MAGIC {
        return Err(CodecError::NotSingleObject("missing the C3 01 marker"));
    }
    let mut fingerprint = [0u8; 8];
    fingerprint.copy_from_slice(&bytes[2..HEADER_LEN]);
    Ok(Fingerprint(fingerprint))
}

fn read_avsc_files(dir: &Path) -> Result<Vec<(String, String)>, CodecError> {
    let io = |source| CodecError::Io { path: dir.to_path_buf(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|ext| ext == "avsc") {
            let text =
                std::fs::read_to_string(&path).map_err(|source| CodecError::Io { path: path.clone(), source })?;
            let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            files.push((file, text));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"Ping","namespace":"t","doc":"d",
        "fields":[{"name":"id","type":"string","doc":"d"}]}"#;
    const V2: &str = r#"{"type":"record","name":"Ping","namespace":"t","doc":"d",
        "fields":[{"name":"id","type":"string","doc":"d"},
                  {"name":"n","type":"long","default":7,"doc":"d"}]}"#;

    fn ping(id: &str) -> Value {
        Value::Record(vec![("id".into(), Value::String(id.into()))])
    }

    #[test]
    fn encoded_bytes_start_with_marker_and_fingerprint() {
        let known = KnownSchema::parse("ping.avsc", V1).unwrap();
        let bytes = SchemaCatalog::encode_value(&known, ping("a")).unwrap();
        assert_eq!(bytes[..2], MAGIC);
        assert_eq!(read_header(&bytes).unwrap(), known.fingerprint);
    }

    #[test]
    fn old_version_resolves_to_current_with_defaults() {
        let mut catalog = SchemaCatalog::default();
        let old = KnownSchema::parse("history/ping.v1.avsc", V1).unwrap();
        let bytes = SchemaCatalog::encode_value(&old, ping("a")).unwrap();
        catalog.add_current(KnownSchema::parse("ping.avsc", V2).unwrap());
        catalog.add_history(old);
        let decoded = catalog.decode(&bytes).unwrap();
        assert_eq!(
            decoded.value,
            Value::Record(vec![("id".into(), Value::String("a".into())), ("n".into(), Value::Long(7))])
        );
    }

    const STAMPED: &str = r#"{"type":"record","name":"Stamped","namespace":"t",
        "fields":[{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;

    #[test]
    fn the_header_carries_the_specification_fingerprint_not_apache_avro_s() {
        let known = KnownSchema::parse("stamped.avsc", STAMPED).unwrap();
        let canonical = r#"{"name":"t.Stamped","type":"record","fields":[{"name":"at","type":"long"}]}"#;
        assert_eq!(known.fingerprint.0, canonical::crc64_avro(canonical.as_bytes()).to_le_bytes());
        assert_eq!(known.legacy_fingerprint, Some(Fingerprint::legacy_apache_avro(&known.schema)));
    }

    #[test]
    fn records_written_with_the_legacy_fingerprint_still_decode() {
        let mut catalog = SchemaCatalog::default();
        let known = catalog.add_current(KnownSchema::parse("stamped.avsc", STAMPED).unwrap());
        let mut bytes =
            SchemaCatalog::encode_value(&known, Value::Record(vec![("at".into(), Value::TimestampMillis(42))]))
                .unwrap();
        bytes[2..HEADER_LEN].copy_from_slice(&known.legacy_fingerprint.unwrap().0);
        let decoded = catalog.decode(&bytes).unwrap();
        assert_eq!(decoded.value, Value::Record(vec![("at".into(), Value::TimestampMillis(42))]));
    }

    #[test]
    fn garbage_is_not_single_object() {
        let catalog = SchemaCatalog::default();
        assert!(matches!(catalog.decode(b"hello world"), Err(CodecError::NotSingleObject(_))));
    }

    #[test]
    fn unknown_fingerprint_is_reported() {
        let catalog = SchemaCatalog::default();
        let known = KnownSchema::parse("ping.avsc", V1).unwrap();
        let bytes = SchemaCatalog::encode_value(&known, ping("a")).unwrap();
        assert!(matches!(catalog.decode(&bytes), Err(CodecError::UnknownFingerprint(_))));
    }

    #[test]
    fn trailing_bytes_are_corruption() {
        let mut catalog = SchemaCatalog::default();
        let known = catalog.add_current(KnownSchema::parse("ping.avsc", V1).unwrap());
        let mut bytes = SchemaCatalog::encode_value(&known, ping("a")).unwrap();
        bytes.push(0);
        assert!(matches!(catalog.decode(&bytes), Err(CodecError::TrailingBytes { .. })));
    }
}
