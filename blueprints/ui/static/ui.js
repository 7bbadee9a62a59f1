// Dispatch web UI: progressive enhancement of pages that work without it.
// - forms: JSON fields and schema-checked inputs are checked before sending;
// - live updates: server-sent events (/ui/live/<kind>) update statuses and add new runs;
// - try-it forms call the gateway and show its answer.
// (The organization menu is submitted with its button, never on change: choosing with
// the arrow keys must not leave the page.)
// No inline script anywhere (the Content-Security-Policy forbids it); text from the
// server is only ever set with textContent, never as HTML.
(function () {
  "use strict";

  // ---- JSON Schema (the common keywords; the server checks the rest) ----------------
  function typeOf(v) {
    if (v === null) return "null";
    if (Array.isArray(v)) return "array";
    if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
    return typeof v;
  }
  function typeMatches(v, t) {
    var actual = typeOf(v);
    return actual === t || (t === "number" && actual === "integer");
  }
  function childPath(path, key) {
    return typeof key === "number" ? path + "[" + key + "]" : path + "." + key;
  }
  function validate(schema, value, path) {
    path = path || "$";
    if (schema === true || schema === undefined || schema === null) return null;
    if (schema === false) return path + ": no value is allowed here";
    if (schema.type !== undefined) {
      var types = Array.isArray(schema.type) ? schema.type : [schema.type];
      if (!types.some(function (t) { return typeMatches(value, t); })) {
        return path + ": " + JSON.stringify(value) + " is not of type " +
          types.map(function (t) { return "'" + t + "'"; }).join(", ");
      }
    }
    if (schema.enum && !schema.enum.some(function (e) { return JSON.stringify(e) === JSON.stringify(value); })) {
      return path + ": " + JSON.stringify(value) + " is not one of " + JSON.stringify(schema.enum);
    }
    if ("const" in schema && JSON.stringify(schema.const) !== JSON.stringify(value)) {
      return path + ": " + JSON.stringify(schema.const) + " was expected";
    }
    var t = typeOf(value);
    if (t === "integer" || t === "number") {
      if (schema.minimum !== undefined && value < schema.minimum) return path + ": " + value + " is less than the minimum of " + schema.minimum;
      if (schema.maximum !== undefined && value > schema.maximum) return path + ": " + value + " is greater than the maximum of " + schema.maximum;
      if (typeof schema.exclusiveMinimum === "number" && value <= schema.exclusiveMinimum) return path + ": " + value + " is less than or equal to " + schema.exclusiveMinimum;
      if (typeof schema.exclusiveMaximum === "number" && value >= schema.exclusiveMaximum) return path + ": " + value + " is greater than or equal to " + schema.exclusiveMaximum;
    }
    if (t === "string") {
      if (schema.minLength !== undefined && value.length < schema.minLength) return path + ": " + JSON.stringify(value) + " is too short";
      if (schema.maxLength !== undefined && value.length > schema.maxLength) return path + ": " + JSON.stringify(value) + " is too long";
      if (schema.pattern) {
        try { if (!new RegExp(schema.pattern, "u").test(value)) return path + ": " + JSON.stringify(value) + " does not match " + JSON.stringify(schema.pattern); }
        catch (e) { /* a pattern JavaScript cannot read: the server judges */ }
      }
    }
    if (t === "object") {
      var required = schema.required || [];
      for (var i = 0; i < required.length; i++) {
        if (!(required[i] in value)) return path + ": '" + required[i] + "' is a required property";
      }
      var props = schema.properties || {};
      for (var key in value) {
        if (!Object.prototype.hasOwnProperty.call(value, key)) continue;
        if (key in props) {
          var err = validate(props[key], value[key], childPath(path, key));
          if (err) return err;
        } else if (schema.additionalProperties === false) {
          return path + ": additional properties are not allowed ('" + key + "' was unexpected)";
        } else if (typeof schema.additionalProperties === "object") {
          var err2 = validate(schema.additionalProperties, value[key], childPath(path, key));
          if (err2) return err2;
        }
      }
    }
    if (t === "array") {
      if (schema.minItems !== undefined && value.length < schema.minItems) return path + ": too few items (at least " + schema.minItems + ")";
      if (schema.maxItems !== undefined && value.length > schema.maxItems) return path + ": too many items (at most " + schema.maxItems + ")";
      if (schema.items && typeof schema.items === "object" && !Array.isArray(schema.items)) {
        for (var j = 0; j < value.length; j++) {
          var err3 = validate(schema.items, value[j], childPath(path, j));
          if (err3) return err3;
        }
      }
    }
    return null;
  }

  // ---- field errors ---------------------------------------------------------------
  function errorElementOf(field) {
    var next = field.nextElementSibling;
    while (next && next.tagName === "P" && !next.classList.contains("field-error")) next = next.nextElementSibling;
    return next && next.classList.contains("field-error") ? next : null;
  }
  function showError(field, message) {
    var box = errorElementOf(field);
    if (message) {
      field.setAttribute("aria-invalid", "true");
      if (box) {
        box.textContent = message;
        box.hidden = false;
        field.setAttribute("aria-describedby", box.id);
      }
    } else {
      field.removeAttribute("aria-invalid");
      if (box) { box.textContent = ""; box.hidden = true; }
    }
  }
  function parseJson(text) {
    try { return { value: JSON.parse(text) }; }
    catch (e) { return { error: e.message }; }
  }

  function checkForm(form) {
    var firstBad = null;
    var schemaText = form.getAttribute("data-schema");
    var schema = schemaText ? JSON.parse(schemaText) : null;
    form.querySelectorAll("textarea[data-json], textarea[name=input]").forEach(function (field) {
      var text = field.value.trim();
      var message = null;
      if (text) {
        var parsed = parseJson(text);
        if (parsed.error) message = "Not valid JSON: " + parsed.error;
        else if (field.name === "input" && schema) {
          var why = validate(schema, parsed.value);
          if (why) message = "Input invalid against schema: " + why;
        }
      } else if (field.name === "input" && schema) {
        var whyEmpty = validate(schema, null);
        if (whyEmpty) message = "Input invalid against schema: " + whyEmpty;
      }
      showError(field, message);
      if (message && !firstBad) firstBad = field;
    });
    if (firstBad) { firstBad.focus(); return false; }
    return true;
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.hasAttribute("data-try-it")) { tryIt(event, form); return; }
    if (!checkForm(form)) event.preventDefault();
  });

  // ---- try-it forms (the gateway) -------------------------------------------------
  function tryIt(event, form) {
    event.preventDefault();
    var body = form.querySelector("[data-body]");
    var text = body.value.trim();
    var error = form.querySelector(".field-error");
    var payload;
    if (text) {
      var parsed = parseJson(text);
      if (parsed.error) {
        body.setAttribute("aria-invalid", "true");
        error.textContent = "Not valid JSON: " + parsed.error;
        error.hidden = false;
        body.focus();
        return;
      }
      payload = text;
    }
    body.removeAttribute("aria-invalid");
    error.hidden = true;
    var method = form.querySelector("[data-method]").value;
    var options = { method: method, credentials: "omit", headers: {} };
    if (payload !== undefined && method !== "GET" && method !== "HEAD") {
      options.body = payload;
      options.headers["Content-Type"] = "application/json";
    }
    var result = form.querySelector(".try-result");
    fetch(form.querySelector("[data-path]").value, options).then(function (response) {
      return response.text().then(function (content) {
        result.hidden = false;
        result.querySelector("[data-result-status]").textContent = response.status + " " + response.statusText;
        result.querySelector("[data-result-body]").textContent = content;
      });
    }).catch(function (e) {
      result.hidden = false;
      result.querySelector("[data-result-status]").textContent = "failed";
      result.querySelector("[data-result-body]").textContent = String(e);
    });
  }

  // ---- live updates ---------------------------------------------------------------
  var SETTLED = ["READY", "ERROR", "completed", "faulted", "cancelled"];
  var streams = {};
  function listen(kind, handler) {
    if (!window.EventSource) return;
    if (!streams[kind]) {
      var after = document.body.getAttribute("data-live-after");
      var source = new EventSource("/ui/live/" + encodeURIComponent(kind) +
                                   (after ? "?after=" + encodeURIComponent(after) : ""));
      streams[kind] = { source: source, handlers: [] };
      source.addEventListener("change", function (message) {
        var data;
        try { data = JSON.parse(message.data); } catch (e) { return; }
        streams[kind].handlers.forEach(function (h) { h(data); });
      });
      window.addEventListener("pagehide", function () { source.close(); });
    }
    streams[kind].handlers.push(handler);
  }

  function setStatus(element, status) {
    if (!element || !status) return;
    element.textContent = status;
    element.className = "status status-" + status.toLowerCase();
  }

  function cell(text, href) {
    var td = document.createElement("td");
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    return td;
  }

  function formatMs(value) {
    if (typeof value !== "number") return "—";
    return value < 1000 ? value.toFixed(1) + " ms" : (value / 1000).toFixed(2) + " s";
  }
  function formatTime(seconds) {
    if (typeof seconds !== "number") return "—";
    return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function runMatches(container, run) {
    var fn = container.getAttribute("data-filter-function");
    var status = container.getAttribute("data-filter-status");
    var tags = container.getAttribute("data-filter-tags");
    if (fn && run.functionName !== fn) return false;
    if (status && run.status !== status) return false;
    if (tags) {
      var have = {};
      (run.tags || []).forEach(function (t) { have[t.key] = t.value; });
      var ok = tags.split(",").every(function (pair) {
        var kv = pair.trim().split("=");
        return !kv[0] || have[kv[0]] === kv.slice(1).join("=");
      });
      if (!ok) return false;
    }
    return true;
  }

  function newRunRow(container, run) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-name", run.name);
    tr.className = "arrived";
    var nameCell = cell("", null);
    var link = document.createElement("a");
    link.href = container.getAttribute("data-run-url") + encodeURIComponent(run.name);
    link.title = run.name;
    var short = document.createElement("code");
    short.textContent = run.name.slice(0, 8);
    var rest = document.createElement("span");
    rest.className = "sr-only";
    rest.textContent = run.name.slice(8);
    link.appendChild(short);
    link.appendChild(rest);
    nameCell.appendChild(link);
    tr.appendChild(nameCell);
    tr.appendChild(cell(run.functionName, container.getAttribute("data-function-url") + encodeURIComponent(run.functionName)));
    var statusCell = document.createElement("td");
    var span = document.createElement("span");
    span.setAttribute("data-status", "");
    setStatus(span, run.status);
    statusCell.appendChild(span);
    tr.appendChild(statusCell);
    tr.appendChild(cell(formatTime(run.createdTime)));
    var duration = cell(formatMs(run.durationMs));
    duration.setAttribute("data-duration", "");
    tr.appendChild(duration);
    return tr;
  }

  function liveList(container, kind) {
    listen(kind, function (data) {
      var row = null;
      container.querySelectorAll("tr[data-name]").forEach(function (tr) {
        if (tr.getAttribute("data-name") === data.name) row = tr;
      });
      if (data.deleted) { if (row) row.remove(); return; }
      if (row) {
        setStatus(row.querySelector("[data-status]"), data.status);
        var reason = row.querySelector("[data-reason]");
        if (reason && data.reason) reason.textContent = data.reason.join("; ");
        var duration = row.querySelector("[data-duration]");
        if (duration && data.durationMs !== undefined) duration.textContent = formatMs(data.durationMs);
        return;
      }
      if (kind === "run" && container.getAttribute("data-live-insert") === "yes" && runMatches(container, data)) {
        var body = container.tagName === "TBODY" ? container : container.querySelector("tbody");
        body.insertBefore(newRunRow(container, data), body.firstChild);
        var none = document.getElementById("no-runs");
        if (none) none.remove();
      }
    });
  }

  function liveEntity(element, kind) {
    var name = element.getAttribute("data-live-name");
    var shown = element.querySelector("[data-status]");
    var current = shown ? shown.textContent.trim() : null;
    listen(kind, function (data) {
      if (data.name !== name) return;
      if (data.tasks) {
        data.tasks.forEach(function (task) {
          document.querySelectorAll(".node[data-reference]").forEach(function (node) {
            if (node.getAttribute("data-reference") !== task.reference || !task.status) return;
            node.className = "node status-" + task.status;
            var label = node.querySelector("[data-node-status]");
            if (label) label.textContent = task.status;
          });
        });
      }
      if (shown && data.status) setStatus(shown, data.status);
      var changed = data.deleted || (data.status && data.status !== current);
      if (data.status) current = data.status;
      if (changed && element.hasAttribute("data-reload-on-change") &&
          (data.deleted || SETTLED.indexOf(data.status) >= 0)) {
        window.location.reload();
      }
    });
  }

  document.querySelectorAll("[data-live]").forEach(function (element) {
    var kind = element.getAttribute("data-live");
    if (element.hasAttribute("data-live-name")) liveEntity(element, kind);
    else liveList(element, kind);
  });
})();
