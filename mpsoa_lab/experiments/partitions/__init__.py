"""Notebook 11's harness: a three-node cluster split for real, under counted load.

* :mod:`.traffic`: publishers that count every message by id, with confirms by delivery tag,
  and the reading of a queue to its end;
* :mod:`.views`: each node's own view of the cluster, read once a second;
* :mod:`.split`: one split and heal under a partition-handling mode, counted.
"""
