"""Measurements that training and the analyses both need, below both of them: weight norms
(norms.py), the network's linear operators and their norms (operators.py), spectral complexity
(complexity.py), margins (margins.py), the per-round diagnostics training logs (round_log.py), and
small shared helpers (common.py). Nothing here knows the analysis registry or the training loop.
"""
