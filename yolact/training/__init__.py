"""Training: the run set up from its options, the loop, its checkpoints and its log."""
