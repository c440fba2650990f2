//! What a message carries besides its text and HTML: images the HTML shows inline through
//! `cid:` references, and attached files. The mailer puts them into MIME parts; a standalone
//! HTML file (outbox, `patchwatch report --html`) carries the images as `data:` URIs instead.

use base64::Engine as _;

/// The content type of the digest's charts.
pub const PNG: &str = "image/png";
/// The content type of an `.xlsx` workbook.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// An image the HTML shows as `<img src="cid:{content_id}">`.
#[derive(Clone, PartialEq, Eq)]
pub struct InlineImage {
    /// The `Content-ID`, without angle brackets: stable, so the HTML's `cid:` references match.
    pub content_id: String,
    pub content_type: &'static str,
    /// A file name for clients that list inline parts, e.g. `pending-patches.png`.
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// A file attached to a message.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

// Debug names the parts and their sizes; the bytes themselves are no use in a log.
impl std::fmt::Debug for InlineImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineImage")
            .field("content_id", &self.content_id)
            .field("content_type", &self.content_type)
            .field("filename", &self.filename)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl InlineImage {
    /// The image as a `data:` URI.
    pub fn data_uri(&self) -> String {
        format!("data:{};base64,{}", self.content_type, base64::engine::general_purpose::STANDARD.encode(&self.bytes))
    }
}

/// `html` with every `src="cid:…"` of `images` replaced by the image's `data:` URI, so the file
/// opens in a browser with its images. Only whole `src` attributes are replaced: the templates
/// escape the quotes of every value they print, so no data can form one.
pub fn standalone_html(html: &str, images: &[InlineImage]) -> String {
    let mut out = html.to_owned();
    for image in images {
        let reference = format!("src=\"cid:{}\"", image.content_id);
        if out.contains(&reference) {
            out = out.replace(&reference, &format!("src=\"{}\"", image.data_uri()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_html_inlines_only_src_references() {
        let image = InlineImage {
            content_id: "chart@patchwatch".into(),
            content_type: PNG,
            filename: "chart.png".into(),
            bytes: vec![1, 2, 3],
        };
        let html = r#"<img src="cid:chart@patchwatch" alt="x"><p>cid:chart@patchwatch</p>"#;
        let out = standalone_html(html, std::slice::from_ref(&image));
        assert_eq!(out, r#"<img src="data:image/png;base64,AQID" alt="x"><p>cid:chart@patchwatch</p>"#);
        assert_eq!(standalone_html("<p>no images</p>", &[image]), "<p>no images</p>");
    }
}
