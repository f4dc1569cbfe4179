//! The shared test kit (`wire-testkit`), as the relay's tests use it.
#![allow(unused_imports)]

pub use wire_testkit::http::{Resp, sse, sse_ids};
pub use wire_testkit::relay::{Backend, TestRelay, config, envelope, fresh_database, test_cluster};
pub use wire_testkit::{WAIT, eventually, tempdir, wait_until};

/// Each named test (a `fn(Backend)`) on every store: `memory::`, `sqlite::` and
/// `postgres::` (ignored outside `.ci/test`, which starts the cluster).
macro_rules! every_store {
    ($($name:ident),* $(,)?) => {
        mod memory { $( #[test] fn $name() { super::$name(crate::common::Backend::Memory) } )* }
        mod sqlite { $( #[test] fn $name() { super::$name(crate::common::Backend::Sqlite) } )* }
        mod postgres {
            $(
                #[test]
                #[ignore = "needs the private PostgreSQL cluster `.ci/test` starts (WIRE_TEST_PG)"]
                fn $name() { super::$name(crate::common::Backend::Postgres) }
            )*
        }
    };
}
pub(crate) use every_store;
