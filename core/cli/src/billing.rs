//! `tally billing ...`: operator tools over the billing data.

use anyhow::{Context, Result};

use tally_core::billing::reconcile::reconcile;
use tally_core::clickhouse::store::Family;
use tally_core::clickhouse::Store;
use tally_core::heal;
use tally_core::resolution::Resolution;
use tally_model::timestamp::{format_millis, parse_millis};

#[derive(clap::Subcommand)]
pub enum BillingCommand {
    /// Compare, per tenant and hour, billing with the dashboard rollups and
    /// the landing table (clicks, refused clicks, dimensions), and every
    /// batch's manifest with the records found.
    /// Exits 1 if anything disagrees.
    Reconcile {
        /// ClickHouse HTTP URL.
        #[arg(long, default_value = "http://127.0.0.1:8123")]
        clickhouse_url: String,
        /// Start (ms since the epoch or RFC 3339), aligned down to the hour.
        #[arg(long)]
        from: String,
        /// End, exclusive (ms or RFC 3339).
        #[arg(long)]
        to: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Add to the rollups what the landing table holds and they lack
        /// (whole days around the range), then check again. The finalizing
        /// core does this on its own; run it only while no core heals
        /// (`[billing] finalize = false` everywhere), as two repairs of one
        /// hour at the same moment can both add what is missing.
        #[arg(long)]
        repair: bool,
    },
}

pub async fn run(command: BillingCommand) -> Result<()> {
    match command {
        BillingCommand::Reconcile { clickhouse_url, from, to, json, repair } => {
            let from = parse_millis(&from).map_err(anyhow::Error::msg).context("--from")?;
            let to = parse_millis(&to).map_err(anyhow::Error::msg).context("--to")?;
            let store = Store::connect(&clickhouse_url, None, None).await?;
            let (from, to) = ((from / 1000 / 3600 * 3600) as u32, to.div_ceil(1000) as u32);
            let mut report = reconcile(&store, from, to).await?;
            if repair && !report.ok() {
                // Day buckets are repaired whole, so the range widens to days.
                let (day_from, day_to) = (from / 86_400 * 86_400, to.div_ceil(86_400) * 86_400);
                // Batches committed in the last seconds may still be filling
                // their views: left to a later repair (see tally_core::heal).
                let cutoff = heal::committed_before((tally_model::timestamp::now_ms() / 1000) as u32);
                for family in Family::ALL {
                    for step in Resolution::ROLLUPS {
                        store.repair_rollup(family, step, day_from, day_to, cutoff).await?;
                    }
                }
                eprintln!("repaired the rollups over the days around the range; checking again");
                report = reconcile(&store, from, to).await?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{:<20} {:<20} {:>12} {:>12} {:>12} {:>16} {:>16} {:>16}  status",
                    "tenant", "hour", "landing", "rollup", "billing", "landing spend", "rollup spend", "billing spend"
                );
                for h in &report.hours {
                    let drift: Vec<&str> = h.drift().into_iter().map(Family::name).collect();
                    let mut status: Vec<String> = Vec::new();
                    if !drift.is_empty() {
                        status.push(format!("ROLLUP DRIFT ({})", drift.join(", ")));
                    }
                    if h.billing_exceeds_landing() {
                        status.push("BILLING ABOVE LANDING".into());
                    }
                    let mut status = if status.is_empty() { "ok".to_string() } else { status.join("; ") };
                    status.push_str(&match (h.is_final, h.held_back_by.as_slice()) {
                        (true, _) => ", final".to_string(),
                        (false, []) => ", not final yet (the finalizer marks it at its next pass)".to_string(),
                        (false, edges) => format!(", not final: held back by edge(s) {} (`tally edge list`; retire an edge that is gone)", edges.join(", ")),
                    });
                    println!(
                        "{:<20} {:<20} {:>12} {:>12} {:>12} {:>16} {:>16} {:>16}  {status}",
                        h.tenant,
                        format_millis(h.hour as u64 * 1000),
                        h.landing_clicks,
                        h.rollup_clicks,
                        h.billing_clicks,
                        h.landing_spend_micros,
                        h.rollup_spend_micros,
                        h.billing_spend_micros
                    );
                }
                println!("{} batches checked, {} manifest mismatches", report.batches_checked, report.batch_mismatches.len());
                for m in &report.batch_mismatches {
                    println!("  batch {}/{}: manifest {} records, found {}", m.edge, m.seq, m.manifest_records, m.records_found);
                }
            }
            anyhow::ensure!(report.ok(), "reconciliation found differences (see above)");
            Ok(())
        }
    }
}
