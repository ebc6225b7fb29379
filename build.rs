//! Marks a build made for a PostgreSQL test pass (`WFE_TEST_DATABASE_URL` set), so tests
//! that need PostgreSQL are compiled as ignored without it: the test runner then reports
//! them as ignored rather than as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(wfe_postgres)");
    println!("cargo::rerun-if-env-changed=WFE_TEST_DATABASE_URL");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("WFE_TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        println!("cargo::rustc-cfg=wfe_postgres");
    }
}
