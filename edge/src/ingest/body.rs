//! Splitting a request body into events: a JSON array, a single JSON object,
//! or NDJSON (`Content-Type: application/x-ndjson`).
//!
//! A body whose framing cannot be parsed at all is refused as a whole; once
//! framing succeeds, every event is judged on its own.

use serde_json::value::RawValue;

/// How the client framed its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    NdJson,
}

impl Format {
    pub fn from_content_type(ct: Option<&str>) -> Format {
        let essence = ct.and_then(|c| c.split(';').next()).map(str::trim).unwrap_or("");
        if essence.eq_ignore_ascii_case("application/x-ndjson") || essence.eq_ignore_ascii_case("application/jsonl") {
            Format::NdJson
        } else {
            Format::Json
        }
    }
}

/// One event's JSON, or why its line could not even be read as JSON.
pub type RawEvent<'a> = Result<&'a RawValue, String>;

/// Splits `body` into raw events in order; `Err` means the body is not
/// parseable at all (answer 400). An empty NDJSON body is zero events.
/// The reference framing; `ingest::scan` frames in the same pass as it
/// reads the events, to the same result.
pub fn split(body: &[u8], format: Format) -> Result<Vec<RawEvent<'_>>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    match format {
        Format::NdJson => Ok(text.lines().filter(|l| !l.trim().is_empty()).map(split_line).collect()),
        Format::Json => match text.trim_start().as_bytes().first() {
            Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(text)
                .map(|events| events.into_iter().map(Ok).collect())
                .map_err(|e| format!("body is not a JSON array of events: {e}")),
            Some(b'{') => serde_json::from_str::<&RawValue>(text).map(|event| vec![Ok(event)]).map_err(|e| format!("body is not a JSON object: {e}")),
            Some(_) => Err("body must be a JSON array, a JSON object, or NDJSON with Content-Type application/x-ndjson".into()),
            None => Err("body is empty".into()),
        },
    }
}

/// One NDJSON line (not blank) as an event.
pub fn split_line(line: &str) -> RawEvent<'_> {
    serde_json::from_str::<&RawValue>(line).map_err(|e| format!("line is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_each_format() {
        assert_eq!(split(br#"[{"a":1}, {"b":2}]"#, Format::Json).unwrap().len(), 2);
        assert_eq!(split(br#" {"a":1} "#, Format::Json).unwrap().len(), 1);
        let nd = split(b"{\"a\":1}\n\nnot json\n{\"b\":2}\n", Format::NdJson).unwrap();
        assert_eq!(nd.len(), 3);
        assert!(nd[0].is_ok() && nd[1].is_err() && nd[2].is_ok());
        assert!(split(b"[{\"a\":1}", Format::Json).is_err());
        assert!(split(b"", Format::Json).is_err());
        assert!(split(b"", Format::NdJson).unwrap().is_empty());
        assert!(split(b"42", Format::Json).is_err());
        assert!(split(&[0xff, 0xfe], Format::Json).is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(Format::from_content_type(Some("application/x-ndjson; charset=utf-8")), Format::NdJson);
        assert_eq!(Format::from_content_type(Some("application/json")), Format::Json);
        assert_eq!(Format::from_content_type(None), Format::Json);
    }
}
