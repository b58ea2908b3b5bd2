//! Secret and config specs.

use super::{Result, fail, labels, validate_name};
use crate::defaults::{MAX_CONFIG_BYTES, MAX_SECRET_BYTES};
use crate::v1::{ConfigSpec, SecretSpec};

/// Checks a secret spec: a name, and 1 byte to 500 KiB of data (unless an
/// external driver holds it).
pub fn validate_secret_spec(spec: &SecretSpec) -> Result {
    let Some(a) = &spec.annotations else {
        return fail("spec.annotations.name", "a name is required");
    };
    validate_name("spec.annotations.name", &a.name)?;
    labels("spec.annotations.labels", &a.labels)?;
    let external = spec.driver.as_ref().is_some_and(|d| !d.name.is_empty());
    if spec.data.is_empty() && !external {
        return fail("spec.data", "a secret needs data");
    }
    if spec.data.len() > MAX_SECRET_BYTES {
        return fail(
            "spec.data",
            format!(
                "{} bytes is more than the limit of 500 KiB",
                spec.data.len()
            ),
        );
    }
    Ok(())
}

/// Checks a config spec: a name and at most 1000 KiB of data.
pub fn validate_config_spec(spec: &ConfigSpec) -> Result {
    let Some(a) = &spec.annotations else {
        return fail("spec.annotations.name", "a name is required");
    };
    validate_name("spec.annotations.name", &a.name)?;
    labels("spec.annotations.labels", &a.labels)?;
    if spec.data.len() > MAX_CONFIG_BYTES {
        return fail(
            "spec.data",
            format!(
                "{} bytes is more than the limit of 1000 KiB",
                spec.data.len()
            ),
        );
    }
    Ok(())
}
