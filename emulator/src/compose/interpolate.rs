//! Compose's variable syntax (`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`, `$$`) and the `.env` /
//! `env_file` format, as the Compose Specification describes them.

/// The result of interpolating one value: the text, and the variables it used that are unset
/// (Compose substitutes an empty string and warns).
#[derive(Debug, Default, PartialEq)]
pub struct Interpolated {
    pub text: String,
    pub unset: Vec<String>,
}

/// Substitutes variables in `text`; `lookup` answers a variable's value. `Err` carries the
/// message of a `${VAR:?message}` whose variable is missing, or a syntax problem.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, String> {
    let mut out = Interpolated::default();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.text.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.text.push('$');
                i += 2;
            }
            Some('{') => {
                let start = i + 2;
                let mut depth = 1;
                let mut end = start;
                while end < chars.len() {
                    match chars[end] {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    end += 1;
                }
                if end >= chars.len() {
                    return Err(format!(
                        "invalid interpolation format for \"{text}\": no closing '}}'"
                    ));
                }
                let inner: String = chars[start..end].iter().collect();
                braced(&inner, text, lookup, &mut out)?;
                i = end + 1;
            }
            Some(next) if next.is_ascii_alphabetic() || *next == '_' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_')
                {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                match lookup(&name) {
                    Some(value) => out.text.push_str(&value),
                    None => out.unset.push(name),
                }
                i = end;
            }
            _ => {
                out.text.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

fn braced(
    inner: &str,
    whole: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Interpolated,
) -> Result<(), String> {
    let name_len = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, rest) = inner.split_at(name_len);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("invalid interpolation format for \"{whole}\""));
    }
    let value = lookup(name);
    let set = value.is_some();
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let mut word = |w: &str| -> Result<String, String> {
        let nested = interpolate(w, lookup)?;
        out.unset.extend(nested.unset);
        Ok(nested.text)
    };
    let text = if rest.is_empty() {
        if !set {
            out.unset.push(name.to_string());
        }
        value.unwrap_or_default()
    } else if let Some(default) = rest.strip_prefix(":-") {
        if non_empty {
            value.unwrap_or_default()
        } else {
            word(default)?
        }
    } else if let Some(default) = rest.strip_prefix('-') {
        if set {
            value.unwrap_or_default()
        } else {
            word(default)?
        }
    } else if let Some(message) = rest.strip_prefix(":?") {
        if !non_empty {
            return Err(format!(
                "required variable {name} is missing a value: {}",
                word(message)?
            ));
        }
        value.unwrap_or_default()
    } else if let Some(message) = rest.strip_prefix('?') {
        if !set {
            return Err(format!(
                "required variable {name} is missing a value: {}",
                word(message)?
            ));
        }
        value.unwrap_or_default()
    } else if let Some(alternative) = rest.strip_prefix(":+") {
        if non_empty {
            word(alternative)?
        } else {
            String::new()
        }
    } else if let Some(alternative) = rest.strip_prefix('+') {
        if set {
            word(alternative)?
        } else {
            String::new()
        }
    } else {
        return Err(format!("invalid interpolation format for \"{whole}\""));
    };
    out.text.push_str(&text);
    Ok(())
}

/// Parses a `.env` / `env_file` text into ordered `(name, value)` pairs. Lines are `NAME=VALUE`
/// (an `export ` prefix is allowed); `#` starts a comment; single-quoted values are literal,
/// double-quoted ones understand `\n` and `\"`, and both are interpolated except single-quoted.
/// `Err` is `(line, message)`.
pub fn parse_env_file(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let trimmed = trimmed
            .strip_prefix("export ")
            .unwrap_or(trimmed)
            .trim_start();
        let Some((name, value)) = trimmed.split_once('=') else {
            // A bare name takes its value from the environment, if any.
            if let Some(value) = lookup(trimmed) {
                vars.push((trimmed.to_string(), value));
            }
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err((line, format!("invalid variable name {name:?}")));
        }
        let value = value.trim_start();
        let known = |key: &str| {
            vars.iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .or_else(|| lookup(key))
        };
        let value = if let Some(rest) = value.strip_prefix('\'') {
            let end = rest
                .find('\'')
                .ok_or_else(|| (line, "unterminated single quote".to_string()))?;
            rest[..end].to_string()
        } else if let Some(rest) = value.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = rest.chars();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some('n') => text.push('\n'),
                        Some('t') => text.push('\t'),
                        Some(other) => text.push(other),
                        None => text.push('\\'),
                    },
                    other => text.push(other),
                }
            }
            if !closed {
                return Err((line, "unterminated double quote".to_string()));
            }
            interpolate(&text, &known).map_err(|e| (line, e))?.text
        } else {
            let bare = match value.find(" #") {
                Some(comment) => &value[..comment],
                None => value,
            };
            interpolate(bare.trim_end(), &known)
                .map_err(|e| (line, e))?
                .text
        };
        vars.push((name.to_string(), value));
    }
    Ok(vars)
}

/// Splits a command string as a POSIX shell would split words (quotes and backslashes), as
/// Compose does for string `command` and `entrypoint` values.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated quote in {text:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated quote in {text:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated quote in {text:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TAG" => Some("1.2".into()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("8000".into()),
            _ => None,
        }
    }

    fn text(input: &str) -> String {
        interpolate(input, &env).expect("interpolates").text
    }

    #[test]
    fn substitutes_every_form_of_the_specification() {
        assert_eq!(text("app:${TAG}"), "app:1.2");
        assert_eq!(text("app:$TAG-x"), "app:1.2-x");
        assert_eq!(text("${MISSING:-fallback}"), "fallback");
        assert_eq!(text("${EMPTY:-fallback}"), "fallback");
        assert_eq!(text("${EMPTY-fallback}"), "");
        assert_eq!(text("${MISSING-fallback}"), "fallback");
        assert_eq!(text("${TAG:+set}/${MISSING:+set}"), "set/");
        assert_eq!(text("${EMPTY+set}"), "set");
        assert_eq!(text("${MISSING:-${PORT}}"), "8000");
        assert_eq!(text("cost $$5 and $ 6"), "cost $5 and $ 6");
    }

    #[test]
    fn unset_variables_become_empty_and_are_reported() {
        let out = interpolate("a${NOPE}b$ALSO_NOT", &env).expect("interpolates");
        assert_eq!(out.text, "ab");
        assert_eq!(out.unset, vec!["NOPE".to_string(), "ALSO_NOT".to_string()]);
    }

    #[test]
    fn required_variables_fail_with_their_message() {
        let error = interpolate("${DB_URL:?set DB_URL first}", &env).expect_err("must fail");
        assert!(
            error.contains("DB_URL") && error.contains("set DB_URL first"),
            "{error}"
        );
        assert!(interpolate("${EMPTY?x}", &env).is_ok());
        assert!(interpolate("${EMPTY:?x}", &env).is_err());
        assert!(interpolate("${unclosed", &env).is_err());
    }

    #[test]
    fn env_files_follow_the_dotenv_format() {
        let vars = parse_env_file(
            "# settings\nexport A=1\nB = two words # comment\nC='lit $A'\nD=\"x\\ny $A\"\n\nE=${A}-${TAG}\n",
            &env,
        )
        .expect("parses");
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "lit $A".into()),
                ("D".into(), "x\ny 1".into()),
                ("E".into(), "1-1.2".into()),
            ]
        );
        assert_eq!(
            parse_env_file("A=1\nB='open\n", &env)
                .expect_err("must fail")
                .0,
            2
        );
    }

    #[test]
    fn command_strings_split_like_a_shell() {
        assert_eq!(
            split_words(r#"python3 -c 'print("hi there")' --name "a b" c\ d"#).expect("splits"),
            vec![
                "python3",
                "-c",
                "print(\"hi there\")",
                "--name",
                "a b",
                "c d"
            ]
        );
        assert!(split_words("echo 'open").is_err());
    }
}
