"""Layer 2, observation: per-message tracing, latency figures, queue depth, pictures of runs.

It reads what the broker and Celery report; it imports only from :mod:`mpsoa_lab.plumbing`,
so the design's services can record their messages with it.
"""
