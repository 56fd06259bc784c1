"""Layer 4, the running lab: the brokers, the design's topology on them, workers, the reaper.

It declares the design's topology and starts the design's services as Celery workers.
"""
