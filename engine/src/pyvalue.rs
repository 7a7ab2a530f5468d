//! Python's `str()` and `repr()` of JSON-decoded values, so capability
//! strings compare exactly as Nova's `str(cap)` does (`['aes', 'avx']`).

use serde_json::Value;

/// Python `repr()` of a decoded JSON value.
pub fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => number(n),
        Value::String(s) => {
            if s.contains('\'') && !s.contains('"') {
                format!("\"{s}\"")
            } else {
                format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
            }
        }
        Value::Array(a) => format!("[{}]", a.iter().map(repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", repr(&Value::String(k.clone())), repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Python `str()` of a decoded JSON value.
pub fn str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// Python's float repr: integral floats keep `.0`.
pub fn float(f: f64) -> String {
    if f.is_finite() && f == f.trunc() && f.abs() < 1e16 { format!("{f:.1}") } else { format!("{f:?}") }
}

fn number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        float(n.as_f64().unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn lists_and_dicts_print_like_python() {
        assert_eq!(super::str(&json!(["aes", "avx"])), "['aes', 'avx']");
        assert_eq!(super::str(&json!({"bits": 46})), "{'bits': 46}");
        assert_eq!(super::str(&json!(4.0)), "4.0");
        assert_eq!(super::str(&json!("Intel")), "Intel");
        assert_eq!(super::str(&json!(true)), "True");
    }
}
