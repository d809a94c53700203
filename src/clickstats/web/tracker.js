/* clickstats tracker: sends search-result clicks to a clickstats server. No dependencies.
 *
 *   <script src="CLICKSTATS_SERVER/analytics/tracker.js" data-key="cs_ingest_..."></script>
 *   <script>
 *     window.clickstats = ClickStats.init();  // or init({endpoint, key, ...})
 *     clickstats.trackClick({productId, rank, searchId, variant, query});
 *   </script>
 *
 * Every event gets its event_id when it is created and keeps it through every retry, so the
 * server counts it once however often it is sent. Events wait in localStorage until the server
 * has answered for them: a click followed by a navigation, a closed tab or a crash is sent by
 * the next page that runs the tracker. A refused batch (4xx) is dropped, a failed one (5xx,
 * network) retried with a growing delay up to maxAttempts times, and a 429/503 with Retry-After
 * waits as long as the server asks. See docs/TRACKER.md.
 */
(function (global) {
  "use strict";

  var USER_KEY = "clickstats:user_id";
  var QUEUE_PREFIX = "clickstats:queue:";
  // The tag that loaded this file (only known while it runs): its data-key is the default key,
  // and its URL says where the server is when the page is on another origin.
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
  };

  // Beside the script: /analytics/events of the server that served tracker.js (a relative path
  // on the page's own origin, as before; absolute when the page is elsewhere).
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

    function trackClick(click) {
      var event = {
        type: "click",
        event_id: uuid(),
        user_id: userId,
        product_id: String(click.productId),
        rank: Number(click.rank),
        timestamp: new Date().toISOString(),
      };
      if (click.searchId != null) event.search_id = String(click.searchId);
      if (click.variant != null) event.variant = String(click.variant);
      if (click.query != null) event.search_query = String(click.query);
      if (click.source != null) event.source = click.source;
      update(function (items) { items.push({event: event, attempts: 0, retry_at: 0}); });
      if (queue().length >= o.maxBatch) flush();
      return event.event_id;
    }

    function settle(ids, answer) {
      var results = (answer && answer.results) || [];
      var done = {};
      results.forEach(function (r, i) {
        var id = ids[r.index != null ? r.index : i];
        if (r.status === "rejected") console.warn("clickstats: event rejected", id, r.errors);
        done[id] = true;
      });
      update(function (items) { return items.filter(function (it) { return !done[it.event.event_id]; }); });
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
      var drop = lookup(ids);
      update(function (items) { return items.filter(function (it) { return !drop[it.event.event_id]; }); });
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

    // 429, or 503 with Retry-After: the server is up and says when to come back. Nothing is sent
    // before then, and the wait does not count as a failure.
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

    // Send what is due with fetch(keepalive) and wait for the per-event answer. `force` also
    // sends events that are waiting out a backoff (not a Retry-After, nor while offline).
    // Resolves to the number still queued.
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

    // The page is going away: hand what is queued to the browser, which sends it even after
    // the page is gone. A beacon gets no answer, so the events stay queued and are resent
    // later; the server answers "duplicate" for those that arrived.
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

  // A new anonymous visitor from the next init() on (the demo's "new visitor" button).
  function resetUser() {
    delete memory[USER_KEY];
    try { global.localStorage.removeItem(USER_KEY); } catch (e) { /* memory only */ }
  }

  global.ClickStats = {init: init, resetUser: resetUser, version: "2"};
})(window);
