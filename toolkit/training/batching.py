"""The batch plan: which dataset items form the global batch of every optimizer step.

The plan is a pure function of (seed, step), so
  * a run resumed at step N sees exactly the batches an uninterrupted run sees (the data state in a
    checkpoint is just the next step);
  * the global batch does not depend on the number of processes, data-loader workers or gradient
    accumulation: those only decide who computes which slice of it.

Per epoch (epoch = step // steps_per_epoch) the eligible items are shuffled from a generator keyed on
(seed, epoch). The shuffled list is cut into pools of `bucket_batches` global batches; each pool is sorted
by length (longest first) and cut into batches, so a batch holds items of similar length (little
padding); then the batch order of the epoch is shuffled. A batch always holds `batch_size` items: the
remainder of an epoch (fewer than batch_size items) is left out of that epoch, and a dataset smaller
than one batch is repeated.

Dataset items are requested with a KEY `(index, step, position)`; position is the item's place in the
global batch of that step (0 .. batch_size-1), which datasets and recipes use to key their random draws.
With gradient accumulation the global batch is split into `grad_accum` micro-batches of consecutive
positions; each micro-batch is split over processes by stride (process r takes positions r, r+W, ...),
which balances lengths across processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from .rng import keyed_generator

PLAN_NAME = "length-bucketed-v1"

Key = tuple[int, int, int]


class BatchPlan:
    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, *,
                 indices: Sequence[int] | None = None, bucket_batches: int = 16):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.indices = list(range(len(lengths))) if indices is None else [int(i) for i in indices]
        if not self.indices:
            raise ValueError("the batch plan has no items to draw from (empty dataset?)")
        self.lengths = [int(lengths[i]) for i in self.indices]
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.bucket_batches = max(1, int(bucket_batches))

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.indices) // self.batch_size)

    def _epoch(self, epoch: int) -> list[list[int]]:
        """The batches of one epoch, memoised per plan (a plan's epochs are asked for again and again)."""
        memo = self.__dict__.setdefault("_epochs", {})
        if epoch not in memo:
            if len(memo) >= 4:
                memo.pop(next(iter(memo)))
            memo[epoch] = self._make_epoch(epoch)
        return memo[epoch]

    def _make_epoch(self, epoch: int) -> list[list[int]]:
        n, b = len(self.indices), self.batch_size
        order: list[int] = []
        rep = 0
        while len(order) < max(n, b):  # a dataset smaller than one batch is repeated
            perm = torch.randperm(n, generator=keyed_generator(self.seed, "epoch", epoch, rep)).tolist()
            order += perm
            rep += 1
        order = order[: self.steps_per_epoch * b]
        pool = b * self.bucket_batches
        batches: list[list[int]] = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start:start + pool], key=lambda j: -self.lengths[j])  # stable sort
            batches += [chunk[k:k + b] for k in range(0, len(chunk), b)]
        shuffle = torch.randperm(len(batches), generator=keyed_generator(self.seed, "batches", epoch)).tolist()
        return [[self.indices[j] for j in batches[s]] for s in shuffle]

    def global_batch(self, step: int) -> list[int]:
        """Dataset indices of the global batch of optimizer step `step` (in position order)."""
        epoch, within = divmod(int(step), self.steps_per_epoch)
        return list(self._epoch(epoch)[within])

    def keys(self, step: int, *, micro: int = 0, grad_accum: int = 1, rank: int = 0,
             world_size: int = 1) -> list[Key]:
        """The item keys process `rank` loads for micro-batch `micro` of step `step`."""
        check_divisible(self.batch_size, grad_accum, world_size)
        per_micro = self.batch_size // grad_accum
        batch = self.global_batch(step)
        positions = range(micro * per_micro + rank, (micro + 1) * per_micro, world_size)
        return [(batch[p], int(step), p) for p in positions]

    def state(self, next_step: int) -> dict:
        """What a checkpoint stores to continue this plan (plain values only)."""
        return {"plan": PLAN_NAME, "next_step": int(next_step), "seed": self.seed, "batch_size": self.batch_size,
                "num_items": len(self.indices), "bucket_batches": self.bucket_batches}

    def mismatch(self, state: dict) -> list[str]:
        """How a saved data state differs from this plan (empty when the run continues identically)."""
        mine = self.state(state.get("next_step", 0))
        return [f"{k}: saved {state.get(k)!r}, now {mine[k]!r}" for k in mine
                if k != "next_step" and state.get(k) != mine[k]]


def check_divisible(batch_size: int, grad_accum: int, world_size: int) -> None:
    if batch_size % (grad_accum * world_size):
        raise ValueError(
            f"train.batch_size ({batch_size}, the global batch per optimizer step) must be divisible by "
            f"grad_accum ({grad_accum}) x number of processes ({world_size})")


class PlanBatchSampler:
    """A `batch_sampler` for `torch.utils.data.DataLoader` yielding this process's item keys.

    Yields `grad_accum` micro-batches for every step in [start_step, max_steps). Each key list is fetched
    and collated independently, so results are the same for any number of workers.
    """

    def __init__(self, plan: BatchPlan, *, start_step: int, max_steps: int, grad_accum: int = 1, rank: int = 0,
                 world_size: int = 1):
        check_divisible(plan.batch_size, grad_accum, world_size)
        self.plan, self.start_step, self.max_steps = plan, int(start_step), int(max_steps)
        self.grad_accum, self.rank, self.world_size = int(grad_accum), int(rank), int(world_size)

    def __iter__(self) -> Iterator[list[Key]]:
        for step in range(self.start_step, self.max_steps):
            for micro in range(self.grad_accum):
                yield self.plan.keys(step, micro=micro, grad_accum=self.grad_accum, rank=self.rank,
                                     world_size=self.world_size)

    def __len__(self) -> int:
        return max(0, self.max_steps - self.start_step) * self.grad_accum


def make_loader(dataset, sampler: PlanBatchSampler, num_workers: int = 0, seed: int = 0):
    """DataLoader over `sampler`; its own generator keeps the global torch RNG untouched."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=dataset.collate, num_workers=num_workers, generator=gen,
        persistent_workers=False, pin_memory=torch.cuda.is_available())
