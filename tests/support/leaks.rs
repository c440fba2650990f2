//! Finding secrets where they must not be: every form a secret can take on its way into a log
//! line or a stored record (raw, base64 in both alphabets with and without padding and at any
//! byte alignment inside a longer encoded value, percent-encoded as a query value or a path
//! segment, hex), searched for in text, with a report that names the place and shows the line
//! with every secret redacted.

use base64::{Engine, engine::general_purpose};

/// One form of one secret.
#[derive(Clone, Debug)]
pub struct Needle {
    /// Which secret (a label, never the value).
    pub secret: String,
    /// Which form (`raw`, `base64`, `url-form`, …).
    pub form: &'static str,
    pub value: String,
}

/// A secret found somewhere.
#[derive(Clone, Debug)]
pub struct Leak {
    pub place: String,
    pub line: usize,
    pub secret: String,
    pub form: &'static str,
    /// For a JSON log line: the `target` (crate and module) that emitted it, and its level.
    pub target: Option<String>,
    /// The line, every secret replaced by `<secret/form>`, cut to a readable length.
    pub redacted: String,
}

impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} ({}) emitted by {}:\n    {}",
            self.place,
            self.line,
            self.secret,
            self.form,
            self.target.as_deref().unwrap_or("-"),
            self.redacted
        )
    }
}

/// Shortest form searched for: shorter strings could match by chance.
const MIN_FORM: usize = 10;

#[derive(Default)]
pub struct Secrets {
    needles: Vec<Needle>,
}

/// Percent-encodes every byte outside RFC 3986's unreserved set.
fn percent_all(bytes: &[u8], lower: bool) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else if lower {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `url` crate's encoding of `s` as one path segment.
fn path_segment(s: &str) -> String {
    let mut u = url::Url::parse("http://x/").unwrap();
    u.path_segments_mut().unwrap().clear().push(s);
    u.path().trim_start_matches('/').to_owned()
}

/// The `url` crate's encoding of `s` as a password in a URL's userinfo.
fn userinfo(s: &str) -> String {
    let mut u = url::Url::parse("http://x/").unwrap();
    u.set_password(Some(s)).unwrap();
    u.password().unwrap_or_default().to_owned()
}

/// `text` with every `%XX` escape decoded (bytes that are not UTF-8 replaced).
fn percent_decoded(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Substrings that appear in any base64 text encoding `bytes` at any byte offset: for each of
/// the three alignments, the characters determined by the secret's bits alone.
fn base64_cores(bytes: &[u8], engine: &general_purpose::GeneralPurpose) -> Vec<String> {
    let n = bytes.len();
    (0..3usize)
        .map(|k| {
            let mut padded = vec![0u8; k];
            padded.extend_from_slice(bytes);
            let enc = engine.encode(&padded);
            let (from, to) = ((8 * k).div_ceil(6), (8 * (k + n)) / 6);
            enc[from..to.min(enc.len())].to_owned()
        })
        .collect()
}

impl Secrets {
    /// A secret in every form.
    pub fn add(&mut self, label: &str, value: &str) {
        assert!(value.len() >= 16, "{label}: test secrets must be long enough not to match by chance");
        let mut forms: Vec<(&'static str, String)> = vec![
            ("raw", value.to_owned()),
            ("url-form", url::form_urlencoded::byte_serialize(value.as_bytes()).collect()),
            ("url-component", percent_all(value.as_bytes(), false)),
            ("url-component-lower", percent_all(value.as_bytes(), true)),
            ("url-path", path_segment(value)),
            ("url-userinfo", userinfo(value)),
            ("hex", value.bytes().map(|b| format!("{b:02x}")).collect()),
            ("HEX", value.bytes().map(|b| format!("{b:02X}")).collect()),
        ];
        forms.extend(Self::encoded(value.as_bytes()));
        self.push(label, forms);
    }

    /// A value that travels only encoded (an `AUTH PLAIN` payload, a basic-auth pair): its base64 forms.
    pub fn add_encoded(&mut self, label: &str, bytes: &[u8]) {
        self.push(label, Self::encoded(bytes));
    }

    fn encoded(bytes: &[u8]) -> Vec<(&'static str, String)> {
        let mut forms = vec![
            ("base64", general_purpose::STANDARD.encode(bytes)),
            ("base64-nopad", general_purpose::STANDARD_NO_PAD.encode(bytes)),
            ("base64url", general_purpose::URL_SAFE.encode(bytes)),
            ("base64url-nopad", general_purpose::URL_SAFE_NO_PAD.encode(bytes)),
        ];
        forms.extend(base64_cores(bytes, &general_purpose::STANDARD_NO_PAD).into_iter().map(|c| ("base64-inside", c)));
        forms.extend(
            base64_cores(bytes, &general_purpose::URL_SAFE_NO_PAD).into_iter().map(|c| ("base64url-inside", c)),
        );
        forms
    }

    fn push(&mut self, label: &str, forms: Vec<(&'static str, String)>) {
        for (form, value) in forms {
            if value.len() >= MIN_FORM && !self.needles.iter().any(|n| n.secret == label && n.value == value) {
                self.needles.push(Needle { secret: label.to_owned(), form, value });
            }
        }
    }

    pub fn needles(&self) -> &[Needle] {
        &self.needles
    }

    /// Every secret in `text` (searched line by line), as leaks at `place`. Besides the forms
    /// themselves, the raw secret is searched for in the text with every `%XX` decoded, which
    /// catches any mix of percent-encoded and plain characters.
    pub fn scan(&self, place: &str, text: &str) -> Vec<Leak> {
        let mut leaks = Vec::new();
        let decoded = text.contains('%').then(|| percent_decoded(text));
        for needle in &self.needles {
            let direct = text.contains(needle.value.as_str());
            let in_decoded =
                needle.form == "raw" && decoded.as_ref().is_some_and(|d| d.contains(needle.value.as_str()));
            if !direct && !in_decoded {
                continue;
            }
            for (i, line) in text.lines().enumerate() {
                if line.contains(needle.value.as_str()) {
                    leaks.push(self.leak(place, i + 1, line, needle));
                } else if in_decoded && line.contains('%') && percent_decoded(line).contains(needle.value.as_str()) {
                    let mut leak = self.leak(place, i + 1, &percent_decoded(line), needle);
                    leak.form = "percent-encoded";
                    leaks.push(leak);
                }
            }
        }
        leaks
    }

    /// Whether `text` holds the secret labelled `label` in any form (for checks that the search
    /// finds secrets where they legitimately are).
    pub fn finds(&self, label: &str, text: &str) -> bool {
        self.scan("check", text).iter().any(|l| l.secret == label)
    }

    /// Like [`Secrets::scan`], for bytes that may not be UTF-8.
    pub fn scan_bytes(&self, place: &str, bytes: &[u8]) -> Vec<Leak> {
        self.scan(place, &String::from_utf8_lossy(bytes))
    }

    fn leak(&self, place: &str, line_no: usize, line: &str, needle: &Needle) -> Leak {
        let parsed: Option<serde_json::Value> = serde_json::from_str(line).ok();
        // Only a tracing JSON line has a level beside its target (a ledger record has a target too).
        let target =
            parsed.as_ref().and_then(|v| Some(format!("{} [{}]", v["target"].as_str()?, v["level"].as_str()?)));
        Leak {
            place: place.to_owned(),
            line: line_no,
            secret: needle.secret.clone(),
            form: needle.form,
            target,
            redacted: self.redact(line, needle),
        }
    }

    /// `line` with every secret replaced, cut to about 600 characters around the first hit.
    pub fn redact(&self, line: &str, first: &Needle) -> String {
        let at = line.find(first.value.as_str()).unwrap_or(0);
        let mut needles: Vec<&Needle> = self.needles.iter().collect();
        needles.sort_by_key(|n| std::cmp::Reverse(n.value.len()));
        let mut out = line.to_owned();
        for n in needles {
            out = out.replace(n.value.as_str(), &format!("<{}/{}>", n.secret, n.form));
        }
        let chars: Vec<char> = out.chars().collect();
        let centre = line[..at].chars().count().min(chars.len());
        let from = centre.saturating_sub(300);
        let to = (centre + 300).min(chars.len());
        let cut: String = chars[from..to].iter().collect();
        format!("{}{cut}{}", if from > 0 { "…" } else { "" }, if to < chars.len() { "…" } else { "" })
    }
}

/// A message's headers and every part's decoded body (base64 and quoted-printable undone), so
/// a secret split across encoded lines is found too.
pub fn mail_text(raw: &[u8]) -> String {
    let Ok(mail) = mailparse::parse_mail(raw) else { return String::from_utf8_lossy(raw).into_owned() };
    let mut out = String::new();
    let mut parts = vec![&mail];
    while let Some(p) = parts.pop() {
        for h in &p.headers {
            out.push_str(&format!("{}: {}\n", h.get_key(), h.get_value()));
        }
        if p.subparts.is_empty() {
            out.push_str(&p.get_body().unwrap_or_default());
            out.push('\n');
        }
        parts.extend(p.subparts.iter());
    }
    out
}

/// Every blob in a container, through its SAS URL (Azurite or Azure): `(name, content)`.
pub async fn blobs(container_sas_url: &str) -> Vec<(String, Vec<u8>)> {
    let (base, sas) = container_sas_url.split_once('?').expect("a container URL with a SAS query");
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap();
    let mut names = Vec::new();
    let mut marker = String::new();
    loop {
        let mut url = format!("{base}?restype=container&comp=list&{sas}");
        if !marker.is_empty() {
            url.push_str(&format!(
                "&marker={}",
                url::form_urlencoded::byte_serialize(marker.as_bytes()).collect::<String>()
            ));
        }
        let resp = client.get(&url).header("x-ms-version", "2022-11-02").send().await.unwrap();
        assert!(resp.status().is_success(), "list blobs: {}", resp.status());
        let xml = resp.text().await.unwrap();
        names.extend(between(&xml, "<Name>", "</Name>").into_iter().map(|n| xml_unescape(&n)));
        marker = between(&xml, "<NextMarker>", "</NextMarker>").into_iter().next().unwrap_or_default();
        if marker.is_empty() {
            break;
        }
    }
    let mut out = Vec::new();
    for name in names {
        let path: String = name.split('/').map(path_segment).collect::<Vec<_>>().join("/");
        let resp =
            client.get(format!("{base}/{path}?{sas}")).header("x-ms-version", "2022-11-02").send().await.unwrap();
        assert!(resp.status().is_success(), "download {name}: {}", resp.status());
        out.push((name, resp.bytes().await.unwrap().to_vec()));
    }
    out
}

fn between(text: &str, open: &str, close: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(close) else { break };
        out.push(rest[..j].to_owned());
        rest = &rest[j + close.len()..];
    }
    out
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_inside_a_longer_value_is_found_at_every_alignment() {
        let mut s = Secrets::default();
        s.add("pw", "hunter2-hunter2-hunter2");
        for prefix in ["", "a", "ab", "abc", "user:"] {
            let enc = general_purpose::STANDARD.encode(format!("{prefix}hunter2-hunter2-hunter2:tail"));
            assert!(!s.scan("t", &format!("Basic {enc}")).is_empty(), "prefix {prefix:?}");
        }
        assert!(!s.scan("t", "x=hunter2-hunter2-hunter2").is_empty());
        assert!(s.scan("t", "nothing here").is_empty());
        // Any mix of percent-encoded and plain characters, in either hex case.
        let mut s = Secrets::default();
        s.add("pw", "Sm+ab/cd=ef-0123456789");
        for text in
            ["smtp://u:Sm+ab%2Fcd%3Def-0123456789@h", "q=Sm%2bab%2fcd%3def-0123456789", "Sm%2Bab/cd=ef-0123456789"]
        {
            assert!(!s.scan("t", text).is_empty(), "{text}");
        }
    }
}
