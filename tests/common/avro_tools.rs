//! Two independent Avro implementations as the tests' referees: Avro's Java reference
//! implementation and fastavro, each behind a line-oriented tool (`ops/avro-reference/`) that
//! `ops/avro-reference/install` sets up under `.stack/avro-reference/`. Every call runs the tool
//! once over many lines: a JVM start costs about a second.
//!
//! The tools' plain JSON is Frontier's (`frontier::bus::json`): unions unwrapped, enums as
//! symbols, timestamps as integer milliseconds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Number, Value};

use super::repo;

const INSTALL_HINT: &str = "run `ops/avro-reference/install` (or every test with `ops/test`)";

/// One of the two implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvroTool {
    /// `org.apache.avro:avro`, the specification's reference implementation.
    Java,
    /// fastavro, from PyPI.
    Fastavro,
}

/// What a tool says about one schema file.
#[derive(Debug, Clone)]
pub struct Fingerprinted {
    pub file: PathBuf,
    /// The fingerprint as the 8 bytes of the single-object header, in hex.
    pub wire_hex: String,
    pub canonical_form: String,
}

impl AvroTool {
    pub const BOTH: [AvroTool; 2] = [AvroTool::Java, AvroTool::Fastavro];

    pub fn name(self) -> &'static str {
        match self {
            AvroTool::Java => "the Java reference",
            AvroTool::Fastavro => "fastavro",
        }
    }

    fn launcher(self) -> PathBuf {
        let name = match self {
            AvroTool::Java => "avro-java",
            AvroTool::Fastavro => "avro-fastavro",
        };
        let path = repo().join(".stack/avro-reference/bin").join(name);
        assert!(path.is_file(), "{} is not installed ({} is missing): {INSTALL_HINT}", self.name(), path.display());
        path
    }

    /// Runs the tool with `args` over `input` lines; one output line per input line.
    fn run(self, args: &[String], input: Vec<String>) -> Vec<String> {
        let mut child = Command::new(self.launcher())
            .args(args)
            .current_dir(repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start ({e}): {INSTALL_HINT}", self.name()));
        let mut stdin = child.stdin.take().expect("stdin");
        // Written from a thread: the tool answers while it reads, and a full pipe either way
        // would block both.
        let expected = input.len();
        let writer = std::thread::spawn(move || {
            for line in input {
                stdin.write_all(line.as_bytes())?;
                stdin.write_all(b"\n")?;
            }
            Ok::<_, std::io::Error>(())
        });
        let output = child.wait_with_output().expect("tool output");
        writer.join().expect("writer thread").expect("tool reads its input");
        let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
        let stderr = String::from_utf8_lossy(&output.stderr);
        // 0: every line fine; 1: some lines are errors (shown per line); anything else: no answer.
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{} {args:?} failed ({}): {stderr}\n(if it cannot start: {INSTALL_HINT})",
            self.name(),
            output.status
        );
        let lines: Vec<String> = stdout.lines().map(String::from).collect();
        if args[0] != "fingerprint" {
            assert_eq!(
                lines.len(),
                expected,
                "{} answered {} lines for {expected}: {stderr}",
                self.name(),
                lines.len()
            );
        }
        lines
    }

    /// Fingerprint and Parsing Canonical Form of each schema file.
    pub fn fingerprints(self, files: &[PathBuf]) -> Vec<Fingerprinted> {
        let mut args = vec!["fingerprint".to_string()];
        args.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
        let lines = self.run(&args, Vec::new());
        assert_eq!(lines.len(), files.len(), "{}: one line per schema file", self.name());
        lines
            .iter()
            .map(|line| {
                let mut parts = line.splitn(3, '\t');
                let (Some(file), Some(wire_hex), Some(canonical_form)) = (parts.next(), parts.next(), parts.next())
                else {
                    panic!("{}: not FILE<TAB>FINGERPRINT<TAB>FORM: {line}", self.name());
                };
                Fingerprinted { file: file.into(), wire_hex: wire_hex.into(), canonical_form: canonical_form.into() }
            })
            .collect()
    }

    /// Single-object encodings of plain-JSON records, each with its schema file; an error says
    /// why the tool refused that record.
    pub fn encode(self, records: &[(PathBuf, Value)]) -> Vec<Result<Vec<u8>, String>> {
        let lines: Vec<(PathBuf, String)> = records.iter().map(|(file, doc)| (file.clone(), doc.to_string())).collect();
        self.encode_text(&lines)
    }

    /// `encode` of records given as JSON text, which the tool parses itself.
    pub fn encode_text(self, records: &[(PathBuf, String)]) -> Vec<Result<Vec<u8>, String>> {
        let mut files: Vec<String> = records.iter().map(|(f, _)| f.to_string_lossy().into_owned()).collect();
        files.sort();
        files.dedup();
        let mut args = vec!["encode".to_string()];
        args.extend(files);
        let input = records.iter().map(|(file, text)| format!("{}\t{text}", file.to_string_lossy())).collect();
        self.run(&args, input)
            .into_iter()
            .map(|line| match line.strip_prefix("error: ") {
                Some(why) => Err(why.to_string()),
                None => hex::decode(&line).map_err(|e| format!("not hex ({e}): {line}")),
            })
            .collect()
    }

    /// `encode`, failing the test on any refused record.
    pub fn encode_all(self, records: &[(PathBuf, Value)]) -> Vec<Vec<u8>> {
        self.encode(records)
            .into_iter()
            .zip(records)
            .map(|(result, (file, doc))| {
                result
                    .unwrap_or_else(|why| panic!("{} cannot encode {doc} with {}: {why}", self.name(), file.display()))
            })
            .collect()
    }

    /// Each single-object payload decoded with the schemas of `schemas/` (and its `history/`),
    /// resolved to the current version, as plain JSON; an error says why it did not decode.
    pub fn decode(self, payloads: &[Vec<u8>]) -> Vec<Result<Value, String>> {
        let args = vec!["decode".to_string(), repo().join("schemas").to_string_lossy().into_owned()];
        self.run(&args, payloads.iter().map(hex::encode).collect())
            .into_iter()
            .map(|line| match line.strip_prefix("error: ") {
                Some(why) => Err(why.to_string()),
                None => parse_exact(&line).map_err(|e| format!("not JSON ({e}): {line}")),
            })
            .collect()
    }

    /// `decode`, failing the test on any payload that does not decode.
    pub fn decode_all(self, payloads: &[Vec<u8>]) -> Vec<Value> {
        self.decode(payloads)
            .into_iter()
            .enumerate()
            .map(|(i, result)| {
                result.unwrap_or_else(|why| {
                    panic!("{} cannot decode payload {i} ({}): {why}", self.name(), hex::encode(&payloads[i]))
                })
            })
            .collect()
    }
}

/// `dir/*.avsc`, sorted.
pub fn avsc_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "avsc"))
        .collect();
    files.sort();
    files
}

/// Every schema version: `schemas/*.avsc` then `schemas/history/*.avsc`.
pub fn every_schema_file() -> Vec<PathBuf> {
    let schemas = repo().join("schemas");
    let mut files = avsc_files(&schemas);
    files.extend(avsc_files(&schemas.join("history")));
    files
}

/// JSON text as a `Value`, every number read exactly. serde_json's own parser (without its
/// `float_roundtrip` feature, which this crate does not enable) can land one unit in the last
/// place off for a 17-digit double, e.g. `-0.10345894309385793`, and a comparison with the tools'
/// output would then blame the tools for serde_json's rounding.
pub fn parse_exact(text: &str) -> Result<Value, String> {
    let mut reader = ExactReader { text, pos: 0 };
    let value = reader.value()?;
    reader.skip_whitespace();
    if reader.pos != text.len() {
        return Err(format!("trailing text at byte {}", reader.pos));
    }
    Ok(value)
}

struct ExactReader<'a> {
    text: &'a str,
    pos: usize,
}

impl ExactReader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Skips whitespace, then expects `byte`.
    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.skip_whitespace();
        if self.peek() != Some(byte) {
            return Err(format!("expected `{}` at byte {}", byte as char, self.pos));
        }
        self.pos += 1;
        Ok(())
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_whitespace();
        let start = self.pos;
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut object = Map::new();
                self.skip_whitespace();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Value::Object(object));
                }
                loop {
                    let Value::String(key) = self.value()? else {
                        return Err(format!("a key that is not a string at byte {start}"));
                    };
                    self.expect(b':')?;
                    object.insert(key, self.value()?);
                    self.skip_whitespace();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Value::Object(object));
                        }
                        _ => return Err(format!("expected `,` or `}}` at byte {}", self.pos)),
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_whitespace();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    self.skip_whitespace();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::Array(items));
                        }
                        _ => return Err(format!("expected `,` or `]` at byte {}", self.pos)),
                    }
                }
            }
            Some(b'"') => {
                // Strings have no numbers in them: serde_json reads the token itself. `"` and `\`
                // are ASCII, so the scan never splits a UTF-8 sequence.
                self.pos += 1;
                loop {
                    match self.peek() {
                        Some(b'\\') => self.pos += 2,
                        Some(b'"') => break,
                        Some(_) => self.pos += 1,
                        None => return Err("unterminated string".into()),
                    }
                }
                self.pos += 1;
                serde_json::from_str(&self.text[start..self.pos]).map_err(|e| e.to_string())
            }
            Some(b'-' | b'0'..=b'9') => {
                while matches!(self.peek(), Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')) {
                    self.pos += 1;
                }
                let token = &self.text[start..self.pos];
                let number = if token.contains(['.', 'e', 'E']) {
                    // The standard library's parser rounds correctly.
                    token.parse::<f64>().ok().and_then(Number::from_f64)
                } else {
                    token.parse::<i64>().map(Number::from).or_else(|_| token.parse::<u64>().map(Number::from)).ok()
                };
                number.map(Value::Number).ok_or_else(|| format!("not a number: {token}"))
            }
            _ => {
                for (word, value) in [("true", Value::Bool(true)), ("false", Value::Bool(false)), ("null", Value::Null)]
                {
                    if self.text[self.pos..].starts_with(word) {
                        self.pos += word.len();
                        return Ok(value);
                    }
                }
                Err(format!("unexpected text at byte {}", self.pos))
            }
        }
    }
}
