"""Training: the run set up from its options, the loop, its checkpoints and its log.

- ``job``: :func:`~yolact.training.job.run_training`, the entry point (read it first); ``resume_job``,
  ``check_job``
- ``options``: ``TrainJob``, a run's options (kept in its checkpoints), and ``TrainPlan``, what the run derives
  from them (solver, frozen BatchNorm, validation cadence) by small pure functions
- ``trainer``: ``Trainer``, the loop and the step, with the validation hook
- ``checkpoints``: the training state a checkpoint carries (its one writer and one reader), rotation, the newest
  checkpoint of a run folder, partial writes, RNG state
- ``metrics``: ``metrics.jsonl`` and ``curves.png``
- ``schedule``: the learning rate and the sample order, pure functions of the iteration
- ``distributed``: torch.distributed helpers (torchrun, DistributedDataParallel)
"""
