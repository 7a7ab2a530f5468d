//! Nova's extra-spec operator syntax (`nova/scheduler/filters/extra_specs_ops.py`):
//! `= N` (numeric >=), `== N`, `!= N`, `>= N`, `<= N`, `s== s`, `s!= s`,
//! `s< s`, `s<= s`, `s> s`, `s>= s`, `<in> sub`, `<all-in> a b`,
//! `<or> a <or> b`, else plain equality.

/// True when `value` satisfies the requirement `req`.
///
/// # Nova compatibility
/// Numeric operators parse both sides as floats; where Nova would raise
/// `ValueError` this returns false.
pub fn matches(value: &str, req: &str) -> bool {
    let mut words = req.split_whitespace();
    let Some(op) = words.next() else {
        return value == req;
    };
    let rest: Vec<&str> = words.collect();
    let num = |f: fn(f64, f64) -> bool| -> bool {
        match (value.trim().parse::<f64>(), rest.first().map(|w| w.parse::<f64>())) {
            (Ok(a), Some(Ok(b))) => f(a, b),
            _ => false,
        }
    };
    let s = |f: fn(&str, &str) -> bool| -> bool { rest.first().is_some_and(|b| f(value, b)) };
    match op {
        "<or>" => {
            // <or> v1 <or> v2 ...: every other word is a candidate value.
            rest.iter().step_by(2).any(|w| *w == value)
        }
        "=" | ">=" => num(|a, b| a >= b),
        "==" => num(|a, b| a == b),
        "!=" => num(|a, b| a != b),
        "<=" => num(|a, b| a <= b),
        "s==" => s(|a, b| a == b),
        "s!=" => s(|a, b| a != b),
        "s<" => s(|a, b| a < b),
        "s<=" => s(|a, b| a <= b),
        "s>" => s(|a, b| a > b),
        "s>=" => s(|a, b| a >= b),
        "<in>" => s(|a, b| a.contains(b)),
        "<all-in>" => !rest.is_empty() && rest.iter().all(|w| value.contains(w)),
        _ => value == req,
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn operators_behave_like_nova() {
        assert!(matches("8002002", ">= 8002000"));
        assert!(!matches("7002000", ">= 8002000"));
        assert!(matches("4", "= 2"));
        assert!(matches("['aes', 'avx512f']", "<in> avx512f"));
        assert!(!matches("['aes']", "<in> avx512f"));
        assert!(matches("Intel", "s!= AMD"));
        assert!(!matches("AMD", "s!= AMD"));
        assert!(matches("yes", "<or> true <or> yes"));
        assert!(!matches("no", "<or> true <or> yes"));
        assert!(matches("true", "true"));
        assert!(matches("a b c", "<all-in> a c"));
        assert!(!matches("x", ">= 3"));
    }
}
