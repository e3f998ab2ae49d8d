//! Precompression: each text file as brotli (quality 11, 4 MiB window), zstd (level 19) and
//! gzip (level 9), at build time so the origin never compresses on a request. A variant is kept
//! only where it is strictly smaller than the file: a client asking for it would otherwise
//! download more. Every encoder here gives the same bytes for the same input, so builds repeat.

use std::io::Write;

/// The encodings, in the order they are tried: (manifest name, file extension).
pub(crate) const ENCODINGS: [(&str, &str); 3] = [("br", "br"), ("zstd", "zst"), ("gzip", "gz")];

/// Extensions of text files, which compress; images, fonts and archives are compressed already.
const TEXT_EXTENSIONS: [&str; 12] =
    ["html", "htm", "css", "js", "mjs", "json", "svg", "txt", "xml", "map", "webmanifest", "csv"];

/// Whether the file at site path `path` is text, and so precompressed.
pub(crate) fn is_text(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once('.').is_some_and(|(_, ext)| TEXT_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// The variants of one file that are smaller than it, in [`ENCODINGS`]' order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Variants {
    /// (manifest encoding name, file extension, bytes).
    pub kept: Vec<(&'static str, &'static str, Vec<u8>)>,
}

/// Compresses `data` three ways and keeps the variants strictly smaller than it.
pub(crate) fn compress(data: &[u8]) -> std::io::Result<Variants> {
    let candidates = [brotli(data)?, zstd(data)?, gzip(data)?];
    let kept = ENCODINGS
        .into_iter()
        .zip(candidates)
        .filter(|(_, bytes)| bytes.len() < data.len())
        .map(|((name, ext), bytes)| (name, ext, bytes))
        .collect();
    Ok(Variants { kept })
}

/// [`compress`] for each of `files`, on up to `threads` threads; results in `files`' order.
/// Each file is compressed on its own, so the split between threads cannot change a byte.
pub(crate) fn compress_all(files: &[&[u8]], threads: usize) -> Vec<std::io::Result<Variants>> {
    let threads = threads.clamp(1, files.len().max(1));
    if threads == 1 {
        return files.iter().map(|data| compress(data)).collect();
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|data| compress(data)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle.join().unwrap_or_else(|_| vec![Err(std::io::Error::other("a compression thread panicked"))])
            })
            .collect()
    })
}

fn brotli(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        size_hint: data.len(),
        ..brotli::enc::BrotliEncoderParams::default()
    };
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &data[..], &mut out, &params)?;
    Ok(out)
}

fn zstd(data: &[u8]) -> std::io::Result<Vec<u8>> {
    zstd::bulk::compress(data, 19)
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    // No file name and a zero mtime in the header (flate2's defaults): the same bytes each build.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
    encoder.write_all(data)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn every_kept_variant_decodes_to_the_file() {
        let text = "body { color: #123456; margin: 0 auto; }\n".repeat(50);
        let variants = compress(text.as_bytes()).unwrap();
        assert_eq!(variants.kept.iter().map(|(name, _, _)| *name).collect::<Vec<_>>(), ["br", "zstd", "gzip"]);
        for (name, _, bytes) in &variants.kept {
            let mut decoded = Vec::new();
            match *name {
                "br" => brotli::Decompressor::new(&bytes[..], 4096).read_to_end(&mut decoded).unwrap(),
                "zstd" => zstd::stream::read::Decoder::new(&bytes[..]).unwrap().read_to_end(&mut decoded).unwrap(),
                _ => flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut decoded).unwrap(),
            };
            assert_eq!(decoded, text.as_bytes(), "{name}");
            assert!(bytes.len() < text.len() / 10, "{name}: {} bytes", bytes.len());
        }
    }

    #[test]
    fn a_variant_larger_than_a_tiny_file_is_not_kept() {
        assert_eq!(compress(b"User-agent").unwrap(), Variants::default());
    }

    #[test]
    fn compressing_on_threads_gives_the_same_bytes_in_the_same_order() {
        let files: Vec<Vec<u8>> = (0..5).map(|i| format!("{i} line\n").repeat(40 + i).into_bytes()).collect();
        let slices: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
        let one: Vec<Variants> = compress_all(&slices, 1).into_iter().map(Result::unwrap).collect();
        let two: Vec<Variants> = compress_all(&slices, 2).into_iter().map(Result::unwrap).collect();
        assert_eq!(one, two);
    }

    #[test]
    fn only_text_types_are_precompressed() {
        assert!(is_text("index.html") && is_text("css/app.css") && is_text("img/logo.SVG") && is_text("robots.txt"));
        assert!(
            !is_text("fonts/inter.woff2")
                && !is_text("favicon.ico")
                && !is_text("img/chart.png")
                && !is_text("LICENSE")
        );
    }
}
