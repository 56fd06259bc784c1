"""Layer 3, the design itself: task names, topology, router, app factory, result backend, services.

It imports from :mod:`mpsoa_lab.plumbing` and :mod:`mpsoa_lab.observe`, never from the running
lab: a service started by ``celery -A mpsoa_lab.design.services.<service>.<kind>_app`` finds the
brokers through the state file (:mod:`mpsoa_lab.plumbing.state`).
"""
