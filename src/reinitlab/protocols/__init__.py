"""Protocols: what each stage (round) of a run trains and is evaluated on, one file each.

    rounds      the same training subset every round (the source paper's protocol; the default)
    warm_start  stage 0 a fixed share of the subset, stage 1 all of it (Ash & Adams 2020)
    chunks      cumulative equal chunks of the subset (growing data)
    classes     cumulative groups of classes (class-incremental)
    permuted    the whole subset under a new pixel permutation per stage (shifting inputs)
    relabel     the whole subset with new random labels per stage (shifting targets)

A method's reset event fires at every stage start after the first and its in-round events act
during stages, exactly as in rounds; what a stage holds is fixed by the data seed, so methods
compared on one seed see the same stages.
"""
from .base import PROTOCOLS, Protocol, Stage, StagePlan, permute_pixels  # noqa: F401
