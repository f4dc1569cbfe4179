//! The shared test kit (`wire-testkit`), as the relay's tests use it.
#![allow(unused_imports)]

pub use wire_testkit::http::{Resp, sse, sse_ids};
pub use wire_testkit::relay::{Backend, TestRelay, config, envelope, fresh_database, test_cluster};
pub use wire_testkit::{WAIT, eventually, tempdir, wait_until};
