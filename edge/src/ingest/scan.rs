//! One pass over a request body: frames its events and reads each one's
//! fields straight into validation, with no JSON value built and no event
//! parsed twice.
//!
//! # Design constraints
//! * The answer is exactly the reference's ([`body::split`], then
//!   [`parse_click`] per event): the same clicks, the same rejected events
//!   with the same reasons, the same body errors. The reader takes only JSON
//!   it understands in full (strings without escapes, unsigned integers where
//!   the fields want them, literals, nesting below [`MAX_DEPTH`]); on
//!   anything else (an escape, a float or a negative number in an integer
//!   field, a missing or repeated field, bad syntax) it hands the body over
//!   to the reference (NDJSON: just that line), so every parse error reads
//!   as serde's. Validation is the reference's own (`event::validate`).
//! * No allocation per event: fields are slices of the body, keys are
//!   hashed in one buffer per request ([`ClickKeys`]).
//!
//! Checked against the reference by the property tests below and on the
//! fuzz corpus (`fuzz/checks/ingest_body.rs`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use tally_filter::batch::Columns;
use tally_model::tenant::TenantId;

use super::body::{self, Format};
use super::event::{parse_click, validate, Click, ClickKeys, WireClick, WireTs};

/// Deeper nesting (in unknown fields) goes to the reference, whose own
/// limit (128) is then the one that holds.
const MAX_DEPTH: usize = 32;

/// Reads `body` into `out` (cleared first), one entry per event in order,
/// as [`body::split`] then [`parse_click`] would (events without `ts` at
/// `arrival_ms`); `Err` is the body error (answer 400). Valid clicks'
/// fields are appended to `columns`.
pub fn read_clicks(
    body: &[u8],
    format: Format,
    tenant: &TenantId,
    arrival_ms: u64,
    mut columns: Option<&mut Columns>,
    out: &mut Vec<Result<Click, String>>,
) -> Result<(), String> {
    out.clear();
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    let mut keys = ClickKeys::new(tenant);
    match format {
        Format::Json => {
            if read_json(text, &mut keys, arrival_ms, columns.as_deref_mut(), out).is_some() {
                return Ok(());
            }
            out.clear();
            if let Some(columns) = columns.as_deref_mut() {
                *columns = Columns::default();
            }
            let raw = body::split(body, format)?;
            out.extend(raw.into_iter().map(|r| r.and_then(|raw| parse_click(tenant, raw, arrival_ms, columns.as_deref_mut()))));
        }
        Format::NdJson => {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let mut r = Reader::new(line);
                r.ws();
                let wire = r.event().filter(|_| {
                    r.ws();
                    r.at_end()
                });
                out.push(match wire {
                    Some(wire) => validate(&mut keys, &wire, arrival_ms, columns.as_deref_mut()),
                    None => body::split_line(line).and_then(|raw| parse_click(tenant, raw, arrival_ms, columns.as_deref_mut())),
                });
            }
        }
    }
    Ok(())
}

/// The fast path of a JSON body; `None`: ask the reference.
fn read_json(text: &str, keys: &mut ClickKeys, arrival_ms: u64, mut columns: Option<&mut Columns>, out: &mut Vec<Result<Click, String>>) -> Option<()> {
    let mut r = Reader::new(text);
    r.ws();
    match r.peek()? {
        b'[' => {
            r.pos += 1;
            r.ws();
            if r.eat(b']').is_none() {
                // Room for events of about 128 bytes; grows past that.
                out.reserve(text.len() / 128 + 1);
                loop {
                    let wire = r.event()?;
                    out.push(validate(keys, &wire, arrival_ms, columns.as_deref_mut()));
                    r.ws();
                    if r.eat(b',').is_some() {
                        r.ws();
                        continue;
                    }
                    r.eat(b']')?;
                    break;
                }
            }
        }
        b'{' => {
            let wire = r.event()?;
            out.push(validate(keys, &wire, arrival_ms, columns));
        }
        _ => return None,
    }
    r.ws();
    r.at_end().then_some(())
}

/// A cursor over JSON text; every reading method answers `None` for what
/// it does not take (then the reference decides).
struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// Stores a field's value; `None` if the field came twice.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// Fields as read so far; `Some(None)` is an explicit `null`.
#[derive(Default)]
struct Fields<'a> {
    click_id: Option<&'a str>,
    ad_id: Option<u64>,
    ts: Option<Option<WireTs<'a>>>,
    campaign_id: Option<Option<u64>>,
    cost_micros: Option<Option<u64>>,
    user_id: Option<Option<&'a str>>,
    ip: Option<Option<&'a str>>,
    user_agent: Option<Option<&'a str>>,
    country: Option<Option<&'a str>>,
    region: Option<Option<&'a str>>,
    attrs: Option<Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>>,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Reader<'a> {
        Reader { text, bytes: text.as_bytes(), pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// JSON whitespace (not Unicode's).
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.bytes[self.pos..].starts_with(word).then(|| self.pos += word.len())
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        let len = plain_len(&self.bytes[start..]);
        if self.bytes.get(start + len) != Some(&b'"') {
            return None;
        }
        self.pos = start + len + 1;
        // Both ends are ASCII quotes, so char boundaries.
        Some(&self.text[start..start + len])
    }

    /// An integer that fits a u64, as serde reads one (no sign, fraction or
    /// exponent, no leading zero).
    fn uint(&mut self) -> Option<u64> {
        let start = self.pos;
        let mut value: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            value = value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
            self.pos += 1;
        }
        let digits = self.pos - start;
        if digits == 0 || (digits > 1 && self.bytes[start] == b'0') || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(value)
    }

    /// `ts`: ms since the epoch or a string (parsed in validation).
    fn ts(&mut self) -> Option<WireTs<'a>> {
        Some(if self.peek()? == b'"' { WireTs::Text(Cow::Borrowed(self.string()?)) } else { WireTs::Millis(self.uint()?) })
    }

    /// `null`, or what `read` reads.
    fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.literal(b"null").is_some() {
            return Some(None);
        }
        read(self).map(Some)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Any JSON number, by its grammar only (as serde skips one).
    fn number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.eat(b'.').is_some() && self.digits() == 0 {
            return None;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// The value of a field no click has: checked, not kept.
    fn skip(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            open @ (b'[' | b'{') => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                let close = if open == b'[' { b']' } else { b'}' };
                self.pos += 1;
                self.ws();
                if self.eat(close).is_some() {
                    return Some(());
                }
                loop {
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                    }
                    self.skip(depth + 1)?;
                    self.ws();
                    if self.eat(b',').is_some() {
                        self.ws();
                        continue;
                    }
                    return self.eat(close);
                }
            }
            _ => None,
        }
    }

    /// Custom attributes: an object of strings (a repeated key keeps the
    /// last value, as serde's map does).
    fn attrs(&mut self) -> Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>> {
        self.eat(b'{')?;
        self.ws();
        let mut attrs = BTreeMap::new();
        if self.eat(b'}').is_some() {
            return Some(attrs);
        }
        loop {
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            attrs.insert(Cow::Borrowed(key), Cow::Borrowed(self.string()?));
            self.ws();
            if self.eat(b',').is_some() {
                self.ws();
                continue;
            }
            self.eat(b'}')?;
            return Some(attrs);
        }
    }

    /// One event object, its fields as sent.
    fn event(&mut self) -> Option<WireClick<'a>> {
        self.eat(b'{')?;
        self.ws();
        let mut f = Fields::default();
        if self.eat(b'}').is_none() {
            loop {
                let name = self.string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
                match name {
                    "click_id" => once(&mut f.click_id, self.string()?)?,
                    "ad_id" => once(&mut f.ad_id, self.uint()?)?,
                    "ts" => once(&mut f.ts, self.nullable(Self::ts)?)?,
                    "campaign_id" => once(&mut f.campaign_id, self.nullable(Self::uint)?)?,
                    "cost_micros" => once(&mut f.cost_micros, self.nullable(Self::uint)?)?,
                    "user_id" => once(&mut f.user_id, self.nullable(Self::string)?)?,
                    "ip" => once(&mut f.ip, self.nullable(Self::string)?)?,
                    "user_agent" => once(&mut f.user_agent, self.nullable(Self::string)?)?,
                    "country" => once(&mut f.country, self.nullable(Self::string)?)?,
                    "region" => once(&mut f.region, self.nullable(Self::string)?)?,
                    "attrs" => once(&mut f.attrs, self.nullable(Self::attrs)?)?,
                    _ => self.skip(1)?,
                }
                self.ws();
                if self.eat(b',').is_some() {
                    self.ws();
                    continue;
                }
                self.eat(b'}')?;
                break;
            }
        }
        let text = |s: Option<Option<&'a str>>| s.flatten().map(Cow::Borrowed);
        Some(WireClick {
            click_id: Cow::Borrowed(f.click_id?),
            ad_id: f.ad_id?,
            ts: f.ts.flatten(),
            campaign_id: f.campaign_id.flatten(),
            cost_micros: f.cost_micros.flatten(),
            user_id: text(f.user_id),
            ip: text(f.ip),
            user_agent: text(f.user_agent),
            country: text(f.country),
            region: text(f.region),
            attrs: f.attrs.flatten(),
        })
    }
}

/// How many bytes from the start are plain string content: before the
/// first quote, backslash or control character (or all of them). Eight
/// bytes at a time: the byte-wise loop was a tenth of reading a body.
fn plain_len(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Sets the high bit of each byte below `n` (exact for the lowest one;
    // bytes above it may be flagged wrongly, which finding the first ignores).
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    let mut at = 0;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let hits = below(word ^ (ONES * u64::from(b'"')), 1) | below(word ^ (ONES * u64::from(b'\\')), 1) | below(word, 0x20);
        if hits != 0 {
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + words.remainder().iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(words.remainder().len())
}

#[cfg(test)]
mod tests;
