"""What the management API says of a queue's arguments, read the same on RabbitMQ 3 and 4: 4.0
lists ``x-queue-type: classic`` among a classic queue's arguments whether or not the client
sent it (seen on 4.0.5 here), 3.10 lists what the client sent."""

from mpsoa_lab.plumbing.management import declared


def test_the_servers_classic_type_is_left_out_and_kept_aside():
    on_4 = {
        "name": "q",
        "type": "classic",
        "arguments": {"x-ha-policy": "all", "x-queue-type": "classic"},
    }
    seen = declared(on_4)
    assert seen["arguments"] == {"x-ha-policy": "all"}
    assert seen["server_arguments"] == on_4["arguments"]
    assert on_4["arguments"] == {"x-ha-policy": "all", "x-queue-type": "classic"}  # not changed


def test_other_queue_types_and_3x_queues_are_as_the_api_says():
    quorum = {"name": "q", "type": "quorum", "arguments": {"x-queue-type": "quorum"}}
    on_3 = {"name": "q", "type": "classic", "arguments": {}}
    assert declared(quorum) is quorum and declared(on_3) is on_3
    assert declared({"name": "q"}) == {"name": "q"}  # a queue the API has not filled in yet
