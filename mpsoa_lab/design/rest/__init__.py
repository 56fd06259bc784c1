"""The REST alternative the 2014 post argues against: the services as HTTP apps.

One FastAPI app per service (:func:`create_app`), served by uvicorn as one or more *instances*
(:mod:`mpsoa_lab.running.rest`), behind HAProxy (:mod:`mpsoa_lab.running.haproxy`). An instance
runs the services' own task functions on the services' own storage, in-process and without a
broker; a service's exception becomes the edge's status for it (:func:`rest_error`).

Endpoints (the task each runs in-process, its answer):

* ``POST /users``: ``mplogin.sync.register``, 201; 409 a username taken
* ``POST /sessions``: ``mplogin.sync.authenticate``, 201; 401 wrong credentials
* ``POST /sessions/checks`` and ``POST /sessions/ends`` (body ``{"token"}``):
  ``mplogin.sync.check_session`` and ``end_session``, 200; 401 a session refused (the edge's
  own calls when it checks sessions with mplogin, and on log out)
* ``PUT /wallets/{user_id}``: ``mpwallet.sync.open_wallet``, 200
* ``GET /wallets/{user_id}/balance``: ``mpwallet.sync.get_balance``, 200; 404 no wallet
* ``POST /wallets/{user_id}/deposits``: ``mpwallet.sync.deposit``, 200; 404, 422; 409 a balance
  that would go past 2**53 - 1
* ``GET /ledger/accounts/{account}/balance``: ``mpledger.sync.balance``, 200
* ``GET /ledger/entries/count?account=``: ``mpledger.sync.entry_count``, 200
* ``POST /ledger/entries``: ``mpledger.async.record_entry``, 201 stored, 200 already stored;
  409 an account's sum that would go past ±(2**53 - 1)
* ``GET /health`` on every instance: 200 with its service, instance name, pid and knobs

422 for a body or path that does not validate (the edge's models and path types, from
:mod:`mpsoa_lab.design.values`), 413 for a body over the limit (the edge's middleware), 503
with ``Retry-After`` when the storage is locked, never a traceback.
"""

from __future__ import annotations

from .app import INSTANCE_HEADER, REQUEST_ID, ROUTES, RestConfig, create_app, instance_app
from .errors import STORAGE_RETRY_AFTER, rest_error

__all__ = [
    "INSTANCE_HEADER",
    "REQUEST_ID",
    "ROUTES",
    "STORAGE_RETRY_AFTER",
    "RestConfig",
    "create_app",
    "instance_app",
    "rest_error",
]
