// Time ranges and steps of the dashboard, without the DOM (pure).
//
// The API buckets by 1s, 1m, 1h or 1d, aligns `from` down and `to` up to the
// step and returns at most 10,000 points; ranked queries (refused reasons,
// dimensions) and filtered counts exist only for steps of a minute or more.

export const STEPS = { '1s': 1, '1m': 60, '1h': 3600, '1d': 86400 };
export const MAX_POINTS = 10000;

/// The step that fits a span: the finest with a readable number of points.
export function autoStep(spanSec) {
  if (spanSec <= 30 * 60) return '1s';
  if (spanSec <= 3 * 86400) return '1m';
  if (spanSec <= 120 * 86400) return '1h';
  return '1d';
}

/// The range to query: `{ from, to }` in ms and its step. A preset is the
/// last `presetSec` seconds before `nowMs`; a custom range is given in ms.
export function resolve({ preset, customFrom, customTo, step }, nowMs) {
  let from, to;
  if (preset === 'custom') {
    from = customFrom; to = customTo;
    if (!Number.isFinite(from) || !Number.isFinite(to)) return { error: 'Pick both a start and an end for the custom range.' };
    if (from >= to) return { error: 'The custom range starts after it ends; pick a start before the end.' };
  } else {
    to = nowMs; from = nowMs - Number(preset) * 1000;
  }
  const chosen = step === 'auto' ? autoStep((to - from) / 1000) : step;
  const s = STEPS[chosen];
  const points = Math.ceil(to / 1000 / s) - Math.floor(from / 1000 / s);
  if (points > MAX_POINTS) return { error: `That range holds ${points.toLocaleString()} points at step ${chosen} (at most ${MAX_POINTS.toLocaleString()}); choose a coarser step.` };
  return { from, to, step: chosen, live: preset !== 'custom' };
}

/// Ranked queries and filtered counts need a step of a minute or more.
export function rankedStep(step) {
  return step === '1s' ? '1m' : step;
}

/// Start (ms) of the first bucket still filling at `nowMs`, or null: its
/// end is after now, so its numbers will still grow.
export function incompleteFrom(points, stepName, nowMs) {
  const last = points[points.length - 1];
  if (!last) return null;
  return last.t + STEPS[stepName] * 1000 > nowMs ? last.t : null;
}

/// Share of decided clicks the filter dropped, in percent (null: none decided).
export function filteredShare(clicks, filtered) {
  const decided = clicks + filtered;
  return decided > 0 ? (100 * filtered) / decided : null;
}

/// Billing as CSV, exact integers: one line per hour and ad, or per hour
/// and campaign (`{ campaign, hours: [{ hour, final, rows }] }`).
export function billingCsv(billing) {
  const byCampaign = billing.campaign !== null;
  const lines = [byCampaign ? 'hour_utc,final,campaign_id,ads,clicks,spend_micros,adjustments,filtered' : 'hour_utc,final,ad_id,clicks,spend_micros,adjustments,filtered'];
  for (const h of billing.hours) {
    const hour = new Date(h.hour).toISOString();
    for (const a of h.rows) {
      const who = byCampaign ? [a.campaign_id, a.ads.join(' ')] : [a.ad_id];
      lines.push([hour, h.final, ...who, a.clicks, a.spend_micros, a.adjustments, a.filtered].join(','));
    }
  }
  return lines.join('\n') + '\n';
}
