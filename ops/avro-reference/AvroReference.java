// Avro's reference implementation (Java, org.apache.avro:avro) as a line-oriented tool, so the
// tests can check Frontier's wire format against it (tests/avro_reference.rs, tests/interop.rs).
// Runs with Java's single-file source launcher, no build step:
//
//   java -cp '.stack/avro-reference/lib/*' ops/avro-reference/AvroReference.java COMMAND ...
//
//   fingerprint FILE...   per schema file one line: FILE, TAB, the CRC-64-AVRO fingerprint of
//                         its Parsing Canonical Form as the 8 little-endian bytes of the
//                         single-object header in hex, TAB, the Parsing Canonical Form
//   encode SCHEMA.avsc... per stdin line of plain JSON, the single-object encoding in hex; a
//                         line is a record of the first schema, or FILE, TAB, a record of the
//                         schema given as FILE (so one run can encode records of many schemas)
//   decode SCHEMA_DIR     per stdin line of single-object hex, the record as plain JSON;
//                         writer schemas are looked up by fingerprint among SCHEMA_DIR/*.avsc
//                         and SCHEMA_DIR/history/*.avsc, and resolved to the current version
//
// Every input line gives exactly one output line; a line that fails gives "error: WHY". The exit
// status is 0 when every line succeeded, 1 when some failed, 2 for a usage or schema error.
//
// "Plain JSON" is Frontier's human JSON (src/bus/json.rs), not Avro's JSON encoding: a union is
// its value alone and takes the first branch the value fits, an enum is its symbol, a timestamp
// is its integer, a map is an object, bytes and fixed are hex. The conversion below is written
// against the schema independently of the Rust one, with Avro's own GenericData doing the rest.

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.avro.message.SchemaStore;

public class AvroReference {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

  public static void main(String[] args) throws Exception {
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    int status;
    try {
      if (args.length >= 2 && args[0].equals("fingerprint")) {
        status = fingerprint(Arrays.asList(args).subList(1, args.length), out);
      } else if (args.length >= 2 && args[0].equals("encode")) {
        status = encode(Arrays.asList(args).subList(1, args.length), out);
      } else if (args.length == 2 && args[0].equals("decode")) {
        status = decode(new File(args[1]), out);
      } else {
        System.err.println("usage: AvroReference fingerprint FILE... | encode SCHEMA.avsc... | decode SCHEMA_DIR");
        status = 2;
      }
    } catch (SetupError e) {
      System.err.println("AvroReference: " + e.getMessage());
      status = 2;
    }
    out.flush();
    System.exit(status);
  }

  /** A problem with the arguments or a schema file, as opposed to one input line. */
  static final class SetupError extends Exception {
    SetupError(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /** One schema file, parsed on its own (history versions reuse the current names). */
  static Schema parse(File file) throws SetupError {
    try {
      return new Schema.Parser().parse(file);
    } catch (IOException | RuntimeException e) {
      throw new SetupError(file + ": " + e.getMessage(), e);
    }
  }

  // ------------------------------------------------------------------------------ fingerprint

  static int fingerprint(List<String> files, PrintStream out) throws SetupError {
    for (String file : files) {
      Schema schema = parse(new File(file));
      long fingerprint = SchemaNormalization.parsingFingerprint64(schema);
      out.println(file + "\t" + hex(littleEndian(fingerprint)) + "\t" + SchemaNormalization.toParsingForm(schema));
    }
    return 0;
  }

  /** The fingerprint as BinaryMessageEncoder writes it into the header. */
  static byte[] littleEndian(long value) {
    return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(value).array();
  }

  // ----------------------------------------------------------------------------------- encode

  static int encode(List<String> files, PrintStream out) throws IOException, SetupError {
    Map<String, Schema> schemas = new LinkedHashMap<>();
    Map<String, BinaryMessageEncoder<GenericRecord>> encoders = new HashMap<>();
    for (String file : files) {
      Schema schema = parse(new File(file));
      schemas.put(file, schema);
      encoders.put(file, new BinaryMessageEncoder<>(GenericData.get(), schema));
    }
    String first = files.get(0);
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    int status = 0;
    for (String line; (line = in.readLine()) != null; ) {
      try {
        // "FILE<TAB>{...}" names the schema; a record alone is one of the first schema's. A
        // JSON record starts with "{", which no file name given here does.
        String file = first;
        int tab = line.indexOf('\t');
        if (tab >= 0 && !line.substring(0, tab).trim().startsWith("{")) {
          file = line.substring(0, tab);
          line = line.substring(tab + 1);
          if (!schemas.containsKey(file)) {
            throw new IllegalArgumentException("schema " + file + " was not given on the command line");
          }
        }
        Schema schema = schemas.get(file);
        BinaryMessageEncoder<GenericRecord> encoder = encoders.get(file);
        Object datum = fromJson(JSON.readTree(line), schema, "$");
        if (!GenericData.get().validate(schema, datum)) {
          throw new IllegalArgumentException("GenericData does not accept the converted record");
        }
        ByteBuffer encoded = encoder.encode((GenericRecord) datum);
        byte[] bytes = new byte[encoded.remaining()];
        encoded.get(bytes);
        out.println(hex(bytes));
      } catch (Exception e) {
        out.println("error: " + oneLine(e));
        status = 1;
      }
    }
    return status;
  }

  /** Plain JSON to the GenericData value of `schema`; throws naming the path where it does not fit. */
  static Object fromJson(JsonNode json, Schema schema, String path) {
    if (json == null) {
      throw mismatch(path, "a value", json);
    }
    switch (schema.getType()) {
      case NULL:
        if (json.isNull()) return null;
        throw mismatch(path, "null", json);
      case BOOLEAN:
        if (json.isBoolean()) return json.booleanValue();
        throw mismatch(path, "a boolean", json);
      case INT:
        if (json.isIntegralNumber() && json.canConvertToInt()) return json.intValue();
        throw mismatch(path, "a 32-bit integer", json);
      case LONG:
        if (json.isIntegralNumber() && json.canConvertToLong()) return json.longValue();
        throw mismatch(path, "an integer", json);
      case FLOAT:
        if (json.isNumber()) return (float) json.doubleValue();
        throw mismatch(path, "a number", json);
      case DOUBLE:
        if (json.isNumber()) return json.doubleValue();
        throw mismatch(path, "a number", json);
      case STRING:
        if (json.isTextual()) return json.textValue();
        throw mismatch(path, "a string", json);
      case BYTES:
        if (json.isTextual()) return ByteBuffer.wrap(unhex(json.textValue()));
        throw mismatch(path, "hex bytes", json);
      case FIXED:
        if (json.isTextual()) return new GenericData.Fixed(schema, unhex(json.textValue()));
        throw mismatch(path, "hex bytes", json);
      case ENUM:
        if (json.isTextual() && schema.hasEnumSymbol(json.textValue())) {
          return new GenericData.EnumSymbol(schema, json.textValue());
        }
        throw mismatch(path, "one of " + schema.getEnumSymbols(), json);
      case ARRAY: {
        if (!json.isArray()) throw mismatch(path, "an array", json);
        GenericData.Array<Object> items = new GenericData.Array<>(json.size(), schema);
        for (int i = 0; i < json.size(); i++) {
          items.add(fromJson(json.get(i), schema.getElementType(), path + "." + i));
        }
        return items;
      }
      case MAP: {
        if (!json.isObject()) throw mismatch(path, "an object", json);
        Map<String, Object> entries = new HashMap<>();
        for (Map.Entry<String, JsonNode> entry : json.properties()) {
          entries.put(entry.getKey(), fromJson(entry.getValue(), schema.getValueType(), path + "." + entry.getKey()));
        }
        return entries;
      }
      case UNION: {
        // The first branch the value fits; GenericData must then pick that same branch, or the
        // bytes would say something other than what was meant.
        List<Schema> branches = schema.getTypes();
        for (int index = 0; index < branches.size(); index++) {
          Object value;
          try {
            value = fromJson(json, branches.get(index), path);
          } catch (IllegalArgumentException e) {
            continue;
          }
          int resolved = GenericData.get().resolveUnion(schema, value);
          if (resolved != index) {
            throw new IllegalArgumentException(path + ": fits branch " + index + " but GenericData picks " + resolved);
          }
          return value;
        }
        throw mismatch(path, "one of " + branches, json);
      }
      case RECORD: {
        if (!json.isObject()) throw mismatch(path, "an object", json);
        for (Map.Entry<String, JsonNode> entry : json.properties()) {
          String name = entry.getKey();
          if (schema.getField(name) == null) {
            throw new IllegalArgumentException(path + ": unknown field `" + name + "`");
          }
        }
        GenericData.Record record = new GenericData.Record(schema);
        for (Schema.Field field : schema.getFields()) {
          String fieldPath = path + "." + field.name();
          if (json.has(field.name())) {
            record.put(field.pos(), fromJson(json.get(field.name()), field.schema(), fieldPath));
          } else if (field.hasDefaultValue()) {
            // Avro's own reading of the default (for a union, its first branch).
            record.put(field.pos(), GenericData.get().getDefaultValue(field));
          } else {
            throw new IllegalArgumentException(fieldPath + ": missing required field");
          }
        }
        return record;
      }
      default:
        throw new IllegalArgumentException(path + ": " + schema.getType() + " cannot be written as plain JSON");
    }
  }

  static IllegalArgumentException mismatch(String path, String expected, JsonNode got) {
    String shown = got == null ? "nothing" : got.toString();
    if (shown.length() > 60) shown = shown.substring(0, 60) + "...";
    return new IllegalArgumentException(path + ": expected " + expected + ", got " + shown);
  }

  // ----------------------------------------------------------------------------------- decode

  static int decode(File dir, PrintStream out) throws IOException, SetupError {
    File[] current = avscFiles(dir);
    if (current.length == 0) {
      throw new SetupError(dir + " holds no .avsc files", null);
    }
    // Every version, current and history, is a writer schema the decoders may meet; the header's
    // fingerprint is the only way to find it.
    SchemaStore.Cache store = new SchemaStore.Cache();
    Map<String, BinaryMessageDecoder<GenericRecord>> byName = new LinkedHashMap<>();
    for (File file : current) {
      Schema schema = parse(file);
      store.addSchema(schema);
      byName.put(schema.getFullName(), new BinaryMessageDecoder<>(GenericData.get(), schema, store));
    }
    File history = new File(dir, "history");
    for (File file : history.isDirectory() ? avscFiles(history) : new File[0]) {
      Schema schema = parse(file);
      store.addSchema(schema);
      byName.putIfAbsent(schema.getFullName(), new BinaryMessageDecoder<>(GenericData.get(), schema, store));
    }

    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    int status = 0;
    for (String line; (line = in.readLine()) != null; ) {
      try {
        byte[] bytes = unhex(line.trim());
        // The decoder of the record the writer schema belongs to, which resolves the datum to
        // that record's current version. When the fingerprint is unknown any decoder will do: it
        // fails with Avro's own MissingSchemaException (and a bad marker with BadHeaderException).
        BinaryMessageDecoder<GenericRecord> decoder = byName.values().iterator().next();
        if (bytes.length >= 10) {
          long fingerprint = ByteBuffer.wrap(bytes, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
          Schema writer = store.findByFingerprint(fingerprint);
          if (writer != null) {
            decoder = byName.get(writer.getFullName());
          }
        }
        GenericRecord record = decoder.decode(bytes);
        out.println(JSON.writeValueAsString(toJson(record)));
      } catch (Exception e) {
        out.println("error: " + oneLine(e));
        status = 1;
      }
    }
    return status;
  }

  static File[] avscFiles(File dir) {
    File[] files = dir.listFiles((d, name) -> name.endsWith(".avsc"));
    if (files == null) return new File[0];
    Arrays.sort(files);
    return files;
  }

  /** A GenericData value as plain JSON. */
  static JsonNode toJson(Object value) {
    if (value == null) return NODES.nullNode();
    if (value instanceof GenericRecord) {
      GenericRecord record = (GenericRecord) value;
      ObjectNode object = NODES.objectNode();
      for (Schema.Field field : record.getSchema().getFields()) {
        object.set(field.name(), toJson(record.get(field.pos())));
      }
      return object;
    }
    if (value instanceof Boolean) return NODES.booleanNode((Boolean) value);
    if (value instanceof Integer) return NODES.numberNode((Integer) value);
    if (value instanceof Long) return NODES.numberNode((Long) value);
    // A float is shown as the double it widens to, as the Rust and Python sides do.
    if (value instanceof Float) return NODES.numberNode(((Float) value).doubleValue());
    if (value instanceof Double) return NODES.numberNode((Double) value);
    if (value instanceof CharSequence || value instanceof GenericEnumSymbol) return NODES.textNode(value.toString());
    if (value instanceof ByteBuffer) {
      ByteBuffer buffer = ((ByteBuffer) value).duplicate();
      byte[] bytes = new byte[buffer.remaining()];
      buffer.get(bytes);
      return NODES.textNode(hex(bytes));
    }
    if (value instanceof GenericFixed) return NODES.textNode(hex(((GenericFixed) value).bytes()));
    if (value instanceof Map) {
      ObjectNode object = NODES.objectNode();
      for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
        object.set(entry.getKey().toString(), toJson(entry.getValue()));
      }
      return object;
    }
    if (value instanceof Collection) {
      ArrayNode array = NODES.arrayNode();
      for (Object item : (Collection<?>) value) array.add(toJson(item));
      return array;
    }
    throw new IllegalArgumentException("no plain JSON for a " + value.getClass().getName());
  }

  // ---------------------------------------------------------------------------------- helpers

  static String hex(byte[] bytes) {
    StringBuilder text = new StringBuilder(bytes.length * 2);
    for (byte b : bytes) text.append(String.format("%02x", b));
    return text.toString();
  }

  static byte[] unhex(String text) {
    if (text.length() % 2 != 0) throw new IllegalArgumentException("odd number of hex digits");
    byte[] bytes = new byte[text.length() / 2];
    for (int i = 0; i < bytes.length; i++) {
      int high = Character.digit(text.charAt(2 * i), 16);
      int low = Character.digit(text.charAt(2 * i + 1), 16);
      if (high < 0 || low < 0) throw new IllegalArgumentException("not hex: " + text.substring(2 * i, 2 * i + 2));
      bytes[i] = (byte) (high * 16 + low);
    }
    return bytes;
  }

  /** The exception's class and message on one line. */
  static String oneLine(Throwable e) {
    String message = e.getClass().getSimpleName() + ": " + e.getMessage();
    for (Throwable cause = e.getCause(); cause != null && cause != cause.getCause(); cause = cause.getCause()) {
      message += " (caused by " + cause.getClass().getSimpleName() + ": " + cause.getMessage() + ")";
    }
    return message.replace('\n', ' ').replace('\r', ' ');
  }
}
