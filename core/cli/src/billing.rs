//! `tally billing ...`: operator tools over the billing data.
//!
//! Times are read and written as the API's are: ms since the epoch (RFC 3339
//! is accepted on input too), in the table and in `--json`.

use anyhow::{Context, Result};

use tally_core::billing::reconcile::reconcile;
use tally_core::billing::reconcile::Report;
use tally_core::clickhouse::store::Family;
use tally_core::clickhouse::Store;
use tally_core::heal;
use tally_core::resolution::Resolution;
use tally_model::timestamp::{format_millis, parse_millis};

#[derive(clap::Subcommand)]
pub enum BillingCommand {
    /// Compare, per tenant and hour, billing with the landing table, each
    /// dashboard rollup family with the landing table, and every batch's
    /// manifest with the records found; show whether each hour is final
    /// for billing (or which edges hold it back). Exits 1 if anything disagrees.
    Reconcile {
        /// ClickHouse HTTP URL.
        #[arg(long, default_value = "http://127.0.0.1:8123")]
        clickhouse_url: String,
        /// ClickHouse user (default: the server's `default` user).
        #[arg(long, env = "TALLY_CLICKHOUSE_USER")]
        clickhouse_user: Option<String>,
        /// ClickHouse password (or TALLY_CLICKHOUSE_PASSWORD, kept out of `ps`).
        #[arg(long, env = "TALLY_CLICKHOUSE_PASSWORD", hide_env_values = true)]
        clickhouse_password: Option<String>,
        /// Start: ms since the epoch (as the API answers) or RFC 3339; aligned
        /// down to the hour.
        #[arg(long)]
        from: String,
        /// End, exclusive: ms since the epoch or RFC 3339; after --from.
        #[arg(long)]
        to: String,
        /// Print the report as JSON (times in ms since the epoch).
        #[arg(long)]
        json: bool,
        /// Add to the rollups what the landing table holds and they lack
        /// (whole days around the range), then check again. The finalizing
        /// core does this on its own; a repair of a rollup the core is
        /// repairing at that moment waits for it (through the same ClickHouse
        /// server and user; on a cluster, give the server the core uses).
        #[arg(long)]
        repair: bool,
    },
}

pub async fn run(command: BillingCommand) -> Result<()> {
    match command {
        BillingCommand::Reconcile { clickhouse_url, clickhouse_user, clickhouse_password, from, to, json, repair } => {
            let from_ms = parse_millis(&from).map_err(anyhow::Error::msg).context("--from")?;
            let to_ms = parse_millis(&to).map_err(anyhow::Error::msg).context("--to")?;
            anyhow::ensure!(from_ms < to_ms, "--from {} is not before --to {}: the range is empty or reversed", format_millis(from_ms), format_millis(to_ms));
            let store = Store::connect(&clickhouse_url, clickhouse_user.as_deref(), clickhouse_password.as_deref())
                .await
                .with_context(|| format!("connecting to ClickHouse at {clickhouse_url}"))?;
            let (from, to) = ((from_ms / 1000 / 3600 * 3600) as u32, to_ms.div_ceil(1000) as u32);
            let mut report = reconcile(&store, from, to).await?;
            if repair && !report.ok() {
                // Day buckets are repaired whole, so the range widens to days.
                let (day_from, day_to) = (from / 86_400 * 86_400, to.div_ceil(86_400) * 86_400);
                // Batches committed in the last seconds may still be filling
                // their views: left to a later repair (see tally_core::heal).
                let cutoff = heal::committed_before((tally_model::timestamp::now_ms() / 1000) as u32);
                for family in Family::ALL {
                    for step in Resolution::ROLLUPS {
                        repair_one(&store, family, step, day_from, day_to, cutoff).await?;
                    }
                }
                eprintln!("repaired the rollups over the days around the range; checking again");
                report = reconcile(&store, from, to).await?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&in_millis(serde_json::to_value(&report)?))?);
            } else {
                print!("{}", table(&report));
            }
            anyhow::ensure!(report.ok(), "reconciliation found differences (see above)");
            Ok(())
        }
    }
}

/// How long `--repair` waits for another repair of a rollup (the core's
/// healer) before giving up.
const REPAIR_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// One rollup's repair, waiting while another repair of it runs (it is
/// then measured anew: `Store::repair_rollup`).
async fn repair_one(store: &Store, family: Family, step: Resolution, from: u32, to: u32, cutoff: u32) -> Result<()> {
    let deadline = std::time::Instant::now() + REPAIR_WAIT;
    let mut said = false;
    loop {
        match store.repair_rollup(family, step, from, to, cutoff).await {
            Err(e) if e.is_repair_running() && std::time::Instant::now() < deadline => {
                if !std::mem::replace(&mut said, true) {
                    eprintln!("another repair of the {} rollups is running (a core's healer): waiting for it", family.name());
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) if e.is_repair_running() => {
                anyhow::bail!(
                    "another repair of the {} rollups kept running for {} s: nothing was changed by this one; run it again later",
                    family.name(),
                    REPAIR_WAIT.as_secs()
                )
            }
            done => return Ok(done?),
        }
    }
}

/// The report's times (seconds in the library) as the API gives them: ms.
fn in_millis(mut v: serde_json::Value) -> serde_json::Value {
    let ms = |t: &mut serde_json::Value| {
        if let Some(secs) = t.as_u64() {
            *t = (secs * 1000).into();
        }
    };
    ms(&mut v["from"]);
    ms(&mut v["to"]);
    for h in v["hours"].as_array_mut().into_iter().flatten() {
        ms(&mut h["hour"]);
    }
    v
}

/// What was checked, then one line per tenant and hour, then the batches.
fn table(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let families: Vec<&str> = Family::ALL.into_iter().map(Family::name).collect();
    let _ = writeln!(
        out,
        "checked {} to {} (ms {} to {}): rollups against landing ({}), billing against landing, batch manifests against click records",
        format_millis(report.from as u64 * 1000),
        format_millis(report.to as u64 * 1000),
        report.from as u64 * 1000,
        report.to as u64 * 1000,
        families.join(", ")
    );
    if report.hours.is_empty() {
        let _ = writeln!(out, "no clicks, refusals or billing rows in the range");
    } else {
        let _ = writeln!(
            out,
            "{:<20} {:>13} {:<20} {:>12} {:>12} {:>12} {:>16} {:>16} {:>16}  {:<36} status",
            "tenant", "hour (ms)", "hour (UTC)", "landing", "rollup", "billing", "landing spend", "rollup spend", "billing spend", "billing"
        );
    }
    for h in &report.hours {
        let drift: Vec<&str> = h.drift().into_iter().map(Family::name).collect();
        let mut status: Vec<String> = Vec::new();
        if !drift.is_empty() {
            status.push(format!("ROLLUP DRIFT ({})", drift.join(", ")));
        }
        if h.billing_exceeds_landing() {
            status.push("BILLING ABOVE LANDING".into());
        }
        let status = if status.is_empty() { "ok".to_string() } else { status.join("; ") };
        let finality = match (h.is_final, h.held_back_by.as_slice()) {
            (true, _) => "final".to_string(),
            (false, []) => "not final: the finalizer's next pass".to_string(),
            (false, edges) => format!("not final: held back by edge(s) {}", edges.join(", ")),
        };
        let _ = writeln!(
            out,
            "{:<20} {:>13} {:<20} {:>12} {:>12} {:>12} {:>16} {:>16} {:>16}  {finality:<36} {status}",
            h.tenant,
            h.hour as u64 * 1000,
            format_millis(h.hour as u64 * 1000),
            h.landing_clicks,
            h.rollup_clicks,
            h.billing_clicks,
            h.landing_spend_micros,
            h.rollup_spend_micros,
            h.billing_spend_micros
        );
    }
    let _ = writeln!(out, "{} batches checked, {} manifest mismatches", report.batches_checked, report.batch_mismatches.len());
    for m in &report.batch_mismatches {
        let _ = writeln!(out, "  batch {}/{}: manifest {} records, found {}", m.edge, m.seq, m.manifest_records, m.records_found);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::billing::reconcile::HourCheck;

    fn report() -> Report {
        // Rows without clicks agree whatever rollup families there are.
        let hour = |tenant: &str, is_final: bool, held: &[&str], clicks: u64, rollup: u64| HourCheck {
            tenant: tenant.into(),
            hour: 1_800_000_000,
            landing_clicks: clicks,
            rollup_clicks: rollup,
            billing_clicks: clicks as i64,
            is_final,
            held_back_by: held.iter().map(|e| e.to_string()).collect(),
            ..HourCheck::default()
        };
        let hours = vec![hour("a", true, &[], 0, 0), hour("b", false, &["edge-2"], 10, 9), hour("c", false, &[], 0, 0)];
        Report { from: 1_799_996_400, to: 1_800_003_600, hours, ..Report::default() }
    }

    #[test]
    fn the_table_names_families_finality_and_drift() {
        let text = table(&report());
        let lines: Vec<&str> = text.lines().collect();
        for family in Family::ALL {
            assert!(lines[0].contains(family.name()), "{text}");
        }
        assert!(lines[0].contains("ms 1799996400000 to 1800003600000"), "{text}");
        assert!(lines[2].contains("1800000000000") && lines[2].contains(" final ") && lines[2].ends_with(" ok"), "{text}");
        assert!(lines[3].contains("not final: held back by edge(s) edge-2") && lines[3].contains("ROLLUP DRIFT (clicks"), "{text}");
        assert!(lines[4].contains("not final: the finalizer's next pass") && lines[4].ends_with(" ok"), "{text}");
    }

    #[test]
    fn json_times_are_in_ms() {
        let v = in_millis(serde_json::to_value(report()).unwrap());
        assert_eq!(v["from"].as_u64(), Some(1_799_996_400_000));
        assert_eq!(v["to"].as_u64(), Some(1_800_003_600_000));
        assert_eq!(v["hours"][0]["hour"].as_u64(), Some(1_800_000_000_000));
        assert_eq!(v["hours"][1]["final"], false);
    }
}
