/* The dashboard: one shell page; the view comes from location.pathname, the period and the
 * variant from the query string. Every figure is read from the JSON API (docs/DASHBOARD.md). */
(function () {
  "use strict";

  var PERIODS = [1, 7, 30, 90];
  var DEFAULT_DAYS = 7;
  var COLORS = ["#2a6df4", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#1098ad", "#5c940d"];
  var GOOD = "#2b8a3e", BAD = "#c92a2a", NEUTRAL = "#868e96";
  // The metric registry (clickstats.metrics), read once from /analytics/metrics: each metric's
  // label, definition (x / y), direction and unit, and which ones the overview shows
  // (`dashboard`), so that a metric added to the registry is labelled and shown here too.
  var METRICS = null;
  function loadMetrics() {
    if (METRICS) return Promise.resolve(METRICS);
    return getJson("/analytics/metrics").then(function (answer) {
      var byName = {};
      answer.metrics.forEach(function (m) { byName[m.name] = m; });
      METRICS = byName;
      return METRICS;
    });
  }
  // The dashboard metrics that the page shows nowhere (those added to the registry after the
  // page was written: no card, column or table of their own) and that the answer's figures
  // (`figures`, one row) carry: each gets a column of `table` (and, on the overview, a card).
  function addedMetrics(table, figures) {
    return Object.keys(METRICS || {}).filter(function (name) {
      return METRICS[name].dashboard && figures && name in figures &&
        !view.querySelector('[data-metric="' + name + '"]');
    });
  }
  function addColumns(table, names) {
    var head = table.querySelector("thead tr");
    names.forEach(function (name) {
      var th = document.createElement("th");
      th.scope = "col";
      th.dataset.metric = name;
      th.textContent = spec(name).label;
      head.appendChild(th);
    });
    defineMetrics(head);
  }
  function spec(name) {
    return (METRICS && METRICS[name]) || {label: name, x: "x", y: "y", higher_is_better: true, percent: false};
  }
  // One line per metric, shown on hover wherever the metric is named.
  function definition(name) {
    var m = spec(name);
    return m.label + ": " + m.x + " / " + m.y + " (" + (m.percent ? "shown as a percentage; " : "") +
      (m.higher_is_better ? "higher" : "lower") + " is better)";
  }
  function defineMetrics(root) {
    root.querySelectorAll("[data-metric]").forEach(function (el) {
      el.title = definition(el.dataset.metric);
      el.classList.add("defined");
    });
  }

  var $ = function (id) { return document.getElementById(id); };
  var view = $("view");
  var status = $("status");
  var tz = (window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone) || "UTC";
  var charts = [];
  var renderCount = 0;
  var knownVariants = {};

  // -- formatting ------------------------------------------------------------------------------
  var integer = new Intl.NumberFormat("en");
  function count(n) { return n == null ? "–" : integer.format(n); }
  function percent(x, digits) {
    return x == null ? "–" : (100 * x).toFixed(digits == null ? 1 : digits) + "%";
  }
  function signedPercent(x) { return x == null ? "–" : (x > 0 ? "+" : "") + percent(x); }
  // A difference of two rates is in percentage points: 60.4% against 57.3% is +3.1 pp.
  function points(x) { return x == null ? "–" : (x > 0 ? "+" : "") + (100 * x).toFixed(1) + "\u00a0pp"; }
  // "1 user", "2 users", "1,500 searches".
  function plural(n, one, many) { return count(n) + " " + (n === 1 ? one : many || one + "s"); }
  function decimal(x, digits) { return x == null ? "–" : x.toFixed(digits == null ? 2 : digits); }
  function ms(x) {
    if (x == null) return "–";
    if (x >= 1000) return (x / 1000).toFixed(2) + " s";
    return x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0) + " ms";
  }
  // An amount in one currency, "1,234.50\u00a0EUR" (amounts in two currencies are never added).
  var cents = new Intl.NumberFormat("en", {minimumFractionDigits: 2, maximumFractionDigits: 2});
  function money(x, currency) { return x == null || !currency ? "–" : cents.format(x) + "\u00a0" + currency; }
  function signedMoney(x, currency) {
    if (x == null || !currency) return "–";
    return (x > 0 ? "+" : x < 0 ? "-" : "") + money(Math.abs(x), currency);
  }
  // The conversions sent without a currency (add to carts, usually) have no amount.
  function currencyName(code) { return code || "no currency"; }
  function pNumber(p) { return p == null ? "–" : p < 0.0001 ? "< 0.0001" : p.toFixed(4); }
  function pValue(p) { return p == null ? "p –" : (p < 0.0001 ? "p " : "p = ") + pNumber(p); }
  function latencyEdge(x) { return x >= 1000 ? x / 1000 + " s" : x + " ms"; }
  function latencyBucket(b) {
    if (b.to_ms == null) return "≥ " + latencyEdge(b.from_ms);
    var unit = b.to_ms > 1000 ? 1000 : 1;
    return b.from_ms / unit + "–" + latencyEdge(b.to_ms);
  }
  function isMs(name) { return /_ms$/.test(name); }
  // An amount in the analysis currency (revenue): the registry's `currency` flag.
  function isMoney(name) { return spec(name).currency === true; }
  // A metric's value in its unit; `currency`: that of an amount (revenue per search...).
  function metricValue(name, x, currency) {
    if (isMoney(name) && currency) return money(x, currency);
    return spec(name).percent ? percent(x) : isMs(name) ? ms(x) : decimal(x, 3);
  }
  // The absolute difference of a metric and its interval, in one unit: percentage points for a
  // rate, milliseconds for a time (with as many decimals as the widest end needs), the currency
  // for an amount.
  function difference(name, c, currency) {
    var values = [c.absolute].concat(c.absolute_ci || []);
    var widest = Math.max.apply(null, values.map(function (x) { return Math.abs(x || 0); }));
    var format = spec(name).percent ? points : isMoney(name) && currency ? function (x) {
      return signedMoney(x, currency);
    } : function (x) {
      if (x == null) return "–";
      var sign = x > 0 ? "+" : x < 0 ? "-" : "";
      if (!isMs(name)) return sign + decimal(Math.abs(x), 3);
      return sign + integer.format(Number(Math.abs(x).toFixed(widest >= 100 ? 0 : widest >= 10 ? 1 : 2))) + "\u00a0ms";
    };
    return format(c.absolute) + (c.absolute_ci ? " [" + format(c.absolute_ci[0]) + ", " + format(c.absolute_ci[1]) + "]" : "");
  }
  function localTime(iso) {
    if (!iso) return "–";
    return new Date(iso).toLocaleString("en", {timeZone: tz, dateStyle: "medium", timeStyle: "short"});
  }
  function dayLabel(day) {
    // "2026-11-21" is a local calendar day already: format it without shifting it.
    var parts = day.split("-").map(Number);
    return new Date(Date.UTC(parts[0], parts[1] - 1, parts[2]))
      .toLocaleDateString("en", {timeZone: "UTC", month: "short", day: "numeric"});
  }
  // Every rank from 1 to the deepest clicked one, so that a rank without clicks shows as 0.
  function rankKeys(byRank) {
    var deepest = Math.max.apply(null, [0].concat(Object.keys(byRank || {}).map(Number)));
    var keys = [];
    for (var rank = 1; rank <= deepest; rank++) keys.push(String(rank));
    return keys;
  }

  // -- state in the URL ------------------------------------------------------------------------
  function params() { return new URLSearchParams(location.search); }
  function days() {
    var n = Number(params().get("days"));
    return PERIODS.indexOf(n) >= 0 ? n : DEFAULT_DAYS;
  }
  function variant() { return params().get("variant") || ""; }
  function currency() { return params().get("currency") || ""; }
  function setParam(name, value) {
    var p = params();
    if (value === "" || value == null) p.delete(name); else p.set(name, String(value));
    var query = p.toString();
    history.pushState(null, "", location.pathname + (query ? "?" + query : ""));
    render();
  }
  function withPeriod(path) {
    var p = new URLSearchParams();
    if (params().get("days")) p.set("days", String(days()));
    if (currency() && !/\/users\//.test(path)) p.set("currency", currency());
    var query = p.toString();
    return path + (query ? "?" + query : "");
  }
  function api(path, query) {
    var p = new URLSearchParams();
    Object.keys(query).forEach(function (k) {
      if (query[k] !== "" && query[k] != null) p.set(k, String(query[k]));
    });
    return getJson(path + "?" + p.toString());
  }
  // -- the API key ------------------------------------------------------------------------------
  // With keys on, every request for figures carries a read key. It lives in sessionStorage
  // (this tab, until it is closed; in memory where storage is refused), never in the URL.
  var KEY_STORE = "clickstats:key";
  var memoryKey = null;
  function apiKey() {
    try { return sessionStorage.getItem(KEY_STORE); } catch (e) { return memoryKey; }
  }
  function setApiKey(key) {
    memoryKey = key;
    try {
      if (key) sessionStorage.setItem(KEY_STORE, key); else sessionStorage.removeItem(KEY_STORE);
    } catch (e) { /* memory only */ }
    $("forget-key").hidden = !key;
  }
  // The key form replaces the figures until a key is given; one form however many requests failed.
  function askForKey(why) {
    destroyCharts();
    view.textContent = "";
    $("key-why").textContent = why;
    $("key-form").hidden = false;
    document.body.dataset.state = "key";
    say("");
    $("api-key").focus();
  }
  function keyRefused(err) {
    var detail = err.detail ? " (the server said: " + err.detail + ")" : "";
    if (err.status === 401) {
      // A key that was sent and refused (revoked, mistyped) is forgotten: it cannot work.
      if (err.sentKey) setApiKey(null);
      return askForKey(err.sentKey
        ? "The key was not accepted" + detail + ". Enter another read key."
        : "Its figures can only be read with a key" + detail + ". Enter a read key to continue.");
    }
    // 403: a valid key of the wrong kind (an ingest key) or a request refused for its origin.
    var why = "The server refused to show these figures" + detail + ". " + (err.sentKey
      ? "The key in use may not read them: the dashboard needs a read or admin key."
      : "Open the dashboard from the server's own address.");
    if (err.sentKey) return askForKey(why);
    say(why, true);
    document.body.dataset.state = "error";
  }

  function getJson(url) {
    var headers = {Accept: "application/json"};
    var key = apiKey();
    if (key) headers["X-Clickstats-Key"] = key;
    return fetch(url, {headers: headers}).then(function (r) {
      if (r.status === 401 || r.status === 403) {
        return r.json().catch(function () { return null; }).then(function (body) {
          var err = new Error(url.split("?")[0] + " answered " + r.status);
          err.status = r.status;
          err.detail = body && typeof body.detail === "string" ? body.detail : "";
          err.sentKey = Boolean(key);
          throw err;
        });
      }
      if (!r.ok) {
        return r.text().then(function (body) {
          throw new Error(url.split("?")[0] + " answered " + r.status + ": " + body.slice(0, 300));
        });
      }
      return r.json();
    });
  }

  function route() {
    var path = location.pathname.replace(/\/+$/, "") || "/";
    if (path === "/" || path === "/dashboard") return {page: "overview"};
    if (path === "/dashboard/queries") return {page: "queries"};
    if (path === "/dashboard/experiments") return {page: "experiments"};
    var user = path.match(/^\/dashboard\/users\/(.+)$/);
    if (user) return {page: "user", userId: decodeURIComponent(user[1])};
    return {page: "missing"};
  }

  // -- DOM helpers -----------------------------------------------------------------------------
  function mount(templateId) {
    destroyCharts();
    view.textContent = "";
    view.appendChild($(templateId).content.cloneNode(true));
    defineMetrics(view);
  }
  function insert(templateId, into) {
    into.appendChild($(templateId).content.cloneNode(true));
    defineMetrics(into);
  }
  function cell(row, content, className) {
    var td = row.insertCell();
    if (content instanceof Node) td.appendChild(content); else td.textContent = content;
    if (className) td.className = className;
    return td;
  }
  function fillTable(id, rows, columns, empty) {
    var body = document.querySelector("#" + id + " tbody");
    body.textContent = "";
    if (!rows.length) {
      var row = body.insertRow();
      var td = cell(row, empty || "Nothing in this period.", "empty");
      td.colSpan = columns.length;
      return;
    }
    rows.forEach(function (item) {
      var row = body.insertRow();
      columns.forEach(function (column) { cell(row, column(item)); });
    });
  }
  function link(href, text) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }
  function setKpis(container, values) {
    container.querySelectorAll("[data-kpi]").forEach(function (dd) {
      var key = dd.dataset.kpi;
      if (key in values) dd.textContent = values[key];
    });
  }
  function say(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  // -- charts ----------------------------------------------------------------------------------
  function destroyCharts() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
  }
  function chart(id, config) {
    config.options = Object.assign({responsive: true, maintainAspectRatio: false, animation: false},
      config.options || {});
    var c = new Chart($(id), config);
    charts.push(c);
    return c;
  }
  function color(name, index) {
    if (!(name in knownVariants)) knownVariants[name] = Object.keys(knownVariants).length;
    return COLORS[(index == null ? knownVariants[name] : index) % COLORS.length];
  }
  function lineChart(id, labels, series, valueFormat) {
    return chart(id, {
      type: "line",
      data: {
        labels: labels,
        datasets: series.map(function (s) {
          return {label: s.name, data: s.data, borderColor: color(s.name), backgroundColor: color(s.name),
            cubicInterpolationMode: "monotone", pointRadius: labels.length > 40 ? 0 : 2, spanGaps: false};
        }),
      },
      options: {
        interaction: {mode: "index", intersect: false},
        scales: {y: {beginAtZero: true, ticks: {callback: valueFormat}}},
        plugins: {tooltip: {callbacks: {label: function (ctx) {
          return ctx.dataset.label + ": " + (valueFormat ? valueFormat(ctx.parsed.y) : ctx.parsed.y);
        }}}},
      },
    });
  }
  function barChart(id, labels, values, label, options) {
    return chart(id, {
      type: "bar",
      data: {labels: labels, datasets: [{label: label, data: values, backgroundColor: COLORS[0]}]},
      options: Object.assign({plugins: {legend: {display: false}}, scales: {y: {beginAtZero: true}}},
        options || {}),
    });
  }
  // A vertical line at x = `at` across the chart area: the "no change" mark of an interval chart.
  function referenceLine(at) {
    return {
      id: "reference",
      afterDatasetsDraw: function (c) {
        var x = c.scales.x.getPixelForValue(at), area = c.chartArea, ctx = c.ctx;
        ctx.save();
        ctx.strokeStyle = "#1d1d1f";
        ctx.setLineDash([4, 3]);
        ctx.beginPath();
        ctx.moveTo(x, area.top);
        ctx.lineTo(x, area.bottom);
        ctx.stroke();
        ctx.restore();
      },
    };
  }
  // Horizontal floating bars [low, high] with a dot at the estimate.
  function intervalChart(id, rows, at, format, tick) {
    return chart(id, {
      type: "bar",
      data: {
        labels: rows.map(function (r) { return r.label; }),
        datasets: [
          {type: "bar", label: "95% confidence interval", data: rows.map(function (r) { return [r.low, r.high]; }),
            backgroundColor: rows.map(function (r) { return r.color + "66"; }),
            borderColor: rows.map(function (r) { return r.color; }), borderWidth: 1, barPercentage: 0.5},
          {type: "line", label: "estimate", data: rows.map(function (r) { return r.estimate; }),
            showLine: false, pointRadius: 5, pointBackgroundColor: rows.map(function (r) { return r.color; }),
            borderColor: "#1d1d1f"},
        ],
      },
      options: {
        indexAxis: "y",
        scales: {x: {ticks: {callback: tick || format}}},
        plugins: {
          legend: {display: false},
          tooltip: {callbacks: {label: function (ctx) {
            var r = rows[ctx.dataIndex];
            return "estimate " + format(r.estimate) + ", 95% CI " + format(r.low) + " to " + format(r.high);
          }}},
        },
      },
      plugins: [referenceLine(at)],
    });
  }
  function percentTick(value) { return percent(value, 0); }

  // -- overview --------------------------------------------------------------------------------
  // The answer of every variant first: its currency (the one asked for, else that of most
  // purchases) is the page's, so that a variant's figures are in the currency of the table of
  // every variant.
  function overviews() {
    return api("/analytics/overview", {days: days(), tz: tz, currency: currency()}).then(function (all) {
      if (!variant()) return [all, all];
      return api("/analytics/overview", {days: days(), variant: variant(), tz: tz, currency: all.currency})
        .then(function (data) { return [data, all]; });
    });
  }
  function overview(ticket) {
    mount("overview-page");
    return overviews().then(function (answers) {
      if (ticket !== renderCount) return;
      var data = answers[0], all = answers[1];
      setVariantOptions(Object.keys(all.by_variant));
      setCurrencyOptions(all.conversions.currencies, all.currency);
      var empty = all.totals.searches === 0 && Object.keys(all.by_variant).length === 0;
      view.querySelector(".onboarding").hidden = !empty;
      view.querySelector(".filled").hidden = empty;
      if (empty) return onboarding();
      var t = data.totals, cur = data.currency;
      nameCurrency(cur);
      var table = $("variants-table");
      var added = addedMetrics(table, t);
      addColumns(table, added);
      var kpis = view.querySelector(".kpis");
      var values = {
        searches: count(t.searches), users: count(t.users), search_ctr: percent(t.search_ctr),
        avg_click_position: decimal(t.avg_click_position), zero_result_rate: percent(t.zero_result_rate),
        p95_response_ms: ms(t.p95_response_ms), conversion_rate: percent(t.conversion_rate),
        revenue_per_search: money(t.revenue_per_search, cur),
      };
      added.forEach(function (name) {
        var div = document.createElement("div"), dt = document.createElement("dt"), dd = document.createElement("dd");
        dt.dataset.metric = name;
        dt.textContent = spec(name).label.charAt(0).toUpperCase() + spec(name).label.slice(1);
        dd.dataset.kpi = name;
        div.appendChild(dt);
        div.appendChild(dd);
        kpis.appendChild(div);
        values[name] = metricValue(name, t[name], cur);
      });
      defineMetrics(kpis);
      setKpis(view, values);
      var labels = data.daily.days.map(dayLabel);
      var names = Object.keys(data.daily.by_variant).sort();
      lineChart("chart-daily-searches", labels, names.map(function (name) {
        return {name: name, data: data.daily.by_variant[name].map(function (d) { return d.searches; })};
      }));
      lineChart("chart-daily-ctr", labels, names.map(function (name) {
        return {name: name, data: data.daily.by_variant[name].map(function (d) { return d.search_ctr; })};
      }), percentTick);
      lineChart("chart-daily-conversion", labels, names.map(function (name) {
        return {name: name, data: data.daily.by_variant[name].map(function (d) { return d.conversion_rate; })};
      }), percentTick);
      revenueChart(data, labels);
      var ranks = rankKeys(data.clicks_by_rank);
      barChart("chart-ranks", ranks, ranks.map(function (r) { return data.clicks_by_rank[r] || 0; }), "clicks",
        {scales: {x: {title: {display: true, text: "rank"}}, y: {beginAtZero: true}}});
      var buckets = trimHistogram(data.latency_histogram);
      barChart("chart-latency", buckets.map(latencyBucket), buckets.map(function (b) { return b.count; }), "searches",
      {scales: {x: {title: {display: true, text: "response time"}}, y: {beginAtZero: true}}});
      var rows = Object.keys(all.by_variant).sort().map(function (name) {
        return Object.assign({name: name}, all.by_variant[name]);
      });
      fillTable("variants-table", rows, [
        function (v) { return v.name; }, function (v) { return count(v.searches); },
        function (v) { return count(v.users); }, function (v) { return count(v.clicks); },
        function (v) { return percent(v.search_ctr); }, function (v) { return decimal(v.clicks_per_search); },
        function (v) { return decimal(v.avg_click_position); },
        function (v) { return percent(v.zero_result_rate); }, function (v) { return percent(v.abandonment_rate); },
        function (v) { return ms(v.avg_response_ms); }, function (v) { return ms(v.p95_response_ms); },
        function (v) { return percent(v.conversion_rate); },
        function (v) { return money(v.revenue_per_search, cur); },
      ].concat(added.map(function (name) { return function (v) { return metricValue(name, v[name], cur); }; })));
      conversionTables(data.conversions, all.conversions, cur);
      fillTable("actions-table", data.actions || [], [function (a) { return a.name; },
        function (a) { return count(a.events); }, function (a) { return count(a.users); },
        function (a) { return count(a.products); }], "No other action in this period.");
    });
  }
  // The page's currency in the sentences and headings that name it.
  function nameCurrency(cur) {
    view.querySelectorAll(".currency-name").forEach(function (el) {
      el.textContent = cur ? cur : "one currency (no purchase in this period has one)";
    });
    view.querySelectorAll(".currency-suffix").forEach(function (el) { el.textContent = cur ? " (" + cur + ")" : ""; });
  }
  // Revenue per day in the page's currency, a bar per day stacked by the variant of the search
  // each purchase is attributed to (and those attributed to none): a bar's height is the day's
  // revenue.
  function revenueChart(data, labels) {
    var cur = data.currency, series = cur && data.conversions.revenue_by_day[cur];
    var section = data.conversions.by_currency[cur] || {};
    if (!series) {
      $("chart-revenue").parentNode.replaceWith(paragraph(cur
        ? "No purchase in " + cur + " in this period."
        : "No purchase in this period: revenue appears once purchases are sent (trackPurchase).", "muted"));
      $("revenue-note").hidden = true;
      return;
    }
    var sets = Object.keys(series.by_variant).sort().map(function (name) {
      return {label: name, data: series.by_variant[name], backgroundColor: color(name)};
    });
    var unattributed = series.unattributed.reduce(function (a, b) { return a + b; }, 0);
    if (unattributed) sets.push({label: "no search", data: series.unattributed, backgroundColor: NEUTRAL});
    chart("chart-revenue", {
      type: "bar",
      data: {labels: labels, datasets: sets},
      options: {
        interaction: {mode: "index", intersect: false},
        scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true,
          ticks: {callback: function (v) { return integer.format(v); }}}},
        plugins: {tooltip: {callbacks: {label: function (ctx) {
          return ctx.dataset.label + ": " + money(ctx.parsed.y, cur);
        }}}},
      },
    });
    $("revenue-note").textContent = "By the day of the purchase: " + money(section.revenue, cur) + " in " +
      plural(section.purchases, "purchase") + " in this period" + (unattributed
        ? ", of which " + money(unattributed, cur) + " attributed to no search (grey)." : ".");
  }
  // Per currency, then per variant and currency: never an amount added across currencies.
  function conversionTables(c, all, cur) {
    var code = function (f) { return currencyName(f.currency); };
    var amount = function (key) { return function (f) { return money(f[key], f.currency); }; };
    var rows = Object.keys(c.by_currency).map(function (k) { return c.by_currency[k]; });
    fillTable("currencies-table", rows, [code, function (f) { return count(f.conversions); },
      function (f) { return count(f.add_to_carts); }, function (f) { return count(f.purchases); },
      amount("revenue"), amount("average_order_value"), function (f) { return count(f.units); },
      function (f) { return count(f.attributed) + "\u00a0of\u00a0" + count(f.conversions); },
      amount("search_revenue"), amount("revenue_per_search")], "No conversion in this period.");
    document.querySelectorAll("#currencies-table tbody tr").forEach(function (tr, i) {
      if (rows[i] && rows[i].currency && rows[i].currency === cur) tr.classList.add("chosen");
    });
    var pairs = [];
    Object.keys(all.by_variant).sort().forEach(function (name) {
      Object.keys(all.by_variant[name]).forEach(function (k) {
        pairs.push(Object.assign({variant: name}, all.by_variant[name][k]));
      });
    });
    fillTable("variant-currencies-table", pairs, [function (f) { return f.variant; }, code,
      function (f) { return count(f.conversions); }, function (f) { return count(f.add_to_carts); },
      function (f) { return count(f.purchases); }, amount("revenue"), amount("average_order_value"),
      amount("search_revenue"), amount("revenue_per_search")], "No conversion attributed to a search in this period.");
  }
  // From 0 ms to one bucket past the slowest search (at least the first five buckets, for scale):
  // the empty buckets beyond say nothing.
  function trimHistogram(buckets) {
    var last = 0;
    buckets.forEach(function (b, i) { if (b.count) last = i; });
    return buckets.slice(0, Math.min(buckets.length, Math.max(last + 2, 5)));
  }
  function onboarding() {
    var origin = location.origin;
    // With keys on, the page's key is a read key: the tracker and curl need an ingest key.
    var keyed = Boolean(apiKey());
    $("snippet").textContent =
      '<script src="' + origin + '/analytics/tracker.js"' + (keyed ? ' data-key="cs_ingest_…"' : "") + "></script>\n" +
      "<script>\n" +
      '  window.clickstats = ClickStats.init({endpoint: "' + origin + '/analytics/events"});\n' +
      "  // on each result click:\n" +
      "  // clickstats.trackClick({productId, rank, searchId, variant, query});\n" +
      "</script>";
    $("curl").textContent =
      "curl -s -H 'Content-Type: application/json' -H 'X-User-ID: user-42' " +
      (keyed ? "-H 'X-Clickstats-Key: cs_ingest_…' " : "") +
      "-d '{\"query\": \"running shoes\", \"variant\": \"search_v1\", \"results_count\": 3, " +
      "\"response_time_ms\": 42.5, \"results\": [\"sku-1\", \"sku-2\", \"sku-3\"]}' " +
      origin + "/analytics/log-impression";
    $("simulate").textContent = "clickstats simulate --server " + origin + (keyed ? " --key cs_ingest_…" : "");
  }
  // The currencies of the period's purchases, the page's chosen; hidden without any.
  function setCurrencyOptions(codes, chosen) {
    var select = $("currency");
    var all = codes.slice();
    if (chosen && all.indexOf(chosen) < 0) all.push(chosen);
    select.textContent = "";
    all.forEach(function (code) { select.appendChild(new Option(code, code)); });
    select.value = chosen || "";
    document.querySelector(".currency-filter").hidden = !all.length;
  }
  function setVariantOptions(names) {
    var select = $("variant");
    var chosen = variant();
    var all = names.slice();
    if (chosen && all.indexOf(chosen) < 0) all.push(chosen);
    all.sort();
    select.textContent = "";
    select.appendChild(new Option("all variants", ""));
    all.forEach(function (name) { color(name); select.appendChild(new Option(name, name)); });
    select.value = chosen;
  }

  // -- queries ---------------------------------------------------------------------------------
  function queries(ticket) {
    mount("queries-page");
    // The overview of every variant first: the variants, and the currency of the overview.
    return api("/analytics/overview", {days: days(), tz: tz, currency: currency()}).then(function (all) {
      return api("/analytics/queries", {days: days(), variant: variant(), limit: 20, tz: tz, currency: all.currency})
        .then(function (data) { return [data, all]; });
    }).then(function (answers) {
      if (ticket !== renderCount) return;
      var data = answers[0], cur = data.currency;
      setVariantOptions(Object.keys(answers[1].by_variant));
      setCurrencyOptions(answers[1].conversions.currencies, cur);
      nameCurrency(cur);
      var q = function (item) { return item.query; };
      var added = addedMetrics($("top-queries"), data.top_queries[0]);
      addColumns($("top-queries"), added);
      fillTable("top-queries", data.top_queries, [q,
        function (i) { return count(i.searches); }, function (i) { return count(i.users); },
        function (i) { return percent(i.search_ctr); }, function (i) { return decimal(i.avg_click_position); },
        function (i) { return percent(i.zero_result_rate); }
      ].concat(added.map(function (name) { return function (i) { return metricValue(name, i[name], cur); }; })));
      fillTable("zero-result-queries", data.zero_result_queries, [q,
        function (i) { return count(i.searches); }, function (i) { return count(i.zero_results); },
        function (i) { return percent(i.zero_result_rate); }], "Every query found something.");
      fillTable("no-click-queries", data.no_click_queries, [q,
        function (i) { return count(i.searches); }, function (i) { return count(i.no_click_searches); },
        function (i) { return percent(i.search_ctr); }], "Every query got a click.");
      fillTable("revenue-queries", data.revenue_queries, [q,
        function (i) { return count(i.searches); },
        function (i) { return percent(i.conversion_rate); }, function (i) { return money(i.revenue, cur); },
        function (i) { return money(i.revenue_per_search, cur); }],
        cur ? "No query earned revenue in " + cur + " in this period." : "No purchase in this period.");
      fillTable("unconverted-queries", data.unconverted_queries, [q,
        function (i) { return count(i.clicks); }, function (i) { return count(i.unconverted_clicks); },
        function (i) { return count(i.converted_searches); }, function (i) { return percent(i.conversion_rate); }],
        "Every click of this period was on a search that converted.");
      fillTable("top-products", data.top_products, [function (p) { return p.product_id; },
        function (p) { return count(p.clicks); }, function (p) { return count(p.users); },
        function (p) { return decimal(p.avg_click_position); }], "No clicks in this period.");
      var top = data.top_products.slice(0, 10);
      barChart("chart-products", top.map(function (p) { return p.product_id; }),
        top.map(function (p) { return p.clicks; }), "clicks", {indexAxis: "y", scales: {x: {beginAtZero: true}}});
    });
  }

  // -- experiments -----------------------------------------------------------------------------
  function experiments(ticket) {
    mount("experiments-page");
    return getJson("/experiments").then(function (answer) {
      if (ticket !== renderCount) return;
      var list = answer.experiments;
      var select = $("experiment");
      if (!list.length) {
        $("experiment-body").textContent = "No experiments are defined (POST /experiments defines one).";
        return;
      }
      list.forEach(function (e) {
        select.appendChild(new Option(e.name + (e.type === "interleaving" ? " (interleaving)" : " (A/B)"), e.name));
      });
      var wanted = params().get("experiment");
      var chosen = list.filter(function (e) { return e.name === wanted; })[0] || list[0];
      select.value = chosen.name;
      select.addEventListener("change", function () { setParam("experiment", select.value); });
      $("experiment-status").textContent = chosen.status;
      $("experiment-status").className = "badge " + chosen.status;
      $("experiment-description").textContent = chosen.description || "";
      var path = "/experiments/" + encodeURIComponent(chosen.name);
      if (chosen.type === "interleaving") {
        return getJson(path + "/interleaving?days=" + days()).then(function (r) {
          if (ticket === renderCount) interleavingResult(r);
        });
      }
      return getJson(path + "/results?days=" + days()).then(function (r) {
        if (ticket === renderCount) abResult(r);
      });
    });
  }

  function abResult(r) {
    var body = $("experiment-body");
    insert("ab-result", body);
    var decision = r.decision || {};
    var verdict = $("verdict");
    verdict.textContent = decision.summary || sentence(r.reason) || "No decision yet.";
    verdict.className = "sentence " + (decision.winner ? "ship" : decision.blocked_by && decision.blocked_by.length ? "blocked" : "open");
    $("certainty").textContent = certainty(r);

    var srm = (r.health || {}).srm || {};
    if (srm.flagged) {
      $("srm-warning").hidden = false;
      $("srm-text").textContent = "The users per variant do not match the configured split (" +
        pValue(srm.p_value) + "): " + Object.keys(srm.observed || {}).map(function (name) {
          return name + " has " + plural(srm.observed[name], "user") + " where " +
            count(Math.round(srm.expected[name])) + " were expected";
        }).join("; ") + ". Do not act on these results until the cause is found.";
    }
    healthList(r);

    // Without two variants with data there is nothing to compare: say so once, in full.
    if (!r.variants.length) {
      $("chart-intervals").closest("section").replaceWith(paragraph("Nothing to compare yet: the " +
        "intervals and the table of variants appear once every variant has data (see the verdict).", "card muted"));
      $("ab-variants").closest("section").remove();
      return;
    }
    var rows = [];
    r.variants.filter(function (v) { return !v.is_control; }).forEach(function (v) {
      Object.keys(v.metrics).forEach(function (name) {
        var c = v.metrics[name].comparison;
        if (!c || !c.relative_ci) return;
        var better = (c.relative > 0) === spec(name).higher_is_better;
        rows.push({
          label: (name === r.primary_metric ? "★ " : "") + spec(name).label +
            (r.variants.length > 2 ? " (" + v.name + ")" : ""),
          low: c.relative_ci[0], high: c.relative_ci[1], estimate: c.relative,
          color: !c.significant ? NEUTRAL : better ? GOOD : BAD,
        });
      });
    });
    if (rows.length) {
      intervalChart("chart-intervals", rows, 0, signedPercent, function (x) { return (x > 0 ? "+" : "") + percent(x, 0); });
      $("chart-intervals").parentNode.style.height = Math.max(160, 44 * rows.length + 60) + "px";
    } else {
      $("chart-intervals").parentNode.replaceWith(paragraph(
        "No interval yet: every variant needs at least 2 users, and the control a value other than 0.", "muted"));
    }
    variantsTable(r);
  }

  // A reason from the API ("no users yet", "search_v2 has no data") as a sentence: a capital
  // unless it starts with a name (search_v2 stays as it is), and a full stop.
  function sentence(text) {
    if (!text) return "";
    if (/^[a-z]+\b(?![_\d])/.test(text)) text = text.charAt(0).toUpperCase() + text.slice(1);
    return /[.!?]$/.test(text) ? text : text + ".";
  }
  function paragraph(text, className) {
    var p = document.createElement("p");
    p.textContent = text;
    if (className) p.className = className;
    return p;
  }

  function certainty(r) {
    var primary = r.primary_metric;
    var label = spec(primary).label;
    var control = r.variants.filter(function (v) { return v.is_control; })[0];
    var treatment = r.variants.filter(function (v) { return !v.is_control && v.metrics[primary]; })[0];
    var c = treatment && treatment.metrics[primary].comparison;
    var method = r.method === "sequential" ? "a sequential test, valid however often this page is read"
      : "a fixed-horizon test";
    if (!treatment) return "How sure: not measurable until every variant has data.";
    if (!c || !c.relative_ci) {
      var why = (c && c.reason) || treatment.metrics[primary].reason;
      return "How sure: not measurable yet" + (why ? " (" + why + ")" : "") + ".";
    }
    var blocked = ((r.decision || {}).blocked_by || []).filter(function (b) {
      return b === "sample_ratio_mismatch" || b === "implausible_lift";
    });
    var from = control && control.metrics[primary] ? control.metrics[primary].estimate : null;
    var to = treatment.metrics[primary].estimate;
    var change = spec(primary).percent
      ? " by " + points(c.absolute) + " (from " + metricValue(primary, from, r.currency) + " to " + metricValue(primary, to, r.currency) +
        "; a relative change of " + signedPercent(c.relative) + ")"
      : " by " + signedPercent(c.relative) + " (from " + metricValue(primary, from, r.currency) + " to " +
        metricValue(primary, to, r.currency) + ")";
    var text = (blocked.length
      ? "How sure: not at all until the " + (blocked[0] === "sample_ratio_mismatch" ? "sample ratio mismatch" : "implausibly large change") +
        " is explained. Taken at face value, "
      : "How sure: ") + treatment.name + " changes " + label + change + " against " + r.control +
      "; the 95% confidence interval of the relative change runs from " + signedPercent(c.relative_ci[0]) +
      " to " + signedPercent(c.relative_ci[1]) + " (" + pValue(c.p_value_adjusted != null ? c.p_value_adjusted : c.p_value) +
      ", " + plural(c.users, "user") + ", " + method + "). ";
    if (blocked.length) return text;
    text += c.significant ? "The interval does not include 0 (no change), so the difference is very unlikely to be chance."
      : "The interval includes 0 (no change), so the data cannot tell the variants apart yet.";
    var power = ((r.health || {}).power || {})[treatment.name];
    if (!c.significant && power && power.additional_users != null) {
      text += " Detecting a " + percent(power.target_lift, 0) + " relative change needs about " +
        plural(power.additional_users, "more user") + ".";
    }
    return text;
  }

  function healthList(r) {
    var list = $("health");
    var h = r.health;
    var items = [];
    if (!h) {
      // The checks need every variant's users: until then, the reason is the one item.
      items.push([null, "Not run yet: the health checks need data from every variant."]);
    } else {
      var srm = h.srm || {};
      items.push([srm.checked ? !srm.flagged : null, srm.checked
        ? "Sample ratio: " + Object.keys(srm.observed).map(function (n) { return n + " " + plural(srm.observed[n], "user"); }).join(", ") +
          " (" + pValue(srm.p_value) + (srm.flagged ? ", a mismatch" : ", as configured") + ")."
        : "Sample ratio not checked yet (" + (srm.reason || "too few users") + ")."]);
      var sample = h.sample || {};
      var minimum = plural(sample.min_users, "user") + " and " + count(sample.min_denominator) + " " + sample.denominator;
      items.push([!!sample.met, sample.met
        ? "Enough data: every variant has at least " + minimum + "."
        : "Not enough data yet: " + (sample.reason
          ? sample.reason + "."
          : "a verdict needs at least " + minimum + " in every variant.")]);
      var implausible = h.implausible || [];
      items.push([!implausible.length, implausible.length
        ? "Implausibly large change in " + implausible.map(function (i) { return i.variant || i; }).join(", ") +
          " (" + percent(h.implausible_threshold, 0) + " or more either way): check the tracking."
        : "No implausibly large change (none of " + percent(h.implausible_threshold, 0) + " or more either way)."]);
    }
    list.textContent = "";
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.className = item[0] === true ? "pass" : item[0] === false ? "fail" : "skip";
      li.textContent = item[1];
      list.appendChild(li);
    });
  }

  // One row per metric (they are many, the variants few): each variant's value and, for a
  // treatment, its change against the control: the difference (percentage points for a rate)
  // and the relative change, each with its own interval, and the p-value.
  function variantsTable(r) {
    var names = Object.keys(r.variants[0] ? r.variants[0].metrics : {});
    var head = document.querySelector("#ab-variants thead").insertRow();
    var th = function (text, title) {
      var el = document.createElement("th");
      el.scope = "col";
      el.textContent = text;
      if (title) el.title = title;
      head.appendChild(el);
    };
    th("metric");
    // The cap and CUPED in use, per metric, when the answer says (`adjustments`).
    var adjustments = r.adjustments || {};
    r.variants.forEach(function (v) {
      th(v.name + (v.is_control ? " (control)" : ""));
      if (!v.is_control) {
        th("difference [95% CI]", "treatment − control, in the metric's unit: percentage points (pp) for a rate");
        th("relative change [95% CI]", "(treatment − control) / control, in percent");
        th("p-value");
      }
    });
    var body = document.querySelector("#ab-variants tbody");
    var users = body.insertRow();
    cell(users, "users");
    r.variants.forEach(function (v) {
      cell(users, count(v.users));
      if (!v.is_control) { cell(users, ""); cell(users, ""); cell(users, ""); }
    });
    names.forEach(function (name) {
      var m = spec(name);
      var tr = body.insertRow();
      tr.dataset.metric = name;
      var label = cell(tr, (name === r.primary_metric ? "★ " : "") + m.label + " ");
      label.title = definition(name);
      label.classList.add("defined");
      var direction = document.createElement("small");
      direction.className = "muted";
      direction.textContent = m.higher_is_better ? "(higher is better)" : "(lower is better)";
      label.appendChild(direction);
      adjustment(label, adjustments[name]);
      r.variants.forEach(function (v) {
        var value = v.metrics[name] || {};
        var c = value.comparison;
        cell(tr, metricValue(name, value.estimate, r.currency));
        if (v.is_control) return;
        if (c && (c.relative != null || c.absolute != null)) {
          var tone = c.significant ? ((c.absolute > 0) === m.higher_is_better ? "good" : "bad") : "muted";
          cell(tr, difference(name, c, r.currency), tone);
          cell(tr, signedPercent(c.relative) + (c.relative_ci
            ? " [" + signedPercent(c.relative_ci[0]) + ", " + signedPercent(c.relative_ci[1]) + "]" : ""), tone);
          cell(tr, pNumber(c.p_value_adjusted != null ? c.p_value_adjusted : c.p_value));
        } else {
          var why = cell(tr, sentence((c && c.reason) || value.reason) || "–");
          why.className = "muted reason";
          why.colSpan = 3;
        }
      });
    });
    var amounts = names.filter(isMoney);
    if (amounts.length) {
      $("ab-variants").parentNode.after(paragraph(r.currency
        ? "Amounts (" + amounts.map(function (n) { return spec(n).label; }).join(", ") + ") are in " + r.currency +
          ", counting only the purchases in " + r.currency + "."
        : "No purchase with a currency in this period: the revenue metrics count none yet.", "muted"));
    }
    var latency = r.response_time || {};
    var timed = Object.keys(latency).filter(function (name) { return latency[name].avg_ms != null; });
    if (timed.length) {
      $("ab-variants").parentNode.after(paragraph("Response time (descriptive, not tested): " +
        timed.map(function (name) {
          return name + " avg " + ms(latency[name].avg_ms) + ", p95 " + ms(latency[name].p95_ms);
        }).join("; ") + ".", "muted"));
    }
  }

  // Under a metric's name, its adjustments in words ("capped at p99 = 1,457.57 EUR; CUPED,
  // theta 0.315"), and why CUPED was not applied where it was asked for (on hover: the reasons
  // are long). Nothing for a metric neither capped nor adjusted.
  function adjustment(label, a) {
    var parts = [], why = "";
    if (a && a.cap) parts.push("capped at " + a.cap.label);
    var cuped = (a && a.cuped) || {};
    var thetas = Object.keys(cuped.theta || {});
    if (cuped.applied) {
      parts.push("CUPED, theta " + thetas.map(function (name) {
        return (thetas.length > 1 ? name + " " : "") + decimal(cuped.theta[name], 3);
      }).join(", "));
    } else if (cuped.enabled && a.cap) {
      parts.push("no CUPED");
      why = cuped.reason ? "CUPED not applied: " + cuped.reason : "";
    }
    if (!parts.length) return;
    var line = document.createElement("small");
    line.className = "adjustment" + (why ? " defined" : "");
    line.textContent = parts.join("; ");
    if (why) line.title = why;
    label.appendChild(line);
  }

  function interleavingResult(r) {
    var body = $("experiment-body");
    insert("interleaving-result", body);
    var verdict = $("verdict");
    verdict.textContent = r.verdict || r.reason || "No verdict.";
    verdict.className = "sentence " + (r.significant ? "ship" : "open");
    var a = r.rankers.A, b = r.rankers.B;
    $("certainty").textContent = r.ci_low == null
      ? "How sure: not measurable yet" + (r.reason ? " (" + r.reason + ")" : "") + "."
      : "How sure: " + b + " (B) wins " + percent(r.preference) + " of the searches won by either ranker; the 95% " +
        "confidence interval runs from " + percent(r.ci_low) + " to " + percent(r.ci_high) + " (" + pValue(r.p_value) +
        ", " + plural(r.users, "user") + "). " + (r.significant
          ? "It excludes 50%, so the preference is unlikely to be chance."
          : "It includes 50%, so the data cannot tell the rankers apart yet.");
    $("wins").innerHTML = "";
    [["Wins A (" + a + ")", count(r.wins_a)], ["Wins B (" + b + ")", count(r.wins_b)], ["Ties", count(r.ties)],
      ["Searches with clicks", count(r.searches_with_clicks)], ["Users", count(r.users)]].forEach(function (pair) {
      var div = document.createElement("div");
      var dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = pair[0];
      dd.textContent = pair[1];
      div.appendChild(dt);
      div.appendChild(dd);
      $("wins").appendChild(div);
    });
    var rows = [];
    var shade = function (s) {
      if (!s.significant) return NEUTRAL;
      return s.preference > 0.5 ? GOOD : BAD;
    };
    if (r.ci_low != null) {
      rows.push({label: "all searches", low: r.ci_low, high: r.ci_high, estimate: r.preference, color: shade(r)});
    }
    r.by_query.forEach(function (q) {
      if (q.ci_low != null) {
        rows.push({label: "“" + q.query + "”", low: q.ci_low, high: q.ci_high, estimate: q.preference, color: shade(q)});
      }
    });
    if (rows.length) {
      intervalChart("chart-preference", rows, 0.5, percentTick);
      charts[charts.length - 1].options.scales.x.min = 0;
      charts[charts.length - 1].options.scales.x.max = 1;
      charts[charts.length - 1].update();
      $("chart-preference").parentNode.style.height = Math.max(160, 30 * rows.length + 60) + "px";
    } else {
      $("chart-preference").parentNode.replaceWith(document.createTextNode("No interval yet: too little data."));
    }
    fillTable("interleaving-queries", r.by_query, [function (q) { return q.query; },
      function (q) { return count(q.users); }, function (q) { return count(q.wins_a); },
      function (q) { return count(q.wins_b); }, function (q) { return count(q.ties); },
      function (q) { return percent(q.preference); },
      function (q) { return q.ci_low == null ? "–" : percent(q.ci_low) + " to " + percent(q.ci_high); },
      function (q) { return q.significant ? "yes" : "no"; }], "No clicked searches in this period.");
  }

  // -- a user ----------------------------------------------------------------------------------
  function user(ticket, userId) {
    mount("user-page");
    $("user-name").textContent = userId;
    document.title = "User " + userId + " · clickstats";
    // Every figure from the overview filtered to the user (the same days as the charts); the
    // user summary adds the first and last search.
    return Promise.all([
      getJson("/analytics/user/" + encodeURIComponent(userId) + "?days=" + days()),
      api("/analytics/overview", {days: days(), user_id: userId, tz: tz}),
    ]).then(function (answers) {
      if (ticket !== renderCount) return;
      var s = answers[0], o = answers[1], t = o.totals;
      setKpis(view, {
        searches: count(t.searches), clicks: count(t.clicks), search_ctr: percent(t.search_ctr),
        clicks_per_search: decimal(t.clicks_per_search), avg_click_position: decimal(t.avg_click_position),
        p95_ms: ms(t.p95_response_ms), avg_ms: ms(t.avg_response_ms),
        conversion_rate: percent(t.conversion_rate), purchases: count(o.conversions.totals.purchases),
        // Each currency's amount on a line of its own, never a sum of them.
        revenue: Object.keys(o.conversions.by_currency).filter(function (code) { return code; }).map(function (code) {
          return money(o.conversions.by_currency[code].revenue, code);
        }).join("\n") || "–",
      });
      $("user-seen").textContent = s.first_seen
        ? "First search " + localTime(s.first_seen) + ", last " + localTime(s.last_seen) + " (" + tz + ")." : "";
      $("user-empty").hidden = t.searches > 0;
      var labels = o.daily.days.map(dayLabel);
      var total = o.daily.days.map(function () { return 0; });
      var clicked = total.slice();
      Object.keys(o.daily.by_variant).forEach(function (name) {
        o.daily.by_variant[name].forEach(function (d, i) {
          total[i] += d.searches;
          clicked[i] += d.clicked_searches;
        });
      });
      chart("chart-user-daily", {
        type: "bar",
        data: {labels: labels, datasets: [
          {label: "searches", data: total, backgroundColor: COLORS[0]},
          {label: "clicked searches", data: clicked, backgroundColor: COLORS[2]},
        ]},
        options: {scales: {y: {beginAtZero: true, ticks: {precision: 0}}}},
      });
      var ranks = rankKeys(o.clicks_by_rank);
      barChart("chart-user-ranks", ranks, ranks.map(function (k) { return o.clicks_by_rank[k] || 0; }), "clicks",
        {scales: {x: {title: {display: true, text: "rank"}}, y: {beginAtZero: true, ticks: {precision: 0}}}});
      var rows = Object.keys(o.by_variant).sort().map(function (name) {
        return Object.assign({name: name}, o.by_variant[name]);
      });
      fillTable("user-variants", rows, [function (v) { return v.name; },
        function (v) { return count(v.searches); }, function (v) { return count(v.clicks); },
        function (v) { return percent(v.search_ctr); }, function (v) { return decimal(v.clicks_per_search); },
        function (v) { return percent(v.conversion_rate); }],
        "No searches in this period.");
    });
  }

  // -- the frame -------------------------------------------------------------------------------
  function frame(r) {
    document.querySelectorAll("nav [data-page]").forEach(function (a) {
      var base = a.dataset.page === "overview" ? "/" : "/dashboard/" + a.dataset.page;
      a.href = withPeriod(base);
      if (a.dataset.page === r.page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    });
    document.querySelectorAll(".period [data-days]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.days) === days()));
    });
    // The variant filter applies to the overview and the queries; the user page has its own.
    document.querySelector(".variant-filter").hidden = r.page !== "overview" && r.page !== "queries";
    // So does the currency, shown once the answer names the period's currencies.
    if (r.page !== "overview" && r.page !== "queries") document.querySelector(".currency-filter").hidden = true;
    $("tz").textContent = tz;
    if (r.page !== "user") document.title = r.page.charAt(0).toUpperCase() + r.page.slice(1) + " · clickstats";
  }

  function render() {
    var r = route();
    var ticket = ++renderCount;
    frame(r);
    document.body.dataset.state = "loading";
    document.body.dataset.page = r.page;
    $("key-form").hidden = true;
    say("Loading…");
    var work;
    if (r.page === "missing") {
      mount("overview-page");
      view.textContent = "";
      work = Promise.reject(new Error("no dashboard page at " + location.pathname));
    } else {
      // Labels and definitions first: every page names metrics.
      work = loadMetrics().then(function () {
        if (ticket !== renderCount) return;
        if (r.page === "overview") return overview(ticket);
        if (r.page === "queries") return queries(ticket);
        if (r.page === "experiments") return experiments(ticket);
        return user(ticket, r.userId);
      });
    }
    return work.then(function () {
      if (ticket !== renderCount) return;
      say("");
      document.body.dataset.state = "ready";
    }, function (err) {
      if (ticket !== renderCount) return;
      if (err.status === 401 || err.status === 403) return keyRefused(err);
      say("Could not load this page: " + err.message, true);
      document.body.dataset.state = "error";
    });
  }

  document.querySelectorAll(".period [data-days]").forEach(function (button) {
    button.addEventListener("click", function () { setParam("days", button.dataset.days); });
  });
  $("variant").addEventListener("change", function (e) { setParam("variant", e.target.value); });
  $("currency").addEventListener("change", function (e) { setParam("currency", e.target.value); });
  $("user-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var id = $("user-id").value.trim();
    if (id) location.href = withPeriod("/dashboard/users/" + encodeURIComponent(id));
  });
  $("key-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var key = $("api-key").value.trim();
    if (!key) return;
    $("api-key").value = "";
    setApiKey(key);
    render();
  });
  $("forget-key").addEventListener("click", function () {
    setApiKey(null);
    render(); // with keys on, the next request answers 401 and the form comes back
  });
  $("forget-key").hidden = !apiKey();
  window.addEventListener("popstate", render);
  if (window.Chart) {
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#444";
  }
  window.dashboard = {render: render, charts: function () { return charts.slice(); }, timeZone: tz};
  render();
})();
