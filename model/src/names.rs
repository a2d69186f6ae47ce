//! Name validation, done once at the edge and again in `apply`.

use crate::error::Rejection;
use crate::limits;

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')
}

/// Checks a thing name (also used for thing types).
pub fn check_thing_name(name: &str) -> Result<(), Rejection> {
    check_name("thing name", name, limits::THING_NAME_LEN_MAX)
}

/// Checks a named shadow's name. The classic shadow has the empty name and is not checked here.
pub fn check_shadow_name(name: &str) -> Result<(), Rejection> {
    check_name("shadow name", name, limits::SHADOW_NAME_LEN_MAX)
}

fn check_name(what: &str, name: &str, max: usize) -> Result<(), Rejection> {
    if name.is_empty() || name.len() > max {
        return Err(Rejection::invalid(format!(
            "{what} must be 1 to {max} characters long, got {}",
            name.len()
        )));
    }
    if let Some(bad) = name.chars().find(|c| !name_char(*c)) {
        return Err(Rejection::invalid(format!(
            "{what} '{name}' contains '{bad}'; allowed are letters, digits, ':', '_' and '-'"
        )));
    }
    Ok(())
}

/// Checks an attribute name and value.
pub fn check_attribute(name: &str, value: &str) -> Result<(), Rejection> {
    if name.is_empty() || name.len() > limits::ATTRIBUTE_NAME_LEN_MAX {
        return Err(Rejection::invalid(format!(
            "attribute name must be 1 to {} characters long",
            limits::ATTRIBUTE_NAME_LEN_MAX
        )));
    }
    let name_ok = |c: char| c.is_ascii_alphanumeric() || "_.,@/:#-".contains(c);
    if let Some(bad) = name.chars().find(|c| !name_ok(*c)) {
        return Err(Rejection::invalid(format!(
            "attribute name '{name}' contains '{bad}'"
        )));
    }
    if value.len() > limits::ATTRIBUTE_VALUE_LEN_MAX {
        return Err(Rejection::invalid(format!(
            "attribute '{name}' value is longer than {} characters",
            limits::ATTRIBUTE_VALUE_LEN_MAX
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thing_names() {
        assert!(check_thing_name("lamp-1:a_b").is_ok());
        assert!(check_thing_name("").is_err());
        assert!(check_thing_name("a/b").is_err());
        assert!(check_thing_name(&"x".repeat(129)).is_err());
        assert!(check_thing_name(&"x".repeat(128)).is_ok());
        assert!(check_shadow_name(&"x".repeat(65)).is_err());
    }
}
