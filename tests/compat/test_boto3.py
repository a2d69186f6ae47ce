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
    deleted = json.loads(data.delete_thing_shadow(thingName="boto-lamp", shadowName="config")["payload"].read())
    assert deleted["version"] == 1
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.get_thing_shadow(thingName="boto-lamp", shadowName="config")
