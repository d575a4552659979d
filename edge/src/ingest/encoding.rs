//! `Content-Encoding` of request bodies: identity, gzip or zstd.
//!
//! Decompression is bounded by the same byte limit as a plain body, so a
//! small compressed bomb cannot make the edge allocate without end.

use std::io::Read;

use bytes::Bytes;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("Content-Encoding {0:?} is not supported (use gzip, zstd or none)")]
    Unsupported(String),
    #[error("decompressed body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("body is not valid {encoding}: {message}")]
    Corrupt { encoding: &'static str, message: String },
}

/// Decodes `body` as `encoding` (a `Content-Encoding` value), at most `limit` bytes.
pub fn decode(encoding: Option<&str>, body: Bytes, limit: usize) -> Result<Bytes, DecodeError> {
    let encoding = encoding.map(|e| e.trim().to_ascii_lowercase()).unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => read_bounded(flate2::read::GzDecoder::new(&body[..]), limit, "gzip"),
        "zstd" => {
            let decoder = zstd::stream::read::Decoder::new(&body[..]).map_err(|e| corrupt("zstd", e))?;
            read_bounded(decoder, limit, "zstd")
        }
        _ => Err(DecodeError::Unsupported(encoding)),
    }
}

fn corrupt(encoding: &'static str, e: std::io::Error) -> DecodeError {
    DecodeError::Corrupt { encoding, message: e.to_string() }
}

fn read_bounded(reader: impl Read, limit: usize, encoding: &'static str) -> Result<Bytes, DecodeError> {
    let mut out = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut out).map_err(|e| corrupt(encoding, e))?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap().into()
    }

    #[test]
    fn decodes_and_bounds() {
        let text = br#"[{"a":1}]"#.repeat(100);
        assert_eq!(decode(Some("gzip"), gzip(&text), 10_000).unwrap(), &text[..]);
        let z: Bytes = zstd::encode_all(&text[..], 1).unwrap().into();
        assert_eq!(decode(Some("zstd"), z, 10_000).unwrap(), &text[..]);
        assert_eq!(decode(None, Bytes::from_static(b"x"), 10).unwrap(), &b"x"[..]);
        // A bomb: 10 MB of zeros compress to a few KB.
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 100_000);
        assert_eq!(decode(Some("gzip"), bomb, 1 << 20), Err(DecodeError::TooLarge(1 << 20)));
        assert!(matches!(decode(Some("gzip"), Bytes::from_static(b"nope"), 100), Err(DecodeError::Corrupt { .. })));
        assert!(matches!(decode(Some("br"), Bytes::new(), 100), Err(DecodeError::Unsupported(_))));
    }
}
