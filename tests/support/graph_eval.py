"""A loopback fake of Azure Resource Graph that evaluates the KQL it is sent.

Started by tests/support/graph_eval.rs with the test venv's Python (PATCHWATCH_TEST_PYTHON), which
has duckdb-kql (pinned in .ci/run). Rows come from a snapshot file (patchwatch's format: one JSON
object, ARG table name -> array of unprojected rows); every query runs through duckdb-kql over
DuckDB, so a query that ARG would answer differently from what the test expects fails here too.

    graph_eval.py ROWS_JSON

Settings from the environment (the token is not put on a command line):

  GRAPH_EVAL_TOKEN         the one bearer token accepted (required)
  GRAPH_EVAL_QUOTA         queries per quota window (default 15, ARG's documented example)
  GRAPH_EVAL_QUOTA_WINDOW  the window in seconds (default 5)
  GRAPH_EVAL_NOW           RFC 3339 time that now() and ago() read (default: the real clock)

Prints the port it listens on (127.0.0.1, port 0) as the first line of stdout once the rows are
loaded. The REST contract is azure-contracts §4.4:

  POST /providers/Microsoft.ResourceGraph/resources?api-version=...
       {query, options: {$top, $skip, $skipToken, resultFormat}, subscriptions?, managementGroups?}

Control endpoints, for tests:

  GET  /_fake/queries  every query request received, in order: {query, options, subscriptions,
                       managementGroups, status}
  POST /_fake/fail     {"status": 429, "times": 1, "after": N, "retry_after": 2}: after N more
                       query requests succeed, the next `times` answer `status`
  POST /_fake/reset    forget requests, failures, quota use and cached results
"""

import base64
import datetime
import decimal
import hashlib
import json
import math
import os
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

try:
    import duckdb
    import duckdb_kql
    from duckdb_kql.engine import schema as read_schema
except ImportError as e:  # the Rust side turns exit 3 into a failure with this hint
    print(
        f"graph_eval.py needs duckdb-kql ({e}); install it into the test venv: "
        ".ci/venv/bin/pip install 'duckdb-kql[duckdb]==1.1.2' (.ci/run does), "
        "or point PATCHWATCH_TEST_PYTHON at an interpreter that has it",
        file=sys.stderr,
    )
    sys.exit(3)

QUERY_PATH = "/providers/microsoft.resourcegraph/resources"
API_VERSIONS = {"2019-04-01", "2020-04-01-preview", "2021-03-01", "2022-10-01", "2024-04-01"}
# ARG's standard columns: present on every table, whatever a row carries.
STRING_COLUMNS = ["id", "name", "type", "tenantId", "kind", "location", "resourceGroup", "subscriptionId", "managedBy"]
DYNAMIC_COLUMNS = ["sku", "plan", "properties", "tags", "identity", "zones", "extendedLocation"]
COLUMNS = STRING_COLUMNS + DYNAMIC_COLUMNS
# Tables a query may name even when the snapshot has no rows for them (ARG knows them all).
KNOWN_TABLES = ["resources", "resourcecontainers", "maintenanceresources", "patchassessmentresources",
                "patchinstallationresources"]
DEFAULT_TOP = 100  # ARG's default page size when $top is absent
MAX_TOP = 1000
MAX_CACHED = 64
ARM_ID = re.compile(r"^/subscriptions/([^/]+)(?:/resourcegroups/([^/]+))?", re.IGNORECASE)
# ARG gives no skip token for these (azure-contracts §4.4): the answer is one page, truncated.
LIMITING = re.compile(r"\|\s*(take|limit|sample)\b")

TOKEN = os.environ["GRAPH_EVAL_TOKEN"]
QUOTA = int(os.environ.get("GRAPH_EVAL_QUOTA", "15"))
QUOTA_WINDOW = float(os.environ.get("GRAPH_EVAL_QUOTA_WINDOW", "5"))
NOW = os.environ.get("GRAPH_EVAL_NOW") or None


IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def table_spellings(schema, query):
    """ARG table names are case-insensitive (`Resources`, `resources`), but duckdb-kql looks a
    join's tables up by exact name. Every spelling of a known table in the query is added to the
    schema it translates with; the query text is untouched, and DuckDB's catalog already resolves
    names regardless of case."""
    out = dict(schema)
    lowered = {k.lower(): k for k in schema if "." not in k}
    for word in set(IDENTIFIER.findall(query)):
        if word not in out and word.lower() in lowered:
            out[word] = schema[lowered[word.lower()]]
    return out


class ArgError(Exception):
    """An answer in ARG's error shape."""

    def __init__(self, status, code, message, details=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.headers = headers or {}

    def body(self):
        error = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def kql_error(kind, message):
    return ArgError(
        400, "BadRequest",
        "Please provide below info when asking for support: timestamp = "
        f"{datetime.datetime.now(datetime.timezone.utc).isoformat()}, correlationId = {uuid.uuid4()}.",
        [{"code": "InvalidQuery", "message": "Query is invalid. Please refer to the documentation for the Azure "
                                             "Resource Graph service and fix the error before retrying."},
         {"code": kind, "message": message}],
    )


def bad_request(message, code="BadRequest"):
    return ArgError(400, code, message)


def normalise_row(row):
    """One snapshot row as ARG stores it: every standard column, strings never null (Kusto has no
    null string), subscriptionId and resourceGroup filled from the id as ARG always fills them."""
    out = {}
    for c in STRING_COLUMNS:
        v = row.get(c)
        out[c] = "" if v is None else (v if isinstance(v, str) else json.dumps(v))
    m = ARM_ID.match(out["id"])
    if m:
        if not out["subscriptionId"]:
            out["subscriptionId"] = m.group(1)
        if not out["resourceGroup"] and m.group(2):
            out["resourceGroup"] = m.group(2)
    for c in DYNAMIC_COLUMNS:
        out[c] = row.get(c)
    for k, v in row.items():
        if k not in out:
            out[k] = v
    return out


class Store:
    """The snapshot's rows in DuckDB: all of them in `main`, and one attached database per set of
    subscriptions a request was scoped to, holding only those subscriptions' rows."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            snapshot = json.load(f)
        if not isinstance(snapshot, dict):
            raise SystemExit(f"{path}: expected one JSON object of table name -> rows")
        tables = {t: [] for t in KNOWN_TABLES}
        for name, rows in snapshot.items():
            tables.setdefault(name.lower(), []).extend(normalise_row(r) for r in rows)
        self.con = duckdb_kql.connect()
        self.tables = sorted(tables)
        self.extra = {}
        for name, rows in tables.items():
            self._create(name, rows)
        self.scopes = {}

    def _create(self, name, rows):
        # Columns beyond the standard ones (a projected snapshot): dynamic unless always strings.
        extra = []
        for r in rows:
            for k in r:
                if k not in COLUMNS and k not in extra:
                    extra.append(k)
        types = {c: "VARCHAR" for c in STRING_COLUMNS}
        types.update({c: "JSON" for c in DYNAMIC_COLUMNS})
        for k in extra:
            text = all(r.get(k) is None or isinstance(r.get(k), str) for r in rows)
            types[k] = "VARCHAR" if text else "JSON"
        columns = COLUMNS + extra
        ddl = ", ".join(f'"{c}" {types[c]}' for c in columns)
        self.con.execute(f'CREATE TABLE main."{name}" ({ddl})')
        if not rows:
            return
        # One bulk read of a JSON Lines file: row-by-row inserts take seconds for a fleet.
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8", delete=False) as f:
            for r in rows:
                f.write(json.dumps(r))
                f.write("\n")
        try:
            spec = ", ".join(f"'{c}': '{types[c]}'" for c in columns)
            self.con.execute(
                f'INSERT INTO main."{name}" SELECT * FROM read_json(?, format=\'newline_delimited\', '
                f"columns={{{spec}}}, maximum_object_size=1073741824)",
                [f.name],
            )
        finally:
            os.unlink(f.name)

    def cursor(self, subscriptions):
        """A connection that sees only `subscriptions`' rows (None: every row)."""
        if subscriptions is None:
            key = None
        else:
            key = tuple(sorted({s.lower() for s in subscriptions}))
        if key not in self.scopes:
            cur = self.con.cursor()
            cur.execute("SET TimeZone='UTC'")
            if key is not None:
                db = "scope_" + hashlib.sha256("\n".join(key).encode()).hexdigest()[:16]
                cur.execute(f"ATTACH ':memory:' AS {db}")
                for t in self.tables:
                    cur.execute(
                        f'CREATE TABLE {db}."{t}" AS SELECT * FROM memory.main."{t}" '
                        "WHERE lower(subscriptionId) IN (SELECT unnest(?::VARCHAR[]))",
                        [list(key)],
                    )
                cur.execute(f"USE {db}")
            self.scopes[key] = cur
        return self.scopes[key]


def iso(t):
    """A datetime as Kusto writes one: UTC, seven fractional digits, `Z`."""
    if t.tzinfo is not None:
        t = t.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}0Z"


def timespan(d):
    """A timespan as Kusto writes one: `[-][d.]hh:mm:ss[.fffffff]`."""
    sign = "-" if d < datetime.timedelta(0) else ""
    d = abs(d)
    hours, rest = divmod(d.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    out = f"{sign}{d.days}." if d.days else sign
    out += f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return out + (f".{d.microseconds:06d}0" if d.microseconds else "")


def is_dynamic(type_name):
    """Whether a DuckDB column type is KQL's dynamic: JSON, or a list (what make_list and
    make_set give), struct or map."""
    return type_name == "JSON" or type_name.endswith("]") or type_name.startswith(("STRUCT", "MAP"))


def convert(value, type_name, top=True):
    if value is None:
        # A Kusto string is never null: an unmatched leftouter join gives "". Inside a dynamic
        # value a null stays null.
        return "" if top and type_name == "VARCHAR" else None
    if type_name == "JSON":
        return json.loads(value)
    if type_name.endswith("[]"):
        return [convert(v, type_name[:-2], False) for v in value]
    if isinstance(value, dict):
        # STRUCT or MAP: no element type to hand down; JSON text inside is left as text.
        return {str(k): convert(v, "", False) for k, v in value.items()}
    if isinstance(value, list):
        return [convert(v, "", False) for v in value]
    if isinstance(value, datetime.datetime):
        return iso(value)
    if isinstance(value, datetime.timedelta):
        return timespan(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (uuid.UUID, datetime.date, datetime.time)):
        return str(value)
    return value


def kusto_type(type_name):
    if is_dynamic(type_name):
        return "dynamic"
    if type_name == "VARCHAR":
        return "string"
    if type_name.startswith("TIMESTAMP"):
        return "datetime"
    if type_name == "INTERVAL":
        return "timespan"
    if type_name == "BOOLEAN":
        return "bool"
    if type_name in ("INTEGER", "SMALLINT", "TINYINT"):
        return "int"
    if type_name in ("BIGINT", "HUGEINT", "UBIGINT", "UINTEGER"):
        return "long"
    if type_name in ("DOUBLE", "FLOAT") or type_name.startswith("DECIMAL"):
        return "real"
    return "string"


class Result:
    def __init__(self, columns, types, rows):
        self.columns, self.types, self.rows = columns, types, rows
        # ARG cannot page an answer whose columns are all dynamic (or null), nor one cut by
        # take/limit/sample: it returns one truncated page without a skip token.
        self.all_dynamic = all(is_dynamic(t) or t == '"NULL"' for t in types)


class Fake:
    def __init__(self, store):
        self.store = store
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = []
            self.failures = []  # [start request number, end, status, retry_after]
            self.quota_start = time.monotonic()
            self.quota_used = 0
            self.cache = {}

    # -- quota --------------------------------------------------------------------------------
    def spend_quota(self):
        """Spends one query of the window; returns (allowed, remaining, seconds to reset)."""
        now = time.monotonic()
        if now - self.quota_start >= QUOTA_WINDOW:
            self.quota_start, self.quota_used = now, 0
        reset = max(0.0, self.quota_start + QUOTA_WINDOW - now)
        if self.quota_used >= QUOTA:
            return False, 0, reset
        self.quota_used += 1
        return True, QUOTA - self.quota_used, reset

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, query, subscriptions):
        key = hashlib.sha256(json.dumps([query, sorted(subscriptions) if subscriptions is not None else None])
                             .encode()).hexdigest()[:32]
        if key in self.cache:
            return key, self.cache[key]
        cur = self.store.cursor(subscriptions)
        try:
            translated = duckdb_kql.to_sql(query, schema=table_spellings(read_schema(cur), query), query_now=NOW)
        except duckdb_kql.KqlSyntaxError as e:
            raise kql_error("ParserFailure", str(e))
        except duckdb_kql.KqlUnsupportedError as e:
            raise kql_error("UnsupportedByEvaluator",
                            f"duckdb-kql cannot evaluate this construct (ARG may accept it): {e}")
        except duckdb_kql.KqlError as e:
            raise kql_error("InvalidQuery", str(e))
        if translated.unbound:
            raise kql_error("InvalidQuery", f"unbound query parameters: {', '.join(translated.unbound)}")
        try:
            rel = cur.sql(str(translated), params=translated.parameters) if translated.parameters \
                else cur.sql(str(translated))
            columns, types = list(rel.columns), [str(t) for t in rel.types]
            raw = rel.fetchall()
        except duckdb.Error as e:
            raise kql_error("EvaluationFailure", f"{type(e).__name__}: {e}")
        rows = [[convert(v, t) for v, t in zip(r, types)] for r in raw]
        result = Result(columns, types, rows)
        result.limited = bool(LIMITING.search(query))
        if len(self.cache) >= MAX_CACHED:
            self.cache.pop(next(iter(self.cache)))
        self.cache[key] = result
        return key, result

    def answer(self, body):
        """The 200 answer to a query request, or an ArgError."""
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.", "InvalidRequestContent")
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise bad_request("The query must be a non-empty string.", "InvalidRequestContent")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise bad_request("options must be an object.", "InvalidRequestContent")
        subscriptions = body.get("subscriptions")
        if subscriptions is not None and (not isinstance(subscriptions, list)
                                          or not all(isinstance(s, str) for s in subscriptions)):
            raise bad_request("subscriptions must be an array of strings.", "InvalidRequestContent")
        fmt = options.get("resultFormat", "objectArray")
        if fmt not in ("objectArray", "table"):
            raise bad_request(f"Unsupported resultFormat '{fmt}'.", "InvalidRequestContent")
        top = options.get("$top")
        skip = options.get("$skip")
        for name, v, low, high in (("$top", top, 1, MAX_TOP), ("$skip", skip, 0, None)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < low
                                  or (high is not None and v > high)):
                raise bad_request(f"{name} must be an integer from {low}{f' to {high}' if high else ''}.",
                                  "InvalidRequestContent")
        key, result = self.evaluate(query, subscriptions)
        offset, size = 0, DEFAULT_TOP
        token = options.get("$skipToken")
        if token is not None:
            offset, size = self.read_token(token, key)
        # $top and $skip override what the token carries (azure-contracts §4.4).
        if top is not None:
            size = top
        if skip is not None:
            offset = skip
        total = len(result.rows)
        page = result.rows[offset:offset + size]
        more = offset + len(page) < total
        out = {"totalRecords": total, "count": len(page), "facets": []}
        if fmt == "objectArray":
            out["data"] = [dict(zip(result.columns, r)) for r in page]
        else:
            out["data"] = {"columns": [{"name": c, "type": kusto_type(t)} for c, t in zip(result.columns, result.types)],
                           "rows": page}
        if more and not (result.limited or result.all_dynamic):
            out["resultTruncated"] = "false"
            out["$skipToken"] = base64.urlsafe_b64encode(
                json.dumps({"k": key, "o": offset + len(page), "n": size}).encode()).decode()
        else:
            out["resultTruncated"] = "true" if more else "false"
        return out

    @staticmethod
    def read_token(token, key):
        try:
            t = json.loads(base64.urlsafe_b64decode(token.encode()))
            if t["k"] == key and isinstance(t["o"], int) and isinstance(t["n"], int) and t["o"] >= 0:
                return t["o"], t["n"]
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        raise bad_request("The $skipToken is invalid, or was issued for a different query or scope.",
                          "InvalidSkipToken")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake = None

    def log_message(self, *args):  # quiet: the tests read /_fake/queries instead
        pass

    def send(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if urlsplit(self.path).path == "/_fake/queries":
            with self.fake.lock:
                self.send(200, list(self.fake.requests))
        else:
            self.send(404, {"error": {"code": "NotFound", "message": self.path}})

    def do_POST(self):
        url = urlsplit(self.path)
        raw = self.read_body()
        if url.path == "/_fake/reset":
            self.fake.reset()
            return self.send(200, {})
        if url.path == "/_fake/fail":
            return self.control_fail(raw)
        if url.path.lower().rstrip("/") != QUERY_PATH:
            return self.send(404, {"error": {"code": "NotFound", "message": f"no route {url.path}"}})
        self.query(url, raw)

    def control_fail(self, raw):
        try:
            f = json.loads(raw or b"{}")
            status, times, after = int(f.get("status", 429)), int(f.get("times", 1)), int(f.get("after", 0))
            retry_after = f.get("retry_after")
        except (ValueError, TypeError) as e:
            return self.send(400, {"error": {"code": "BadRequest", "message": str(e)}})
        with self.fake.lock:
            start = len(self.fake.requests) + after
            self.fake.failures.append([start, start + times, status, retry_after])
        self.send(200, {"from_request": start + 1, "to_request": start + times})

    def query(self, url, raw):
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        b = body if isinstance(body, dict) else {}
        record = {"query": b.get("query"), "options": b.get("options"), "subscriptions": b.get("subscriptions"),
                  "managementGroups": b.get("managementGroups"), "status": None}
        with self.fake.lock:
            number = len(self.fake.requests)
            self.fake.requests.append(record)
            status, out, headers = self.answer(url, body, number)
            record["status"] = status
        self.send(status, out, headers)

    def answer(self, url, body, number):
        """(status, body, headers) for query request `number` (0-based). Runs under the lock: one
        evaluation at a time, in arrival order."""
        allowed, remaining, reset = self.fake.spend_quota()
        headers = {"x-ms-user-quota-remaining": str(remaining),
                   "x-ms-user-quota-resets-after": time.strftime("%H:%M:%S", time.gmtime(math.ceil(reset)))}
        try:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                raise ArgError(401, "AuthenticationFailed", "Authentication failed: no valid bearer token.")
            version = parse_qs(url.query).get("api-version", [None])[0]
            if version is None:
                raise bad_request("The api-version query parameter (?api-version=) is required for all requests.",
                                  "MissingApiVersionParameter")
            if version not in API_VERSIONS:
                raise bad_request(f"The api-version '{version}' is invalid.", "InvalidApiVersionParameter")
            for start, end, status, retry_after in self.fake.failures:
                if start <= number < end:
                    extra = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                    code = {401: "AuthenticationFailed", 403: "AuthorizationFailed", 429: "RateLimiting"}.get(
                        status, "ServiceUnavailable" if status >= 500 else "BadRequest")
                    raise ArgError(status, code, f"injected failure of request {number + 1}", headers=extra)
            if not allowed:
                raise ArgError(429, "RateLimiting", "Please provide below info when asking for support: the user's "
                               "query quota is spent; wait for the reset.",
                               headers={"Retry-After": str(max(1, math.ceil(reset)))})
            if body is None:
                raise bad_request("The request body is not valid JSON.", "InvalidRequestContent")
            return 200, self.fake.answer(body), headers
        except ArgError as e:
            headers.update(e.headers)
            return e.status, e.body(), headers


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: graph_eval.py ROWS_JSON")
    Handler.fake = Fake(Store(sys.argv[1]))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    # The test holds our stdin open: when it exits, however it exits (a panic, a static that is
    # never dropped), stdin ends and so does the fake; no orphan keeps serving.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
