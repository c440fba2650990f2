// Checks Resource Graph queries with Microsoft's own KQL parser and semantic analyser
// (@kusto/language-service-next, pinned in package.json beside this file, installed by .ci/run
// into tests/kql/node_modules). tests/kql.rs runs it on every query patchwatch sends.
//
// stdin:  a JSON array of { "name": string, "query": string }
// stdout: a JSON array of { "name", "errors": [ { "message", "start", "length" } ] }, in input order
// exit:   0 every query is clean, 1 some query has an error, 2 bad input,
//         3 the parser package is missing or not the pinned version (run .ci/run's install step)
//
// Two kinds of error are reported:
// - the parser's own error diagnostics (syntax, and semantics against the schema below: an
//   unknown table, column or function, a wrong argument type);
// - Resource Graph's narrower subset of KQL, which the parser does not know: the tabular
//   operators and join flavours that Resource Graph documents as supported ("Supported KQL
//   language elements", Azure Resource Graph query language), and its per-query limits.

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const PACKAGE = "@kusto/language-service-next";
const INSTALL_HINT = "run .ci/run's install step: (cd tests/kql && npm ci)";

let K;
try {
  const pinned = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")).dependencies[PACKAGE];
  const installed = require(`${PACKAGE}/package.json`).version;
  if (installed !== pinned) {
    fail(3, `${PACKAGE} ${installed} is installed but ${pinned} is pinned in tests/kql/package.json; ${INSTALL_HINT}`);
  }
  // Bridge.NET output: the runtime first, then the language service; both set globals.
  require(`${PACKAGE}/bridge.min.js`);
  require(`${PACKAGE}/Kusto.Language.Bridge.min.js`);
  K = globalThis.Kusto.Language;
} catch (e) {
  fail(3, `${PACKAGE} could not be loaded (${e.code ?? e.message}); ${INSTALL_HINT}`);
}

// Resource Graph's tables, each with the standard columns of a Resource Graph row. Table names
// are listed as written in patchwatch's queries (lower case) and as Microsoft's docs write them;
// add a table here before a query uses it.
const TABLES = ["Resources", "MaintenanceResources", "PatchAssessmentResources", "PatchInstallationResources"];
const COLUMNS = [
  ["id", "string"],
  ["name", "string"],
  ["type", "string"],
  ["tenantId", "string"],
  ["kind", "string"],
  ["location", "string"],
  ["resourceGroup", "string"],
  ["subscriptionId", "string"],
  ["managedBy", "string"],
  ["sku", "dynamic"],
  ["plan", "dynamic"],
  ["properties", "dynamic"],
  ["tags", "dynamic"],
  ["identity", "dynamic"],
  ["zones", "dynamic"],
  ["extendedLocation", "dynamic"],
];

// Resource Graph's supported tabular operators (by their first keyword), join flavours and limits.
const ARG_OPERATORS = new Set([
  "count", "distinct", "extend", "join", "limit", "mvexpand", "mv-expand", "order", "parse",
  "project", "project-away", "sort", "summarize", "take", "top", "union", "where",
]);
const ARG_JOIN_KINDS = new Set(["innerunique", "inner", "leftouter", "fullouter"]);
const ARG_MAX_JOINS = 3;
const ARG_MAX_MV_EXPANDS = 2;

function globals() {
  const S = K.Symbols;
  // Columns are built one by one: the TableSymbol schema-string constructor silently stops at a
  // column named like a keyword ("kind"), leaving every later column unknown.
  const columns = () =>
    COLUMNS.map(([name, type]) => new S.ColumnSymbol(name, type === "dynamic" ? S.ScalarTypes.Dynamic : S.ScalarTypes.String, null, null, null, null));
  const names = [...new Set(TABLES.flatMap((t) => [t, t.toLowerCase()]))];
  const tables = names.map((name) => new S.TableSymbol.$ctor4(name, columns()));
  return K.GlobalState.Default.WithDatabase(new S.DatabaseSymbol.$ctor2("ResourceGraph", null, tables));
}

function check(query, globals) {
  const code = K.KustoCode.ParseAndAnalyze(query, globals);
  const errors = Bridge.toArray(code.GetDiagnostics())
    .filter((d) => d.Severity === "Error")
    .map((d) => ({ message: d.Message, start: d.Start, length: d.Length }));

  const subset = (node, message) => errors.push({ message: `Resource Graph: ${message}`, start: node.TextStart, length: node.Width });
  let joins = 0;
  let mvExpands = 0;
  for (const s of Bridge.toArray(code.Syntax.Statements)) {
    const statement = s.Element$1;
    if (!Bridge.is(statement, K.Syntax.ExpressionStatement)) {
      subset(statement, `'${statement.GetFirstToken().Text}' statements are not in Resource Graph's supported KQL`);
    }
  }
  code.Syntax.WalkNodes((node) => {
    if (!Bridge.is(node, K.Syntax.QueryOperator)) return;
    const keyword = node.GetFirstToken().Text;
    if (!ARG_OPERATORS.has(keyword)) {
      subset(node, `'${keyword}' is not one of Resource Graph's supported tabular operators`);
    }
    if (keyword === "mv-expand" || keyword === "mvexpand") mvExpands += 1;
    if (Bridge.is(node, K.Syntax.JoinOperator)) {
      joins += 1;
      for (const p of Bridge.toArray(node.Parameters)) {
        const name = p.Name.SimpleName;
        const value = p.Expression.toString().trim();
        if (name !== "kind") {
          subset(p, `join parameter '${name}' is not supported (custom join strategies are not allowed)`);
        } else if (!ARG_JOIN_KINDS.has(value)) {
          subset(p, `join kind=${value} is not supported (only ${[...ARG_JOIN_KINDS].join(", ")})`);
        }
      }
      if (joins === ARG_MAX_JOINS + 1) subset(node, `more than ${ARG_MAX_JOINS} joins in one query`);
    }
    if (mvExpands === ARG_MAX_MV_EXPANDS + 1 && (keyword === "mv-expand" || keyword === "mvexpand")) {
      subset(node, `more than ${ARG_MAX_MV_EXPANDS} mv-expand operators in one query`);
    }
  });
  return errors;
}

function fail(code, message) {
  process.stderr.write(`check.mjs: ${message}\n`);
  process.exit(code);
}

let input;
try {
  input = JSON.parse(readFileSync(0, "utf8"));
} catch (e) {
  fail(2, `stdin is not JSON: ${e.message}`);
}
if (!Array.isArray(input)) fail(2, "stdin must be a JSON array of { name, query }");
input.forEach((item, i) => {
  if (item === null || typeof item !== "object" || typeof item.name !== "string" || typeof item.query !== "string") {
    fail(2, `item ${i} is not { "name": string, "query": string }`);
  }
});

const g = globals();
const results = input.map(({ name, query }) => ({ name, errors: check(query, g) }));
process.stdout.write(JSON.stringify(results, null, 2) + "\n");
process.exitCode = results.some((r) => r.errors.length > 0) ? 1 : 0;
