//! `JsonFilter`: a `query` scheduler hint, a JSON expression over host
//! attributes (`["and", [">=", "$free_ram_mb", 1024], ...]`).

use std::cmp::Ordering;

use serde_json::Value;

use super::{FilterError, HostFilter, Kernel, RequestContext, per_host_kernel};
use crate::fleet::Fleet;
use crate::host_attrs;

/// A Python value as the expression evaluator holds it.
#[derive(Clone, Debug, PartialEq)]
enum Py {
    Num(f64),
    Str(String),
    Bool(bool),
    List(Vec<Py>),
    Other(Value),
}

impl Py {
    fn from_json(v: Value) -> Option<Py> {
        Some(match v {
            Value::Null => return None,
            Value::Bool(b) => Py::Bool(b),
            Value::Number(n) => Py::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Py::Str(s),
            other => Py::Other(other),
        })
    }

    fn truthy(&self) -> bool {
        match self {
            Py::Num(n) => *n != 0.0,
            Py::Str(s) => !s.is_empty(),
            Py::Bool(b) => *b,
            Py::List(l) => !l.is_empty(),
            Py::Other(v) => !matches!(v, Value::Null) && v != &Value::Object(Default::default()),
        }
    }

    fn num(&self) -> Option<f64> {
        match self {
            Py::Num(n) => Some(*n),
            Py::Bool(b) => Some(*b as u8 as f64),
            _ => None,
        }
    }

    /// Python 3 ordering: numbers with numbers, strings with strings;
    /// anything else does not compare (Nova would raise `TypeError`).
    fn cmp(&self, other: &Py) -> Option<Ordering> {
        match (self, other) {
            (Py::Str(a), Py::Str(b)) => Some(a.cmp(b)),
            _ => self.num()?.partial_cmp(&other.num()?),
        }
    }
}

/// Resolves `$attr[.key...]` for host `i`; plain strings stay strings.
fn parse_string(fleet: &Fleet, i: usize, s: &str) -> Option<Py> {
    let Some(path) = s.strip_prefix('$') else {
        return Some(Py::Str(s.to_owned()));
    };
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut v = match host_attrs::lookup(first)? {
        host_attrs::Attr::PerHost(name) => host_attrs::per_host(fleet, i, name),
        attr => {
            let (b, r) = fleet.locate(i);
            let col = host_attrs::code_column(attr)?;
            host_attrs::coded(fleet, attr, col(b)[r])
        }
    };
    for item in parts {
        v = match v {
            Value::Object(mut o) => o.remove(item)?,
            _ => return None,
        };
    }
    Py::from_json(v)
}

fn eval(fleet: &Fleet, i: usize, q: &[Value]) -> Result<Py, String> {
    let Some((cmd, args)) = q.split_first() else {
        return Ok(Py::Bool(true));
    };
    let cmd = cmd.as_str().ok_or_else(|| format!("KeyError: {cmd}"))?;
    let mut cooked: Vec<Py> = Vec::with_capacity(args.len());
    for a in args {
        let v = match a {
            Value::Array(sub) => Some(eval(fleet, i, sub)?),
            Value::String(s) => parse_string(fleet, i, s),
            other => Py::from_json(other.clone()),
        };
        if let Some(v) = v {
            cooked.push(v);
        }
    }
    let compare = |want: fn(Ordering) -> bool| -> Result<Py, String> {
        if cooked.len() < 2 {
            return Ok(Py::Bool(false));
        }
        let first = &cooked[0];
        for other in &cooked[1..] {
            match first.cmp(other) {
                Some(o) if want(o) => {}
                Some(_) => return Ok(Py::Bool(false)),
                None if matches!(cmd, "=") => return Ok(Py::Bool(false)),
                None => return Err(format!("TypeError: '{cmd}' not supported between these operands")),
            }
        }
        Ok(Py::Bool(true))
    };
    match cmd {
        "=" => compare(Ordering::is_eq),
        "<" => compare(Ordering::is_lt),
        ">" => compare(Ordering::is_gt),
        "<=" => compare(Ordering::is_le),
        ">=" => compare(Ordering::is_ge),
        "in" => Ok(Py::Bool(cooked.len() >= 2 && cooked[1..].contains(&cooked[0]))),
        "not" => Ok(Py::List(cooked.iter().map(|a| Py::Bool(!a.truthy())).collect())),
        "or" => Ok(Py::Bool(cooked.iter().any(Py::truthy))),
        "and" => Ok(Py::Bool(cooked.iter().all(Py::truthy))),
        other => Err(format!("KeyError: '{other}'")),
    }
}

/// Passes hosts for which the `query` hint evaluates truthy (a list result
/// passes when any element is truthy), with Nova's evaluation rules:
/// `$name` looks up a host attribute, unresolved values are dropped from an
/// operator's arguments, comparisons with fewer than two arguments are false.
#[derive(Debug, Clone, Copy)]
pub struct JsonFilter;

impl HostFilter for JsonFilter {
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let Some(text) = ctx.request.hint_str("query") else {
            return Ok(None);
        };
        let query: Value = serde_json::from_str(&text)
            .map_err(|e| FilterError::NovaError(format!("JSONDecodeError in query hint: {e}")))?;
        let Value::Array(query) = query else {
            return Ok(None);
        };
        if query.is_empty() {
            return Ok(None);
        }
        let fleet = ctx.fleet;
        // A query that Nova would raise on fails loudly for the first host.
        if let Some(first) = (0..fleet.len()).next()
            && let Err(e) = eval(fleet, first, &query)
        {
            return Err(FilterError::NovaError(e));
        }
        Ok(Some(per_host_kernel(move |i| match eval(fleet, i, &query) {
            Ok(Py::List(l)) => l.iter().any(Py::truthy),
            Ok(v) => v.truthy(),
            Err(_) => false,
        })))
    }
}
