//! Resource ARNs as AWS IoT names them ("AWS IoT Core action resources"):
//! `arn:aws:iot:<region>:<account>:<type>/<name>`. Callers build the resource
//! of each request with these so it lines up with what policies are written
//! against. Names are inserted verbatim: a topic containing `*` or `+` is
//! matched as those literal characters.

/// `arn:aws:iot:{region}:{account}:topic/{topic}`: the resource of
/// `iot:Publish`, `iot:Receive`, `iot:RetainPublish`, `iot:GetRetainedMessage`.
pub fn topic_arn(region: &str, account: &str, topic: &str) -> String {
    resource_arn(region, account, "topic", topic)
}

/// `arn:aws:iot:{region}:{account}:topicfilter/{filter}`: the resource of
/// `iot:Subscribe`.
pub fn topicfilter_arn(region: &str, account: &str, topic_filter: &str) -> String {
    resource_arn(region, account, "topicfilter", topic_filter)
}

/// `arn:aws:iot:{region}:{account}:client/{client_id}`: the resource of
/// `iot:Connect` and `iot:DeleteConnection`.
pub fn client_arn(region: &str, account: &str, client_id: &str) -> String {
    resource_arn(region, account, "client", client_id)
}

/// `arn:aws:iot:{region}:{account}:thing/{thing_name}`: the resource of the
/// classic-shadow and jobs actions.
pub fn thing_arn(region: &str, account: &str, thing_name: &str) -> String {
    resource_arn(region, account, "thing", thing_name)
}

/// `arn:aws:iot:{region}:{account}:thing/{thing_name}/{shadow_name}`: the
/// resource of the shadow actions on a named shadow.
pub fn thing_shadow_arn(region: &str, account: &str, thing_name: &str, shadow: &str) -> String {
    let mut arn = thing_arn(region, account, thing_name);
    arn.push('/');
    arn.push_str(shadow);
    arn
}

fn resource_arn(region: &str, account: &str, kind: &str, name: &str) -> String {
    format!("arn:aws:iot:{region}:{account}:{kind}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_documented_forms() {
        assert_eq!(
            topic_arn("us-east-1", "123456789012", "a/b"),
            "arn:aws:iot:us-east-1:123456789012:topic/a/b"
        );
        assert_eq!(
            topicfilter_arn("us-east-1", "123456789012", "a/+/#"),
            "arn:aws:iot:us-east-1:123456789012:topicfilter/a/+/#"
        );
        assert_eq!(
            client_arn("us-east-1", "123456789012", "myClientId"),
            "arn:aws:iot:us-east-1:123456789012:client/myClientId"
        );
        assert_eq!(
            thing_arn("us-east-1", "123456789012", "thingOne"),
            "arn:aws:iot:us-east-1:123456789012:thing/thingOne"
        );
        assert_eq!(
            thing_shadow_arn("us-east-1", "123456789012", "thingOne", "shadowOne"),
            "arn:aws:iot:us-east-1:123456789012:thing/thingOne/shadowOne"
        );
    }
}
