// The Tally dashboard: every number comes from the core's API with the
// tenant's read key (an admin key adds the edges' status and the filter
// rollout comparison). No build step: a plain module and uPlot.
//
// Each refresh belongs to a generation; answers of an older one are
// dropped, so a slow answer never paints over a newer range. A card whose
// query fails is emptied and shows the error: no stale number stays under it.

import { resolve, rankedStep, incompleteFrom, filteredShare, billingCsv, STEPS } from './range.js';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 10000;
const state = { read: '', admin: '', campaign: null, ad: null, gen: 0, billing: null, charts: {} };

// ---- formatting ----
const int = (n) => Number(n).toLocaleString('en-US');
// Currency units from micros: 2 decimals, all 6 below one unit (so a small spend is never "0.00").
const money = (micros) => (micros / 1e6).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: micros !== 0 && Math.abs(micros) < 1e6 ? 6 : 2 });
const exactMoney = (micros) => (micros / 1e6).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 6 });
const pct = (p) => (p === null ? '–' : `${p.toFixed(p < 10 ? 1 : 0)} %`);
const time = (ms) => new Date(ms).toLocaleString('en-GB', { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const cell = (v, shown = int(v)) => `<td data-v="${esc(v)}">${esc(shown)}</td>`;

// ---- API ----
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, key) {
  let r;
  try {
    r = await fetch(path, { headers: { Authorization: `Bearer ${key}` }, cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'The core did not answer (network error). Check that it is running; retrying.');
  }
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON: an error page */ }
  if (!r.ok) throw new ApiError(r.status, (body && body.error) || `HTTP ${r.status}`);
  return body;
}

function explain(e) {
  if (e.status === 503 || e.status === 504) return `The core cannot read its storage: ${e.message}. Numbers come back when ClickHouse answers again.`;
  return e.message;
}

// ---- card states ----
function setState(card, st, msg = '') {
  const el = $(card);
  el.dataset.state = st;
  const m = el.querySelector('.state-msg');
  if (m) m.textContent = msg;
}

function clearCard(card) {
  for (const t of $(card).querySelectorAll('tbody, tfoot')) t.innerHTML = '';
}

function fail(card, e) {
  clearCard(card);
  setState(card, 'error', explain(e));
}

// ---- signed in / out ----
function loadKeys() {
  const hash = new URLSearchParams(location.hash.slice(1));
  state.read = hash.get('key') || localStorage.getItem('tallyKey') || '';
  state.admin = hash.get('admin') || sessionStorage.getItem('tallyAdminKey') || '';
}

function signOut(message = '') {
  localStorage.removeItem('tallyKey');
  sessionStorage.removeItem('tallyAdminKey');
  state.read = state.admin = '';
  state.gen++;
  history.replaceState(null, '', location.pathname + location.search);
  for (const card of document.querySelectorAll('main [data-state]')) { clearCard(card.id); setState(card.id, 'loading'); }
  clearTiles();
  destroyCharts();
  $('crumbs').innerHTML = '';
  $('status').textContent = '';
  $('banner').hidden = true;
  $('signin-msg').textContent = message;
  document.body.dataset.view = 'signed-out';
  $('read-key').focus();
}

function signIn(read, admin) {
  state.read = read.trim();
  state.admin = admin.trim();
  localStorage.setItem('tallyKey', state.read);
  if (state.admin) sessionStorage.setItem('tallyAdminKey', state.admin);
  document.body.dataset.view = 'signed-in';
  refresh();
}

// ---- range ----
function localMs(input) {
  return input.value ? new Date(input.value).getTime() : NaN;
}

function currentRange() {
  return resolve({ preset: $('preset').value, customFrom: localMs($('from')), customTo: localMs($('to')), step: $('step').value }, Date.now());
}

const q = (r, step = r.step) => `from=${Math.floor(r.from)}&to=${Math.ceil(r.to)}&step=${step}`;

// ---- refresh ----
async function refresh() {
  if (!state.read) return signOut();
  const gen = ++state.gen;
  const r = currentRange();
  if (r.error) {
    // Nothing shown belongs to the range asked for.
    for (const card of document.querySelectorAll('main [data-state]')) { clearCard(card.id); setState(card.id, 'error', r.error); }
    clearTiles();
    destroyCharts();
    $('banner').textContent = r.error;
    $('banner').hidden = false;
    return;
  }
  $('status').textContent = 'loading…';
  const current = () => gen === state.gen;
  const results = await Promise.allSettled([
    loadAds(r, current),
    loadCampaigns(r, current),
    loadRanked(r, current, 'refused-card', 'refused', '/v1/refused', 'reasons', 'reason'),
    loadRanked(r, current, 'dim-country-card', 'dim-country', '/v1/dimensions/country', 'values', 'value'),
    loadRanked(r, current, 'dim-device-card', 'dim-device', '/v1/dimensions/device', 'values', 'value'),
    loadBilling(r, current),
    loadEdges(current),
    loadRollout(r, current),
  ]);
  if (!current()) return;
  const errors = results.filter((x) => x.status === 'rejected').map((x) => x.reason);
  if (errors.some((e) => e.status === 401 && e.read)) {
    document.body.dataset.refreshed = String(gen);
    return signOut('The read key was refused (unknown or rotated). Paste a current read key.');
  }
  const storage = errors.find((e) => e.status === 0 || e.status >= 500);
  $('banner').hidden = !storage;
  if (storage) $('banner').textContent = explain(storage);
  const bad = errors.find((e) => !(e instanceof ApiError));
  if (bad) console.error(bad);
  const at = new Date().toLocaleTimeString('en-GB');
  $('status').textContent = storage ? `failed at ${at}` : `${time(r.from)} – ${time(r.to)} (${zone}), step ${r.step} · updated ${at}`;
  $('status').className = storage ? 'err' : '';
  // What the page shows, for tests and tools: the range asked and a count of finished refreshes.
  document.body.dataset.range = JSON.stringify({ from: Math.floor(r.from), to: Math.ceil(r.to), step: r.step });
  document.body.dataset.refreshed = String(gen);
}

/// A read-key query; a refused key signs out (the caller rethrows).
async function read(path) {
  try {
    return await api(path, state.read);
  } catch (e) {
    if (e.status === 401) e.read = true;
    throw e;
  }
}

// ---- ads, the drill-down and the charts ----
async function loadAds(r, current) {
  const rank = `from=${Math.floor(r.from)}&to=${Math.ceil(r.to)}&step=${r.step}&limit=10`;
  const path = state.campaign === null ? `/v1/ads?${rank}` : `/v1/campaigns/${state.campaign}/ads?${rank}`;
  // The tiles and the main chart show the tenant's totals until an ad or a
  // campaign is picked: never the top ad's numbers as if they were the tenant's.
  const whole = state.campaign === null && state.ad === null;
  let top, series, tenant;
  try {
    [top, tenant] = await Promise.all([read(path), whole ? read(`/v1/clicks?${q(r)}`) : null]);
    // Users and filtered clicks per ad come from each ad's series (rollups).
    series = await Promise.all(top.ads.map((a) => read(`/v1/ads/${a.ad_id}/clicks?${q(r)}`)));
  } catch (e) {
    if (!current()) return;
    fail('ads-card', e); fail('chart-card', e); setState('tiles', 'error'); clearTiles();
    destroyCharts();
    throw e;
  }
  if (!current()) return;
  renderCrumbs();
  $('ads-title').textContent = state.campaign === null ? 'Top ads' : `Ads of campaign ${campaignName(state.campaign)}`;
  const body = $('ads').tBodies[0];
  body.innerHTML = '';
  if (!top.ads.length) {
    setState('ads-card', 'empty', 'No clicks in this range. Widen the range, or check that edges are sending.');
    setState('chart-card', 'empty', 'No clicks in this range to chart.');
    setScope(scopeName());
    if (tenant) fillTiles(tenant.total, tenant.total_filtered, r.step);
    else fillTiles({ clicks: 0, spend_micros: 0, users: 0 }, 0, r.step);
    setState('tiles', 'ready');
    destroyCharts();
    return;
  }
  const subject = state.ad;
  top.ads.forEach((a, i) => {
    const s = series[i];
    const tr = document.createElement('tr');
    tr.className = 'pick' + (a.ad_id === subject ? ' sel' : '');
    tr.dataset.ad = a.ad_id;
    const share = s.total_filtered === undefined ? null : filteredShare(a.clicks, s.total_filtered);
    // Within a campaign, its ads' users are counted in that campaign.
    tr.innerHTML = cell(a.ad_id, String(a.ad_id)) + cell(a.clicks) + cell(a.spend_micros, money(a.spend_micros)) + cell(a.users ?? s.total.users)
      + (s.total_filtered === undefined ? '<td title="filtered clicks are counted per minute or coarser">–</td>' : cell(s.total_filtered, `${int(s.total_filtered)} (${pct(share)})`));
    tr.onclick = () => { state.ad = a.ad_id; refresh(); };
    body.appendChild(tr);
  });
  setState('ads-card', 'ready');
  // A campaign without a chosen ad charts the whole campaign.
  const chosen = tenant ?? (subject === null ? await read(`/v1/campaigns/${state.campaign}/clicks?${q(r)}`)
    : series[top.ads.findIndex((a) => a.ad_id === subject)] ?? (await read(`/v1/ads/${subject}/clicks?${q(r)}`)));
  if (!current()) return;
  const what = scopeName();
  setScope(what);
  $('chart-title').textContent = `${what}: clicks, users and spend per ${r.step}`;
  fillTiles(chosen.total, chosen.total_filtered, r.step);
  setState('tiles', 'ready');
  setState('chart-card', 'ready');
  drawCharts(chosen, r);
}

function clearTiles() {
  for (const id of ['t-clicks', 't-spend', 't-users', 't-filtered']) { $(id).textContent = ''; $(id).dataset.v = ''; }
  setScope('');
}

/// What the tiles and the main chart show: the tenant, a campaign or an ad.
function scopeName() {
  if (state.ad !== null) return `Ad ${state.ad}`;
  return state.campaign === null ? 'All ads' : `Campaign ${campaignName(state.campaign)}`;
}

function setScope(what) {
  $('t-scope').textContent = what === '' ? '' : what === 'All ads' ? 'Totals of all ads (the whole tenant)' : `Totals of ${what.toLowerCase()}`;
}

function fillTiles(total, filtered, step) {
  const set = (id, v, shown) => { $(id).dataset.v = v; $(id).textContent = shown; };
  set('t-clicks', total.clicks, int(total.clicks));
  set('t-spend', total.spend_micros, money(total.spend_micros));
  set('t-users', total.users, int(total.users));
  if (filtered === undefined || filtered === null) set('t-filtered', '', step === '1s' ? 'per minute or coarser' : 'per ad only');
  else set('t-filtered', filtered, `${int(filtered)} · ${pct(filteredShare(total.clicks, filtered))}`);
}

function renderCrumbs() {
  const nav = $('crumbs');
  nav.innerHTML = '';
  const link = (text, onclick) => { const a = document.createElement('a'); a.textContent = text; a.onclick = onclick; return a; };
  nav.append(link('All ads', () => { state.campaign = null; state.ad = null; refresh(); }));
  if (state.campaign !== null) nav.append(' › ', link(`Campaign ${campaignName(state.campaign)}`, () => { state.ad = null; refresh(); }));
  if (state.ad !== null) nav.append(' › ', `Ad ${state.ad}`);
}

function destroyCharts() {
  for (const c of Object.values(state.charts)) c.plot.destroy();
  state.charts = {};
}

/// Shades the bucket that is still filling (its numbers will grow).
function markIncomplete(fromSec, stepSec) {
  return (u) => {
    if (fromSec === null) return;
    const ctx = u.ctx;
    const x0 = u.valToPos(fromSec, 'x', true);
    const x1 = Math.min(u.valToPos(fromSec + stepSec, 'x', true), u.bbox.left + u.bbox.width);
    ctx.save();
    ctx.fillStyle = 'rgba(255, 193, 7, 0.22)';
    ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
    ctx.fillStyle = '#7a5b00';
    ctx.font = `${11 * devicePixelRatio}px system-ui`;
    ctx.textAlign = 'right';
    ctx.fillText('still filling', x1 - 2, u.bbox.top + 12 * devicePixelRatio);
    ctx.restore();
  };
}

function drawCharts(s, r) {
  const stepSec = STEPS[r.step];
  const xs = s.points.map((p) => p.t / 1000);
  const filling = incompleteFrom(s.points, r.step, Date.now());
  const fillingSec = filling === null ? null : filling / 1000;
  $('chart-note').textContent = (filling === null ? '' : `The shaded last ${r.step} bucket is still filling. `)
    + `Times in ${zone}. Hover a chart for the values of a bucket.` + (s.campaign_id !== undefined && s.total_filtered !== undefined ? " Filtered: the dropped clicks of the campaign's ads that named no other campaign." : s.total_filtered === undefined ? ' Filtered clicks are counted per minute or coarser.' : '');
  const hasFiltered = s.total_filtered !== undefined;
  const counts = [xs, s.points.map((p) => p.clicks), s.points.map((p) => p.users)];
  const countSeries = [
    { label: 'clicks', stroke: '#2a55c4', fill: 'rgba(42,85,196,0.35)', paths: uPlot.paths.bars({ align: 1, size: [1, Infinity], gap: 1 }), points: { show: false }, value: (u, v) => (v == null ? '–' : int(v)) },
    { label: 'users', stroke: '#0f9d58', width: 2, points: { show: false }, value: (u, v) => (v == null ? '–' : int(v)) },
  ];
  if (hasFiltered) {
    counts.push(s.points.map((p) => p.filtered));
    counts.push(s.points.map((p) => filteredShare(p.clicks, p.filtered)));
    countSeries.push({ label: 'filtered', stroke: '#d93025', width: 2, points: { show: false }, value: (u, v) => (v == null ? '–' : int(v)) });
    countSeries.push({ label: 'filtered share', scale: '%', stroke: '#e37400', dash: [4, 3], width: 1.5, points: { show: false }, value: (u, v) => pct(v ?? null) });
  }
  const spend = [xs, s.points.map((p) => p.spend_micros / 1e6)];
  plot('clicks', counts, countSeries, r, stepSec, fillingSec, [
    { label: `clicks per ${r.step}`, scale: 'y', values: (u, v) => v.map((x) => int(x)), size: 60 },
    ...(hasFiltered ? [{ label: 'filtered %', scale: '%', side: 1, grid: { show: false }, values: (u, v) => v.map((x) => `${x}%`), size: 50 }] : []),
  ]);
  plot('spend', spend, [
    { label: 'spend', stroke: '#8e24aa', fill: 'rgba(142,36,170,0.12)', width: 2, points: { show: false }, value: (u, v) => (v == null ? '–' : money(v * 1e6)) },
  ], r, stepSec, fillingSec, [{ label: `spend per ${r.step}`, scale: 'y', values: (u, v) => v.map((x) => money(x * 1e6)), size: 60 }]);
}

function plot(name, data, series, r, stepSec, fillingSec, yAxes) {
  const el = $(`chart-${name}`);
  const signature = JSON.stringify([series.map((x) => x.label), r.step, yAxes.length]);
  const old = state.charts[name];
  const xRange = [Math.floor(r.from / 1000 / stepSec) * stepSec, Math.ceil(r.to / 1000 / stepSec) * stepSec];
  if (old && old.signature === signature) {
    old.filling.value = fillingSec;
    old.plot.setScale('x', { min: xRange[0], max: xRange[1] });
    old.plot.setData(data, false);
    old.plot.setScale('x', { min: xRange[0], max: xRange[1] });
    return;
  }
  if (old) old.plot.destroy();
  const filling = { value: fillingSec };
  const opts = {
    width: Math.max(280, el.clientWidth),
    height: name === 'clicks' ? 240 : 160,
    scales: { x: { time: true, range: () => xRange }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] }, '%': { range: [0, 100] } },
    series: [{ label: 'time', value: (u, v) => (v == null ? '–' : new Date(v * 1000).toLocaleString('en-GB')) }, ...series],
    axes: [{ label: `time (${zone})`, labelSize: 20 }, ...yAxes],
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    // Under the series, so the bars of the filling bucket stay visible.
    hooks: { drawClear: [(u) => markIncomplete(filling.value, stepSec)(u)] },
  };
  state.charts[name] = { plot: new uPlot(opts, data, el), signature, filling };
}

new ResizeObserver(() => {
  for (const [name, c] of Object.entries(state.charts)) c.plot.setSize({ width: Math.max(280, $(`chart-${name}`).clientWidth), height: c.plot.height });
}).observe($('chart-card'));

// ---- campaigns (where the core has them) ----
/// Campaign 0 holds the clicks that named no campaign.
const campaignName = (id) => (id === 0 ? '(none)' : String(id));

async function loadCampaigns(r, current) {
  const card = 'campaigns-card';
  let top, series;
  try {
    top = await read(`/v1/campaigns?from=${Math.floor(r.from)}&to=${Math.ceil(r.to)}&step=${r.step}&limit=10`);
    // Filtered clicks per campaign come from each campaign's series, as per ad.
    series = await Promise.all((top.campaigns || []).map((c) => read(`/v1/campaigns/${c.campaign_id}/clicks?${q(r)}`)));
  } catch (e) {
    if (!current()) return;
    if (e.status === 404) { $(card).hidden = true; return; }
    $(card).hidden = false;
    fail(card, e);
    throw e;
  }
  if (!current()) return;
  $(card).hidden = false;
  const body = $('campaigns').tBodies[0];
  body.innerHTML = '';
  const rows = top.campaigns || [];
  if (!rows.length) return setState(card, 'empty', 'No clicks in this range.');
  rows.forEach((c, i) => {
    const s = series[i];
    const tr = document.createElement('tr');
    tr.className = 'pick' + (c.campaign_id === state.campaign ? ' sel' : '');
    tr.dataset.campaign = c.campaign_id;
    tr.innerHTML = cell(c.campaign_id, campaignName(c.campaign_id)) + cell(c.clicks) + cell(c.spend_micros, money(c.spend_micros)) + cell(c.users)
      + (s.total_filtered === undefined ? '<td title="filtered clicks are counted per minute or coarser">–</td>'
        : cell(s.total_filtered, `${int(s.total_filtered)} (${pct(filteredShare(c.clicks, s.total_filtered))})`));
    tr.onclick = () => { state.campaign = c.campaign_id; state.ad = null; refresh(); };
    body.appendChild(tr);
  });
  setState(card, 'ready');
}

// ---- refused reasons and dimensions ----
async function loadRanked(r, current, card, table, path, field, key) {
  let found;
  try {
    found = await read(`${path}?from=${Math.floor(r.from)}&to=${Math.ceil(r.to)}&step=${rankedStep(r.step)}&limit=20`);
  } catch (e) {
    if (current()) fail(card, e);
    throw e;
  }
  if (!current()) return;
  const rows = found[field];
  const body = $(table).tBodies[0];
  body.innerHTML = '';
  if (!rows.length) {
    const what = card === 'refused-card' ? 'No click was refused in this range.' : 'No click in this range carries this dimension (the tenant\'s filter tags it).';
    return setState(card, 'empty', what);
  }
  const total = rows.reduce((n, x) => n + x.clicks, 0);
  const max = Math.max(...rows.map((x) => x.clicks));
  for (const x of rows) {
    const tr = document.createElement('tr');
    const label = x[key] === '' ? '(empty)' : x[key];
    tr.innerHTML = `<td data-v="${esc(x[key])}">${esc(label)}</td>` + cell(x.clicks)
      + `<td><span class="bar" style="width:${(40 * x.clicks) / max}px"></span>${pct((100 * x.clicks) / total)}</td>`;
    body.appendChild(tr);
  }
  setState(card, 'ready');
}

// ---- billing ----
async function loadBilling(r, current) {
  const card = 'billing-card';
  state.billing = null;
  $('csv').disabled = true;
  // Within a campaign: its hours from the per-campaign billing (exact, never split).
  const campaign = state.campaign;
  const range = `from=${Math.floor(r.from)}&to=${Math.ceil(r.to)}`;
  let b;
  try {
    b = await read(campaign === null ? `/v1/billing?${range}` : `/v1/billing/campaigns?${range}`);
  } catch (e) {
    if (current()) fail(card, e);
    throw e;
  }
  if (!current()) return;
  $('billing-title').textContent = campaign === null ? 'Billing per hour' : `Billing per hour: campaign ${campaignName(campaign)}`;
  const body = $('billing').tBodies[0];
  body.innerHTML = '';
  $('billing').tFoot.innerHTML = '';
  // One row set per hour: the tenant's ads, or the chosen campaign's line.
  const hours = b.hours.map((h) => ({ hour: h.hour, final: h.final, rows: campaign === null ? h.ads : h.campaigns.filter((c) => c.campaign_id === campaign) }))
    .filter((h) => h.rows.length);
  if (!hours.length) return setState(card, 'empty', 'Nothing to bill in these hours.');
  const total = { clicks: 0, spend_micros: 0, adjustments: 0, filtered: 0 };
  for (const h of [...hours].reverse()) {
    const sum = (f) => h.rows.reduce((n, a) => n + a[f], 0);
    for (const f of Object.keys(total)) total[f] += sum(f);
    const tr = document.createElement('tr');
    tr.dataset.hour = h.hour;
    tr.innerHTML = `<td>${esc(time(h.hour))}</td><td><span class="badge${h.final ? ' final' : ''}">${h.final ? 'final' : 'open'}</span></td>`
      + cell(sum('clicks')) + cell(sum('spend_micros'), exactMoney(sum('spend_micros'))) + cell(sum('adjustments')) + cell(sum('filtered'));
    body.appendChild(tr);
  }
  $('billing').tFoot.innerHTML = `<tr><td>total</td><td></td>${cell(total.clicks)}${cell(total.spend_micros, exactMoney(total.spend_micros))}${cell(total.adjustments)}${cell(total.filtered)}</tr>`;
  state.billing = { from: b.from, campaign, hours };
  $('csv').disabled = false;
  setState(card, 'ready');
}

$('csv').onclick = () => {
  if (!state.billing) return;
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([billingCsv(state.billing)], { type: 'text/csv' }));
  const which = state.billing.campaign === null ? '' : `-campaign-${state.billing.campaign}`;
  a.download = `tally-billing${which}-${new Date(state.billing.from).toISOString().slice(0, 13)}h.csv`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
};

// ---- admin: edges and filter rollout ----
async function loadEdges(current) {
  const card = 'edges-card';
  const table = $('edges');
  clearCard(card);
  table.tHead.innerHTML = '';
  if (!state.admin) return setState(card, 'locked', 'Sign in with an admin key as well to see the edges: watermarks, lag and what holds billing finality back.');
  let found;
  try {
    found = await api('/v1/edges', state.admin);
  } catch (e) {
    if (!current()) return;
    if (e.status === 404) { $(card).hidden = true; return; }
    $(card).hidden = false;
    if (e.status === 401 || e.status === 403) return setState(card, 'locked', 'The admin key may not read the edges; sign in with a current admin key.');
    fail(card, e);
    throw e;
  }
  if (!current()) return;
  $(card).hidden = false;
  if (!found.edges.length) return setState(card, 'empty', 'No edge is enrolled or has shipped a batch yet.');
  // The lowest watermark among the edges that count decides which hours are final.
  const holding = found.edges.filter((e) => e.holds_finality && e.watermark_ms !== null);
  const lowest = holding.length ? Math.min(...holding.map((e) => e.watermark_ms)) : null;
  table.tHead.innerHTML = '<tr><th>edge</th><th>status</th><th>watermark</th><th>lag</th><th>unacked batches</th><th>last batch</th></tr>';
  for (const e of found.edges) {
    const status = e.retired ? 'retired' : !e.enrolled ? 'not enrolled' : e.connected ? 'connected' : 'disconnected';
    const holds = e.holds_finality && e.watermark_ms === lowest ? ' <span class="badge">holds finality</span>' : '';
    const tr = document.createElement('tr');
    tr.innerHTML = `<td>${esc(e.edge)}</td><td>${esc(status)}${holds}</td>`
      + (e.watermark_ms === null ? '<td>–</td>' : cell(e.watermark_ms, new Date(e.watermark_ms).toLocaleTimeString('en-GB')))
      + (e.lag_seconds === null ? '<td>–</td>' : cell(e.lag_seconds, `${int(e.lag_seconds)} s`))
      + cell(e.uncommitted_batches)
      + (e.last_batch ? cell(e.last_batch.seq, `#${e.last_batch.seq} at ${new Date(e.last_batch.committed_at_ms).toLocaleTimeString('en-GB')}`) : '<td>none</td>');
    table.tBodies[0].appendChild(tr);
  }
  const note = found.final_before_ms ? `Hours ending by ${time(found.final_before_ms)} are final.` : 'No hour can be final yet: no edge that counts has committed.';
  table.tBodies[0].insertAdjacentHTML('beforeend', `<tr><td colspan="6" class="hint">${esc(note)}</td></tr>`);
  setState(card, 'ready');
}

async function loadRollout(r, current) {
  const card = 'rollout-card';
  clearCard(card);
  if (!state.admin) return setState(card, 'locked', 'Sign in with the tenant\'s admin key as well to compare filter versions in rollout.');
  let found;
  try {
    // The step only bounds the range (the API counts over all of it): the ranked cards' step.
    found = await api(`/v1/plugins/comparison?from=${Math.floor(r.from)}&to=${Math.ceil(r.to)}&step=${rankedStep(r.step)}`, state.admin);
  } catch (e) {
    if (!current()) return;
    if (e.status === 401) return setState(card, 'locked', 'The admin key was refused; sign out and in with a current admin key.');
    fail(card, e);
    throw e;
  }
  if (!current()) return;
  if (!found.versions.length) return setState(card, 'empty', 'No filter version was in shadow or canary in this range.');
  const body = $('rollout').tBodies[0];
  for (const v of found.versions) {
    const tr = document.createElement('tr');
    tr.innerHTML = `<td>v${esc(v.active_version)} → v${esc(v.candidate_version)}</td><td>${esc(v.mode)}</td>` + cell(v.clicks)
      + cell(v.agreement, pct(100 * v.agreement)) + cell(v.applied_candidate) + `<td>${int(v.active_failed)} / ${int(v.candidate_failed)}</td>`;
    body.appendChild(tr);
  }
  setState(card, 'ready');
}

// ---- wiring ----
$('preset').onchange = () => {
  const custom = $('preset').value === 'custom';
  $('custom').hidden = !custom;
  if (custom && !$('from').value) {
    const fmt = (ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60000).toISOString().slice(0, 19);
    $('to').value = fmt(Date.now());
    $('from').value = fmt(Date.now() - 86400e3);
  }
  if (!custom) refresh();
};
$('step').onchange = refresh;
$('range').onsubmit = (e) => { e.preventDefault(); refresh(); };
$('signout').onclick = () => signOut('Signed out.');
$('signin-form').onsubmit = (e) => { e.preventDefault(); signIn($('read-key').value, $('admin-key').value); };
setInterval(() => {
  const r = currentRange();
  if ($('auto').checked && state.read && r.live && !document.hidden) refresh();
}, REFRESH_MS);

loadKeys();
if (state.read) { document.body.dataset.view = 'signed-in'; refresh(); } else signOut();
