// poisonguard report: sortable, searchable tables. Plain DOM, no libraries, no network.
(function () {
  "use strict";
  function cellValue(td) {
    var raw = td.getAttribute("data-v");
    var text = raw !== null ? raw : td.textContent.trim();
    var num = parseFloat(text);
    return (text !== "" && !isNaN(num) && isFinite(text)) ? num : text.toLowerCase();
  }
  function sortBy(table, index, th) {
    var body = table.tBodies[0];
    var asc = !th.classList.contains("sorted-asc");
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) {
      c.classList.remove("sorted-asc", "sorted-desc");
    });
    th.classList.add(asc ? "sorted-asc" : "sorted-desc");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a.cells[index]), y = cellValue(b.cells[index]);
      if (typeof x === "number" && typeof y === "number") { return asc ? x - y : y - x; }
      x = String(x); y = String(y);
      return asc ? x.localeCompare(y) : y.localeCompare(x);
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) { frag.appendChild(r); });
    body.appendChild(frag);
  }
  function wireSort(table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.classList.add("sortable");
      th.addEventListener("click", function () { sortBy(table, i, th); });
    });
  }
  function wireSearch(input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var counter = document.getElementById(input.getAttribute("data-count"));
    var total = table.tBodies[0].rows.length;
    function update() {
      var q = input.value.trim().toLowerCase();
      var shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        var hit = q === "" || r.textContent.toLowerCase().indexOf(q) !== -1;
        r.style.display = hit ? "" : "none";
        if (hit) { shown += 1; }
      });
      if (counter) { counter.textContent = shown + " of " + total + " rows shown"; }
    }
    input.addEventListener("input", update);
    update();
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), wireSort);
    Array.prototype.forEach.call(document.querySelectorAll("input.table-search"), wireSearch);
    document.body.setAttribute("data-ready", "1");
  });
})();
