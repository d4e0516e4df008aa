"""Measuring speed: the throughput model a study plan is estimated from (throughput.py), `reinitlab
bench` (benchmark.py: reinitlab's loop against reference loops, ratios in one run) and `bench
--profile` (profile.py: where a training step's time goes)."""
