// Front page: runs queries against the API, shows hits and facets.
// Every value from the API or the user reaches the page through textContent only.
(function () {
  'use strict';
  const config = JSON.parse(document.getElementById('bt-config').textContent);
  const $ = (id) => document.getElementById(id);
  const form = $('search'), input = $('q'), endpointSelect = $('endpoint'), facetSelect = $('facet-fields');
  const filterInput = $('filter'), sizeInput = $('size'), summary = $('summary');
  const hitsList = $('hits'), facetsBox = $('facets'), pager = $('pager');
  let offset = 0, lastTotal = 0;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function endpoint() { return config.endpoints[Number(endpointSelect.value) || 0]; }

  config.endpoints.forEach((item, index) => endpointSelect.append(new Option(item.label, String(index))));

  async function loadFacetFields() {
    const chosen = new Set(Array.from(facetSelect.selectedOptions, (option) => option.value));
    facetSelect.replaceChildren();
    try {
      const response = await fetch(endpoint().fields, {headers: {Accept: 'application/json'}});
      if (!response.ok) return;
      const fields = await response.json();
      for (const [name, info] of Object.entries(fields)) {
        if (info && info.type === 'keyword') {
          const option = new Option(name, name);
          option.selected = chosen.has(name);
          facetSelect.append(option);
        }
      }
    } catch (error) { /* no facet fields: searching still works */ }
  }

  // The fields most likely to name a document first, then other short values.
  const LABELS = ['symbol', 'name', 'title', 'label', 'description', 'summary'];

  function scalarFields(hit) {
    const scalar = Object.entries(hit).filter(([key, value]) =>
      !key.startsWith('_') && value !== null && typeof value !== 'object');
    const rank = (key) => (LABELS.includes(key) ? LABELS.indexOf(key) : LABELS.length);
    return scalar.map((entry, index) => [rank(entry[0]), index, entry])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1]).slice(0, 8).map((item) => item[2]);
  }

  function renderHit(hit, annotation) {
    const item = el('li', null, 'hit');
    const head = el('div');
    if (annotation && hit._id !== undefined) {
      const link = el('a', hit._id, 'hit-id');
      link.href = annotation + encodeURIComponent(String(hit._id));
      head.append(link);
    } else {
      head.append(el('span', hit._id, 'hit-id'));
    }
    if (typeof hit._score === 'number') head.append(el('span', 'score ' + hit._score.toFixed(2), 'score'));
    item.append(head);
    const rows = scalarFields(hit);
    if (rows.length) {
      const list = el('dl');
      for (const [key, value] of rows) list.append(el('dt', key), el('dd', value));
      item.append(list);
    }
    const details = el('details');
    details.append(el('summary', 'JSON'), el('pre', JSON.stringify(hit, null, 2)));
    item.append(details);
    return item;
  }

  function renderFacets(facets) {
    for (const [name, facet] of Object.entries(facets || {})) {
      const box = el('section', null, 'facet');
      box.dataset.facet = name;
      box.append(el('h3', name));
      const list = el('ul');
      for (const term of facet.terms || []) {
        const row = el('li');
        const button = el('button', term.term, 'term');
        button.type = 'button';
        button.title = 'Filter on ' + name + ' = ' + term.term;
        button.addEventListener('click', () => {
          filterInput.value = name + ':' + JSON.stringify(String(term.term));
          search(0);
        });
        row.append(button, el('span', term.count, 'facet-count'));
        list.append(row);
      }
      if (facet.other) list.append(el('li', 'other: ' + facet.other, 'facet-count'));
      if (facet.missing) list.append(el('li', 'missing: ' + facet.missing, 'facet-count'));
      box.append(list);
      facetsBox.append(box);
    }
  }

  async function search(from) {
    offset = from || 0;
    const target = endpoint();
    const params = new URLSearchParams({q: input.value});
    const facets = Array.from(facetSelect.selectedOptions, (option) => option.value);
    if (facets.length) params.set('facets', facets.join(','));
    if (filterInput.value.trim()) params.set('filter', filterInput.value.trim());
    const size = parseInt(sizeInput.value, 10);
    if (!Number.isNaN(size)) params.set('size', String(size));
    if (offset) params.set('from', String(offset));
    history.replaceState(null, '', '?' + new URLSearchParams({q: input.value}).toString());
    hitsList.replaceChildren(); facetsBox.replaceChildren();
    summary.className = ''; summary.textContent = 'Searching...'; pager.hidden = true;
    let data;
    try {
      const response = await fetch(target.query + '?' + params.toString(), {headers: {Accept: 'application/json'}});
      data = await response.json();
      if (!response.ok || data.success === false) {
        summary.className = 'err';
        summary.textContent = 'Error ' + response.status + ': ' + (data.error || response.statusText);
        return;
      }
    } catch (error) {
      summary.className = 'err'; summary.textContent = String(error); return;
    }
    lastTotal = data.total || 0;
    const hits = data.hits || [];
    summary.textContent = lastTotal + (lastTotal === 1 ? ' hit' : ' hits') + ' in ' + data.took + ' ms' +
      (hits.length ? ' (showing ' + (offset + 1) + '-' + (offset + hits.length) + ')' : '');
    if (filterInput.value.trim()) summary.append(el('span', 'filter: ' + filterInput.value.trim(), 'chip'));
    hits.forEach((hit) => hitsList.append(renderHit(hit, target.annotation)));
    hitsList.start = offset + 1;
    renderFacets(data.facets);
    $('prev').disabled = offset <= 0;
    $('next').disabled = offset + hits.length >= lastTotal;
    pager.hidden = lastTotal <= hits.length && offset === 0;
  }

  form.addEventListener('submit', (event) => { event.preventDefault(); search(0); });
  endpointSelect.addEventListener('change', loadFacetFields);
  $('prev').addEventListener('click', () => search(Math.max(0, offset - (parseInt(sizeInput.value, 10) || 10))));
  $('next').addEventListener('click', () => search(offset + (parseInt(sizeInput.value, 10) || 10)));

  loadFacetFields().then(() => {
    const initial = new URLSearchParams(location.search).get('q');
    if (initial) { input.value = initial; search(0); }
  });
})();
