"""fastavro (a second, independent Avro implementation) as a line-oriented tool, with the same
commands and output as AvroReference.java, so the tests can check Frontier's wire format against
both (tests/avro_reference.rs, tests/interop.rs). Runs in the venv ops/avro-reference/install
makes:

  .stack/avro-reference/venv/bin/python ops/avro-reference/fastavro_tool.py COMMAND ...

  fingerprint FILE...   per schema file one line: FILE, TAB, the CRC-64-AVRO fingerprint of its
                        Parsing Canonical Form as fastavro prints it (the 8 little-endian bytes
                        of the single-object header, in hex), TAB, the Parsing Canonical Form
  encode SCHEMA.avsc... per stdin line of plain JSON, the single-object encoding in hex; a line
                        is a record of the first schema, or FILE, TAB, a record of the schema
                        given as FILE (so one run can encode records of many schemas)
  decode SCHEMA_DIR     per stdin line of single-object hex, the record as plain JSON; writer
                        schemas are looked up by fingerprint among SCHEMA_DIR/*.avsc and
                        SCHEMA_DIR/history/*.avsc, and resolved to the current version

Every input line gives exactly one output line; a line that fails gives "error: WHY". The exit
status is 0 when every line succeeded, 1 when some failed, 2 for a usage or schema error.

fastavro has no single-object encoding of its own: the header is built here from fastavro's
fingerprint, and the datum is fastavro's schemaless_writer/reader. Union branches are chosen by
fastavro itself (the first branch that validates), as a Python producer would get them.
"""

import datetime
import io
import json
import pathlib
import sys

import fastavro
from fastavro.schema import fingerprint as schema_fingerprint
from fastavro.schema import to_parsing_canonical_form

MAGIC = b"\xc3\x01"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class SetupError(Exception):
    """A problem with the arguments or a schema file, as opposed to one input line."""


def load(path):
    """One schema file: its JSON, fastavro's parsed schema and the single-object header."""
    try:
        document = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
        parsed = fastavro.parse_schema(document)
    except Exception as error:  # any failure here is the file's
        raise SetupError(f"{path}: {error}") from error
    canonical = to_parsing_canonical_form(document)
    fingerprint = schema_fingerprint(canonical, "CRC-64-AVRO")
    return document, parsed, canonical, fingerprint


def fingerprint_command(files, out):
    for path in files:
        _, _, canonical, fingerprint = load(path)
        out.write(f"{path}\t{fingerprint}\t{canonical}\n")
    return 0


def encode_command(paths, out):
    schemas = {}  # file as given -> (parsed schema, single-object header)
    for path in paths:
        _, parsed, _, fingerprint = load(path)
        header = MAGIC + bytes.fromhex(fingerprint)
        if len(header) != 10:
            raise SetupError(f"{path}: fingerprint {fingerprint} is not 8 bytes")
        schemas[path] = (parsed, header)
    status = 0
    for line in sys.stdin:
        try:
            # "FILE<TAB>{...}" names the schema; a record alone is one of the first schema's. A
            # JSON record starts with "{", which no file name given here does.
            path = paths[0]
            before, tab, after = line.partition("\t")
            if tab and not before.strip().startswith("{"):
                path, line = before, after
                if path not in schemas:
                    raise ValueError(f"schema {path} was not given on the command line")
            parsed, header = schemas[path]
            record = json.loads(line)
            body = io.BytesIO()
            # strict_allow_default: an unknown field is an error, a missing one takes its default
            # (or is an error without one), as plain JSON is read everywhere else.
            fastavro.schemaless_writer(body, parsed, record, strict_allow_default=True)
            out.write((header + body.getvalue()).hex() + "\n")
        except Exception as error:
            out.write(f"error: {type(error).__name__}: {one_line(error)}\n")
            status = 1
    return status


def decode_command(directory, out):
    directory = pathlib.Path(directory)
    current = sorted(directory.glob("*.avsc"))
    if not current:
        raise SetupError(f"{directory} holds no .avsc files")
    history = sorted((directory / "history").glob("*.avsc"))
    writers = {}  # fingerprint (hex) -> (full name, parsed schema)
    readers = {}  # full name -> parsed current schema
    for path in current + history:
        document, parsed, _, fingerprint = load(path)
        name = full_name(document)
        writers.setdefault(fingerprint, (name, parsed))
        readers.setdefault(name, parsed)  # current files come first
    status = 0
    for line in sys.stdin:
        try:
            data = bytes.fromhex(line.strip())
            if len(data) < 10 or data[:2] != MAGIC:
                raise ValueError("not Avro single-object encoding (no C3 01 marker and 8-byte fingerprint)")
            fingerprint = data[2:10].hex()
            if fingerprint not in writers:
                raise ValueError(f"unknown fingerprint {fingerprint}: no schema in {directory} or its history/ has it")
            name, writer = writers[fingerprint]
            body = io.BytesIO(data[10:])
            record = fastavro.schemaless_reader(body, writer, readers[name])
            if body.tell() != len(data) - 10:
                raise ValueError(f"{len(data) - 10 - body.tell()} trailing bytes after the datum")
            out.write(json.dumps(plain(record), separators=(",", ":")) + "\n")
        except Exception as error:
            out.write(f"error: {type(error).__name__}: {one_line(error)}\n")
            status = 1
    return status


def full_name(document):
    name = document["name"]
    if "." in name or not document.get("namespace"):
        return name
    return f"{document['namespace']}.{name}"


def plain(value):
    """A value fastavro read, as plain JSON: its logical-type objects back to their integers."""
    if isinstance(value, datetime.datetime):
        # fastavro reads timestamp-millis as an aware datetime; Frontier's schemas have no other
        # timestamp type, and timedelta arithmetic is exact to the microsecond.
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def one_line(error):
    return str(error).replace("\n", " ").replace("\r", " ")


def main(argv):
    out = sys.stdout
    try:
        if len(argv) >= 2 and argv[0] == "fingerprint":
            return fingerprint_command(argv[1:], out)
        if len(argv) >= 2 and argv[0] == "encode":
            return encode_command(argv[1:], out)
        if len(argv) == 2 and argv[0] == "decode":
            return decode_command(argv[1], out)
        print("usage: fastavro_tool.py fingerprint FILE... | encode SCHEMA.avsc... | decode SCHEMA_DIR", file=sys.stderr)
        return 2
    except SetupError as error:
        print(f"fastavro_tool: {error}", file=sys.stderr)
        return 2
    finally:
        out.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
