(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");
  var table = document.getElementById("findings");
  var form = document.getElementById("filters");
  if (!table || !form) { return; }
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var selects = Array.prototype.slice.call(form.querySelectorAll("select[data-filter]"));
  var search = document.getElementById("f-q");
  var count = document.getElementById("f-count");
  var none = document.getElementById("f-none");
  var nf = new Intl.NumberFormat("en");
  var texts = null;

  // What the search box looks in: the row's text plus the full company id (shown shortened).
  function searchTexts() {
    return rows.map(function (r) { return (r.textContent + " " + r.getAttribute("data-id")).toLowerCase(); });
  }

  function apply() {
    var needle = search.value.trim().toLowerCase();
    if (needle && texts === null) { texts = searchTexts(); }
    var wanted = selects.map(function (s) { return ["data-" + s.getAttribute("data-filter"), s.value]; });
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      var ok = true;
      for (var j = 0; j < wanted.length && ok; j++) {
        if (wanted[j][1] && r.getAttribute(wanted[j][0]) !== wanted[j][1]) { ok = false; }
      }
      if (ok && needle && texts[i].indexOf(needle) === -1) { ok = false; }
      if (r.hidden === ok) { r.hidden = !ok; }
      if (ok) { shown++; }
    }
    count.textContent = nf.format(shown) + " of " + nf.format(rows.length) + " shown";
    none.hidden = shown !== 0 || rows.length === 0;
  }

  var timer = null;
  search.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(apply, 120);
  });
  selects.forEach(function (s) { s.addEventListener("change", apply); });
  form.addEventListener("submit", function (e) { e.preventDefault(); apply(); });
  form.addEventListener("reset", function () { setTimeout(apply, 0); });

  // Sorting: every key becomes one number per row, computed once from the row's data-KEY
  // attribute (text ranked by a collator), so a sort compares numbers only; rows without a
  // value go last both ways; ties keep the report's order (worst first).
  var collator = new Intl.Collator("en", { sensitivity: "base", numeric: true });
  var keyCache = new Map();

  function sortKeys(control) {
    var key = control.getAttribute("data-key");
    if (keyCache.has(key)) { return keyCache.get(key); }
    var kind = control.getAttribute("data-kind");
    var raw = rows.map(function (r) { return r.getAttribute("data-" + key) || ""; });
    var keys;
    if (kind === "num") {
      keys = raw.map(function (v) { var n = v === "" ? NaN : Number(v); return isNaN(n) ? null : n; });
    } else if (kind === "rank") {
      var order = (control.getAttribute("data-order") || "").split(" ");
      keys = raw.map(function (v) { var i = order.indexOf(v); return v === "" ? null : (i < 0 ? order.length : i); });
    } else {
      var distinct = Array.from(new Set(raw)).filter(function (v) { return v !== ""; });
      distinct.sort(kind === "iso" ? undefined : collator.compare);
      var rank = new Map();
      distinct.forEach(function (v, i) { rank.set(v, i); });
      keys = raw.map(function (v) { return v === "" ? null : rank.get(v); });
    }
    keyCache.set(key, keys);
    return keys;
  }

  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var controls = Array.prototype.slice.call(table.tHead.querySelectorAll(".sort"));
  var index = rows.map(function (r, i) { return i; });

  function sort(control) {
    var keys = sortKeys(control);
    var dir = control.getAttribute("data-dir") === "asc" ? -1 : 1;
    controls.forEach(function (c) { c.removeAttribute("data-dir"); });
    headers.forEach(function (h) { if (h.hasAttribute("aria-sort")) { h.setAttribute("aria-sort", "none"); } });
    control.setAttribute("data-dir", dir === 1 ? "asc" : "desc");
    control.closest("th").setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var sorted = index.slice().sort(function (a, b) {
      var x = keys[a], y = keys[b];
      if (x === y) { return a - b; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      return (x - y) * dir;
    });
    var frag = document.createDocumentFragment();
    for (var i = 0; i < sorted.length; i++) { frag.appendChild(rows[sorted[i]]); }
    tbody.appendChild(frag);
  }

  controls.forEach(function (c) {
    c.tabIndex = 0;
    c.setAttribute("role", "button");
    c.title = "Sort by " + c.textContent.toLowerCase();
    c.addEventListener("click", function () { sort(c); });
    c.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(c); }
    });
  });

  apply();
})();
