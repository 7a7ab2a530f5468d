//! Nova's JsonFilter query language compiled to a SQL predicate over the
//! `hosts` table, so `["and", [">=", "$free_ram_mb", 1024], ...]` can be
//! asked of a whole fleet in one query.

use serde_json::Value;

use crate::error::{EngineError, Result};

/// `$variable` (a `HostState` attribute) to its `hosts` column.
fn column(var: &str) -> Option<&'static str> {
    Some(match var {
        "host" => "name",
        "nodename" | "hypervisor_hostname" => "coalesce(nodename, name)",
        "free_ram_mb" => "free_ram_mb",
        "free_disk_mb" => "free_disk_mb",
        "vcpus_total" => "vcpu_total",
        "vcpus_used" => "vcpus_used",
        "num_instances" => "num_instances",
        "num_io_ops" => "num_io_ops",
        "failed_builds" => "failed_builds",
        "hypervisor_type" => "hypervisor_type",
        "hypervisor_version" => "hypervisor_version",
        "total_usable_ram_mb" => "memory_mb_total",
        "total_usable_disk_gb" => "disk_gb_total",
        "cpu_allocation_ratio" => "vcpu_allocation_ratio",
        "ram_allocation_ratio" => "memory_mb_allocation_ratio",
        "disk_allocation_ratio" => "disk_gb_allocation_ratio",
        "availability_zone" => "availability_zone",
        _ => return None,
    })
}

fn operand(v: &Value) -> Result<String> {
    match v {
        Value::String(s) => match s.strip_prefix('$') {
            Some(var) => column(var)
                .map(str::to_owned)
                .ok_or_else(|| EngineError::invalid(format!("JsonFilter variable ${var} has no SQL column"))),
            None => Ok(format!("'{}'", s.replace('\'', "''"))),
        },
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Array(_) => expr(v),
        other => Err(EngineError::invalid(format!("JsonFilter operand {other} is not supported"))),
    }
}

fn expr(v: &Value) -> Result<String> {
    let items = v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| EngineError::invalid(format!("JsonFilter expression {v} is not a non-empty list")))?;
    let op = items[0]
        .as_str()
        .ok_or_else(|| EngineError::invalid(format!("JsonFilter operator {} is not a string", items[0])))?;
    let args = items[1..].iter().map(operand).collect::<Result<Vec<_>>>()?;
    let binary = |sym: &str| -> Result<String> {
        match args.as_slice() {
            [a, b] => Ok(format!("({a} {sym} {b})")),
            _ => Err(EngineError::invalid(format!("JsonFilter {op:?} takes two operands in SQL form"))),
        }
    };
    match op {
        "=" => binary("="),
        "<" => binary("<"),
        ">" => binary(">"),
        "<=" => binary("<="),
        ">=" => binary(">="),
        "in" if args.len() >= 2 => Ok(format!("({} IN ({}))", args[0], args[1..].join(", "))),
        "not" if args.len() == 1 => Ok(format!("(NOT {})", args[0])),
        "and" | "or" if !args.is_empty() => Ok(format!("({})", args.join(&format!(" {} ", op.to_uppercase())))),
        _ => Err(EngineError::invalid(format!(
            "JsonFilter operator {op:?} with {} operands is not supported",
            args.len()
        ))),
    }
}

/// The SQL predicate for a JsonFilter query (the `query` scheduler hint's
/// JSON text).
///
/// # Errors
/// Text that is not JSON, or an operator or variable with no SQL form.
pub fn json_filter_to_sql(query: &str) -> Result<String> {
    let v: Value =
        serde_json::from_str(query).map_err(|e| EngineError::invalid(format!("JsonFilter query is not JSON: {e}")))?;
    expr(&v)
}

/// The SQL listing the hosts (by name) a JsonFilter query matches.
///
/// # Errors
/// As [`json_filter_to_sql`].
pub fn json_filter_hosts_sql(query: &str) -> Result<String> {
    Ok(format!("SELECT name FROM hosts WHERE {} ORDER BY name", json_filter_to_sql(query)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_query_becomes_a_predicate() {
        let q = r#"["and", [">=", "$free_ram_mb", 1024], ["in", "$hypervisor_type", "QEMU", "it's"], ["not", ["<", "$vcpus_total", 8]]]"#;
        assert_eq!(
            json_filter_to_sql(q).unwrap(),
            "((free_ram_mb >= 1024) AND (hypervisor_type IN ('QEMU', 'it''s')) AND (NOT (vcpu_total < 8)))"
        );
        assert!(json_filter_to_sql(r#"["=", "$no_such", 1]"#).unwrap_err().to_string().contains("$no_such"));
    }
}
