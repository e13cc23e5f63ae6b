//! Stages: the YAML model ([`spec`]) and its compiled form.

pub mod spec;
