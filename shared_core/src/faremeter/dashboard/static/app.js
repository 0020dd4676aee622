/* faremeter dashboard: fetches one JSON endpoint per panel and draws it.
 *
 * State lives in the URL hash (#window=24h&attr.team=search&trace=<id>) so a
 * view, and a task's trace tree, can be linked. Money arrives as exact decimal
 * strings; it is only turned into a Number to format and to place on charts.
 * Every panel sets data-state="ready" once drawn, which is what tests wait for.
 */
(function () {
  "use strict";

  const TICKER_MS = 2000;
  const DEFAULT_WINDOW = "24h"; // a live view; "all" stays one click away
  const PANELS_MS = 10000;
  const charts = {};

  // -- state ----------------------------------------------------------------

  function readState() {
    const params = new URLSearchParams(location.hash.slice(1));
    return params;
  }

  function writeState(params) {
    const text = params.toString();
    if (location.hash.slice(1) !== text) location.hash = text;
  }

  function apiQuery() {
    const params = readState();
    params.delete("trace");
    if (!params.get("window")) params.set("window", DEFAULT_WINDOW);
    return params.toString();
  }

  // -- formatting -----------------------------------------------------------

  function fmtMoney(text) {
    if (text === null || text === undefined) return "unpriced";
    const n = Number(text);
    if (n === 0) return "$0";
    const a = Math.abs(n);
    let digits;
    if (a >= 100) digits = 0;
    else if (a >= 1) digits = 2;
    else if (a >= 0.01) digits = 4;
    else digits = Math.min(8, 2 - Math.floor(Math.log10(a)) + 1);
    return (n < 0 ? "-$" : "$") + a.toLocaleString("en-US", {
      minimumFractionDigits: a >= 100 ? 0 : Math.min(digits, 2),
      maximumFractionDigits: digits,
    });
  }

  function fmtInt(n) {
    return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
  }

  function fmtTime(iso) {
    return iso ? iso.replace("T", " ").slice(0, 19) : "";
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  function setMoney(node, text) {
    node.textContent = fmtMoney(text);
    node.title = text === null ? "unpriced" : "$" + text;
    node.dataset.value = text === null ? "" : text;
  }

  async function getJSON(path, query) {
    const sep = path.includes("?") ? "&" : "?";
    const res = await fetch(path + sep + (query === undefined ? apiQuery() : query));
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
    return body;
  }

  function panelState(id, state, message) {
    const panel = document.getElementById(id);
    panel.dataset.state = state;
    panel.title = message || "";
  }

  // One request per panel at a time: on a big ledger a query can outlast the
  // polling interval, and piling up requests would only slow every one down.
  const inflight = {};

  async function load(id, path, draw) {
    const query = apiQuery();
    if (inflight[id] === query) return true;
    inflight[id] = query;
    try {
      const body = await getJSON(path, query);
      if (apiQuery() === query) {
        draw(body);
        panelState(id, "ready");
      } // else the view changed meanwhile and a newer request draws it
      return true;
    } catch (err) {
      if (apiQuery() === query) panelState(id, "error", String(err));
      return false;
    } finally {
      if (inflight[id] === query) delete inflight[id];
    }
  }

  // -- charts ---------------------------------------------------------------

  function chartWidth(container) {
    return Math.max(240, container.clientWidth || 600);
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function replaceChart(key, container, opts, data) {
    if (charts[key]) charts[key].destroy();
    container.textContent = "";
    charts[key] = new uPlot(opts, data, container);
    return charts[key];
  }

  const axisStyle = () => ({ stroke: cssVar("--muted"), grid: { stroke: cssVar("--line") }, ticks: { stroke: cssVar("--line") } });

  // -- panels ---------------------------------------------------------------

  function drawTicker(d) {
    setMoney(document.getElementById("ticker-total"), d.total);
    setMoney(document.getElementById("ticker-llm"), d.llm);
    setMoney(document.getElementById("ticker-tool"), d.tool);
    setMoney(document.getElementById("ticker-other"), d.other);
    document.getElementById("ticker-spans").textContent = fmtInt(d.spans);
    document.getElementById("ticker-unpriced").textContent = fmtInt(d.unpriced);
    document.getElementById("ticker-window").textContent =
      (d.query.window === "all" ? "all time" : "last " + d.query.window) + ", per " + d.interval;
    document.getElementById("as-of").textContent = "as of " + fmtTime(d.as_of) + " UTC";
    const xs = d.series.map((b) => Date.parse(b.start) / 1000);
    const ys = d.series.map((b) => Number(b.cost));
    const container = document.getElementById("ticker-chart");
    const prev = charts.ticker;
    if (prev && prev._len === xs.length && prev._key === d.interval) {
      prev.setData([xs, ys]);
      return;
    }
    const u = replaceChart("ticker", container, {
      width: chartWidth(container), height: 200,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      scales: { x: { time: true } },
      axes: [axisStyle(), Object.assign(axisStyle(), { size: 70, values: (u, vals) => vals.map((v) => fmtMoney(String(v))) })],
      series: [{}, {
        label: "spend", stroke: cssVar("--accent"), fill: cssVar("--accent-soft"),
        paths: uPlot.paths.bars({ size: [0.8, 60] }), points: { show: false },
      }],
      cursor: { drag: { x: false, y: false } },
    }, [xs, ys]);
    u._len = xs.length;
    u._key = d.interval;
  }

  function drawTasks(d) {
    const body = document.querySelector("#tasks-table tbody");
    body.textContent = "";
    document.getElementById("tasks-median").textContent =
      d.median === null ? "" : "median " + fmtMoney(d.median) + " · outlier > " + fmtMoney(d.outlier_threshold);
    for (const r of d.rows) {
      const link = el("a", { href: "#" + withParam("trace", r.trace_id), text: r.name || r.trace_id.slice(0, 12) });
      const cost = el("td", { class: "money" });
      setMoney(cost, r.cost);
      const row = el("tr", { class: r.outlier ? "outlier" : "", "data-trace-id": r.trace_id, "data-outlier": String(r.outlier) }, [
        el("td", {}, [link]),
        el("td", { text: fmtTime(r.started) }),
        el("td", { class: "num", text: fmtInt(r.spans) }),
        cost,
      ]);
      row.addEventListener("click", (ev) => {
        ev.preventDefault();
        openTrace(r.trace_id);
      });
      body.appendChild(row);
    }
    if (!d.rows.length) body.appendChild(el("tr", {}, [el("td", { colspan: "4", class: "empty", text: "No tasks in this window." })]));
    const notes = [fmtInt(d.traces) + " tasks"];
    if (d.ignored_filters.length) notes.push("filters on " + d.ignored_filters.join(", ") + " do not apply to whole tasks");
    document.getElementById("tasks-note").textContent = notes.join(" · ");
  }

  function drawDistribution(d) {
    const legend = document.getElementById("dist-legend");
    legend.textContent = "";
    for (const [key, label] of [["p50", "P50"], ["p90", "P90"], ["p99", "P99"], ["max", "max"]]) {
      const b = el("b", {});
      setMoney(b, d[key]);
      legend.appendChild(el("span", { class: key, id: "dist-" + key }, [document.createTextNode(label + " "), b]));
    }
    legend.appendChild(el("span", { class: "muted", text: fmtInt(d.traces) + " tasks" }));
    const lo = Number(d.range[0]);
    const hi = Number(d.range[1]);
    const xs = d.bins.map((b) => (Number(b.lo) + Number(b.hi)) / 2);
    const ys = d.bins.map((b) => b.count);
    const container = document.getElementById("dist-chart");
    container.dataset.xMin = d.range[0];
    container.dataset.xMax = d.range[1];
    const markers = [["p50", d.p50], ["p90", d.p90], ["p99", d.p99]].filter((m) => m[1] !== null);
    const placeMarkers = (u) => {
      u.over.querySelectorAll(".marker").forEach((m) => m.remove());
      for (const [key, value] of markers) {
        const x = u.valToPos(Number(value), "x");
        const m = el("div", { class: "marker " + key, id: "marker-" + key, "data-value": value }, [el("span", { text: key.toUpperCase() })]);
        m.style.left = x + "px";
        u.over.appendChild(m);
      }
    };
    replaceChart("dist", container, {
      width: chartWidth(container), height: 220,
      scales: { x: { time: false, range: () => [lo, hi] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [
        Object.assign(axisStyle(), { values: (u, vals) => vals.map((v) => fmtMoney(String(v))) }),
        Object.assign(axisStyle(), { size: 40 }),
      ],
      series: [{}, {
        label: "tasks", stroke: cssVar("--accent"), fill: cssVar("--accent-soft"),
        paths: uPlot.paths.bars({ size: [0.92, Infinity], align: 0 }), points: { show: false },
      }],
      cursor: { drag: { x: false, y: false } },
      hooks: { ready: [placeMarkers], setSize: [placeMarkers] },
    }, [xs, ys]);
  }

  function item(title, detail, amount) {
    const money = el("span", { class: "money" });
    if (amount !== undefined) setMoney(money, amount);
    return el("li", {}, [el("div", {}, [el("div", { class: "title", text: title }), el("div", { class: "detail", text: detail || "" })]), money]);
  }

  function drawOpportunities(d) {
    const list = document.getElementById("opportunities-list");
    list.textContent = "";
    for (const it of d.items) {
      const li = item(it.title, it.detail, it.amount);
      li.dataset.kind = it.kind;
      if (it.amount === null) li.querySelector(".money").textContent = "";
      list.appendChild(li);
    }
    if (!d.items.length) list.appendChild(el("li", { class: "empty", text: "Nothing stands out in this window." }));
  }

  function drawBudgets(d) {
    setMoney(document.getElementById("budgets-in-flight"), d.in_flight);
    const body = document.getElementById("budgets-body");
    body.textContent = "";
    if (!d.configured) {
      body.appendChild(el("p", { class: "empty", id: "budgets-empty", text: "No budgets configured." }));
      return;
    }
    if (d.error) body.appendChild(el("p", { class: "empty", text: d.error }));
    if (!d.budgets.length && !d.error) body.appendChild(el("p", { class: "empty", text: "No spend against any budget yet." }));
    for (const b of d.budgets) {
      const limit = Number(b.limit || 0);
      const pct = (v) => (limit ? Math.min(100, (100 * Number(v || 0)) / limit) : 0) + "%";
      const spent = el("div", { class: "spent" });
      spent.style.width = pct(b.spent);
      const reserved = el("div", { class: "reserved" });
      reserved.style.width = pct(b.reserved);
      const bar = el("div", { class: "bar" + (b.over_forecast ? " over" : "") }, [spent, reserved]);
      if (b.projected !== null) {
        const tick = el("div", { class: "projected", title: "projected " + fmtMoney(b.projected) });
        tick.style.left = pct(b.projected);
        bar.appendChild(tick);
      }
      const burn = b.elapsed === null || b.projected === null || !limit ? null : burndown(b, limit);
      const kv = el("dl", { class: "split compact" });
      for (const [label, key] of [["spent", "spent"], ["in flight", "reserved"], ["remaining", "remaining"], ["limit", "limit"], ["projected", "projected"]]) {
        if (key === "projected" && b.projected === null) continue;
        const dd = el("dd", { class: "budget-" + key + (key === "projected" && b.over_forecast ? " bad" : "") });
        setMoney(dd, b[key]);
        kv.appendChild(el("div", {}, [el("dt", { text: label }), dd]));
      }
      const title = [b.name, b.subject, b.window, b.action].filter((x) => x).join(" · ");
      body.appendChild(el("div", { class: "budget", "data-name": b.name, "data-subject": b.subject || "" }, [
        el("div", { class: "title", text: title + (b.over_forecast ? " — on course to exceed its limit" : "") }),
        bar,
        kv,
      ].concat(burn ? [burn] : [])));
    }
  }

  // Money left over the budget's window: spent so far as a solid line from the
  // window's start to now, the forecast at the current burn rate dashed to its end.
  function burndown(b, limit) {
    const NS = "http://www.w3.org/2000/svg";
    const W = 300, H = 40;
    const y = (left) => (H - 2) - Math.max(0, Math.min(1, left / limit)) * (H - 4);
    const xNow = b.elapsed * W;
    const leftNow = limit - Number(b.spent) - Number(b.reserved);
    const leftEnd = limit - Number(b.projected);
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", "burndown");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "burn-down: " + fmtMoney(String(leftNow)) + " left now, " + fmtMoney(String(leftEnd)) + " forecast at window end");
    const line = (x1, y1, x2, y2, cls) => {
      const l = document.createElementNS(NS, "line");
      for (const [k, v] of Object.entries({ x1, y1, x2, y2 })) l.setAttribute(k, v);
      l.setAttribute("class", cls);
      svg.appendChild(l);
    };
    line(0, H - 2, W, H - 2, "zero");
    line(0, y(limit), xNow, y(leftNow), "actual");
    line(xNow, y(leftNow), W, y(leftEnd), "forecast" + (leftEnd < 0 ? " over" : ""));
    return svg;
  }

  function drawSavings(d) {
    const body = document.getElementById("savings-body");
    body.textContent = "";
    const kv = el("dl", { class: "kv" });
    for (const [label, value, id] of [
      ["Spent", d.spend, "savings-spend"],
      ["Saved by caching (" + fmtInt(d.cache.hits) + " hits)", d.cache.saved, "savings-cache"],
      ["Saved by routing", d.routing.saved, "savings-routing"],
      ["Without either", d.baseline, "savings-baseline"],
    ]) {
      const dd = el("dd", { id: id });
      setMoney(dd, value);
      kv.appendChild(el("dt", { text: label }));
      kv.appendChild(dd);
    }
    body.appendChild(kv);
    const list = el("ul", { class: "items" });
    for (const c of d.cache.by_name.slice(0, 5)) list.appendChild(item(c.name + " cache", fmtInt(c.hits) + " hits", c.saved));
    for (const r of d.routing.by_model.slice(0, 5)) list.appendChild(item("routed to " + r.model, fmtInt(r.calls) + " calls, baseline " + fmtMoney(r.baseline), r.saved));
    body.appendChild(list);
  }

  function drawAnomalies(d) {
    const list = document.getElementById("anomalies-list");
    list.textContent = "";
    for (const a of d.items) list.appendChild(item(a.title, (a.at ? fmtTime(a.at) + " UTC · " : "") + "usual " + fmtMoney(a.baseline), a.amount));
    if (!d.items.length) list.appendChild(el("li", { class: "empty", text: "No anomalies in this window." }));
  }

  // -- trace tree -----------------------------------------------------------

  function withParam(key, value) {
    const params = readState();
    if (value === null) params.delete(key);
    else params.set(key, value);
    return params.toString();
  }

  function openTrace(id) {
    writeState(new URLSearchParams(withParam("trace", id)));
  }

  async function showTrace(id) {
    const view = document.getElementById("trace-view");
    if (!id) {
      view.hidden = true;
      view.dataset.state = "closed";
      return;
    }
    view.hidden = false;
    view.dataset.state = "loading";
    const body = view.querySelector("tbody");
    body.textContent = "";
    document.getElementById("trace-id").textContent = id;
    try {
      const res = await fetch("/api/trace/" + encodeURIComponent(id));
      const d = await res.json();
      if (!res.ok) throw new Error(d.error);
      setMoney(document.getElementById("trace-total"), d.total);
      const walk = (node, depth) => {
        const pad = el("span", { class: "indent" });
        pad.style.width = depth * 16 + "px";
        const direct = el("td", { class: "money" });
        setMoney(direct, node.priced ? node.direct : null);
        const total = el("td", { class: "money" });
        setMoney(total, node.total);
        const tokens = node.input_tokens === null ? "" : fmtInt(node.input_tokens) + " / " + fmtInt(node.output_tokens);
        body.appendChild(el("tr", { class: "status-" + node.status, "data-span-id": node.span_id }, [
          el("td", { class: "name" }, [pad, document.createTextNode(node.name + (node.status !== "ok" ? " (" + node.status + ")" : ""))]),
          el("td", { text: node.kind }),
          el("td", { text: node.model || "" }),
          el("td", { class: "num", text: tokens }),
          direct,
          total,
        ]));
        for (const c of node.children) walk(c, depth + 1);
      };
      for (const r of d.roots) walk(r, 0);
      view.dataset.state = "ready";
    } catch (err) {
      body.appendChild(el("tr", {}, [el("td", { colspan: "6", text: String(err) })]));
      view.dataset.state = "error";
    }
  }

  // -- filters --------------------------------------------------------------

  function drawChips() {
    const chips = document.getElementById("chips");
    chips.textContent = "";
    for (const [k, v] of readState()) {
      if (!k.startsWith("attr.")) continue;
      const chip = el("span", { class: "chip", text: k.slice(5) + " = " + v, title: "remove filter" });
      chip.addEventListener("click", () => writeState(new URLSearchParams(withParam(k, null))));
      chips.appendChild(chip);
    }
    document.getElementById("window").value = readState().get("window") || DEFAULT_WINDOW;
  }

  async function loadValues() {
    const attr = document.getElementById("filter-attr").value;
    try {
      const d = await getJSON("/api/values?attribute=" + encodeURIComponent(attr));
      const list = document.getElementById("filter-values");
      list.textContent = "";
      for (const v of d.values.slice(0, 200)) if (v.value !== null) list.appendChild(el("option", { value: v.value }));
    } catch (err) { /* the picker is a convenience; typing still works */ }
  }

  function bindFilters() {
    document.getElementById("window").addEventListener("change", (ev) => {
      writeState(new URLSearchParams(withParam("window", ev.target.value)));
    });
    document.getElementById("filter-attr").addEventListener("change", loadValues);
    document.getElementById("filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const input = document.getElementById("filter-value");
      let attr = document.getElementById("filter-attr").value;
      let value = input.value.trim();
      if (value.includes("=")) [attr, value] = value.split("=", 2).map((s) => s.trim());
      if (!attr || !value) return;
      input.value = "";
      writeState(new URLSearchParams(withParam("attr." + attr, value)));
    });
    document.getElementById("trace-close").addEventListener("click", () => {
      writeState(new URLSearchParams(withParam("trace", null)));
    });
  }

  // -- refresh loop ---------------------------------------------------------

  async function refreshTicker() {
    const ok = await load("panel-ticker", "/api/ticker", drawTicker);
    document.getElementById("live").className = "dot " + (ok ? "ok" : "err");
  }

  async function refreshAll() {
    await Promise.all([
      refreshTicker(),
      load("panel-tasks", "/api/tasks", drawTasks),
      load("panel-distribution", "/api/distribution", drawDistribution),
      load("panel-opportunities", "/api/opportunities", drawOpportunities),
      load("panel-budgets", "/api/budgets", drawBudgets),
      load("panel-savings", "/api/savings", drawSavings),
      load("panel-anomalies", "/api/anomalies", drawAnomalies),
    ]);
  }

  let lastQuery = null;
  function onHash() {
    drawChips();
    const q = apiQuery();
    if (q !== lastQuery) {
      lastQuery = q;
      refreshAll();
    }
    showTrace(readState().get("trace"));
  }

  window.addEventListener("hashchange", onHash);
  window.addEventListener("resize", () => {
    for (const key of Object.keys(charts)) {
      const u = charts[key];
      u.setSize({ width: chartWidth(u.root.parentNode), height: u.height });
    }
  });
  bindFilters();
  loadValues();
  onHash();
  setInterval(refreshTicker, TICKER_MS);
  setInterval(refreshAll, PANELS_MS);
  window.faremeterDashboard = { charts: charts, refreshAll: refreshAll, fmtMoney: fmtMoney };
})();
