/* clickstats tracker: sends search-result clicks and conversions (add to cart, purchase) to a
 * clickstats server. No dependencies.
 *
 *   <script src="CLICKSTATS_SERVER/analytics/tracker.js" data-key="cs_ingest_..."></script>
 *   <script>
 *     window.clickstats = ClickStats.init();  // or init({endpoint, key, ...})
 *     clickstats.trackClick({productId, rank, searchId, variant, query});
 *     clickstats.trackPurchase({productIds, prices, quantities, currency}); // or trackAddToCart
 *   </script>
 *
 * Each event keeps its event_id through every resend (the server counts it once) and waits in
 * localStorage until the server has answered for it, across navigations, closed tabs, crashes.
 * A refused batch (4xx) is dropped, a failed one (5xx, network) retried with backoff, a
 * Retry-After obeyed. See docs/TRACKER.md.
 */
(function (global) {
  "use strict";

  var USER_KEY = "clickstats:user_id";
  var QUEUE_PREFIX = "clickstats:queue:";
  var CLICKED_KEY = "clickstats:clicked";
  var MAX_CLICKED = 200; // clicks remembered for conversions (below)
  // The tag that loaded this file (known only while it runs): the default key and server.
  var script = global.document && global.document.currentScript;
  var DEFAULTS = {
    endpoint: defaultEndpoint(),
    key: (script && script.getAttribute("data-key")) || null, // sent as X-Clickstats-Key
    userId: null,
    flushInterval: 2000, // ms between automatic flushes
    maxBatch: 50, // events per request; a beacon carries at most 64 KiB
    maxQueue: 1000, // oldest events are dropped beyond this
    retryBase: 1000, // first retry delay in ms; doubles up to retryMax
    retryMax: 60000,
    maxAttempts: 10, // failed sends (5xx, network) before an event is dropped
    beaconRetry: 10000, // a beacon is never answered: resend (as a duplicate) after this
    // ms a click's search is kept for its product's conversions (the server's window); 0: never
    attributionWindow: 86400000,
  };

  // /analytics/events beside the script: relative on the page's own origin, else absolute.
  function defaultEndpoint() {
    var fallback = "/analytics/events";
    if (!script || !script.src || typeof global.URL !== "function") return fallback;
    var src = new global.URL(script.src, global.location.href);
    var path = /\/tracker\.js$/.test(src.pathname) ? src.pathname.replace(/tracker\.js$/, "events") : fallback;
    return src.origin === global.location.origin ? path : src.origin + path;
  }

  // Retry-After in ms: delay-seconds or an HTTP date (RFC 9110); null when absent or unreadable.
  function retryAfter(resp) {
    var value = resp.headers.get("Retry-After");
    if (value == null || value.trim() === "") return null;
    var seconds = Number(value);
    if (isFinite(seconds)) return Math.max(0, seconds * 1000);
    var at = Date.parse(value);
    return isNaN(at) ? null : Math.max(0, at - Date.now());
  }

  function uuid() {
    var c = global.crypto;
    if (c && typeof c.randomUUID === "function") return c.randomUUID();
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // localStorage can be missing or throw (private mode, full quota): fall back to memory.
  var memory = {};
  function load(key) {
    try { var v = global.localStorage.getItem(key); if (v !== null) return v; } catch (e) { /* memory */ }
    return memory.hasOwnProperty(key) ? memory[key] : null;
  }
  function store(key, value) {
    memory[key] = value;
    try { global.localStorage.setItem(key, value); } catch (e) { /* kept in memory */ }
  }

  function init(options) {
    var o = {};
    for (var k in DEFAULTS) o[k] = options && options[k] != null ? options[k] : DEFAULTS[k];
    var queueKey = QUEUE_PREFIX + o.endpoint;
    // Another origin: CORS, and no cookies of ours (the key is the credential).
    var crossOrigin = typeof global.URL === "function" &&
      new global.URL(o.endpoint, global.location.href).origin !== global.location.origin;
    var headers = {"Content-Type": "text/plain;charset=UTF-8"}; // a simple type, as sendBeacon's
    if (o.key) headers["X-Clickstats-Key"] = o.key;
    // sendBeacon cannot set headers: ingestion endpoints also read the key from the query.
    var beaconUrl = o.key ? o.endpoint + (o.endpoint.indexOf("?") >= 0 ? "&" : "?") + "key=" + encodeURIComponent(o.key)
      : o.endpoint;
    var holdUntil = 0; // the server asked (Retry-After) not to send before this time
    var warned = {}; // one warning per kind of refusal, not one per batch
    var userId = o.userId || load(USER_KEY);
    if (!userId) { userId = "anon-" + uuid(); store(USER_KEY, userId); }
    var inflight = {}; // event_id -> true while a fetch carries it
    var sending = null;

    // The queue is re-read before every change: another tab may have changed it meanwhile.
    function queue() {
      try { return JSON.parse(load(queueKey) || "[]"); } catch (e) { return []; }
    }
    function save(items) { store(queueKey, JSON.stringify(items.slice(-o.maxQueue))); }
    function update(fn) { var items = queue(); save(fn(items) || items); }
    function due(item, now) { return !inflight[item.event.event_id] && item.retry_at <= now; }

    // A missing id is sent as null (refused), never as "undefined".
    function text(v) { return v == null ? null : String(v); }
    function newEvent(type) {
      return {type: type, event_id: uuid(), user_id: userId, timestamp: new Date().toISOString()};
    }

    function trackClick(click) {
      var event = newEvent("click");
      event.product_id = text(click.productId);
      event.rank = Number(click.rank);
      if (click.searchId != null) event.search_id = String(click.searchId);
      if (click.variant != null) event.variant = String(click.variant);
      if (click.query != null) event.search_query = String(click.query);
      if (click.source != null) event.source = click.source;
      if (event.search_id != null) remember(event.product_id, event.search_id);
      return enqueue(event);
    }

    function enqueue(event) {
      update(function (items) { items.push({event: event, attempts: 0, retry_at: 0}); });
      if (queue().length >= o.maxBatch) flush();
      return event.event_id;
    }

    // [product id, search id, ms] of the last clicks with a search, oldest first: for
    // conversions without searchId (the search holds even if the user id changes at login)
    function clicks() {
      try { var v = JSON.parse(load(CLICKED_KEY)); return Array.isArray(v) ? v : []; } catch (e) { return []; }
    }
    function remember(productId, searchId) {
      var now = Date.now(), w = o.attributionWindow;
      store(CLICKED_KEY, JSON.stringify(clicks().filter(function (c) { return c[0] !== productId && c[2] >= now - w; })
        .concat(w > 0 ? [[productId, searchId, now]] : []).slice(-MAX_CLICKED)));
    }
    function searchOf(productIds) {
      var since = Date.now() - o.attributionWindow;
      var last = clicks().filter(function (c) { return c[2] >= since && productIds.indexOf(c[0]) >= 0; }).pop();
      return last ? last[1] : null;
    }

    // `many`, else [`one`] when given.
    function list(many, one, cast) {
      var v = many != null ? many : one != null ? [one] : undefined;
      return Array.isArray(v) ? v.map(function (x) { return x == null ? null : cast(x); }) : v;
    }

    // Validated by the server: a rejected conversion is dropped with a warning, as a click.
    function trackConversion(c, subtype) {
      c = c || {};
      var event = newEvent("conversion");
      event.subtype = String(subtype || (c.subtype != null ? c.subtype : "conversion"));
      event.product_ids = list(c.productIds, c.productId, String) || [];
      ["price", "quantity", "discount"].forEach(function (one, i) {
        var many = ["prices", "quantities", "discounts"][i], v = list(c[many], c[one], Number);
        if (v !== undefined) event[many] = v;
      });
      if (c.value != null) event.value = Number(c.value);
      if (c.currency != null) event.currency = String(c.currency);
      var searchId = c.searchId != null ? c.searchId : searchOf([].concat(event.product_ids));
      if (searchId != null) event.search_id = String(searchId);
      return enqueue(event);
    }

    function settle(ids, answer) {
      var results = (answer && answer.results) || [];
      var done = {};
      results.forEach(function (r, i) {
        var id = ids[r.index != null ? r.index : i];
        if (r.status === "rejected") console.warn("clickstats: event rejected", id, r.errors);
        done[id] = true;
      });
      remove(done);
    }

    function remove(set) {
      update(function (items) { return items.filter(function (it) { return !set[it.event.event_id]; }); });
    }

    function warnOnce(kind, message) {
      if (warned[kind]) return;
      warned[kind] = true;
      console.warn(message);
    }

    function lookup(ids) {
      var set = {};
      ids.forEach(function (id) { set[id] = true; });
      return set;
    }

    // A 4xx without per-event answers: sending the same batch again would be refused again.
    function refuse(ids, status, answer) {
      var detail = answer && answer.detail != null ? answer.detail : answer;
      detail = typeof detail === "string" ? detail : JSON.stringify(detail);
      warnOnce(status + " " + detail, "clickstats: the server refused events with " + status + ": " + detail +
        " (dropped, not retried)");
      remove(lookup(ids));
    }

    // A failed send (5xx, 408, network): wait retryBase × 2^(failures − 1) ms, at most retryMax;
    // after maxAttempts failures the event is dropped.
    function backoff(ids) {
      var failed = lookup(ids);
      var dropped = 0;
      update(function (items) {
        return items.filter(function (it) {
          if (!failed[it.event.event_id]) return true;
          it.attempts += 1;
          if (it.attempts >= o.maxAttempts) { dropped += 1; return false; }
          it.retry_at = Date.now() + Math.min(o.retryMax, o.retryBase * Math.pow(2, it.attempts - 1));
          return true;
        });
      });
      if (dropped) warnOnce("attempts", "clickstats: dropped " + dropped + " event(s) after " + o.maxAttempts + " failed sends");
    }

    // 429, or 503 with Retry-After: nothing is sent before then; the wait is not a failure.
    function hold(ids, wait) {
      holdUntil = Math.max(holdUntil, Date.now() + wait);
      var held = lookup(ids);
      update(function (items) {
        items.forEach(function (it) { if (held[it.event.event_id]) it.retry_at = Math.max(it.retry_at, holdUntil); });
      });
      global.setTimeout(flush, holdUntil - Date.now() + 10);
    }

    function answered(ids, resp) {
      var status = resp.status;
      var wait = status === 429 || status === 503 ? retryAfter(resp) : null;
      if (wait != null) return hold(ids, wait);
      if (status >= 500 || status === 408 || status === 429) return backoff(ids);
      return resp.json().catch(function () { return null; }).then(function (answer) {
        if (answer && answer.results) return settle(ids, answer); // per event, as 200 and 422 answer
        if (!resp.ok) return refuse(ids, status, answer);
        settle(ids, {results: ids.map(function () { return {}; })});
      });
    }

    // Send what is due by fetch(keepalive); resolves, once answered, to the number still queued.
    // `force` also sends events waiting out a backoff (not a Retry-After, nor while offline).
    function flush(force) {
      if (sending) return sending.then(function () { return flush(force); });
      var now = Date.now();
      // Offline, a send would only fail and use up an attempt; the timer tries again later.
      if (now < holdUntil || (global.navigator && global.navigator.onLine === false)) {
        return Promise.resolve(queue().length);
      }
      var batch = queue().filter(function (it) { return force === true ? !inflight[it.event.event_id] : due(it, now); })
        .slice(0, o.maxBatch);
      if (!batch.length) return Promise.resolve(queue().length);
      if (typeof global.fetch !== "function") { beacon(); return Promise.resolve(queue().length); }
      var ids = batch.map(function (it) { return it.event.event_id; });
      ids.forEach(function (id) { inflight[id] = true; });
      var body = JSON.stringify({events: batch.map(function (it) { return it.event; })});
      sending = global.fetch(o.endpoint, {method: "POST", body: body, keepalive: true, mode: "cors",
        credentials: crossOrigin ? "omit" : "same-origin", headers: headers})
        .then(function (resp) { return answered(ids, resp); }, function () { backoff(ids); })
        .catch(function (err) { console.warn("clickstats: flush failed", err); }) // never stay stuck
        .then(function () {
          ids.forEach(function (id) { delete inflight[id]; });
          sending = null;
          return queue().length;
        });
      return sending;
    }

    // The page is going away: the browser sends a beacon even after it is gone. No answer, so
    // the events stay queued and are resent later (answered "duplicate" if they arrived).
    function beacon() {
      if (!global.navigator || typeof global.navigator.sendBeacon !== "function") return false;
      var now = Date.now();
      // visibilitychange and pagehide both fire on the way out: one beacon is enough.
      var batch = queue().filter(function (it) {
        return !inflight[it.event.event_id] && !(it.beacon_at > now - o.beaconRetry);
      }).slice(0, o.maxBatch);
      if (!batch.length) return false;
      var body = JSON.stringify({events: batch.map(function (it) { return it.event; })});
      if (!global.navigator.sendBeacon(beaconUrl, body)) return false;
      var sent = {};
      batch.forEach(function (it) { sent[it.event.event_id] = true; });
      update(function (items) {
        items.forEach(function (it) {
          if (!sent[it.event.event_id]) return;
          it.beacon_at = now;
          it.retry_at = Math.max(it.retry_at, now + o.beaconRetry);
        });
      });
      return true;
    }

    var timer = global.setInterval(flush, o.flushInterval);
    function onHide() { if (global.document.visibilityState === "hidden") beacon(); }
    global.document.addEventListener("visibilitychange", onHide);
    global.addEventListener("pagehide", beacon);
    flush(); // whatever an earlier page left behind

    return {
      userId: userId,
      endpoint: o.endpoint,
      trackClick: trackClick,
      trackConversion: function (c) { return trackConversion(c); },
      trackAddToCart: function (c) { return trackConversion(c, "add_to_cart"); },
      trackPurchase: function (c) { return trackConversion(c, "purchase"); },
      flush: flush,
      beacon: beacon,
      pending: function () { return queue().map(function (it) { return it.event; }); },
      stop: function () {
        global.clearInterval(timer);
        global.document.removeEventListener("visibilitychange", onHide);
        global.removeEventListener("pagehide", beacon);
      },
    };
  }

  // A new anonymous visitor from the next init() on (the demo's "new visitor" button), whose
  // conversions name none of the last visitor's searches.
  function resetUser() {
    [USER_KEY, CLICKED_KEY].forEach(function (key) {
      delete memory[key];
      try { global.localStorage.removeItem(key); } catch (e) { /* memory only */ }
    });
  }

  global.ClickStats = {init: init, resetUser: resetUser, version: "3"};
})(window);
