//! The behaviour every whatsapp-rust `Backend` owes, written once and run against
//! upstream's SQLite store (the reference) and against `PostgresStore`.
//!
//! Each test module defines plain `async fn name(db: &dyn Db)` tests and lists them
//! in [`on_both_backends!`], which makes `module::sqlite::name` and
//! `module::postgres::name`. Where upstream's behaviour is surprising, the test
//! says so; ours matches it.

/// Runs each listed test of the calling module on a fresh SQLite file and on a
/// fresh PostgreSQL database.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = crate::backends::Sqlite::new().await;
                    super::$test(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = crate::backends::Postgres::new().await;
                    super::$test(&db).await;
                }
            )*
        }
    };
}

mod app_sync;
mod backends;
mod device;
mod isolation;
mod msg_secrets;
mod protocol;
mod retry_and_inbound;
mod signal;
mod tc_tokens;
