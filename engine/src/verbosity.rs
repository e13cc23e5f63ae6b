//! Upstream KWOK's `-v` log levels, shared by `kwok` and `kwokctl` so both read the
//! same spellings: `DEBUG`, `INFO`, `WARN`, `ERROR` (any case), a name with a signed
//! offset (`INFO-4`), or a number, which is an offset from `INFO` (0).

/// Parses a `-v` value into upstream's numeric level (-4 debug, 0 info, 4 warn, 8 error).
pub fn parse_level(text: &str) -> Result<i64, String> {
    let split = text.find(['+', '-']).filter(|i| *i > 0);
    let (name, offset) = match split {
        Some(i) => (&text[..i], &text[i..]),
        None if text.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') => ("INFO", text),
        None => (text, ""),
    };
    let base = match name.to_ascii_uppercase().as_str() {
        "DEBUG" => -4,
        "INFO" => 0,
        "WARN" => 4,
        "ERROR" => 8,
        _ => {
            return Err(format!(
                "invalid level name {text:?} (DEBUG, INFO, WARN, ERROR or a number)"
            ));
        }
    };
    let offset: i64 = match offset {
        "" => 0,
        o => o
            .parse()
            .map_err(|_| format!("invalid level offset in {text:?}"))?,
    };
    Ok(base + offset)
}

/// The `tracing` level name for an upstream level; below debug is trace.
pub fn filter_name(level: i64) -> &'static str {
    match level {
        ..-4 => "trace",
        -4..0 => "debug",
        0..4 => "info",
        4..8 => "warn",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_should_take_upstreams_names_offsets_and_numbers() {
        let name = |v: &str| parse_level(v).map(filter_name);
        assert_eq!(name("DEBUG"), Ok("debug"));
        assert_eq!(name("-4"), Ok("debug"));
        assert_eq!(name("info"), Ok("info"));
        assert_eq!(name("WARN"), Ok("warn"));
        assert_eq!(name("4"), Ok("warn"));
        assert_eq!(name("ERROR"), Ok("error"));
        assert_eq!(name("INFO-4"), Ok("debug"));
        assert_eq!(name("DEBUG-4"), Ok("trace"));
        assert!(parse_level("LOUD").unwrap_err().contains("LOUD"));
        assert!(parse_level("INFO+x").is_err());
    }
}
