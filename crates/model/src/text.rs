//! Small text helpers the whole domain shares: glob matching, a stable hash, one-line text and
//! the email address check, and how a time or a duration reads in text. Pure functions, no I/O.

use time::OffsetDateTime;

/// `*` matches any run of characters, `?` one; case-insensitive.
pub fn glob(pattern: &str, text: &str) -> bool {
    // Iterative matching with one backtrack point: linear in practice, whatever the pattern.
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Subjects are single-line: control characters become spaces, so no field can add a header.
pub fn one_line(s: &str) -> String {
    s.chars().map(|ch| if ch.is_control() { ' ' } else { ch }).collect()
}

/// FNV-1a: a stable short hash so keys stay unique however names are shortened.
pub fn fnv64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Whether `s` is a mailbox: `user@domain` or `Display Name <user@domain>`. A strict subset of
/// what the mailer (lettre) parses, so an address routing accepts is one the mailer sends to:
/// a dot-atom local part and a DNS domain (checked as lettre checks them, by `email_address`);
/// no quoted local parts and no IP literals, which lettre's own parser treats specially.
pub fn is_mailbox(s: &str) -> bool {
    let s = s.trim();
    match s.strip_suffix('>').and_then(|rest| rest.rsplit_once('<')) {
        Some((name, address)) => is_display_name(name.trim_end()) && is_address(address),
        None => is_address(s),
    }
}

/// RFC 5322 `atext`, and the non-ASCII letters lettre also allows in names.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || (!c.is_ascii() && !c.is_control())
}

fn is_dot_atom(s: &str, part: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.split('.').all(|atom| !atom.is_empty() && atom.chars().all(&part))
}

/// `user@domain` with a dot-atom user and a DNS domain.
fn is_address(s: &str) -> bool {
    let Some((user, domain)) = s.rsplit_once('@') else { return false };
    is_dot_atom(user, |c| c.is_ascii() && is_atext(c))
        && email_address::EmailAddress::is_valid_local_part(user)
        && is_dot_atom(domain, |c| c.is_ascii_alphanumeric() || c == '-')
        && email_address::EmailAddress::is_valid_domain(domain)
}

/// A display name: words (atext, with the dots and spaces of "John Q. Public"), or one quoted
/// string without quotes or backslashes inside. Empty is allowed (`<user@domain>`).
fn is_display_name(name: &str) -> bool {
    if let Some(inner) = name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        return !inner.contains(['"', '\\']) && !inner.chars().any(char::is_control);
    }
    name.chars().next().is_none_or(is_atext) && name.chars().all(|c| is_atext(c) || c == '.' || c == ' ')
}

/// `2023-05-09 15:00 UTC`.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

/// `3 h 55 min`.
pub fn format_minutes(m: i64) -> String {
    match (m / 60, m % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// `12345` → `12,345`: counts as people read them.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_are_checked_like_the_mailer_does() {
        for ok in [
            "ops@contoso.com",
            "Ops Team <ops@contoso.com>",
            "a.b+c@mail.contoso.com",
            "John Q. Public <jqp@contoso.com>",
            "\"Ops, EU\" <ops@contoso.com>",
            "<ops@contoso.com>",
        ] {
            assert!(is_mailbox(ok), "{ok}");
        }
        for bad in [
            "",
            "ops",
            "ops@",
            "@contoso.com",
            "Ops <ops@contoso.com",
            "a b@contoso.com",
            "ops@contoso..com",
            "x@[127.0.0.1]",
            "Doe, John <j@contoso.com>",
            "ops@contoso.com <ops@contoso.com>",
            "\"ops team\"@contoso.com",
        ] {
            assert!(!is_mailbox(bad), "{bad}");
        }
    }
}
