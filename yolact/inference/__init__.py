"""Inference: a checkpoint or an exported file made ready to run, images through it, and the results in the
forms people use."""
