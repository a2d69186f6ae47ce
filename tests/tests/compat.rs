//! Python clients against a real node, through pytest (`tests/compat`):
//! boto3 (the AWS SDK for Python: `iot` and `iot-data` over HTTP), paho-mqtt
//! (MQTT 3.1.1 and 5) and the AWS IoT Device SDK v2 (`awsiot.iotshadow` over
//! awscrt's MQTT clients). Needs `pip install boto3 pytest paho-mqtt awsiotsdk`
//! (`.ci/run` installs them).
//!
//! Known broker bugs are `xfail(strict=True)` tests there: pytest's `-rxX` report
//! below lists them, and one that starts passing fails the run until its mark goes.

use std::process::Command;
use std::time::Duration;

use fleetcore_tests::{eventually, serial, NodeProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdks_and_mqtt_clients_work_against_a_node() -> anyhow::Result<()> {
    let _serial = serial().await;
    let root = tempfile::tempdir()?;
    let mut node = NodeProcess::new(1, root.path(), Vec::new());
    node.start()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = node.url();
    eventually("the node to be ready", Duration::from_secs(20), || async {
        let r = http.get(format!("{url}/readyz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await?;
    let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("compat");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mqtt_port = node.mqtt_port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-m", "pytest", "-q", "-rxX", "-p", "no:cacheprovider"])
            .arg(&suite)
            .env("FLEETCORE_URL", &url)
            .env("FLEETCORE_MQTT_HOST", "127.0.0.1")
            .env("FLEETCORE_MQTT_PORT", &mqtt_port)
            .output()
    })
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pytest failed (needs `pip install boto3 pytest paho-mqtt awsiotsdk`):\n{stdout}\n{stderr}\n---- node log ----\n{}",
        node.log()
    );
    assert!(stdout.contains("passed"), "{stdout}");
    println!("{stdout}");
    Ok(())
}
