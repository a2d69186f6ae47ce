//! The binary's command line: bad configuration is refused before anything starts.
//! (This file also makes `cargo test` build the `fleetcore` binary that the
//! black-box tests in `tests/` run.)

use std::process::Command;

#[test]
fn bad_configuration_is_refused_with_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetcore"))
        .args([
            "serve",
            "--node-id",
            "3",
            "--initial-cluster",
            "1=127.0.0.1:1,2=127.0.0.1:2",
        ])
        .output()
        .expect("run fleetcore");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not list this node"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_fleetcore"))
        .args(["serve", "--initial-cluster", "1=nohost"])
        .output()
        .expect("run fleetcore");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no port"));
}
