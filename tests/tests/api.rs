//! The HTTP API of one node, through real HTTP: AWS paths, shapes and error codes,
//! bad input, and the refusal of a foreign or corrupt data directory.

use std::time::Duration;

use fleetcore_tests::{eventually, serial, NodeProcess};
use serde_json::{json, Value};

async fn single_node() -> anyhow::Result<(NodeProcess, reqwest::Client, tempfile::TempDir)> {
    let root = tempfile::tempdir()?;
    let mut node = NodeProcess::new(1, root.path(), Vec::new());
    node.start()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = node.url();
    eventually("the node to be ready", Duration::from_secs(20), || async {
        let r = http.get(format!("{url}/readyz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await
    .map_err(|e| e.context(node.log()))?;
    Ok((node, http, root))
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<&str>,
) -> anyhow::Result<(u16, String, Value)> {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("x-amzn-ErrorType")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, kind, body))
}

/// What: registry and shadow operations with AWS's paths, fields and errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_and_shadow_api() -> anyhow::Result<()> {
    let _serial = serial().await;
    let (node, http, _root) = single_node().await?;
    let u = node.url();
    use reqwest::Method as M;

    let (s, _, b) = call(
        &http,
        M::POST,
        format!("{u}/things/t1"),
        Some(r#"{"attributePayload":{"attributes":{"a":"1"}}}"#),
    )
    .await?;
    assert_eq!(s, 200);
    assert_eq!(b["thingName"], "t1");
    assert!(b["thingArn"]
        .as_str()
        .is_some_and(|a| a.ends_with(":thing/t1")));
    // Same configuration again: idempotent. Another: ResourceAlreadyExists.
    assert_eq!(
        call(
            &http,
            M::POST,
            format!("{u}/things/t1"),
            Some(r#"{"attributePayload":{"attributes":{"a":"1"}}}"#)
        )
        .await?
        .0,
        200
    );
    let (s, kind, _) = call(
        &http,
        M::POST,
        format!("{u}/things/t1"),
        Some(r#"{"attributePayload":{"attributes":{"a":"2"}}}"#),
    )
    .await?;
    assert_eq!((s, kind.as_str()), (409, "ResourceAlreadyExistsException"));

    // UpdateThing with merge and expectedVersion.
    let (s, _, _) = call(
        &http,
        M::PATCH,
        format!("{u}/things/t1"),
        Some(r#"{"attributePayload":{"attributes":{"b":"2"},"merge":true},"expectedVersion":1}"#),
    )
    .await?;
    assert_eq!(s, 200);
    let (s, kind, _) = call(
        &http,
        M::PATCH,
        format!("{u}/things/t1"),
        Some(r#"{"expectedVersion":1}"#),
    )
    .await?;
    assert_eq!((s, kind.as_str()), (409, "VersionConflictException"));
    let (_, _, t) = call(&http, M::GET, format!("{u}/things/t1"), None).await?;
    assert_eq!(t["attributes"], json!({"a": "1", "b": "2"}));
    assert_eq!(t["version"], 2);

    // ListThings: pagination and attribute filter.
    for i in 0..5 {
        let (s, _, _) = call(
            &http,
            M::POST,
            format!("{u}/things/page-{i}"),
            Some(r#"{"attributePayload":{"attributes":{"kind":"p"}}}"#),
        )
        .await?;
        assert_eq!(s, 200);
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = format!("{u}/things?maxResults=2&attributeName=kind&attributeValue=p");
        if let Some(t) = &token {
            url.push_str(&format!("&nextToken={t}"));
        }
        let (s, _, page) = call(&http, M::GET, url, None).await?;
        assert_eq!(s, 200);
        for t in page["things"].as_array().expect("things") {
            names.push(t["thingName"].as_str().expect("name").to_string());
        }
        match page["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(names, ["page-0", "page-1", "page-2", "page-3", "page-4"]);

    // Shadows: classic and named.
    let (s, _, acc) = call(
        &http,
        M::POST,
        format!("{u}/things/t1/shadow"),
        Some(r#"{"state":{"desired":{"on":true}},"clientToken":"ct"}"#),
    )
    .await?;
    assert_eq!(s, 200);
    assert_eq!(acc["clientToken"], "ct");
    let (s, _, _) = call(
        &http,
        M::POST,
        format!("{u}/things/t1/shadow?name=cfg"),
        Some(r#"{"state":{"reported":{"x":1}}}"#),
    )
    .await?;
    assert_eq!(s, 200);
    let (_, _, doc) = call(&http, M::GET, format!("{u}/things/t1/shadow"), None).await?;
    assert_eq!(doc["state"]["delta"], json!({"on": true}));
    let (_, _, named) = call(
        &http,
        M::GET,
        format!("{u}/api/things/shadow/ListNamedShadowsForThing/t1"),
        None,
    )
    .await?;
    assert_eq!(named["results"], json!(["cfg"]));
    for size in ["0", "101"] {
        let (s, kind, _) = call(
            &http,
            M::GET,
            format!("{u}/api/things/shadow/ListNamedShadowsForThing/t1?pageSize={size}"),
            None,
        )
        .await?;
        assert_eq!(
            (s, kind.as_str()),
            (400, "InvalidRequestException"),
            "pageSize={size}"
        );
    }
    let (s, _, del) = call(
        &http,
        M::DELETE,
        format!("{u}/things/t1/shadow?name=cfg"),
        None,
    )
    .await?;
    assert_eq!(s, 200);
    assert_eq!(del["version"], 1);
    let (s, kind, _) = call(
        &http,
        M::GET,
        format!("{u}/things/t1/shadow?name=cfg"),
        None,
    )
    .await?;
    assert_eq!((s, kind.as_str()), (404, "ResourceNotFoundException"));

    // DeleteThing; deleting again succeeds, as in AWS.
    assert_eq!(
        call(&http, M::DELETE, format!("{u}/things/t1"), None)
            .await?
            .0,
        200
    );
    assert_eq!(
        call(&http, M::DELETE, format!("{u}/things/t1"), None)
            .await?
            .0,
        200
    );
    let (s, kind, _) = call(&http, M::GET, format!("{u}/things/t1"), None).await?;
    assert_eq!((s, kind.as_str()), (404, "ResourceNotFoundException"));
    Ok(())
}

/// What: bad input gets a 4xx with a clear message and changes nothing.
/// What: the quotas of the replicated state are read and changed over HTTP; a full
/// quota answers AWS's LimitExceededException naming the quota and its value; a
/// bad quota is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_are_configurable_and_refusals_name_them() -> anyhow::Result<()> {
    let _serial = serial().await;
    let (node, http, _root) = single_node().await?;
    let u = node.url();
    use reqwest::Method as M;
    let (status, _, defaults) = call(&http, M::GET, format!("{u}/quotas"), None).await?;
    assert_eq!(status, 200, "{defaults}");
    assert_eq!(defaults["things"], 1_000_000);
    assert_eq!(defaults["retainedMessages"], 500_000);

    let (status, _, set) = call(
        &http,
        M::PUT,
        format!("{u}/quotas"),
        Some(r#"{"things": 2}"#),
    )
    .await?;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["things"], 2);
    assert_eq!(set["retainedMessages"], defaults["retainedMessages"]);
    let (_, _, read) = call(&http, M::GET, format!("{u}/quotas"), None).await?;
    assert_eq!(read, set);

    for name in ["q1", "q2"] {
        let (status, _, body) =
            call(&http, M::POST, format!("{u}/things/{name}"), Some("{}")).await?;
        assert_eq!(status, 200, "{body}");
    }
    let (status, kind, body) = call(&http, M::POST, format!("{u}/things/q3"), Some("{}")).await?;
    assert_eq!(status, 410, "{body}");
    assert_eq!(kind, "LimitExceededException");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("quota things") && message.contains('2'),
        "{body}"
    );
    let (status, _, _) = call(&http, M::GET, format!("{u}/things/q3"), None).await?;
    assert_eq!(status, 404, "the refused thing was not created");

    for bad in [
        r#"{"things": 0}"#,
        r#"{"nope": 1}"#,
        r#"{"things": "many"}"#,
        "[1]",
    ] {
        let (status, kind, body) = call(&http, M::PUT, format!("{u}/quotas"), Some(bad)).await?;
        assert_eq!(
            (status, kind.as_str()),
            (400, "InvalidRequestException"),
            "{bad}: {body}"
        );
    }
    let (_, _, after) = call(&http, M::GET, format!("{u}/quotas"), None).await?;
    assert_eq!(after, set, "refused changes changed nothing");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly() -> anyhow::Result<()> {
    let _serial = serial().await;
    let (node, http, _root) = single_node().await?;
    let u = node.url();
    use reqwest::Method as M;
    let big = format!(
        r#"{{"state":{{"desired":{{"a":"{}"}}}}}}"#,
        "x".repeat(100_000)
    );
    let cases: Vec<(M, String, Option<String>, u16, &str)> = vec![
        (
            M::POST,
            format!("{u}/things/t"),
            Some("{not json".into()),
            400,
            "malformed JSON",
        ),
        (
            M::POST,
            format!("{u}/things/bad%2Fname"),
            Some("{}".into()),
            400,
            "contains",
        ),
        (
            M::POST,
            format!("{u}/things/t/shadow"),
            Some("{not json".into()),
            400,
            "invalid json",
        ),
        (
            M::POST,
            format!("{u}/things/t/shadow"),
            Some(r#"{"state":[]}"#.into()),
            400,
            "must be an object",
        ),
        (M::POST, format!("{u}/things/t/shadow"), Some(big), 413, ""),
        (
            M::POST,
            format!("{u}/things/t/shadow?name={}", "n".repeat(65)),
            Some(r#"{"state":{"reported":{}}}"#.into()),
            400,
            "shadow name",
        ),
        (
            M::GET,
            format!("{u}/things/missing/shadow"),
            None,
            404,
            "not found",
        ),
        (
            M::PATCH,
            format!("{u}/things/missing"),
            Some("{}".into()),
            404,
            "not found",
        ),
        (
            M::GET,
            format!("{u}/things?maxResults=0"),
            None,
            400,
            "maxResults",
        ),
        (
            M::DELETE,
            format!("{u}/things/t?expectedVersion=abc"),
            None,
            400,
            "",
        ),
    ];
    for (method, url, body, want, message) in cases {
        let (status, _, body) = call(&http, method.clone(), url.clone(), body.as_deref()).await?;
        assert_eq!(status, want, "{method} {url}: {body}");
        assert!(
            body.to_string().contains(message),
            "{method} {url}: {body} lacks '{message}'"
        );
    }
    let (_, _, list) = call(&http, M::GET, format!("{u}/things"), None).await?;
    assert_eq!(list["things"], json!([]), "nothing was half-applied");
    Ok(())
}

/// What: a node refuses to start on a data dir of another node id, or one that is
/// not a Fleetcore database, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_or_corrupt_data_dir_is_refused() -> anyhow::Result<()> {
    let _serial = serial().await;
    let (mut node, _http, root) = single_node().await?;
    assert!(node.terminate(Duration::from_secs(20)).is_some());

    let mut other = NodeProcess::new(2, root.path(), Vec::new());
    other.data_dir = node.data_dir.clone();
    other.start()?;
    let status = other
        .wait_exit(Duration::from_secs(20))
        .expect("exits by itself");
    assert!(!status.success());
    assert!(other.log().contains("belongs to node 1"), "{}", other.log());

    let mut corrupt = NodeProcess::new(3, root.path(), Vec::new());
    std::fs::create_dir_all(corrupt.data_dir.join("db"))?;
    std::fs::write(corrupt.data_dir.join("db").join("CURRENT"), b"garbage\n")?;
    corrupt.start()?;
    let status = corrupt
        .wait_exit(Duration::from_secs(20))
        .expect("exits by itself");
    assert!(!status.success());
    assert!(
        corrupt.log().contains("cannot open the database"),
        "{}",
        corrupt.log()
    );
    Ok(())
}

/// What: a node whose data belongs to another cluster is refused, both when it is
/// started into a different cluster and when a cluster is asked to add it; and
/// `cluster init` + `cluster join` form a cluster from unbootstrapped nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_another_cluster_are_refused_and_init_join_forms_a_cluster() -> anyhow::Result<()>
{
    let _serial = serial().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let root = tempfile::tempdir()?;
    let no_bootstrap = vec!["--bootstrap".to_string(), "false".to_string()];
    let mut a = NodeProcess::new(1, root.path(), no_bootstrap.clone());
    let mut b = NodeProcess::new(2, root.path(), no_bootstrap.clone());
    a.start()?;
    b.start()?;
    let ready = |url: String| {
        let http = http.clone();
        async move {
            eventually("a node to answer", Duration::from_secs(20), || async {
                http.get(format!("{url}/healthz"))
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            })
            .await
        }
    };
    ready(a.url()).await?;
    ready(b.url()).await?;
    assert_eq!(
        http.get(format!("{}/readyz", a.url()))
            .send()
            .await?
            .status(),
        503,
        "no cluster yet"
    );

    // cluster init on a, cluster join of b.
    let init = fleetcore(&["cluster", "init", "--endpoint", &a.url()])?;
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let join = fleetcore(&[
        "cluster",
        "join",
        "--endpoint",
        &a.url(),
        "--id",
        "2",
        "--raft-addr",
        &b.raft_addr,
        "--http-addr",
        &b.http_addr,
    ])?;
    assert!(
        join.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&join.stderr),
        a.log(),
        b.log()
    );
    let status: Value = http
        .get(format!("{}/cluster/status", b.url()))
        .send()
        .await?
        .json()
        .await?;
    let a_status: Value = http
        .get(format!("{}/cluster/status", a.url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(status["cluster_id"], a_status["cluster_id"]);
    let text = fleetcore(&["cluster", "status", "--endpoint", &b.url()])?;
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("leader") && text.contains(&a.raft_addr) && text.contains(&b.raft_addr),
        "{text}"
    );

    // A third node with a cluster of its own cannot be added to a's cluster.
    let mut c = NodeProcess::new(3, root.path(), Vec::new());
    c.start()?;
    ready(c.url()).await?;
    let r = http
        .post(format!("{}/cluster/members", a.url()))
        .json(&json!({"id": 3, "raft_addr": c.raft_addr, "http_addr": c.http_addr}))
        .send()
        .await?;
    let code = r.status();
    let body = r.text().await?;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("holds data of cluster"), "{body}");

    // Restarted into a different (static) cluster, c refuses to start.
    assert!(c.terminate(Duration::from_secs(20)).is_some());
    c.args = vec!["--initial-cluster".into(), format!("3={}", c.raft_addr)];
    c.start()?;
    let exit = c
        .wait_exit(Duration::from_secs(20))
        .expect("exits by itself");
    assert!(!exit.success());
    assert!(c.log().contains("belongs to cluster"), "{}", c.log());
    Ok(())
}

fn fleetcore(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(std::process::Command::new(fleetcore_tests::binary())
        .args(args)
        .output()?)
}

/// What: the human CLI (`fleetcore thing|shadow|group`) round-trips through a node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_for_things_shadows_and_groups() -> anyhow::Result<()> {
    let _serial = serial().await;
    let (node, _http, _root) = single_node().await?;
    let url = node.url();
    let run = |args: Vec<&str>| {
        let url = url.clone();
        let args: Vec<String> = args.into_iter().map(str::to_string).collect();
        async move {
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new(fleetcore_tests::binary())
                    .args(&args)
                    .args(["--endpoint", &url])
                    .output()
            })
            .await??;
            anyhow::ensure!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            anyhow::Ok(String::from_utf8_lossy(&out.stdout).to_string())
        }
    };
    run(vec!["thing", "create", "cli-1", "--attr", "room=lab"]).await?;
    let list = run(vec!["thing", "list"]).await?;
    assert!(
        list.contains("cli-1") && list.contains("room=lab"),
        "{list}"
    );
    let got: Value = serde_json::from_str(&run(vec!["thing", "get", "cli-1", "--json"]).await?)?;
    assert_eq!(got["attributes"]["room"], "lab");
    run(vec![
        "shadow",
        "update",
        "cli-1",
        r#"{"state":{"desired":{"on":true}}}"#,
    ])
    .await?;
    let doc: Value = serde_json::from_str(&run(vec!["shadow", "get", "cli-1"]).await?)?;
    assert_eq!(doc["state"]["delta"], json!({"on": true}));
    run(vec!["group", "create", "cli-g"]).await?;
    run(vec!["group", "add-thing", "cli-g", "cli-1"]).await?;
    assert_eq!(run(vec!["group", "things", "cli-g"]).await?.trim(), "cli-1");
    // An error is reported with AWS's exception name and a failing exit status.
    let missing = run(vec!["thing", "get", "nope"]).await.expect_err("fails");
    assert!(
        missing.to_string().contains("ResourceNotFoundException"),
        "{missing}"
    );
    // Quotas: set two, read them back; a bad one fails with the reason.
    run(vec!["quotas", "set", "things=5000", "thingGroups=70"]).await?;
    let quotas: Value = serde_json::from_str(&run(vec!["quotas", "get", "--json"]).await?)?;
    assert_eq!(quotas["things"], 5000);
    assert_eq!(quotas["thingGroups"], 70);
    let table = run(vec!["quotas", "get"]).await?;
    assert!(
        table.contains("things") && table.contains("5000"),
        "{table}"
    );
    let bad = run(vec!["quotas", "set", "things=0"])
        .await
        .expect_err("fails");
    assert!(bad.to_string().contains("InvalidRequestException"), "{bad}");
    Ok(())
}
