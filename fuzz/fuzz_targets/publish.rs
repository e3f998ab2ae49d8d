//! Any text through `frontier publish`'s JSON reading, against every schema.
#![no_main]

use std::sync::OnceLock;

use frontier::bus::SchemaCatalog;
use libfuzzer_sys::fuzz_target;

fn catalog() -> &'static SchemaCatalog {
    static CATALOG: OnceLock<SchemaCatalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        SchemaCatalog::load_dir(&schemas).unwrap_or_else(|e| panic!("schemas: {e}"))
    })
}

fuzz_target!(|bytes: &[u8]| frontier::fuzzing::publish_everything(catalog(), &String::from_utf8_lossy(bytes)));
