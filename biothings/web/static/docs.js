// Interactive docs: renders the API's OpenAPI document, with a "try it" form per operation.
// Every value from the document, the API or the user reaches the page through textContent only.
(function () {
  'use strict';
  const config = JSON.parse(document.getElementById('bt-config').textContent);
  const main = document.getElementById('operations');

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function resolve(spec, schema) {
    let seen = 0;
    while (schema && schema.$ref && seen++ < 10) {
      const parts = schema.$ref.replace(/^#\//, '').split('/');
      schema = parts.reduce((node, key) => (node ? node[key] : undefined), spec);
    }
    return schema || {};
  }

  function typeOf(spec, schema) {
    schema = resolve(spec, schema);
    if (schema.$ref) return schema.$ref.split('/').pop();
    if (schema.anyOf || schema.oneOf) {
      return (schema.anyOf || schema.oneOf).map((part) => (part.$ref ? part.$ref.split('/').pop() : typeOf(spec, part))).join(' | ');
    }
    let type = Array.isArray(schema.type) ? schema.type.join(' | ') : (schema.type || 'any');
    if (type === 'array' && schema.items && Object.keys(schema.items).length) type = 'array of ' + typeOf(spec, schema.items);
    return type;
  }

  function schemaName(schema) {
    if (!schema) return '';
    if (schema.$ref) return schema.$ref.split('/').pop();
    const parts = schema.anyOf || schema.oneOf;
    if (parts) return parts.map(schemaName).filter(Boolean).join(' | ');
    return schema.type ? String(schema.type) : '';
  }

  function constraints(schema) {
    const notes = [];
    if (schema.default !== undefined) notes.push('default ' + JSON.stringify(schema.default));
    if (schema.enum) notes.push('one of ' + schema.enum.join(', '));
    if (schema.minimum !== undefined) notes.push('min ' + schema.minimum);
    if (schema.maximum !== undefined) notes.push('max ' + schema.maximum);
    if (schema.maxItems !== undefined) notes.push('at most ' + schema.maxItems + ' items');
    return notes.join('; ');
  }

  function parameterTable(spec, parameters) {
    const table = el('table', null, 'params');
    const head = el('tr');
    ['Name', 'In', 'Type', 'Description'].forEach((name) => head.append(el('th', name)));
    table.append(el('thead')); table.tHead.append(head);
    const body = el('tbody');
    for (const parameter of parameters) {
      const row = el('tr');
      const name = el('td');
      name.append(el('code', parameter.name));
      if (parameter.required) name.append(el('span', ' *', 'required'));
      const schema = parameter.schema || {};
      const note = constraints(schema);
      row.append(name, el('td', parameter.in), el('td', typeOf(spec, schema)),
        el('td', (parameter.description || '') + (note ? ' (' + note + ')' : '')));
      body.append(row);
    }
    table.append(body);
    return table;
  }

  function inputFor(parameter) {
    const schema = parameter.schema || {};
    let input;
    if (schema.type === 'boolean') {
      input = el('select');
      input.append(new Option('', ''), new Option('true', 'true'), new Option('false', 'false'));
    } else if (schema.enum) {
      input = el('select');
      input.append(new Option('', ''));
      schema.enum.forEach((value) => input.append(new Option(String(value), String(value))));
    } else {
      input = el('input');
      input.type = 'text';
      if (schema.type === 'array') input.placeholder = 'comma-separated';
      else if (schema.default !== undefined) input.placeholder = String(schema.default);
    }
    input.name = parameter.name;
    input.dataset.in = parameter.in;
    input.setAttribute('aria-label', parameter.name);
    if (parameter.in === 'path') input.required = true;
    return input;
  }

  function bodyTemplate(spec, schema) {
    schema = resolve(spec, schema);
    const template = {};
    for (const name of schema.required || []) {
      const property = resolve(spec, (schema.properties || {})[name]);
      const types = property.anyOf ? property.anyOf.map((part) => part.type) : [property.type];
      template[name] = types.includes('array') ? [] : '';
    }
    return JSON.stringify(template, null, 2);
  }

  function formTemplate(spec, schema) {
    schema = resolve(spec, schema);
    return (schema.required || []).map((name) => encodeURIComponent(name) + '=').join('&');
  }

  function tryIt(spec, path, method, operation) {
    const form = el('form', null, 'try');
    form.append(el('h4', 'Try it'));
    const parameters = operation.parameters || [];
    for (const parameter of parameters) {
      const field = el('label', null, 'field');
      const name = el('span');
      name.append(el('code', parameter.name));
      if (parameter.required || parameter.in === 'path') name.append(el('span', ' *', 'required'));
      field.append(name, inputFor(parameter));
      form.append(field);
    }
    let bodyType = null, bodyText = null;
    const content = operation.requestBody && operation.requestBody.content;
    if (content) {
      const types = Object.keys(content);
      bodyType = el('select', null, 'body-type');
      bodyType.setAttribute('aria-label', 'body content type');
      types.forEach((type) => bodyType.append(new Option(type, type)));
      bodyText = el('textarea', null, 'body');
      bodyText.setAttribute('aria-label', 'request body');
      const fill = () => {
        const schema = content[bodyType.value].schema;
        bodyText.value = bodyType.value.includes('json') ? bodyTemplate(spec, schema) : formTemplate(spec, schema);
      };
      bodyType.addEventListener('change', fill);
      fill();
      const typeField = el('label', null, 'field');
      typeField.append(el('span', 'Body'), bodyType);
      form.append(typeField, bodyText);
    }
    const send = el('button', 'Send', 'send');
    send.type = 'submit';
    form.append(send);
    const status = el('p', null, 'status'), url = el('p', null, 'url'), output = el('pre', null, 'response');
    status.hidden = url.hidden = output.hidden = true;
    form.append(status, url, output);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      let target = path;
      const query = new URLSearchParams();
      for (const input of form.querySelectorAll('[data-in]')) {
        const value = input.value.trim();
        if (input.dataset.in === 'path') target = target.split('{' + input.name + '}').join(encodeURIComponent(value));
        else if (value !== '') query.append(input.name, value);
      }
      const address = target + (query.toString() ? '?' + query.toString() : '');
      const init = {method: method.toUpperCase(), headers: {Accept: 'application/json'}};
      if (bodyText && bodyText.value.trim()) {
        init.body = bodyText.value;
        init.headers['Content-Type'] = bodyType.value;
      }
      status.hidden = url.hidden = output.hidden = false;
      status.className = 'status'; status.textContent = 'Sending...';
      url.replaceChildren(el('code', init.method + ' ' + address));
      output.textContent = '';
      try {
        const response = await fetch(address, init);
        const text = await response.text();
        status.textContent = response.status + ' ' + response.statusText;
        if (!response.ok) status.className = 'status err';
        let shown = text;
        if ((response.headers.get('Content-Type') || '').includes('json')) {
          try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (error) { /* shown as sent */ }
        }
        output.textContent = shown;
      } catch (error) {
        status.className = 'status err'; status.textContent = String(error);
      }
    });
    return form;
  }

  function renderOperation(spec, path, method, operation) {
    const details = el('details', null, 'op');
    details.id = operation.operationId || (method + path);
    details.dataset.method = method;
    details.dataset.path = path;
    const summary = el('summary');
    summary.append(el('span', method.toUpperCase(), 'method ' + method), el('code', path),
      el('span', operation.summary || '', 'op-summary'));
    details.append(summary);
    const body = el('div', null, 'body');
    if (operation.description) body.append(el('p', operation.description));
    if ((operation.parameters || []).length) {
      body.append(el('h4', 'Parameters'), parameterTable(spec, operation.parameters));
    }
    const content = operation.requestBody && operation.requestBody.content;
    if (content) {
      body.append(el('h4', 'Request body: ' + Object.keys(content).join(', ')));
      const first = content[Object.keys(content)[0]];
      const schema = resolve(spec, first.schema);
      const properties = Object.entries(schema.properties || {}).map(([name, property]) => ({
        name: name, in: 'body', required: (schema.required || []).includes(name),
        description: property.description, schema: property.anyOf ? property.anyOf[0] : property}));
      if (properties.length) body.append(parameterTable(spec, properties));
    }
    body.append(el('h4', 'Responses'));
    const responses = el('ul', null, 'responses');
    for (const [code, response] of Object.entries(operation.responses || {})) {
      const json = response.content && response.content['application/json'];
      const item = el('li');
      item.append(el('code', code), document.createTextNode(' ' + (response.description || '') +
        (json ? ' (' + schemaName(json.schema) + ')' : '')));
      responses.append(item);
    }
    body.append(responses, tryIt(spec, path, method, operation));
    details.append(body);
    return details;
  }

  async function render() {
    let spec;
    try {
      const response = await fetch(config.spec, {headers: {Accept: 'application/json'}});
      spec = await response.json();
    } catch (error) {
      main.replaceChildren(el('p', 'Could not load the OpenAPI document: ' + error, 'err'));
      return;
    }
    document.getElementById('description').textContent = (spec.info && spec.info.description) || '';
    const groups = new Map();
    for (const [path, item] of Object.entries(spec.paths || {})) {
      for (const [method, operation] of Object.entries(item)) {
        if (!['get', 'post', 'put', 'patch', 'delete', 'head'].includes(method)) continue;
        const tag = (operation.tags && operation.tags[0]) || 'other';
        if (!groups.has(tag)) groups.set(tag, []);
        groups.get(tag).push([path, method, operation]);
      }
    }
    const sections = [];
    for (const [tag, operations] of groups) {
      const section = el('section', null, 'tag');
      section.append(el('h2', tag));
      for (const [path, method, operation] of operations) section.append(renderOperation(spec, path, method, operation));
      sections.push(section);
    }
    main.replaceChildren(...sections);
    if (location.hash) {
      const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target && target.tagName === 'DETAILS') { target.open = true; target.scrollIntoView(); }
    }
  }

  render();
})();
