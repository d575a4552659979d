/*! Tally click tag, served by the edge at /sdk/tally.js. No dependencies.
 *
 *   <script src="https://EDGE/sdk/tally.js" data-key="ING_KEY" async></script>
 *   tally.click({ ad_id: 42, campaign_id: 7, cost_micros: 1500 })  // -> the click id
 *   <a href="https://shop.example/" data-tally-ad="42" data-tally-cost="1500">  (clicked: recorded)
 *   <a href="https://EDGE/c/...signed link...">  (gets a click id once per page view)
 *
 * Clicks go to POST /v1/beacon/{key} with navigator.sendBeacon (survives
 * leaving the page), or fetch with keepalive where sendBeacon is missing or
 * refuses. Each click carries a fresh click_id that is reused if the same
 * click is sent again, so a retry is counted once. The key is an ingest key:
 * it can only add clicks. Signed /c/ links are made by the tenant's server
 * (`tally link sign`), never here: the secret must not reach a page.
 */
(function () {
  'use strict';
  var script = document.currentScript;
  var base = script ? new URL(script.src, location.href).origin : location.origin;
  var state = { key: script && script.getAttribute('data-key'), endpoint: (script && script.getAttribute('data-endpoint')) || base };

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
  }

  function event(fields) {
    var e = { click_id: fields.click_id || newId(), ad_id: Number(fields.ad_id), ts: Date.now() };
    ['campaign_id', 'cost_micros'].forEach(function (k) { if (fields[k] !== undefined && fields[k] !== null && fields[k] !== '') e[k] = Number(fields[k]); });
    if (fields.user_id) e.user_id = String(fields.user_id);
    return e;
  }

  function send(events, transport) {
    if (!state.key) throw new Error('tally.js: no ingest key (data-key on the script tag, or tally.init({ key }))');
    var url = state.endpoint + '/v1/beacon/' + encodeURIComponent(state.key);
    var body = JSON.stringify(events);
    if (transport !== 'fetch' && navigator.sendBeacon) {
      // text/plain keeps the beacon a simple request (no CORS preflight).
      if (navigator.sendBeacon(url, new Blob([body], { type: 'text/plain' }))) return 'beacon';
    }
    fetch(url, { method: 'POST', body: body, keepalive: true, mode: 'cors', credentials: 'omit' }).catch(function () {});
    return 'fetch';
  }

  /// Records one click; returns its click id. `fields`: ad_id (required),
  /// campaign_id, cost_micros, user_id, click_id; `transport`: 'fetch' to
  /// skip sendBeacon.
  function click(fields, transport) {
    if (!fields || fields.ad_id === undefined) throw new Error('tally.click: ad_id is required');
    var e = event(fields);
    send([e], transport);
    return e.click_id;
  }

  /// Decorates the links under `root`: links with data-tally-ad record a
  /// click when followed; signed /c/ links of this edge get a click id (one
  /// per link and page view, so a double click is counted once).
  function decorate(root) {
    var links = (root || document).querySelectorAll('a[href]');
    Array.prototype.forEach.call(links, function (a) {
      if (a.getAttribute('data-tally-decorated')) return;
      var href = new URL(a.href, location.href);
      if (href.origin === new URL(state.endpoint).origin && href.pathname.indexOf('/c/') === 0 && !href.searchParams.get('click_id')) {
        href.searchParams.set('click_id', newId());
        a.href = href.toString();
        a.setAttribute('data-tally-decorated', 'link');
      } else if (a.hasAttribute('data-tally-ad')) {
        var id = newId();
        a.addEventListener('click', function () {
          click({ ad_id: a.getAttribute('data-tally-ad'), campaign_id: a.getAttribute('data-tally-campaign'), cost_micros: a.getAttribute('data-tally-cost'), click_id: id });
        });
        a.setAttribute('data-tally-decorated', 'click');
      }
    });
  }

  function init(options) {
    if (options && options.key) state.key = options.key;
    if (options && options.endpoint) state.endpoint = options.endpoint.replace(/\/$/, '');
  }

  window.tally = { init: init, click: click, decorate: decorate, send: send };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', function () { decorate(); });
  else decorate();
})();
