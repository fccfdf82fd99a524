(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");
  var table = document.getElementById("findings");
  var form = document.getElementById("filters");
  if (!table || !form) { return; }
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var texts = rows.map(function (r) { return r.textContent.toLowerCase(); });
  var selects = Array.prototype.slice.call(form.querySelectorAll("select[data-filter]"));
  var search = document.getElementById("f-q");
  var count = document.getElementById("f-count");
  var none = document.getElementById("f-none");
  var nf = new Intl.NumberFormat("en");

  function apply() {
    var needle = search.value.trim().toLowerCase();
    var wanted = selects.map(function (s) { return [s.getAttribute("data-filter"), s.value]; });
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      var ok = true;
      for (var j = 0; j < wanted.length && ok; j++) {
        if (wanted[j][1] && r.getAttribute("data-" + wanted[j][0]) !== wanted[j][1]) { ok = false; }
      }
      if (ok && needle && texts[i].indexOf(needle) === -1) { ok = false; }
      r.hidden = !ok;
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

  function key(row, col, kind) {
    var cell = row.cells[col];
    var v = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (kind === "num") {
      if (v === "") { return null; }
      var n = Number(v);
      return isNaN(n) ? v : n;
    }
    return v.toLowerCase();
  }

  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  headers.forEach(function (th, col) {
    th.tabIndex = 0;
    function sort() {
      var kind = th.getAttribute("data-kind") || "text";
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      headers.forEach(function (h) { h.setAttribute("aria-sort", "none"); });
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      var keyed = rows.map(function (r, i) { return [key(r, col, kind), i, r]; });
      keyed.sort(function (a, b) {
        var x = a[0], y = b[0];
        if (x === y) { return a[1] - b[1]; }
        if (x === null || x === "") { return 1; }
        if (y === null || y === "") { return -1; }
        if (typeof x === "number" && typeof y === "number") { return (x - y) * dir; }
        return String(x).localeCompare(String(y)) * dir;
      });
      var frag = document.createDocumentFragment();
      keyed.forEach(function (k) { frag.appendChild(k[2]); });
      tbody.appendChild(frag);
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
    });
  });

  apply();
})();
