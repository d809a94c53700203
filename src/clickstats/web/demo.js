/* The demo search page: POST /search/text, show the results, track clicks with the tracker. */
(function () {
  "use strict";

  var tracker = (window.clickstats = window.ClickStats.init({endpoint: "/analytics/events"}));
  var $ = function (id) { return document.getElementById(id); };
  var results = $("results");
  var status = $("status");
  var panelRequest = 0;

  function say(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  function percent(x) { return x == null ? "–" : (100 * x).toFixed(1) + "%"; }
  function decimal(x) { return x == null ? "–" : x.toFixed(2); }
  function plural(n, one, many) { return n + " " + (n === 1 ? one : many || one + "s"); }
  function getJson(url) {
    return fetch(url, {headers: {Accept: "application/json"}}).then(function (r) {
      if (!r.ok) throw new Error(url + " answered " + r.status);
      return r.json();
    });
  }
  function cell(row, text) { var td = row.insertCell(); td.textContent = text; return td; }
  // "3 clicks on 2 searches: search CTR 50.0%, 1.50 clicks per search"
  function figures(t) {
    if (!t.searches) return "no search yet";
    return plural(t.clicks, "click") + " on " + plural(t.searches, "search", "searches") +
      ": search CTR " + percent(t.search_ctr) + ", " + decimal(t.clicks_per_search) + " clicks per search";
  }

  function refreshPanel() {
    var tz = (window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone) || "UTC";
    var overview = "/analytics/overview?days=7&tz=" + encodeURIComponent(tz);
    var request = ++panelRequest;
    return Promise.all([getJson(overview + "&user_id=" + encodeURIComponent(tracker.userId)),
      getJson(overview), getJson("/analytics/variants-comparison")])
      .then(function (answers) {
        if (request !== panelRequest) return; // a newer refresh has started
        var me = answers[0], all = answers[1], comparison = answers[2];
        $("me").textContent = figures(me.totals);
        $("me").dataset.clicks = me.totals.clicks;
        $("everyone").textContent = figures(all.totals);
        var body = $("variants");
        body.textContent = "";
        Object.keys(all.by_variant).sort().forEach(function (name) {
          var v = all.by_variant[name];
          var row = body.insertRow();
          row.dataset.variant = name;
          cell(row, name);
          cell(row, v.searches);
          cell(row, v.clicks);
          cell(row, percent(v.search_ctr));
          cell(row, decimal(v.clicks_per_search));
          cell(row, decimal(v.avg_click_position));
        });
        // `leader`: the most clicks per search; the verdict is the experiment's decision.
        $("leader").textContent = comparison.leader || comparison.winner || "none yet";
        $("verdict").textContent = (comparison.stats || {}).summary || "none yet.";
      })
      .catch(function (err) { say("Could not load the figures: " + err.message, true); });
  }

  function render(answer) {
    results.textContent = "";
    results.dataset.searchId = answer.search_id;
    results.dataset.variant = answer.variant;
    $("variant").textContent = answer.variant;
    answer.results.forEach(function (item) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "result";
      button.dataset.rank = item.rank;
      button.dataset.productId = item.product_id;
      button.setAttribute("aria-pressed", "false");
      [["rank", item.rank + "."], ["title", item.title], ["price", "$" + Number(item.price).toFixed(2)],
        ["brand", item.brand + " · " + item.category]].forEach(function (part) {
        var span = document.createElement("span");
        span.className = part[0];
        span.textContent = part[1];
        button.appendChild(span);
      });
      button.addEventListener("click", function () {
        tracker.trackClick({productId: item.product_id, rank: item.rank, searchId: answer.search_id,
          variant: answer.variant, query: answer.query});
        button.setAttribute("aria-pressed", "true");
        // Send now rather than at the next timer tick, and show the figures once it is stored.
        tracker.flush(true).then(refreshPanel);
      });
      var li = document.createElement("li");
      li.appendChild(button);
      results.appendChild(li);
    });
    var n = answer.results.length;
    say(n ? n + " of " + answer.total + " results for “" + answer.query + "” in " + answer.took_ms.toFixed(1) +
      " ms. Click one." : "No results for “" + answer.query + "”.");
  }

  $("search-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var query = $("query").value.trim();
    if (!query) return;
    say("Searching…");
    fetch("/search/text", {
      method: "POST",
      headers: {"Content-Type": "application/json", Accept: "application/json", "X-User-ID": tracker.userId},
      body: JSON.stringify({query: query, limit: 10}),
    })
      .then(function (r) {
        if (r.status === 404) throw new Error("this server has no search endpoint (POST /search/text)");
        if (!r.ok) throw new Error("search answered " + r.status);
        return r.json();
      })
      .then(function (answer) { render(answer); return refreshPanel(); }) // the search is an impression
      .catch(function (err) { say("Search failed: " + err.message, true); });
  });

  $("new-visitor").addEventListener("click", function () {
    window.ClickStats.resetUser();
    window.location.reload();
  });

  $("user-id").textContent = tracker.userId;
  getJson("/experiments/search_ranking/assign?user_id=" + encodeURIComponent(tracker.userId))
    .then(function (a) { $("variant").textContent = a.variant; })
    .catch(function () { $("variant").textContent = "unknown"; });
  refreshPanel();
})();
