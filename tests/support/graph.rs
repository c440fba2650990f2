//! Resource Graph behind wiremock (azure-contracts §4.4): every query is evaluated by the
//! evaluating fake (`graph_eval`), with small pages; wiremock adds the transport failures a test
//! mounts in front (the managed-identity fake, [`crate::managed_identity::TokenArm`], serves it).
//! And a fixed-token credential. Run-data tests use [`crate::graph_eval`] directly.

use std::time::Duration;

use crate::graph_eval::EvalGraph;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use serde_json::{Value, json};
use time::OffsetDateTime;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers};

/// A credential that hands out `fake-token`.
#[derive(Debug)]
pub struct FakeCredential;

#[async_trait::async_trait]
impl TokenCredential for FakeCredential {
    async fn get_token(&self, scopes: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
        assert_eq!(scopes, ["https://management.azure.com/.default"], "exactly one ARM scope");
        Ok(AccessToken::new("fake-token", OffsetDateTime::now_utc() + time::Duration::hours(1)))
    }
}

/// Serves snapshot tables in pages of `page` rows by handing each query to the evaluating fake
/// ([`EvalGraph`]: the KQL really runs, on duckdb-kql): wiremock stays in front for tests about
/// transport (429s, 5xx, 403s mounted before it, tokens checked by the managed-identity fake).
pub struct FakeGraph {
    eval: EvalGraph,
    page: usize,
}

impl FakeGraph {
    pub fn from_snapshot(text: &str, page: usize) -> Self {
        Self { eval: EvalGraph::start(text), page }
    }
}

impl Respond for FakeGraph {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut body: Value = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(_) => {
                return ResponseTemplate::new(400)
                    .set_body_json(json!({"error": {"code": "BadRequest", "message": "body"}}));
            }
        };
        // Small pages, so that paging is exercised on small examples.
        body["options"]["$top"] = json!(self.page);
        match forward(&self.eval.url(), &serde_json::to_vec(&body).unwrap()) {
            Ok(Forwarded { status, headers, body: answer }) => {
                let mut t = ResponseTemplate::new(status).set_body_raw(answer, "application/json");
                for (k, v) in headers {
                    t = t.insert_header(k.as_str(), v.as_str());
                }
                t
            }
            Err(e) => ResponseTemplate::new(500).set_body_json(json!({"error": {"code": "FakeDown", "message": e}})),
        }
    }
}

/// The evaluating fake's answer: status, quota and retry headers, body.
struct Forwarded {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// One blocking POST to the evaluating fake (wiremock responders are synchronous).
fn forward(base: &str, body: &[u8]) -> Result<Forwarded, String> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let head = format!(
        "POST /providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01 HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer fake-token\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body)).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no header end")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).ok_or("status")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .filter(|(k, _)| k.starts_with("x-ms-user-quota") || k == "retry-after")
        .collect();
    Ok(Forwarded { status, headers, body: raw[split + 4..].to_vec() })
}

/// Mounts `responder` as the Resource Graph query endpoint, requiring the documented contract.
pub async fn mount(server: &MockServer, responder: impl Respond + 'static) {
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/providers/Microsoft.ResourceGraph/resources"))
        .and(matchers::query_param("api-version", "2024-04-01"))
        .and(matchers::header("authorization", "Bearer fake-token"))
        .and(matchers::header("content-type", "application/json"))
        .respond_with(responder)
        .mount(server)
        .await;
}
