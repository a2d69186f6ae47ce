//! `fleetcore thing|shadow|group ...`: the registry and shadows for humans, through
//! any node's HTTP API. Tables by default, `--json` for the raw answer.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// Where to send requests and how to print answers.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// Any node's HTTP URL.
    #[arg(
        long,
        env = "FLEETCORE_ENDPOINT",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    endpoint: String,
    /// Print the JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ThingCommand {
    /// Create a thing.
    Create {
        /// Thing name.
        name: String,
        /// Attributes, `key=value`, repeatable.
        #[arg(long = "attr")]
        attributes: Vec<String>,
        /// Thing type.
        #[arg(long = "type")]
        thing_type: Option<String>,
    },
    /// Describe a thing.
    Get {
        /// Thing name.
        name: String,
    },
    /// List things (every page).
    List {
        /// Only things of this type.
        #[arg(long = "type")]
        thing_type: Option<String>,
    },
    /// Delete a thing.
    Delete {
        /// Thing name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum QuotaCommand {
    /// Print the quotas in force.
    Get,
    /// Change quotas, `name=value`, repeatable (e.g. `things=50000`); the others
    /// are kept.
    Set {
        /// `name=value` pairs; names as `GET /quotas` prints them.
        #[arg(required = true)]
        quotas: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ShadowCommand {
    /// Print a shadow document.
    Get {
        /// Thing name.
        thing: String,
        /// Named shadow (default: the classic shadow).
        #[arg(long)]
        name: Option<String>,
    },
    /// Update a shadow with a JSON document, e.g. '{"state":{"desired":{"on":true}}}'.
    Update {
        /// Thing name.
        thing: String,
        /// The update document.
        document: String,
        /// Named shadow.
        #[arg(long)]
        name: Option<String>,
    },
    /// Delete a shadow.
    Delete {
        /// Thing name.
        thing: String,
        /// Named shadow.
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// Create a thing group.
    Create {
        /// Group name.
        name: String,
        /// Parent group.
        #[arg(long)]
        parent: Option<String>,
    },
    /// Describe a group.
    Get {
        /// Group name.
        name: String,
    },
    /// List groups (every page).
    List {
        /// Only below this group.
        #[arg(long)]
        parent: Option<String>,
        /// All descendants, not just children.
        #[arg(long)]
        recursive: bool,
    },
    /// Delete a group.
    Delete {
        /// Group name.
        name: String,
    },
    /// Add a thing to a group.
    AddThing {
        /// Group name.
        group: String,
        /// Thing name.
        thing: String,
    },
    /// Remove a thing from a group.
    RemoveThing {
        /// Group name.
        group: String,
        /// Thing name.
        thing: String,
    },
    /// List the things in a group.
    Things {
        /// Group name.
        group: String,
        /// Include the things of descendant groups.
        #[arg(long)]
        recursive: bool,
    },
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(target: &Target) -> anyhow::Result<Self> {
        let base = if target.endpoint.starts_with("http") {
            target.endpoint.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", target.endpoint)
        };
        Ok(Api {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(15))
                .build()?,
            base,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let text = response.text().await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let kind = value["__type"].as_str().unwrap_or("error");
            let message = value["message"]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            anyhow::bail!("{kind} ({status}): {message}");
        }
        Ok(value)
    }

    /// Follows `nextToken` and concatenates `field` of every page.
    async fn all_pages(&self, path: &str, field: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &token {
                Some(t) => format!("{path}{sep}nextToken={t}"),
                None => path.to_string(),
            };
            let page = self.call(reqwest::Method::GET, &url, None).await?;
            out.extend(page[field].as_array().cloned().unwrap_or_default());
            match page["nextToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(out),
            }
        }
    }
}

fn print(target: &Target, value: &Value, table: impl FnOnce(&Value)) -> anyhow::Result<()> {
    if target.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        table(value);
    }
    Ok(())
}

fn attributes_text(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn shadow_query(name: &Option<String>) -> String {
    name.as_ref()
        .map_or(String::new(), |n| format!("?name={n}"))
}

pub(crate) async fn thing(target: Target, command: ThingCommand) -> anyhow::Result<()> {
    use reqwest::Method as M;
    let api = Api::new(&target)?;
    match command {
        ThingCommand::Create {
            name,
            attributes,
            thing_type,
        } => {
            let mut attrs = serde_json::Map::new();
            for a in attributes {
                let (k, v) = a
                    .split_once('=')
                    .with_context(|| format!("attribute '{a}' is not key=value"))?;
                attrs.insert(k.to_string(), json!(v));
            }
            let mut body = json!({ "attributePayload": { "attributes": attrs } });
            if let Some(t) = thing_type {
                body["thingTypeName"] = json!(t);
            }
            let v = api
                .call(M::POST, &format!("/things/{name}"), Some(body))
                .await?;
            print(&target, &v, |v| {
                println!(
                    "created {} ({})",
                    v["thingName"].as_str().unwrap_or_default(),
                    v["thingArn"].as_str().unwrap_or_default()
                )
            })
        }
        ThingCommand::Get { name } => {
            let v = api.call(M::GET, &format!("/things/{name}"), None).await?;
            print(&target, &v, |v| {
                println!(
                    "name        {}",
                    v["thingName"].as_str().unwrap_or_default()
                );
                println!("id          {}", v["thingId"].as_str().unwrap_or_default());
                println!("type        {}", v["thingTypeName"].as_str().unwrap_or("-"));
                println!("version     {}", v["version"]);
                println!("attributes  {}", attributes_text(&v["attributes"]));
            })
        }
        ThingCommand::List { thing_type } => {
            let path = match thing_type {
                Some(t) => format!("/things?thingTypeName={t}"),
                None => "/things".to_string(),
            };
            let things = api.all_pages(&path, "things").await?;
            let v = json!({ "things": things });
            print(&target, &v, |_| {
                println!("{:<32} {:<16} {:>7}  ATTRIBUTES", "NAME", "TYPE", "VERSION");
                for t in &things {
                    println!(
                        "{:<32} {:<16} {:>7}  {}",
                        t["thingName"].as_str().unwrap_or_default(),
                        t["thingTypeName"].as_str().unwrap_or("-"),
                        t["version"],
                        attributes_text(&t["attributes"])
                    );
                }
            })
        }
        ThingCommand::Delete { name } => {
            let v = api
                .call(M::DELETE, &format!("/things/{name}"), None)
                .await?;
            print(&target, &v, |_| println!("deleted {name}"))
        }
    }
}

pub(crate) async fn shadow(target: Target, command: ShadowCommand) -> anyhow::Result<()> {
    use reqwest::Method as M;
    let api = Api::new(&target)?;
    // Shadow documents are JSON already: printed as JSON either way.
    let (method, thing, name, body) = match command {
        ShadowCommand::Get { thing, name } => (M::GET, thing, name, None),
        ShadowCommand::Update {
            thing,
            document,
            name,
        } => {
            let doc: Value = serde_json::from_str(&document).context("the document is not JSON")?;
            (M::POST, thing, name, Some(doc))
        }
        ShadowCommand::Delete { thing, name } => (M::DELETE, thing, name, None),
    };
    let v = api
        .call(
            method,
            &format!("/things/{thing}/shadow{}", shadow_query(&name)),
            body,
        )
        .await?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

pub(crate) async fn group(target: Target, command: GroupCommand) -> anyhow::Result<()> {
    use reqwest::Method as M;
    let api = Api::new(&target)?;
    match command {
        GroupCommand::Create { name, parent } => {
            let mut body = json!({});
            if let Some(p) = parent {
                body["parentGroupName"] = json!(p);
            }
            let v = api
                .call(M::POST, &format!("/thing-groups/{name}"), Some(body))
                .await?;
            print(&target, &v, |v| {
                println!(
                    "created {} ({})",
                    v["thingGroupName"].as_str().unwrap_or_default(),
                    v["thingGroupArn"].as_str().unwrap_or_default()
                )
            })
        }
        GroupCommand::Get { name } => {
            let v = api
                .call(M::GET, &format!("/thing-groups/{name}"), None)
                .await?;
            print(&target, &v, |v| {
                println!(
                    "name        {}",
                    v["thingGroupName"].as_str().unwrap_or_default()
                );
                println!(
                    "parent      {}",
                    v["thingGroupMetadata"]["parentGroupName"]
                        .as_str()
                        .unwrap_or("-")
                );
                println!("version     {}", v["version"]);
                println!(
                    "attributes  {}",
                    attributes_text(&v["thingGroupProperties"]["attributePayload"]["attributes"])
                );
            })
        }
        GroupCommand::List { parent, recursive } => {
            let mut path = format!("/thing-groups?recursive={recursive}");
            if let Some(p) = parent {
                path.push_str(&format!("&parentGroup={p}"));
            }
            let groups = api.all_pages(&path, "thingGroups").await?;
            let v = json!({ "thingGroups": groups });
            print(&target, &v, |_| {
                for g in &groups {
                    println!("{}", g["groupName"].as_str().unwrap_or_default());
                }
            })
        }
        GroupCommand::Delete { name } => {
            let v = api
                .call(M::DELETE, &format!("/thing-groups/{name}"), None)
                .await?;
            print(&target, &v, |_| println!("deleted {name}"))
        }
        GroupCommand::AddThing { group, thing } => {
            let body = json!({ "thingGroupName": group, "thingName": thing });
            let v = api
                .call(M::PUT, "/thing-groups/addThingToThingGroup", Some(body))
                .await?;
            print(&target, &v, |_| println!("added {thing} to {group}"))
        }
        GroupCommand::RemoveThing { group, thing } => {
            let body = json!({ "thingGroupName": group, "thingName": thing });
            let v = api
                .call(
                    M::PUT,
                    "/thing-groups/removeThingFromThingGroup",
                    Some(body),
                )
                .await?;
            print(&target, &v, |_| println!("removed {thing} from {group}"))
        }
        GroupCommand::Things { group, recursive } => {
            let things = api
                .all_pages(
                    &format!("/thing-groups/{group}/things?recursive={recursive}"),
                    "things",
                )
                .await?;
            let v = json!({ "things": things });
            print(&target, &v, |_| {
                for t in &things {
                    println!("{}", t.as_str().unwrap_or_default());
                }
            })
        }
    }
}

pub(crate) async fn quotas(target: Target, command: QuotaCommand) -> anyhow::Result<()> {
    use reqwest::Method as M;
    let api = Api::new(&target)?;
    let v = match command {
        QuotaCommand::Get => api.call(M::GET, "/quotas", None).await?,
        QuotaCommand::Set { quotas } => {
            let mut body = serde_json::Map::new();
            for pair in quotas {
                let (name, value) = pair
                    .split_once('=')
                    .with_context(|| format!("'{pair}' is not name=value"))?;
                let value: u64 = value
                    .parse()
                    .with_context(|| format!("quota {name}: '{value}' is not a number"))?;
                body.insert(name.to_string(), json!(value));
            }
            api.call(M::PUT, "/quotas", Some(Value::Object(body)))
                .await?
        }
    };
    print(&target, &v, |v| {
        if let Some(quotas) = v.as_object() {
            for (name, value) in quotas {
                println!("{name:<22} {value}");
            }
        }
    })
}
