// neurofacets gallery: sort and filter the neuron cards of a layer page, and highlight a
// neuron's row in the similarity heatmaps. No dependencies, works from file://.
//
// The page state lives in the URL fragment, e.g. #sort=mf-desc&facet=MF,SF&min=0.2&max=1
// (&concept=dog.n.01 where the run has a class hierarchy: that concept and those below it;
// &holds=1: only the neurons whose label holds on held-out images), so a sorted or filtered
// view can be bookmarked or linked. A fragment without "=" (#n12)
// is an ordinary anchor to a neuron and leaves the state alone.
(function () {
  "use strict";

  var SORTS = {
    "neuron-asc": { key: "neuron", dir: 1 },
    "mf-desc": { key: "mf", dir: -1 },
    "mf-asc": { key: "mf", dir: 1 },
    "sparsity-desc": { key: "sparsity", dir: -1 },
    "flatness-desc": { key: "flatness", dir: -1 },
    "p-asc": { key: "p", dir: 1 },
    "auroc-desc": { key: "auroc", dir: -1 }
  };
  var FACETS = ["MF", "SF", "dead"];

  // An empty attribute is a missing value; "Infinity" (an MF degree of a perfectly even
  // class distribution) is a number.
  function numberOf(card, key) {
    var value = parseFloat(card.getAttribute("data-" + key));
    return isNaN(value) ? null : value;
  }

  // Missing values (dead neurons have no MF degree) always go last; ties by neuron number.
  function comparator(sort) {
    return function (a, b) {
      var va = numberOf(a, sort.key), vb = numberOf(b, sort.key);
      var byNeuron = numberOf(a, "neuron") - numberOf(b, "neuron");
      if (va === null && vb === null) { return byNeuron; }
      if (va === null) { return 1; }
      if (vb === null) { return -1; }
      if (va === vb) { return byNeuron; }
      return (va < vb ? -1 : 1) * sort.dir;
    };
  }

  function parseState(fragment) {
    var state = { sort: "neuron-asc", facets: FACETS.slice(), min: null, max: null, concept: "", holds: false };
    if (fragment.indexOf("=") < 0) { return null; }
    fragment.split("&").forEach(function (part) {
      var kv = part.split("="), key = kv[0], value = decodeURIComponent(kv[1] || "");
      if (key === "sort" && SORTS.hasOwnProperty(value)) { state.sort = value; }
      if (key === "facet") { state.facets = value ? value.split(",") : []; }
      if (key === "min" && value !== "" && isFinite(parseFloat(value))) { state.min = parseFloat(value); }
      if (key === "max" && value !== "" && isFinite(parseFloat(value))) { state.max = parseFloat(value); }
      if (key === "concept") { state.concept = conceptTerm(value); }
      if (key === "holds") { state.holds = value === "1"; }
    });
    return state;
  }

  function formatState(state) {
    var parts = ["sort=" + state.sort];
    if (state.facets.length !== FACETS.length) { parts.push("facet=" + state.facets.join(",")); }
    if (state.min !== null) { parts.push("min=" + state.min); }
    if (state.max !== null) { parts.push("max=" + state.max); }
    if (state.concept) { parts.push("concept=" + encodeURIComponent(state.concept)); }
    if (state.holds) { parts.push("holds=1"); }
    return "#" + parts.join("&");
  }

  // A concept query as the cards' data-concept terms are written: lower case, blanks as "_".
  function conceptTerm(text) {
    return text.trim().toLowerCase().split(/\s+/).filter(Boolean).join("_");
  }

  // Whether a card's concept is the queried one or lies below it (its terms list the names,
  // ids and lemmas of its concept and all the concept's ancestors).
  function hasConcept(card, term) {
    var terms = card.getAttribute("data-concept");
    return terms !== null && (" " + terms + " ").indexOf(" " + term + " ") >= 0;
  }

  function setupCards(grid) {
    var cards = Array.prototype.slice.call(grid.querySelectorAll("article.card"));
    var form = document.getElementById("controls");
    var sortSelect = document.getElementById("sort");
    var minInput = document.getElementById("mf-min");
    var maxInput = document.getElementById("mf-max");
    var counter = document.getElementById("shown");
    var facetBoxes = Array.prototype.slice.call(form.querySelectorAll("input[name=facet]"));
    var conceptInput = document.getElementById("concept");  // absent without a class hierarchy
    var holdsBox = document.getElementById("holds");  // absent without the evaluation stage
    var current = parseState(window.location.hash.slice(1)) || parseState("sort=neuron-asc");

    function apply(state) {
      current = state;
      var sorted = cards.slice().sort(comparator(SORTS[state.sort]));
      var fragment = document.createDocumentFragment();
      var shown = 0;
      sorted.forEach(function (card) {
        var facet = card.getAttribute("data-facet");
        var mf = numberOf(card, "mf-norm");
        var visible = state.facets.indexOf(facet) >= 0;
        if (visible && mf !== null) {
          visible = (state.min === null || mf >= state.min) && (state.max === null || mf <= state.max);
        }
        if (visible && state.concept) { visible = hasConcept(card, state.concept); }
        if (visible && state.holds) { visible = card.getAttribute("data-holds") === "1"; }
        card.hidden = !visible;
        shown += visible ? 1 : 0;
        fragment.appendChild(card);
      });
      grid.appendChild(fragment);
      counter.textContent = shown + " of " + cards.length + " neurons shown";
      sortSelect.value = state.sort;
      minInput.value = state.min === null ? "" : state.min;
      maxInput.value = state.max === null ? "" : state.max;
      if (conceptInput && conceptTerm(conceptInput.value) !== state.concept) { conceptInput.value = state.concept; }
      facetBoxes.forEach(function (box) { box.checked = state.facets.indexOf(box.value) >= 0; });
      if (holdsBox) { holdsBox.checked = state.holds; }
    }

    function fromControls() {
      var min = parseFloat(minInput.value), max = parseFloat(maxInput.value);
      return {
        sort: sortSelect.value,
        facets: facetBoxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; }),
        min: isFinite(min) ? min : null,
        max: isFinite(max) ? max : null,
        concept: conceptInput ? conceptTerm(conceptInput.value) : "",
        holds: holdsBox ? holdsBox.checked : false
      };
    }

    function onChange() {
      var state = fromControls();
      apply(state);
      try {
        window.history.replaceState(null, "", formatState(state));
      } catch (err) {
        // Some browsers refuse history changes on file:// pages; the view still updates.
      }
    }

    form.addEventListener("change", onChange);
    form.addEventListener("input", onChange);
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    window.addEventListener("hashchange", function () {
      var state = parseState(window.location.hash.slice(1));
      if (state) { apply(state); }
    });
    apply(current);
  }

  function setupHeatmaps(figures) {
    function highlight() {
      var match = /^#n(\d+)$/.exec(window.location.hash);
      figures.forEach(function (figure) {
        var n = parseInt(figure.getAttribute("data-neurons"), 10);
        var line = figure.querySelector(".hl-row");
        var column = figure.querySelector(".hl-col");
        if (!match || parseInt(match[1], 10) >= n) {
          line.hidden = true;
          column.hidden = true;
          return;
        }
        var index = parseInt(match[1], 10);
        var offset = (100 * index / n) + "%", size = (100 / n) + "%";
        line.style.top = offset;
        line.style.height = size;
        column.style.left = offset;
        column.style.width = size;
        line.hidden = false;
        column.hidden = false;
      });
    }
    figures.forEach(function (figure) {
      var n = parseInt(figure.getAttribute("data-neurons"), 10);
      var image = figure.querySelector("img");
      image.addEventListener("click", function (event) {
        var box = image.getBoundingClientRect();
        var row = Math.floor((event.clientY - box.top) / box.height * n);
        row = Math.max(0, Math.min(n - 1, row));
        window.location.hash = "#n" + row;
      });
    });
    window.addEventListener("hashchange", highlight);
    highlight();
  }

  function main() {
    var grid = document.getElementById("cards");
    if (grid) { setupCards(grid); }
    var figures = Array.prototype.slice.call(document.querySelectorAll("figure.heatmap"));
    if (figures.length) { setupHeatmaps(figures); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", main);
  } else {
    main();
  }
}());
