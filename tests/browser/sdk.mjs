// Drives a page that uses the edge's click tag (/sdk/tally.js) in Debian's
// chromium for tests/e2e/click_tag.rs: clicks with sendBeacon and with the
// fetch fallback, one click sent twice, a link with data-tally-ad followed,
// and a signed /c/ link decorated with a click id and opened twice.
//
//   TALLY_PAGE=http://edge/sdk/tagged.html TALLY_ARTIFACTS=dir node sdk.mjs

import { launch, report, check } from './chromium.mjs';

const { context, close } = await launch();
try {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(process.env.TALLY_PAGE);
  await page.waitForFunction(() => window.tally !== undefined);
  const sent = await page.evaluate(() => ({
    beacon: [1, 2, 3].map((i) => tally.click({ ad_id: 71, cost_micros: 100, user_id: `u${i}` })),
    fetch: [1, 2].map(() => tally.click({ ad_id: 71, cost_micros: 100 }, 'fetch')),
    twice: [tally.click({ ad_id: 71, cost_micros: 100, click_id: 'same-1' }), tally.click({ ad_id: 71, cost_micros: 100, click_id: 'same-1' })],
  }));
  check(new Set([...sent.beacon, ...sent.fetch]).size === 5, 'each click gets its own id');
  const signed = await page.getAttribute('#signed', 'href');
  check(new URL(signed).searchParams.get('click_id'), `the signed link got a click id: ${signed}`);
  check((await page.getAttribute('#tagged', 'data-tally-decorated')) === 'click', 'the data-tally-ad link is decorated');
  await page.screenshot({ path: `${process.env.TALLY_ARTIFACTS}/tagged-page.png` });
  // Followed: its click goes out as a beacon while the page unloads.
  await Promise.all([page.waitForURL(/landed/), page.click('#tagged')]);
  check((await page.textContent('body')).includes('landed'), 'the data-tally-ad link still navigates');
  // The signed link, opened twice with its one click id: counted once.
  for (let i = 0; i < 2; i++) {
    const r = await page.goto(signed);
    check(r.ok() && page.url().includes('landed'), `the signed link redirects to the landing page (${page.url()})`);
  }
  check(errors.length === 0, `no script errors: ${errors.join('; ')}`);
  report({ step: 'done', sent, signed });
} finally {
  await close();
}
