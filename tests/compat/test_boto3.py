"""boto3's `iot` and `iot-data` clients against a running Fleetcore node.

Run by `cargo test -p fleetcore-tests --test compat`, which starts the node and
passes its URL in FLEETCORE_URL. Credentials are dummies: Fleetcore does not
verify signatures yet.
"""
import json
import os

import boto3
import botocore
import pytest

URL = os.environ["FLEETCORE_URL"]


def client(service):
    return boto3.client(
        service,
        endpoint_url=URL,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


iot = client("iot")
data = client("iot-data")


def test_thing_lifecycle():
    created = iot.create_thing(thingName="boto-1", attributePayload={"attributes": {"room": "lab"}})
    assert created["thingName"] == "boto-1"
    assert created["thingArn"].endswith(":thing/boto-1")
    described = iot.describe_thing(thingName="boto-1")
    assert described["attributes"] == {"room": "lab"}
    assert described["version"] == 1
    iot.update_thing(
        thingName="boto-1",
        attributePayload={"attributes": {"floor": "2"}, "merge": True},
        expectedVersion=1,
    )
    assert iot.describe_thing(thingName="boto-1")["attributes"] == {"room": "lab", "floor": "2"}
    with pytest.raises(iot.exceptions.VersionConflictException):
        iot.update_thing(thingName="boto-1", attributePayload={"attributes": {}}, expectedVersion=1)
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_thing(thingName="boto-1", attributePayload={"attributes": {"room": "other"}})
    iot.delete_thing(thingName="boto-1")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing(thingName="boto-1")


def test_list_things_paginates_and_filters():
    for i in range(5):
        iot.create_thing(thingName=f"list-{i}", attributePayload={"attributes": {"batch": "b1"}})
    names = []
    for page in iot.get_paginator("list_things").paginate(
        attributeName="batch", attributeValue="b1", PaginationConfig={"PageSize": 2}
    ):
        names += [t["thingName"] for t in page["things"]]
    assert names == [f"list-{i}" for i in range(5)]


def test_invalid_request_raises_the_right_exception():
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.list_things(maxResults=1000)


def test_shadow_round_trip():
    accepted = json.loads(
        data.update_thing_shadow(
            thingName="boto-lamp",
            payload=json.dumps({"state": {"desired": {"on": True}}, "clientToken": "t1"}),
        )["payload"].read()
    )
    assert accepted["state"] == {"desired": {"on": True}}
    assert accepted["clientToken"] == "t1"
    doc = json.loads(data.get_thing_shadow(thingName="boto-lamp")["payload"].read())
    assert doc["state"]["delta"] == {"on": True}
    version = doc["version"]
    with pytest.raises(data.exceptions.ConflictException):
        data.update_thing_shadow(
            thingName="boto-lamp",
            payload=json.dumps({"state": {"reported": {"on": True}}, "version": version + 5}),
        )

    data.update_thing_shadow(
        thingName="boto-lamp", shadowName="config", payload=json.dumps({"state": {"reported": {"x": 1}}})
    )
    named = data.list_named_shadows_for_thing(thingName="boto-lamp")
    assert named["results"] == ["config"]
    assert "nextToken" not in named
    # Paged: five more named shadows, two per page, in name order.
    for name in ["n1", "n2", "n3", "n4", "n5"]:
        data.update_thing_shadow(
            thingName="boto-lamp", shadowName=name, payload=json.dumps({"state": {"reported": {"x": 1}}})
        )
    pages, token = [], None
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = data.list_named_shadows_for_thing(thingName="boto-lamp", pageSize=2, **kwargs)
        pages.append(page["results"])
        token = page.get("nextToken")
        if not token:
            break
    assert pages == [["config", "n1"], ["n2", "n3"], ["n4", "n5"]]
    for name in ["n1", "n2", "n3", "n4", "n5"]:
        data.delete_thing_shadow(thingName="boto-lamp", shadowName=name)
    # AWS refuses null inside arrays (null only means "delete this key").
    with pytest.raises(data.exceptions.InvalidRequestException):
        data.update_thing_shadow(
            thingName="boto-lamp", payload=json.dumps({"state": {"reported": {"temps": [1, None]}}})
        )
    deleted = json.loads(data.delete_thing_shadow(thingName="boto-lamp", shadowName="config")["payload"].read())
    assert deleted["version"] == 1
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.get_thing_shadow(thingName="boto-lamp", shadowName="config")


def test_thing_types():
    created = iot.create_thing_type(
        thingTypeName="sensor", thingTypeProperties={"thingTypeDescription": "a sensor", "searchableAttributes": ["model"]}
    )
    assert created["thingTypeArn"].endswith(":thingtype/sensor")
    iot.create_thing(thingName="typed-1", thingTypeName="sensor")
    assert iot.describe_thing(thingName="typed-1")["thingTypeName"] == "sensor"
    assert [t["thingName"] for t in iot.list_things(thingTypeName="sensor")["things"]] == ["typed-1"]
    described = iot.describe_thing_type(thingTypeName="sensor")
    assert described["thingTypeProperties"]["searchableAttributes"] == ["model"]
    assert described["thingTypeMetadata"]["deprecated"] is False
    assert "sensor" in [t["thingTypeName"] for t in iot.list_thing_types()["thingTypes"]]
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.create_thing(thingName="typed-2", thingTypeName="no-such-type")
    # Only a deprecated type without things may be deleted.
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.delete_thing_type(thingTypeName="sensor")
    iot.deprecate_thing_type(thingTypeName="sensor")
    assert iot.describe_thing_type(thingTypeName="sensor")["thingTypeMetadata"]["deprecated"] is True
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.create_thing(thingName="typed-3", thingTypeName="sensor")
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.delete_thing_type(thingTypeName="sensor")
    iot.update_thing(thingName="typed-1", removeThingType=True)
    iot.delete_thing_type(thingTypeName="sensor")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing_type(thingTypeName="sensor")


def test_thing_groups_form_a_tree():
    iot.create_thing_group(thingGroupName="site")
    iot.create_thing_group(
        thingGroupName="floor-1",
        parentGroupName="site",
        thingGroupProperties={"thingGroupDescription": "first floor", "attributePayload": {"attributes": {"k": "v"}}},
    )
    iot.create_thing_group(thingGroupName="room-101", parentGroupName="floor-1")
    described = iot.describe_thing_group(thingGroupName="room-101")
    assert described["thingGroupMetadata"]["parentGroupName"] == "floor-1"
    assert [g["groupName"] for g in described["thingGroupMetadata"]["rootToParentThingGroups"]] == ["site", "floor-1"]
    updated = iot.update_thing_group(
        thingGroupName="floor-1", thingGroupProperties={"thingGroupDescription": "ground"}, expectedVersion=1
    )
    assert updated["version"] == 2
    with pytest.raises(iot.exceptions.VersionConflictException):
        iot.update_thing_group(thingGroupName="floor-1", thingGroupProperties={}, expectedVersion=1)

    for name in ["g-dev-1", "g-dev-2"]:
        iot.create_thing(thingName=name)
    iot.add_thing_to_thing_group(thingGroupName="room-101", thingName="g-dev-1")
    iot.add_thing_to_thing_group(thingGroupName="floor-1", thingName="g-dev-2")
    assert iot.list_things_in_thing_group(thingGroupName="room-101")["things"] == ["g-dev-1"]
    assert iot.list_things_in_thing_group(thingGroupName="site", recursive=True)["things"] == ["g-dev-1", "g-dev-2"]
    first = iot.list_things_in_thing_group(thingGroupName="site", recursive=True, maxResults=1)
    assert first["things"] == ["g-dev-1"] and first["nextToken"] == "g-dev-1"
    second = iot.list_things_in_thing_group(
        thingGroupName="site", recursive=True, maxResults=1, nextToken=first["nextToken"]
    )
    assert second["things"] == ["g-dev-2"] and "nextToken" not in second
    assert iot.list_things_in_thing_group(thingGroupName="site")["things"] == []
    groups = iot.list_thing_groups_for_thing(thingName="g-dev-1")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["room-101"]
    children = iot.list_thing_groups(parentGroup="site", recursive=True)["thingGroups"]
    assert [g["groupName"] for g in children] == ["floor-1", "room-101"]
    roots = [g["groupName"] for g in iot.list_thing_groups()["thingGroups"]]
    assert "site" in roots and "floor-1" not in roots

    iot.remove_thing_from_thing_group(thingGroupName="room-101", thingName="g-dev-1")
    assert iot.list_things_in_thing_group(thingGroupName="room-101")["things"] == []
    # A deleted thing leaves its groups.
    iot.delete_thing(thingName="g-dev-2")
    assert iot.list_things_in_thing_group(thingGroupName="floor-1")["things"] == []
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.delete_thing_group(thingGroupName="floor-1")  # has a child group
    iot.delete_thing_group(thingGroupName="room-101")
    iot.delete_thing_group(thingGroupName="floor-1")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing_group(thingGroupName="floor-1")


def test_retained_messages_are_listed_and_read():
    topics = [f"boto/retained/{i}" for i in range(5)]
    for i, topic in enumerate(topics):
        data.publish(topic=topic, qos=1, retain=True, payload=bytes([0, 255, i]))
    paginator = data.get_paginator("list_retained_messages")
    seen = [
        m
        for page in paginator.paginate(PaginationConfig={"PageSize": 2})
        for m in page["retainedTopics"]
        if m["topic"].startswith("boto/retained/")
    ]
    assert [m["topic"] for m in seen] == topics
    assert all(m["payloadSize"] == 3 and m["qos"] == 1 for m in seen)
    got = data.get_retained_message(topic="boto/retained/3")
    assert got["topic"] == "boto/retained/3"
    assert got["payload"] == bytes([0, 255, 3])
    assert got["qos"] == 1
    assert got["lastModifiedTime"] > 1_600_000_000_000
    # An empty retained publish clears the topic.
    data.publish(topic="boto/retained/3", qos=1, retain=True, payload=b"")
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.get_retained_message(topic="boto/retained/3")


def policy_document(actions, resource):
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}],
        }
    )


def test_policy_versions_and_attachments():
    doc1 = policy_document(["iot:Connect"], "arn:aws:iot:us-east-1:123456789012:client/${iot:ClientId}")
    created = iot.create_policy(policyName="boto-policy", policyDocument=doc1)
    assert created["policyName"] == "boto-policy"
    assert created["policyArn"].endswith(":policy/boto-policy")
    assert created["policyVersionId"] == "1"
    assert created["policyDocument"] == doc1
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_policy(policyName="boto-policy", policyDocument=doc1)

    got = iot.get_policy(policyName="boto-policy")
    assert got["defaultVersionId"] == "1"
    assert json.loads(got["policyDocument"]) == json.loads(doc1)

    # Versions: a new default, then the limit of five.
    doc2 = policy_document("iot:Publish", "arn:aws:iot:us-east-1:123456789012:topic/lamp/*")
    v2 = iot.create_policy_version(policyName="boto-policy", policyDocument=doc2, setAsDefault=True)
    assert v2["policyVersionId"] == "2" and v2["isDefaultVersion"] is True
    assert iot.get_policy(policyName="boto-policy")["defaultVersionId"] == "2"
    for _ in range(3):
        iot.create_policy_version(policyName="boto-policy", policyDocument=doc1)
    with pytest.raises(iot.exceptions.VersionsLimitExceededException):
        iot.create_policy_version(policyName="boto-policy", policyDocument=doc1)
    versions = iot.list_policy_versions(policyName="boto-policy")["policyVersions"]
    assert sorted(v["versionId"] for v in versions) == ["1", "2", "3", "4", "5"]
    assert [v["versionId"] for v in versions if v["isDefaultVersion"]] == ["2"]
    v1 = iot.get_policy_version(policyName="boto-policy", policyVersionId="1")
    assert v1["isDefaultVersion"] is False and json.loads(v1["policyDocument"]) == json.loads(doc1)
    with pytest.raises(iot.exceptions.DeleteConflictException):
        iot.delete_policy_version(policyName="boto-policy", policyVersionId="2")
    iot.set_default_policy_version(policyName="boto-policy", policyVersionId="1")
    assert iot.get_policy(policyName="boto-policy")["defaultVersionId"] == "1"

    # Attachments, both ways.
    cert = "arn:aws:iot:us-east-1:123456789012:cert/abc123"
    iot.attach_policy(policyName="boto-policy", target=cert)
    attached = iot.list_attached_policies(target=cert)["policies"]
    assert [p["policyName"] for p in attached] == ["boto-policy"]
    assert iot.list_targets_for_policy(policyName="boto-policy")["targets"] == [cert]
    with pytest.raises(iot.exceptions.DeleteConflictException):
        iot.delete_policy(policyName="boto-policy")
    iot.detach_policy(policyName="boto-policy", target=cert)
    assert iot.list_attached_policies(target=cert)["policies"] == []

    # Down to the default version, then the policy can go.
    for v in ["2", "3", "4", "5"]:
        iot.delete_policy_version(policyName="boto-policy", policyVersionId=v)
    iot.delete_policy(policyName="boto-policy")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_policy(policyName="boto-policy")


def test_malformed_policy_names_the_place():
    bad = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["iot:Connect", 7], "Resource": "*"}]}
    )
    with pytest.raises(iot.exceptions.MalformedPolicyException) as e:
        iot.create_policy(policyName="bad-policy", policyDocument=bad)
    assert "Statement[0].Action[1]" in str(e.value)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_policy(policyName="bad-policy")


def test_list_policies_pages_with_markers():
    doc = policy_document("iot:Connect", "*")
    for i in range(5):
        iot.create_policy(policyName=f"page-{i}", policyDocument=doc)
    names = []
    for page in iot.get_paginator("list_policies").paginate(PaginationConfig={"PageSize": 2}):
        names += [p["policyName"] for p in page["policies"] if p["policyName"].startswith("page-")]
    assert names == [f"page-{i}" for i in range(5)]
    for i in range(5):
        iot.delete_policy(policyName=f"page-{i}")


def test_test_authorization_and_effective_policies():
    arn = "arn:aws:iot:us-east-1:123456789012"
    allow = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn}:client/${{iot:ClientId}}"},
                {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": f"{arn}:topic/lamp/*"},
            ],
        }
    )
    deny = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{arn}:topic/lamp/admin"}],
        }
    )
    iot.create_policy(policyName="auth-allow", policyDocument=allow)
    iot.create_policy(policyName="auth-deny", policyDocument=deny)
    cert = f"{arn}:cert/auth-cert"
    iot.attach_policy(policyName="auth-allow", target=cert)
    iot.attach_policy(policyName="auth-deny", target=cert)
    # A group's policies reach its things, and its subgroups' things.
    iot.create_thing_group(thingGroupName="auth-parent")
    iot.create_thing_group(thingGroupName="auth-child", parentGroupName="auth-parent")
    iot.create_thing(thingName="auth-thing")
    iot.add_thing_to_thing_group(thingGroupName="auth-child", thingName="auth-thing")
    parent_arn = iot.describe_thing_group(thingGroupName="auth-parent")["thingGroupArn"]
    iot.attach_policy(policyName="auth-allow", target=parent_arn)

    effective = iot.get_effective_policies(principal=cert)["effectivePolicies"]
    assert sorted(p["policyName"] for p in effective) == ["auth-allow", "auth-deny"]
    via_thing = iot.get_effective_policies(thingName="auth-thing")["effectivePolicies"]
    assert [p["policyName"] for p in via_thing] == ["auth-allow"]
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_effective_policies(thingName="no-such-thing")

    def decide(action, resource, client="lamp-1", **extra):
        results = iot.test_authorization(
            principal=cert,
            clientId=client,
            authInfos=[{"actionType": action, "resources": [resource]}],
            **extra,
        )["authResults"]
        assert len(results) == 1
        return results[0]

    assert decide("CONNECT", f"{arn}:client/lamp-1")["authDecision"] == "ALLOWED"
    # The client id variable binds the connection to its own id.
    assert decide("CONNECT", f"{arn}:client/lamp-2")["authDecision"] == "IMPLICIT_DENY"
    publish = decide("PUBLISH", f"{arn}:topic/lamp/state")
    assert publish["authDecision"] == "ALLOWED"
    assert [p["policyName"] for p in publish["allowed"]["policies"]] == ["auth-allow"]
    admin = decide("PUBLISH", f"{arn}:topic/lamp/admin")
    assert admin["authDecision"] == "EXPLICIT_DENY"
    assert [p["policyName"] for p in admin["denied"]["explicitDeny"]["policies"]] == ["auth-deny"]
    assert decide("SUBSCRIBE", f"{arn}:topicfilter/lamp/#")["authDecision"] == "IMPLICIT_DENY"
    # Skipping the deny policy allows what it denied.
    skipped = decide("PUBLISH", f"{arn}:topic/lamp/admin", policyNamesToSkip=["auth-deny"])
    assert skipped["authDecision"] == "ALLOWED"
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.test_authorization(principal=cert, authInfos=[{"actionType": "FLY", "resources": ["*"]}])


def test_certificates_and_thing_principals():
    made = iot.create_keys_and_certificate(setAsActive=True)
    cert_id = made["certificateId"]
    arn = made["certificateArn"]
    assert len(cert_id) == 64 and arn.endswith(f":cert/{cert_id}")
    assert made["certificatePem"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in made["keyPair"]["PrivateKey"]
    described = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
    assert described["status"] == "ACTIVE"
    assert described["certificatePem"] == made["certificatePem"]
    assert described["validity"]["notAfter"].year == 2049
    assert cert_id in [c["certificateId"] for c in iot.list_certificates()["certificates"]]
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.register_certificate_without_ca(certificatePem=made["certificatePem"])
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.register_certificate_without_ca(certificatePem="not a certificate")

    # Principals: both directions; a thing with one cannot be deleted.
    iot.create_thing(thingName="cert-thing")
    iot.attach_thing_principal(thingName="cert-thing", principal=arn)
    assert iot.list_thing_principals(thingName="cert-thing")["principals"] == [arn]
    assert iot.list_principal_things(principal=arn)["things"] == ["cert-thing"]
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.delete_thing(thingName="cert-thing")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.attach_thing_principal(thingName="no-such-thing", principal=arn)

    # Deletion: not while active, not while attached to a thing or (unforced) a policy.
    iot.create_policy(policyName="cert-policy", policyDocument=policy_document("iot:Connect", "*"))
    iot.attach_policy(policyName="cert-policy", target=arn)
    with pytest.raises(iot.exceptions.DeleteConflictException):
        iot.delete_certificate(certificateId=cert_id)
    iot.update_certificate(certificateId=cert_id, newStatus="INACTIVE")
    with pytest.raises(iot.exceptions.DeleteConflictException):
        iot.delete_certificate(certificateId=cert_id)
    iot.detach_thing_principal(thingName="cert-thing", principal=arn)
    iot.delete_thing(thingName="cert-thing")
    with pytest.raises(iot.exceptions.DeleteConflictException):
        iot.delete_certificate(certificateId=cert_id)
    iot.delete_certificate(certificateId=cert_id, forceDelete=True)
    assert iot.list_attached_policies(target=arn)["policies"] == []
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_certificate(certificateId=cert_id)
    iot.delete_policy(policyName="cert-policy")

    # A revoked certificate stays revoked.
    other = iot.create_keys_and_certificate(setAsActive=False)
    assert iot.describe_certificate(certificateId=other["certificateId"])["certificateDescription"]["status"] == "INACTIVE"
    iot.update_certificate(certificateId=other["certificateId"], newStatus="REVOKED")
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.update_certificate(certificateId=other["certificateId"], newStatus="ACTIVE")
