//! Tests of venues defined in config.
