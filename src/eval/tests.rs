//! End-to-end tests of the public API.
