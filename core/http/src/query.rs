//! Query strings: `key=value` pairs, percent-decoded (`+` is a space).

/// The pairs of a query string, in order, decoded.
pub fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The first value of `key`, if present.
pub fn get(query: Option<&str>, key: &str) -> Option<String> {
    pairs(query).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(decode("a%3Ab+c%"), "a:b c%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%41"), "A");
        assert_eq!(pairs(Some("a=1&&b&c=x%20y")), vec![("a".into(), "1".into()), ("b".into(), "".into()), ("c".into(), "x y".into())]);
        assert_eq!(get(Some("u=https%3A%2F%2Fx"), "u").as_deref(), Some("https://x"));
    }
}
