//! boto3 (the AWS SDK for Python) against a real node: `tests/compat/test_boto3.py`
//! through pytest. Needs `pip install boto3 pytest` (`.ci/run` installs them).

use std::process::Command;
use std::time::Duration;

use fleetcore_tests::{eventually, serial, NodeProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_iot_and_iot_data_clients_work() -> anyhow::Result<()> {
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
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(&suite)
            .env("FLEETCORE_URL", &url)
            .output()
    })
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pytest failed (needs `pip install boto3 pytest`):\n{stdout}\n{stderr}\n---- node log ----\n{}",
        node.log()
    );
    assert!(stdout.contains("passed"), "{stdout}");
    Ok(())
}
