//! The shipped systemd unit passes `systemd-analyze verify` (with the unit's
//! binary path pointed at the binary under test) without a single warning.

use std::process::Command;

#[test]
fn the_systemd_unit_verifies_cleanly() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/wa-supervisor.service"
    ))
    .unwrap();
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=wa-supervisor",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX",
        "LimitNOFILE=65536",
    ] {
        assert!(unit.contains(needed), "the unit sets {needed}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wa-supervisor.service");
    let unit = unit.replace(
        "/usr/local/bin/wa-supervisor",
        env!("CARGO_BIN_EXE_wa-supervisor"),
    );
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed (scripts/test installs systemd)");
    let diagnostics =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{diagnostics}");
    assert_eq!(diagnostics.trim(), "", "no warnings");
}
