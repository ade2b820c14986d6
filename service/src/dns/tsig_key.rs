//! A TSIG key (RFC 8945) as an operator hands it over: the file BIND's `tsig-keygen` writes
//! (`key "name" { algorithm hmac-sha256; secret "base64"; };`), the one Knot's `keymgr -t` writes
//! (its `key:` / `- id:` / `algorithm:` / `secret:` block), or the one-line `algorithm:name:secret`
//! that `nsupdate -y` and `knsupdate -y` take. The secret signs every update to the DNS server, so
//! it is never shown by Debug or Display and a key file others can read is logged as a warning.
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The HMAC a key signs with. BIND, Knot and PowerDNS all accept these three; SHA-1 and MD5 are
/// refused (weak, and hickory does not sign with them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    /// The name in key files and on the wire (`hmac-sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha384 => "hmac-sha384",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        // Key files sometimes carry the wire form with a trailing dot.
        match s.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Some(Self::HmacSha256),
            "hmac-sha384" => Some(Self::HmacSha384),
            "hmac-sha512" => Some(Self::HmacSha512),
            _ => None,
        }
    }

    pub(crate) fn to_hickory(self) -> hickory_proto::rr::rdata::tsig::TsigAlgorithm {
        use hickory_proto::rr::rdata::tsig::TsigAlgorithm as H;
        match self {
            Self::HmacSha256 => H::HmacSha256,
            Self::HmacSha384 => H::HmacSha384,
            Self::HmacSha512 => H::HmacSha512,
        }
    }
}

impl fmt::Display for TsigAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A shared-secret key for signing DNS updates.
#[derive(Clone)]
pub struct TsigKey {
    /// The key's name as the server knows it (`vmw-acme.`'s `vmw-acme`), lowercase, no trailing dot.
    pub name: String,
    pub algorithm: TsigAlgorithm,
    /// The raw HMAC key (the file holds it in base64).
    pub secret: Vec<u8>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("TsigKey").field("name", &self.name).field("algorithm", &self.algorithm).field("secret", &"<redacted>").finish()
    }
}

/// A key file that could not be used; each names the file, and the line where there is one.
#[derive(Debug, thiserror::Error)]
pub enum TsigKeyError {
    #[error("TSIG key file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TSIG key file {path}, line {line}: {problem}")]
    Syntax { path: PathBuf, line: usize, problem: String },
    #[error("TSIG key file {path}, line {line}: algorithm {found:?} is not supported (use hmac-sha256, hmac-sha384 or hmac-sha512)")]
    Algorithm { path: PathBuf, line: usize, found: String },
    #[error("TSIG key file {path}, line {line}: the secret is not base64")]
    Secret {
        path: PathBuf,
        line: usize,
        #[source]
        source: base64::DecodeError,
    },
    #[error("TSIG key file {path}: {problem}")]
    Incomplete { path: PathBuf, problem: String },
}

impl TsigKey {
    /// Reads the key from a file in any of the three formats above. A file with more than one key
    /// is refused rather than guessed at.
    pub fn from_file(path: &Path) -> Result<Self, TsigKeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TsigKeyError::Read { path: path.to_owned(), source })?;
        warn_if_readable_by_others(path);
        Self::parse(&text).map_err(|e| e.at(path))
    }

    /// Parses a key file's text (see [`TsigKey::from_file`]).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        // Knot's block and the one-line form are told apart on the raw lines: their unquoted
        // base64 may hold `//` or `/*`, which BIND's syntax would read as a comment.
        let lines: Vec<(usize, &str)> =
            text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#')).collect();
        if lines.first().is_some_and(|(_, l)| *l == "key:") {
            return parse_knot(text);
        }
        if let [(line, only)] = lines.as_slice()
            && only.contains(':')
            && !only.contains('{')
        {
            return parse_compact(only, *line);
        }
        let tokens = tokenize(text)?;
        if tokens.first().is_some_and(|t| t.text == "key" && !t.quoted) {
            parse_bind(&tokens)
        } else {
            Err(ParseError::syntax(tokens.first().map_or(1, |t| t.line), "expected `key \"name\" { algorithm ...; secret \"...\"; };`"))
        }
    }

    /// The key as hickory signs with it: fudge 300 s, BIND's and Knot's default window.
    pub(crate) fn signer(&self) -> Result<hickory_proto::rr::TSigner, hickory_proto::dnssec::DnsSecError> {
        let name = hickory_proto::rr::Name::from_ascii(&self.name).map_err(|e| hickory_proto::dnssec::DnsSecError::from(e.to_string()))?;
        hickory_proto::rr::TSigner::new(self.secret.clone(), self.algorithm.to_hickory(), name, 300)
    }
}

/// A problem in a key file's text, before the file's path is known.
#[derive(Debug)]
pub struct ParseError {
    line: usize,
    kind: ParseErrorKind,
}

#[derive(Debug)]
enum ParseErrorKind {
    Syntax(String),
    Algorithm(String),
    Secret(base64::DecodeError),
    Incomplete(String),
}

impl ParseError {
    fn syntax(line: usize, problem: impl Into<String>) -> Self {
        Self { line, kind: ParseErrorKind::Syntax(problem.into()) }
    }

    fn at(self, path: &Path) -> TsigKeyError {
        let path = path.to_owned();
        let line = self.line;
        match self.kind {
            ParseErrorKind::Syntax(problem) => TsigKeyError::Syntax { path, line, problem },
            ParseErrorKind::Algorithm(found) => TsigKeyError::Algorithm { path, line, found },
            ParseErrorKind::Secret(source) => TsigKeyError::Secret { path, line, source },
            ParseErrorKind::Incomplete(problem) => TsigKeyError::Incomplete { path, problem },
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ParseErrorKind::Syntax(p) => write!(f, "line {}: {p}", self.line),
            ParseErrorKind::Algorithm(a) => write!(f, "line {}: algorithm {a:?} is not supported", self.line),
            ParseErrorKind::Secret(e) => write!(f, "line {}: the secret is not base64: {e}", self.line),
            ParseErrorKind::Incomplete(p) => f.write_str(p),
        }
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, PartialEq)]
struct Token {
    text: String,
    quoted: bool,
    line: usize,
}

/// Splits BIND configuration syntax into words, quoted strings and `{ } ;`, dropping the three
/// comment styles (`#`, `//`, `/* */`).
fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let start = line;
                chars.next();
                let mut prev = ' ';
                loop {
                    match chars.next() {
                        Some('/') if prev == '*' => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            prev = c;
                        }
                        None => return Err(ParseError::syntax(start, "a /* comment is not closed")),
                    }
                }
            }
            '{' | '}' | ';' => tokens.push(Token { text: c.to_string(), quoted: false, line }),
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\n') | None => return Err(ParseError::syntax(start, "a quoted string is not closed")),
                        Some(c) => s.push(c),
                    }
                }
                tokens.push(Token { text: s, quoted: true, line: start });
            }
            c => {
                let mut s = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '"') {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                tokens.push(Token { text: s, quoted: false, line });
            }
        }
    }
    Ok(tokens)
}

/// `key "name" { algorithm hmac-sha256; secret "base64"; };` (BIND, `tsig-keygen`).
fn parse_bind(tokens: &[Token]) -> Result<TsigKey, ParseError> {
    let mut it = tokens.iter();
    let key = it.next().expect("caller checked the first token");
    let name = it.next().ok_or_else(|| ParseError::syntax(key.line, "`key` needs a name"))?;
    if name.text == "{" && !name.quoted {
        return Err(ParseError::syntax(name.line, "`key` needs a name before `{`"));
    }
    let open = it.next().ok_or_else(|| ParseError::syntax(name.line, "expected `{` after the key's name"))?;
    if open.text != "{" || open.quoted {
        return Err(ParseError::syntax(open.line, format!("expected `{{` after the key's name, found {:?}", open.text)));
    }
    let mut algorithm = None;
    let mut secret = None;
    loop {
        let Some(word) = it.next() else {
            return Err(ParseError::syntax(open.line, "the `{` of the key is not closed"));
        };
        if word.text == "}" && !word.quoted {
            break;
        }
        let value = it.next().ok_or_else(|| ParseError::syntax(word.line, format!("`{}` needs a value", word.text)))?;
        let semi = it.next();
        if !semi.is_some_and(|t| t.text == ";" && !t.quoted) {
            return Err(ParseError::syntax(value.line, format!("expected `;` after `{} {}`", word.text, value.text)));
        }
        match word.text.as_str() {
            "algorithm" => {
                let alg = TsigAlgorithm::parse(&value.text).ok_or(ParseError { line: value.line, kind: ParseErrorKind::Algorithm(value.text.clone()) })?;
                algorithm = Some(alg);
            }
            "secret" => secret = Some(decode_secret(&value.text, value.line)?),
            other => return Err(ParseError::syntax(word.line, format!("unknown statement `{other}` in a key (expected algorithm or secret)"))),
        }
    }
    match it.next() {
        Some(t) if t.text == ";" && !t.quoted => {}
        Some(t) => return Err(ParseError::syntax(t.line, format!("expected `;` after the key's `}}`, found {:?}", t.text))),
        None => return Err(ParseError::syntax(tokens.last().map_or(1, |t| t.line), "expected `;` after the key's `}`")),
    }
    if let Some(extra) = it.next() {
        return Err(ParseError::syntax(extra.line, "more than one key in the file: give a file with exactly one"));
    }
    finish(&name.text, name.line, algorithm, secret)
}

/// Knot's `key:` section (`keymgr -t` output): `- id: name`, `algorithm: ...`, `secret: ...`.
fn parse_knot(text: &str) -> Result<TsigKey, ParseError> {
    let mut id = None;
    let mut algorithm = None;
    let mut secret = None;
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let l = raw.split('#').next().unwrap_or("").trim();
        let l = l.strip_prefix("- ").unwrap_or(l).trim();
        if l.is_empty() || l == "key:" {
            continue;
        }
        let Some((k, v)) = l.split_once(':') else {
            return Err(ParseError::syntax(line, format!("expected `name: value`, found {l:?}")));
        };
        let v = v.trim().trim_matches('"');
        match k.trim() {
            "id" => {
                if id.is_some() {
                    return Err(ParseError::syntax(line, "more than one key in the file: give a file with exactly one"));
                }
                id = Some((v.to_owned(), line));
            }
            "algorithm" => algorithm = Some(TsigAlgorithm::parse(v).ok_or(ParseError { line, kind: ParseErrorKind::Algorithm(v.to_owned()) })?),
            "secret" => secret = Some(decode_secret(v, line)?),
            other => return Err(ParseError::syntax(line, format!("unknown field `{other}` in a key (expected id, algorithm or secret)"))),
        }
    }
    let (name, line) = id.ok_or(ParseError { line: 1, kind: ParseErrorKind::Incomplete("the key has no `id:` (its name)".into()) })?;
    finish(&name, line, algorithm, secret)
}

/// `[algorithm:]name:secret`, as `nsupdate -y` takes it (the algorithm defaults to hmac-sha256 here
/// too, as in BIND 9.18).
fn parse_compact(text: &str, line: usize) -> Result<TsigKey, ParseError> {
    let parts: Vec<&str> = text.split(':').collect();
    let (alg, name, secret) = match parts.as_slice() {
        [name, secret] => ("hmac-sha256", *name, *secret),
        [alg, name, secret] => (*alg, *name, *secret),
        _ => return Err(ParseError::syntax(line, "expected `algorithm:name:secret`")),
    };
    let algorithm = TsigAlgorithm::parse(alg).ok_or(ParseError { line, kind: ParseErrorKind::Algorithm(alg.to_owned()) })?;
    finish(name, line, Some(algorithm), Some(decode_secret(secret, line)?))
}

fn decode_secret(b64: &str, line: usize) -> Result<Vec<u8>, ParseError> {
    let secret = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| ParseError { line, kind: ParseErrorKind::Secret(e) })?;
    if secret.is_empty() {
        return Err(ParseError::syntax(line, "the secret is empty"));
    }
    Ok(secret)
}

fn finish(name: &str, line: usize, algorithm: Option<TsigAlgorithm>, secret: Option<Vec<u8>>) -> Result<TsigKey, ParseError> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if !super::name::is_dns_name(&name) {
        return Err(ParseError::syntax(line, format!("the key's name {name:?} is not a DNS name (letters, digits, `-`, `_`, dots)")));
    }
    let algorithm = algorithm.ok_or(ParseError { line, kind: ParseErrorKind::Incomplete("the key has no algorithm".into()) })?;
    let secret = secret.ok_or(ParseError { line, kind: ParseErrorKind::Incomplete("the key has no secret".into()) })?;
    Ok(TsigKey { name, algorithm, secret })
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        let mode = format!("{:o}", meta.permissions().mode() & 0o777);
        tracing::warn!(path = %path.display(), mode, "the TSIG key file can be read by other users: chmod 600 it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIND: &str = "key \"vmw-acme\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0LWJ5dGVzLTEyMzQ1Njc4OTA=\";\n};\n";

    #[test]
    fn reads_what_tsig_keygen_writes() {
        let k = TsigKey::parse(BIND).unwrap();
        assert_eq!(k.name, "vmw-acme");
        assert_eq!(k.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(k.secret, b"secret-bytes-1234567890");
    }

    #[test]
    fn reads_comments_and_sha512_and_a_trailing_dot() {
        let text = "// made by hand\n# another\n/* and\n a block */ key Vmw.Acme. { algorithm HMAC-SHA512.; secret \"c2VjcmV0\"; };";
        let k = TsigKey::parse(text).unwrap();
        assert_eq!((k.name.as_str(), k.algorithm), ("vmw.acme", TsigAlgorithm::HmacSha512));
    }

    #[test]
    fn reads_what_knot_keymgr_writes() {
        let text = "# hmac-sha384:knot-key:c2VjcmV0\nkey:\n  - id: knot-key\n    algorithm: hmac-sha384\n    secret: c2VjcmV0\n";
        let k = TsigKey::parse(text).unwrap();
        assert_eq!((k.name.as_str(), k.algorithm, k.secret.as_slice()), ("knot-key", TsigAlgorithm::HmacSha384, &b"secret"[..]));
    }

    #[test]
    fn reads_the_nsupdate_y_form() {
        let k = TsigKey::parse("hmac-sha512:k1:c2VjcmV0\n").unwrap();
        assert_eq!((k.name.as_str(), k.algorithm), ("k1", TsigAlgorithm::HmacSha512));
        // Base64 may hold `//`: not a comment here.
        let k = TsigKey::parse("k2:ab//cd//\n").unwrap();
        assert_eq!((k.name.as_str(), k.secret.len()), ("k2", 6));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let k = TsigKey::parse(BIND).unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains("c2VjcmV0") && !shown.contains("secret-bytes"), "{shown}");
        assert!(shown.contains("vmw-acme") && shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "key \"k\" {\n  algorithm hmac-md5;\n  secret \"c2VjcmV0\";\n};\n").unwrap();
        let e = TsigKey::from_file(&path).unwrap_err();
        assert!(matches!(e, TsigKeyError::Algorithm { line: 2, .. }), "{e:?}");
        let shown = e.to_string();
        assert!(shown.contains("bad.key") && shown.contains("line 2") && shown.contains("hmac-md5"), "{shown}");

        std::fs::write(&path, "key \"k\" {\n  algorithm hmac-sha256;\n  secret \"not base64!\";\n};\n").unwrap();
        let e = TsigKey::from_file(&path).unwrap_err();
        assert!(matches!(e, TsigKeyError::Secret { line: 3, .. }), "{e:?}");

        std::fs::write(&path, "key \"k\" {\n  algorithm hmac-sha256\n  secret \"c2VjcmV0\";\n};\n").unwrap();
        let e = TsigKey::from_file(&path).unwrap_err();
        assert!(matches!(e, TsigKeyError::Syntax { line: 2, .. }), "{e:?}");

        std::fs::write(&path, "key \"k\" { algorithm hmac-sha256; };\n").unwrap();
        assert!(matches!(TsigKey::from_file(&path).unwrap_err(), TsigKeyError::Incomplete { .. }));

        std::fs::write(&path, format!("{BIND}{BIND}")).unwrap();
        let e = TsigKey::from_file(&path).unwrap_err();
        assert!(e.to_string().contains("more than one key"), "{e}");

        let e = TsigKey::from_file(&dir.path().join("missing.key")).unwrap_err();
        assert!(matches!(e, TsigKeyError::Read { .. }) && e.to_string().contains("missing.key"), "{e}");
    }

    #[test]
    fn names_that_are_not_dns_names_are_refused() {
        assert!(TsigKey::parse("key \"a b\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };").is_err());
        assert!(TsigKey::parse("key \"a;b\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };").is_err());
    }
}
