#!/usr/bin/env node
// The contract check: validates every HTTP response the integration suite received (the
// JSON lines that tests/integration/executord_client.py appends to $EXECUTORD_CONTRACT_LOG)
// against openapi.yaml, with openapi-backend (router: request -> path template and
// operation; validator: Ajv compiled from the dereferenced spec, OpenAPI 3.0 `nullable`,
// `$ref`, `oneOf`/`allOf`, plus ajv-formats for `uuid`, `date-time`, ...).
//
// For each response:
//   * the request must route to a documented operation; a documented path with an
//     undocumented method must have answered 405 (MethodNotAllowed, `Allow` = the
//     documented methods) and an unknown path 404 (NotFound);
//   * the status code must be documented for that operation (exactly, as NXX or `default`);
//   * the Content-Type must be one of that response's documented media types (a response
//     documented without content must have no body);
//   * a JSON body must validate against the schema, and documented headers that are
//     present must validate against theirs; other bodies (text/plain, YAML, HTML, ...)
//     are checked for media type only.
// Prints every failure (test, request, status, errors), a summary per operation and the
// documented status codes that were never exercised; exits 1 on any failure.
//
// Usage: node contract.js [--spec ../../openapi.yaml] [--min N] LOG.jsonl [LOG2.jsonl ...]
"use strict";
const fs = require("fs");
const path = require("path");
const yaml = require("js-yaml");
const addFormats = require("ajv-formats");
const { OpenAPIBackend } = require("openapi-backend");

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

function parseArgs(argv) {
  const out = { spec: path.join(__dirname, "..", "..", "openapi.yaml"), logs: [], min: 1 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--spec") out.spec = argv[++i];
    else if (argv[i] === "--min") out.min = Number(argv[++i]);
    else if (argv[i] === "-h" || argv[i] === "--help") {
      console.log("usage: node contract.js [--spec openapi.yaml] [--min N] LOG.jsonl...");
      process.exit(0);
    } else out.logs.push(argv[i]);
  }
  if (!out.logs.length) {
    console.error("contract: no log given (usage: node contract.js [--spec openapi.yaml] LOG.jsonl...)");
    process.exit(2);
  }
  return out;
}

// "text/plain; version=0.0.4; charset=utf-8" -> {type: "text/plain", params: {version: "0.0.4", ...}}
function parseMedia(value) {
  const [type, ...rest] = String(value || "").split(";");
  const params = {};
  for (const p of rest) {
    const eq = p.indexOf("=");
    if (eq > 0) params[p.slice(0, eq).trim().toLowerCase()] = p.slice(eq + 1).trim().replace(/^"|"$/g, "");
  }
  return { type: type.trim().toLowerCase(), params };
}

// The documented media type key that an actual Content-Type satisfies: same type (or a
// documented wildcard such as text/* or */*), and every parameter the key names present
// with the same value (charset compared case-insensitively).
function matchMedia(documented, actual) {
  const a = parseMedia(actual);
  for (const key of documented) {
    const d = parseMedia(key);
    const [dt, ds] = d.type.split("/");
    const [at, as] = a.type.split("/");
    if (!(d.type === a.type || (ds === "*" && (dt === "*" || dt === at)))) continue;
    let ok = true;
    for (const [k, v] of Object.entries(d.params)) {
      const got = a.params[k];
      if (got === undefined || (k === "charset" ? got.toLowerCase() !== v.toLowerCase() : got !== v)) ok = false;
    }
    if (ok) return key;
  }
  return null;
}

const isJsonMedia = (t) => t === "application/json" || /^application\/[^;]*\+json$/.test(t);

function fmtErrors(errors) {
  return (errors || []).map((e) => {
    const where = e.instancePath || "(root)";
    const extra = e.params && Object.keys(e.params).length ? " " + JSON.stringify(e.params) : "";
    return `${where}: ${e.message}${extra}`;
  });
}

function excerpt(s, n = 400) {
  s = String(s ?? "");
  return s.length > n ? s.slice(0, n) + `… (${s.length} chars)` : s;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const document = yaml.load(fs.readFileSync(args.spec, "utf8"));
  const api = new OpenAPIBackend({
    definition: document,
    strict: true,
    validate: true,
    // quick: validators are compiled on demand (below: every response validator, at once).
    // Request validators are never needed here, and would not compile: Ajv (draft-07)
    // refuses OpenAPI 3.0's boolean `exclusiveMinimum` (JobRequest.timeout_seconds).
    // quick also skips openapi-backend's own document check (openapi-schema-validator),
    // which has the same flaw; the document is validated by swagger-parser (validate.js,
    // the official OpenAPI 3.0 schema) and the linter instead.
    quick: true,
    ignoreTrailingSlashes: false, // the server answers /v1/jobs/ with 404: so must the routing here
    customizeAjv: (ajv) => {
      addFormats(ajv);
      return ajv;
    },
  });
  await api.init();
  // Compile every response body and header validator now: a schema Ajv cannot compile is
  // a fatal error, not a silently unchecked response.
  for (const o of api.router.getOperations()) {
    api.validator.getStatusBasedResponseValidatorForOperation(o.operationId);
    api.validator.getResponseHeadersValidatorForOperation(o.operationId);
  }
  const spec = api.definition; // dereferenced

  // Shared Ajv (same options and formats as openapi-backend's) for the responses the spec
  // describes as components but that belong to no operation: unknown path, wrong method.
  const ajv = api.validator.getAjv("response");
  const componentValidator = (name) => {
    const r = spec.components.responses[name];
    if (!r) throw new Error(`components.responses.${name} is missing`);
    return { response: r, validate: ajv.compile(r.content["application/json"].schema) };
  };
  const notFound = componentValidator("NotFound");
  const methodNotAllowed = componentValidator("MethodNotAllowed");

  const ops = api.router.getOperations();
  const paramValidators = new Map();
  const pathParamsMatch = (o, reqPath) => {
    const names = [];
    const re = new RegExp("^" + o.path.replace(/\{([^}]+)\}/g, (_, n) => `\0${names.push(n)}\0`)
      .split(/\0\d+\0/).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("([^/]+)") + "$");
    const m = re.exec(reqPath);
    if (!m) return false;
    return names.every((name, i) => {
      const p = (o.parameters || []).find((x) => x.in === "path" && x.name === name);
      if (!p || !p.schema) return true;
      const key = `${o.operationId}:${name}`;
      if (!paramValidators.has(key)) paramValidators.set(key, ajv.compile(p.schema));
      let v;
      try {
        v = decodeURIComponent(m[i + 1]);
      } catch {
        return false;
      }
      return paramValidators.get(key)(v);
    });
  };
  const seen = new Map(); // operationId or pseudo key -> Map(status -> count)
  const count = (key, status) => {
    if (!seen.has(key)) seen.set(key, new Map());
    const m = seen.get(key);
    m.set(String(status), (m.get(String(status)) || 0) + 1);
  };
  const failures = [];
  let total = 0;
  let schemaChecked = 0;
  let mediaOnly = 0;
  let unvalidated = 0;

  for (const file of args.logs) {
    const lines = fs.readFileSync(file, "utf8").split("\n");
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      let e;
      try {
        e = JSON.parse(line);
      } catch (err) {
        failures.push({ where: `${file}:${i + 1}`, errors: [`unreadable log line: ${err.message}`] });
        return;
      }
      total++;
      const problems = [];
      const fail = () => {
        if (problems.length) failures.push({ where: `${file}:${i + 1}`, entry: e, errors: problems.slice() });
      };
      const method = String(e.method).toLowerCase();
      const [reqPath] = String(e.path).split("?");
      const status = Number(e.status);
      const headers = e.headers || {};
      const bodyText = e.body_encoding === "base64" ? null : e.body || "";
      const media = parseMedia(e.content_type).type;

      const parseJson = () => {
        if (e.body_truncated) {
          unvalidated++;
          problems.push(`JSON body of ${e.body_bytes} bytes was truncated in the log; cannot validate it`);
          return undefined;
        }
        if (bodyText === null) {
          problems.push("Content-Type says JSON but the body is not UTF-8");
          return undefined;
        }
        try {
          return JSON.parse(bodyText);
        } catch (err) {
          problems.push(`Content-Type says JSON but the body does not parse: ${err.message}`);
          return undefined;
        }
      };
      // The same checks for a components response (no operation): media type + schema.
      const checkComponent = (comp, name) => {
        if (!matchMedia(Object.keys(comp.response.content || {}), e.content_type)) {
          problems.push(`Content-Type ${JSON.stringify(e.content_type)} is not documented for ${name}`);
          return;
        }
        const doc = parseJson();
        if (doc === undefined) return;
        schemaChecked++;
        if (!comp.validate(doc)) problems.push(...fmtErrors(comp.validate.errors).map((m) => `body ${m}`));
      };

      let op;
      let routeError = null;
      try {
        op = api.router.matchOperation({ method, path: reqPath, headers, query: {} }, true);
      } catch (err) {
        routeError = err.message;
      }

      if (!op) {
        // Documented paths this one is an instance of: the template matches and every path
        // parameter satisfies its schema (/ui/{file} needs a file name, /v1/jobs/{id} a UUID;
        // anything else is no route at all for the server, whatever the method).
        const onPath = ops.filter((o) => pathParamsMatch(o, reqPath));
        if (onPath.length) {
          // Documented path, undocumented method: 405 with Allow = the documented methods.
          const key = `(405: ${onPath[0].path})`;
          count(key, status);
          if (status !== 405) {
            problems.push(`${e.method} is not documented for ${onPath[0].path}, so 405 was expected, got ${status}`);
          } else {
            checkComponent(methodNotAllowed, "MethodNotAllowed");
            const want = [...new Set(onPath.map((o) => o.method.toUpperCase()))].sort().join(", ");
            const got = String(headers.allow || "").split(",").map((s) => s.trim().toUpperCase())
              .filter(Boolean).sort().join(", ");
            if (got !== want) problems.push(`Allow is ${JSON.stringify(headers.allow)}, the spec documents ${want}`);
          }
        } else {
          // Unknown path: the documented answer is 404 not_found (or 400 for a request
          // line the server refuses before routing, e.g. an encoded NUL).
          const key = "(unknown path)";
          count(key, status);
          if (status === 404 || status === 400) checkComponent(notFound, "NotFound");
          else problems.push(`no documented route matches (${routeError}), so 404 was expected, got ${status}`);
        }
        fail();
        return;
      }

      const opKey = op.operationId;
      count(opKey, status);
      const responses = op.responses || {};
      const code = [String(status), `${Math.floor(status / 100)}XX`, "default"].find((c) => responses[c]);
      if (!code) {
        problems.push(`status ${status} is not documented for ${opKey} (${op.method.toUpperCase()} ${op.path}); ` +
          `documented: ${Object.keys(responses).join(", ")}`);
        fail();
        return;
      }
      const resp = responses[code];
      const content = resp.content || {};
      const documentedMedia = Object.keys(content);
      if (!documentedMedia.length) {
        if (Number(e.body_bytes || 0) > 0) problems.push(`${code} is documented without a body, got ${e.body_bytes} bytes`);
        mediaOnly++;
      } else {
        const key = matchMedia(documentedMedia, e.content_type);
        if (!key) {
          problems.push(`Content-Type ${JSON.stringify(e.content_type)} is not documented for ${opKey} ${code} ` +
            `(documented: ${documentedMedia.join(", ")})`);
        } else if (isJsonMedia(parseMedia(key).type) && isJsonMedia(media)) {
          const doc = parseJson();
          if (doc !== undefined) {
            schemaChecked++;
            const r = api.validator.validateResponse(doc, op, status);
            if (!r.valid) problems.push(...fmtErrors(r.errors).map((m) => `body ${m}`));
          }
        } else {
          mediaOnly++;
        }
      }
      // Documented response headers that are present must match their schemas.
      if (resp.headers && Object.keys(resp.headers).length) {
        const hdrs = {};
        for (const name of Object.keys(resp.headers)) {
          const v = headers[name.toLowerCase()];
          if (v === undefined) continue;
          const s = resp.headers[name].schema || {};
          hdrs[name.toLowerCase()] = (s.type === "integer" || s.type === "number") && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
        }
        const r = api.validator.validateResponseHeaders(hdrs, op, { statusCode: status, setMatchType: "any" });
        if (!r.valid) problems.push(...fmtErrors(r.errors).map((m) => `header ${m}`));
      }
      fail();
    });
  }

  // ---- report ------------------------------------------------------------------------
  for (const f of failures) {
    const e = f.entry || {};
    console.log(`FAIL ${e.method || "?"} ${e.path || "?"} -> ${e.status ?? "?"} ${e.content_type || ""}  [${f.where}]`);
    if (e.test) console.log(`  test: ${e.test}`);
    for (const m of f.errors) console.log(`  - ${m}`);
    if (e.body !== undefined) console.log(`  body: ${excerpt(e.body_encoding === "base64" ? "(base64) " + e.body : e.body)}`);
    if (e.request_body) console.log(`  request body: ${excerpt(e.request_body, 200)}`);
  }

  console.log("\nresponses checked per operation (status: count):");
  const keys = [...ops.map((o) => o.operationId), ...[...seen.keys()].filter((k) => k.startsWith("("))];
  for (const key of [...new Set(keys)]) {
    const m = seen.get(key);
    const o = ops.find((x) => x.operationId === key);
    const label = o ? `${key} (${o.method.toUpperCase()} ${o.path})` : key;
    const parts = m ? [...m.entries()].sort().map(([s, n]) => `${s}: ${n}`).join(", ") : "never exercised";
    console.log(`  ${label.padEnd(48)} ${parts}`);
  }
  const never = [];
  for (const o of ops) {
    const m = seen.get(o.operationId) || new Map();
    for (const c of Object.keys(o.responses || {})) {
      const hit = [...m.keys()].some((s) => s === c || (c.endsWith("XX") && s[0] === c[0]) || c === "default");
      if (!hit) never.push(`${o.operationId} ${c}`);
    }
  }
  console.log(`\ndocumented but never exercised (informational): ${never.length ? never.join(", ") : "none"}`);
  console.log(`\ncontract: ${total} responses from ${args.logs.join(", ")}: ${schemaChecked} bodies validated ` +
    `against schemas, ${mediaOnly} checked for status and media type only` +
    (unvalidated ? `, ${unvalidated} not validatable` : "") + `; ${failures.length} failed`);
  if (total < args.min) {
    console.log(`contract: FAILED: only ${total} responses recorded (at least ${args.min} expected)`);
    process.exit(1);
  }
  if (failures.length) {
    console.log("contract: FAILED");
    process.exit(1);
  }
  console.log("contract: OK");
}

main().catch((err) => {
  console.error(`contract: ${err.stack || err}`);
  process.exit(2);
});
