//! The registry's answers as tables for people (`-o table`, the default).
//! They read the core's JSON as it is documented in deploy/openapi/core.json;
//! a field the core did not send shows as `-`.

use serde_json::Value;
use tally_model::timestamp::format_millis;

/// Columns padded to their widest cell, two spaces apart.
fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `push`: which version the bytes became.
pub fn pushed(v: &Value) -> String {
    let sha = cell(&v["sha256"]);
    if v["created"] == false {
        format!("already uploaded as version {} (sha256 {sha}); nothing changed\n", cell(&v["version"]))
    } else {
        format!("uploaded version {} ({} bytes, sha256 {sha})\n", cell(&v["version"]), cell(&v["bytes"]))
    }
}

/// The rollout role of `version` in a tenant's state.
fn role(state: &Value, version: &Value) -> String {
    if state["active"] == *version {
        return "active".into();
    }
    let candidate = &state["candidate"];
    if candidate["version"] != *version {
        return String::new();
    }
    match candidate["mode"].as_str() {
        Some("canary") => format!("candidate: canary {} %", cell(&candidate["percent"])),
        Some(mode) => format!("candidate: {mode}"),
        None => "candidate".into(),
    }
}

/// `status` and every rollout step: versions, their roles, policy, limits.
pub fn state(v: &Value) -> String {
    let versions = v["versions"].as_array().cloned().unwrap_or_default();
    let mut out = if versions.is_empty() {
        "no plugin versions uploaded yet (tally plugin push FILE.wasm)\n".to_string()
    } else {
        let rows: Vec<Vec<String>> = versions
            .iter()
            .map(|ver| {
                let sha = ver["sha256"].as_str().map_or("-".into(), |s| s.chars().take(16).collect());
                let uploaded = ver["uploaded_ms"].as_u64().map_or("-".into(), format_millis);
                vec![cell(&ver["version"]), role(v, &ver["version"]), cell(&ver["name"]), cell(&ver["bytes"]), uploaded, sha]
            })
            .collect();
        render(&["VERSION", "ROLE", "NAME", "BYTES", "UPLOADED", "SHA256"], &rows)
    };
    if v["active"].is_null() {
        out.push_str("no active version: clicks are not filtered\n");
    }
    out.push_str(&format!("on failure: {}", cell(&v["policy"])));
    match &v["limits"] {
        Value::Null => out.push_str("; limits: the edges' defaults\n"),
        l => out.push_str(&format!(
            "; limits: {} MiB, {} ms per call, {} tags per click\n",
            cell(&l["memory_mb"]),
            cell(&l["timeout_ms"]),
            cell(&l["tags_per_click"])
        )),
    }
    out
}

/// `compare`: agreement per (active, candidate) pair over the range.
pub fn comparison(v: &Value) -> String {
    let range = format!("{} to {}", v["from"].as_u64().map_or("-".into(), format_millis), v["to"].as_u64().map_or("-".into(), format_millis));
    let pairs = v["versions"].as_array().cloned().unwrap_or_default();
    if pairs.is_empty() {
        return format!("no candidate ran from {range} (tally plugin shadow|canary VERSION)\n");
    }
    let rows: Vec<Vec<String>> = pairs
        .iter()
        .map(|c| {
            let agreement = c["agreement"].as_f64().map_or("-".into(), |a| format!("{:.1} %", a * 100.0));
            vec![
                cell(&c["active_version"]),
                cell(&c["candidate_version"]),
                cell(&c["mode"]),
                cell(&c["clicks"]),
                cell(&c["agree"]),
                agreement,
                cell(&c["applied_candidate"]),
                cell(&c["active_failed"]),
                cell(&c["candidate_failed"]),
            ]
        })
        .collect();
    let mut out = format!("from {range}\n");
    out.push_str(&render(&["ACTIVE", "CANDIDATE", "MODE", "CLICKS", "AGREE", "AGREEMENT", "APPLIED CANDIDATE", "ACTIVE FAILED", "CANDIDATE FAILED"], &rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn state_shows_each_version_and_its_role() {
        let v = json!({
            "versions": [
                {"version": 1, "sha256": "ab".repeat(32), "bytes": 1200, "name": "bot.wasm", "uploaded_ms": 1_800_000_000_000u64},
                {"version": 2, "sha256": "cd".repeat(32), "bytes": 900, "name": "noop.wasm", "uploaded_ms": 1_800_000_060_000u64}
            ],
            "active": 1, "candidate": {"version": 2, "mode": "canary", "percent": 10}, "policy": "open", "limits": null
        });
        let text = state(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("VERSION  ROLE"), "{text}");
        assert!(lines[1].starts_with("1        active") && lines[1].contains("bot.wasm") && lines[1].contains("abababababababab"), "{text}");
        assert!(lines[2].contains("candidate: canary 10 %") && lines[2].contains("noop.wasm"), "{text}");
        assert_eq!(lines[3], "on failure: open; limits: the edges' defaults");
        let shadow = state(
            &json!({"versions": v["versions"], "active": 1, "candidate": {"version": 2, "mode": "shadow"}, "policy": "closed", "limits": {"memory_mb": 16, "timeout_ms": 5, "tags_per_click": 4}}),
        );
        assert!(shadow.contains("candidate: shadow") && shadow.contains("on failure: closed; limits: 16 MiB, 5 ms per call, 4 tags per click"), "{shadow}");
        assert!(state(&json!({"versions": [], "active": null, "policy": "open"})).starts_with("no plugin versions uploaded yet"));
    }

    #[test]
    fn comparison_and_push_read_as_sentences_or_tables() {
        let v = json!({"from": 1_800_000_000_000u64, "to": 1_800_003_600_000u64, "versions": [
            {"active_version": 1, "candidate_version": 2, "mode": "shadow", "clicks": 200, "agree": 150, "applied_candidate": 0, "active_failed": 0, "candidate_failed": 1, "agreement": 0.75, "codes": []}
        ]});
        let text = comparison(&v);
        assert!(
            text.lines().nth(2).is_some_and(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "2", "shadow", "200", "150", "75.0", "%", "0", "0", "1"]),
            "{text}"
        );
        assert!(comparison(&json!({"from": 0, "to": 0, "versions": []})).starts_with("no candidate ran"));
        assert_eq!(pushed(&json!({"version": 3, "sha256": "ff", "bytes": 10, "created": true})), "uploaded version 3 (10 bytes, sha256 ff)\n");
        assert!(pushed(&json!({"version": 3, "sha256": "ff", "bytes": 10, "created": false})).starts_with("already uploaded as version 3"));
    }
}
