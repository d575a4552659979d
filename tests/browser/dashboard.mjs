// Drives the core's dashboard in Debian's chromium (playwright-core) for
// tests/e2e/dashboard.rs: signed out, signed in (the tiles show all ads; the
// country, device and filter rollout cards), a range picked, a drill-down into an ad and a campaign and back to all ads,
// hover values, empty and error states, 390 px wide. It reports what the page
// shows as JSON lines on stdout (the Rust test compares them with the API),
// and waits for a line on stdin before the error step (the test stops
// ClickHouse meanwhile). Screenshots go to $TALLY_ARTIFACTS.
//
//   TALLY_DASHBOARD=http://core/ TALLY_READ_KEY=... TALLY_ADMIN_KEY=... TALLY_ARTIFACTS=dir node dashboard.mjs

import { launch, report, waitForLine, check } from './chromium.mjs';

const url = process.env.TALLY_DASHBOARD;
const readKey = process.env.TALLY_READ_KEY;
const adminKey = process.env.TALLY_ADMIN_KEY || '';
const artifacts = process.env.TALLY_ARTIFACTS;

const { context, close } = await launch();
try {
  const page = await context.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  const refreshed = async () => Number(await page.evaluate(() => document.body.dataset.refreshed || 0));
  // Waits until a refresh started after `action` has finished.
  async function after(action) {
    const before = await refreshed();
    await action();
    await page.waitForFunction((n) => Number(document.body.dataset.refreshed || 0) > n, before, { timeout: 60000 });
  }
  const shown = () => page.evaluate(() => {
    const rows = (id) => [...document.querySelectorAll(`#${id} tbody tr`)].map((tr) => [...tr.children].map((td) => td.dataset.v ?? td.textContent));
    const tile = (id) => document.getElementById(id).dataset.v;
    const states = Object.fromEntries([...document.querySelectorAll('main [data-state]')].map((c) => [c.id, c.hidden ? 'hidden' : c.dataset.state]));
    const foot = [...document.querySelectorAll('#billing tfoot td')].map((td) => td.dataset.v ?? td.textContent);
    return {
      range: JSON.parse(document.body.dataset.range || 'null'),
      view: document.body.dataset.view,
      title: document.getElementById('chart-title').textContent,
      scope: document.getElementById('t-scope').textContent,
      tiles: { clicks: tile('t-clicks'), spend_micros: tile('t-spend'), users: tile('t-users'), filtered: tile('t-filtered') },
      ads: rows('ads'), campaigns: rows('campaigns'), refused: rows('refused'), billing: rows('billing'), billing_total: foot,
      country: rows('dim-country'), device: rows('dim-device'), rollout: rows('rollout'),
      states, banner: document.getElementById('banner').hidden ? null : document.getElementById('banner').textContent,
      wide: document.documentElement.scrollWidth, charts: document.querySelectorAll('.uplot').length,
    };
  });
  const shot = (name) => page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });

  // Signed out: no key anywhere.
  await page.goto(url);
  await page.waitForSelector('#signin', { state: 'visible' });
  check((await shown()).view === 'signed-out', 'without a key the page shows the sign-in form');
  await shot('1-signed-out');

  // A wrong key is refused and says so.
  await page.fill('#read-key', 'read_wrong');
  await after(() => page.click('#signin-form button'));
  await page.waitForFunction(() => document.body.dataset.view === 'signed-out');
  check((await page.textContent('#signin-msg')).includes('refused'), 'a wrong key is reported as refused');

  // Signed in: the last hour at 1m.
  await page.fill('#read-key', readKey);
  await page.fill('#admin-key', adminKey);
  await after(() => page.click('#signin-form button'));
  await page.waitForSelector('#ads-card[data-state="ready"]');
  let s = await shown();
  check(s.charts === 2, `two charts drawn (found ${s.charts})`);
  report({ step: 'hour', ...s });
  await shot('2-last-hour');

  // The billing CSV, as downloaded.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#csv')]);
  const csv = await new Promise((done, failed) => download.createReadStream().then((stream) => {
    let text = '';
    stream.on('data', (c) => { text += c; }).on('end', () => done(text)).on('error', failed);
  }, failed));
  report({ step: 'csv', name: download.suggestedFilename(), csv });

  // Hover: the legend shows the bucket's values under the cursor.
  await page.locator('#chart-clicks').scrollIntoViewIfNeeded();
  const box = await page.locator('#chart-clicks .u-over').boundingBox();
  await page.mouse.move(box.x + box.width - 3, box.y + box.height / 2);
  const legend = await page.locator('#chart-clicks .u-legend').innerText();
  check(/clicks\s*[\d,]+/.test(legend), `hovering shows the bucket's clicks: ${legend}`);
  report({ step: 'hover', legend });

  // Another range: the last 15 minutes (step 1s), then 7 days (step 1h).
  await after(() => page.selectOption('#preset', '900'));
  report({ step: 'fifteen', ...(await shown()) });
  await after(() => page.selectOption('#preset', '604800'));
  report({ step: 'week', ...(await shown()) });
  await shot('3-week');

  // Drill-down: the second ad of the table.
  await after(() => page.selectOption('#preset', '3600'));
  const second = await page.getAttribute('#ads tbody tr:nth-child(2)', 'data-ad');
  await after(() => page.click(`#ads tbody tr[data-ad="${second}"]`));
  report({ step: 'ad', ad: Number(second), ...(await shown()) });
  if (await page.isVisible('#campaigns-card')) {
    const campaign = await page.getAttribute('#campaigns tbody tr:first-child', 'data-campaign');
    if (campaign) {
      await after(() => page.click(`#campaigns tbody tr[data-campaign="${campaign}"]`));
      report({ step: 'campaign', campaign: Number(campaign), billing_title: await page.textContent('#billing-title'), ...(await shown()) });
      await shot('4-campaign');
      await after(() => page.click('#crumbs a:first-child'));
      report({ step: 'all-again', ...(await shown()) });
    }
  }

  // Narrow: a phone's width, nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await after(() => page.click('#apply'));
  s = await shown();
  check(s.wide <= 390, `at 390 px the page is ${s.wide} px wide`);
  await shot('5-phone');
  await page.setViewportSize({ width: 1280, height: 900 });

  // Empty: a custom range long before any click.
  await page.selectOption('#preset', 'custom');
  await page.fill('#from', '2020-01-01T00:00:00');
  await page.fill('#to', '2020-01-01T06:00:00');
  await after(() => page.click('#apply'));
  report({ step: 'empty', ...(await shown()) });
  await shot('6-empty');

  // Error: the test stops ClickHouse; nothing stale stays on the page.
  await after(() => page.selectOption('#preset', '3600'));
  report({ step: 'before-error', ...(await shown()) });
  await waitForLine();
  await after(() => page.click('#apply'));
  report({ step: 'error', ...(await shown()) });
  await shot('7-storage-down');

  // Signing out clears everything.
  await page.click('#signout');
  report({ step: 'signed-out', ...(await shown()) });
  check(errors.length === 0, `no script errors: ${errors.join('; ')}`);
  report({ step: 'done' });
} finally {
  await close();
}
