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

  function percent(ctr) { return ctr == null ? "–" : (100 * ctr).toFixed(1) + "%"; }
  function getJson(url) {
    return fetch(url, {headers: {Accept: "application/json"}}).then(function (r) {
      if (!r.ok) throw new Error(url + " answered " + r.status);
      return r.json();
    });
  }
  function cell(row, text) { var td = row.insertCell(); td.textContent = text; return td; }

  function refreshPanel() {
    var mine = "/analytics/ctr?user_id=" + encodeURIComponent(tracker.userId);
    var request = ++panelRequest;
    return Promise.all([getJson(mine), getJson("/analytics/ctr"), getJson("/analytics/variants-comparison")])
      .then(function (answers) {
        if (request !== panelRequest) return; // a newer refresh has started
        var me = answers[0], all = answers[1], comparison = answers[2];
        $("my-clicks").textContent = me.total_clicks;
        $("my-searches").textContent = me.total_impressions;
        $("my-ctr").textContent = percent(me.ctr);
        $("all-clicks").textContent = all.total_clicks;
        $("all-searches").textContent = all.total_impressions;
        $("all-ctr").textContent = percent(all.ctr);
        var body = $("variants");
        body.textContent = "";
        Object.keys(comparison.variants).sort().forEach(function (name) {
          var v = comparison.variants[name];
          var row = body.insertRow();
          row.dataset.variant = name;
          cell(row, name);
          cell(row, v.impressions);
          cell(row, v.clicks);
          cell(row, percent(v.ctr));
          cell(row, v.avg_rank == null ? "–" : v.avg_rank.toFixed(2));
        });
        $("winner").textContent = comparison.winner || "none yet";
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
