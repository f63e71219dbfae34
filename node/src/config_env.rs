//! `${NAME}` in configuration files, replaced by the environment variable's value before the
//! TOML is parsed.
//!
//! Container platforms hand a process its facts as environment variables: Kubernetes' downward
//! API gives a pod its IP and name, compose files their `.env`. One configuration file then
//! serves every replica (`ext-ip = "${POD_IP}"`, `tcp-port = ${NODE_TCP_PORT}`). The rules are
//! strict so that a typo never turns into a silent default:
//! - only the braced form `${NAME}` is replaced (NAME: letters, digits, `_`, not starting with a
//!   digit); a lone `$` stays as written, `$${` writes a literal `${`;
//! - an unset variable is an error naming it and its line (`${NAME:-default}` gives a default
//!   instead; an empty default is allowed);
//! - an unterminated or malformed `${…` is an error too;
//! - comments are left as written, so a comment may show the syntax.

use std::fmt;

/// Why a configuration text could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// 1-based line of the reference.
    pub line: usize,
    /// What is wrong, e.g. "${POD_IP} is not set".
    pub message: String,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ExpandError {}

/// [`expand`] with the process environment.
pub fn expand_from_env(text: &str) -> Result<String, ExpandError> {
    expand(text, |name| std::env::var(name).ok())
}

/// Replaces every `${NAME}` (or `${NAME:-default}`) in `text` with `lookup(NAME)`. Comments
/// are left as written (a comment may show the syntax); strings and bare values are expanded.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    if !text.contains("${") {
        return Ok(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut lexer = Lexer::Value;
    let mut line = 1;
    let mut copied = 0; // text[..copied] is in `out`
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let byte = bytes[i];
        if byte == b'\n' {
            line += 1;
        }
        if lexer == Lexer::Comment {
            if byte == b'\n' {
                lexer = Lexer::Value;
            }
            i += 1;
            continue;
        }
        if byte == b'$' && rest.starts_with(b"$${") {
            out.push_str(&text[copied..i]);
            out.push_str("${");
            i += 3;
            copied = i;
            continue;
        }
        if byte == b'$' && rest.starts_with(b"${") {
            out.push_str(&text[copied..i]);
            let (value, used) = reference(&text[i + 2..], line, &lookup)?;
            out.push_str(&value);
            i += 2 + used;
            copied = i;
            continue;
        }
        let (next, step) = lexer.step(rest);
        lexer = next;
        i += step;
    }
    out.push_str(&text[copied..]);
    Ok(out)
}

/// Where the scan is in TOML's syntax: only enough to tell comments from strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lexer {
    Value,
    Comment,
    Basic,
    Literal,
    MultiBasic,
    MultiLiteral,
}

impl Lexer {
    /// The state after the token starting `rest`, and how many bytes it took.
    fn step(self, rest: &[u8]) -> (Self, usize) {
        use Lexer::*;
        match (self, rest) {
            (Value, [b'#', ..]) => (Comment, 1),
            (Value, [b'"', b'"', b'"', ..]) => (MultiBasic, 3),
            (Value, [b'\'', b'\'', b'\'', ..]) => (MultiLiteral, 3),
            (Value, [b'"', ..]) => (Basic, 1),
            (Value, [b'\'', ..]) => (Literal, 1),
            (Basic | MultiBasic, [b'\\', next, ..]) if *next != b'\n' => (self, 2),
            (Basic, [b'"', ..]) | (Literal, [b'\'', ..]) => (Value, 1),
            // A string cannot span lines: the line ends it (the TOML parser reports it).
            (Basic | Literal, [b'\n', ..]) => (Value, 1),
            (MultiBasic, [b'"', b'"', b'"', ..]) | (MultiLiteral, [b'\'', b'\'', b'\'', ..]) => {
                (Value, 3)
            }
            _ => (self, 1),
        }
    }
}

/// Resolves the reference whose text follows `${`: its value and the bytes it spans (`}` too).
fn reference(
    after: &str,
    line: usize,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<(String, usize), ExpandError> {
    let error = |message: String| ExpandError { line, message };
    let Some(end) = after.find('}') else {
        return Err(error("\"${\" without a closing \"}\"".into()));
    };
    let reference = &after[..end];
    if reference.contains('\n') {
        return Err(error("\"${\" without a closing \"}\" on its line".into()));
    }
    let (name, default) = match reference.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (reference, None),
    };
    if !is_name(name) {
        return Err(error(format!(
            "${{{reference}}}: not a variable name (letters, digits and _; write $${{ for a literal ${{)"
        )));
    }
    match lookup(name).or_else(|| default.map(str::to_owned)) {
        Some(value) => Ok((value, end + 1)),
        None => Err(error(format!("${{{name}}} is not set"))),
    }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "POD_IP" => Some("10.1.2.3".into()),
            "PORT" => Some("60001".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_braced_references_anywhere_in_the_text() {
        let text = "ext-ip = \"${POD_IP}\"\ntcp-port = ${PORT}\nname = \"a-${PORT}-b\"\n";
        assert_eq!(
            expand(text, env).unwrap(),
            "ext-ip = \"10.1.2.3\"\ntcp-port = 60001\nname = \"a-60001-b\"\n"
        );
    }

    #[test]
    fn defaults_apply_only_when_unset() {
        assert_eq!(expand("${NOPE:-8080} ${PORT:-1}", env).unwrap(), "8080 60001");
        assert_eq!(expand("x${NOPE:-}y ${EMPTY:-z}", env).unwrap(), "xy ");
    }

    #[test]
    fn text_without_references_is_unchanged_dollars_included() {
        let text = "password = \"pa$$word $HOME\" # $ alone\n";
        assert_eq!(expand(text, env).unwrap(), text);
        assert_eq!(expand("literal $${POD_IP}", env).unwrap(), "literal ${POD_IP}");
    }

    #[test]
    fn comments_are_left_as_written_strings_are_not() {
        let text = "# ext-ip = \"${UNSET}\"\na = \"# ${PORT}\" # ${UNSET}\nb = '${PORT}' # '\n";
        assert_eq!(
            expand(text, env).unwrap(),
            "# ext-ip = \"${UNSET}\"\na = \"# 60001\" # ${UNSET}\nb = '60001' # '\n"
        );
        let escaped = "a = \"say \\\"# ${PORT}\\\"\"\n";
        assert_eq!(expand(escaped, env).unwrap(), "a = \"say \\\"# 60001\\\"\"\n");
        let multi = "a = \"\"\"\n# ${PORT}\n\"\"\"\n# ${UNSET}\n";
        assert_eq!(expand(multi, env).unwrap(), "a = \"\"\"\n# 60001\n\"\"\"\n# ${UNSET}\n");
    }

    #[test]
    fn an_unset_variable_is_an_error_with_its_line() {
        let error = expand("a = 1\n\nb = \"${NODE_KEY}\"\n", env).unwrap_err();
        assert_eq!(error.to_string(), "line 3: ${NODE_KEY} is not set");
    }

    #[test]
    fn malformed_references_are_errors() {
        let unterminated = expand("a = 1\nb = \"${POD_IP\"\nc = 2\n", env).unwrap_err();
        assert_eq!(unterminated.line, 2);
        assert!(unterminated.message.contains("closing"), "{unterminated}");
        let bad_name = expand("x = ${1ABC}", env).unwrap_err();
        assert!(bad_name.message.contains("not a variable name"), "{bad_name}");
        assert!(expand("x = ${}", env).is_err());
        assert!(expand("x = ${A B}", env).is_err());
        assert!(expand("x = ${", env).is_err());
    }
}
