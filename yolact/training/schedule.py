"""The learning-rate schedule and the order of training samples: pure functions of the iteration.

Both depend only on (seed, iteration), never on state carried between iterations, so a resumed run replays
exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import numpy as np

from yolact.config import SolverConfig


def learning_rate(solver: SolverConfig, iteration: int) -> float:
    """Linear warm-up from ``warmup_init`` to ``lr``, then ×gamma at each step reached (the authors' train.py)."""
    if iteration < solver.warmup_iterations:
        return solver.warmup_init + (solver.lr - solver.warmup_init) * iteration / solver.warmup_iterations
    steps_passed = sum(iteration >= step for step in solver.steps)
    return solver.lr * solver.gamma**steps_passed


@lru_cache(maxsize=4)
def sample_order(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled sample indices of one pass over the data."""
    return np.random.default_rng([seed, epoch]).permutation(num_samples)


def batch_for_iteration(num_samples: int, batch_size: int, seed: int, iteration: int) -> list[tuple[int, int]]:
    """The global batch of ``iteration``: (sample index, augmentation seed) pairs.

    Samples are drawn pass after pass through per-epoch permutations; each draw gets its own augmentation seed,
    derived from (seed, iteration, position), so the same sample is augmented differently every time it recurs.
    """
    batch = []
    for position in range(batch_size):
        flat = iteration * batch_size + position
        epoch, offset = divmod(flat, num_samples)
        index = int(sample_order(num_samples, seed, epoch)[offset])
        augment_seed = int(np.random.default_rng([seed, iteration, position, 1]).integers(2**63))
        batch.append((index, augment_seed))
    return batch


def iterate_batches(num_samples: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0,
                    world_size: int = 1) -> Iterator[list[tuple[int, int]]]:
    """This process's share of each global batch for iterations ``start`` .. ``stop - 1`` (rank r takes every
    world_size-th sample of the global batch)."""
    for iteration in range(start, stop):
        yield batch_for_iteration(num_samples, batch_size, seed, iteration)[rank::world_size]
