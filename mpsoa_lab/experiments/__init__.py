"""Layer 6, experiments: fault scenarios and what tracing costs; the benchmark is
:mod:`mpsoa_lab.bench`, in the same layer.
"""
