"""The authors' Expand and RandomSampleCrop as separate steps: the reference that the package's fused
``augment`` is tested against (the same draws from the same generator give the same sample)."""

import numpy as np

from yolact.data.augment import FILL_BGR, Sample, _clip_to_crop, _place, _sample_crop, _sample_expand


def expand(sample: Sample, rng: np.random.Generator, fill: tuple[float, float, float] = FILL_BGR) -> Sample:
    """The authors' Expand: with p 0.5, zoom out by U(1, 4) onto a mean-filled canvas."""
    height, width = sample.image.shape[:2]
    params = _sample_expand(height, width, rng)
    if params is None:
        return sample
    out_h, out_w, top, left = params
    return _place(sample, top, left, out_h, out_w, fill=fill)



def random_sample_crop(sample: Sample, rng: np.random.Generator) -> Sample:
    """SSD's RandomSampleCrop as the authors run it.

    A mode is drawn from ``CROP_MODES``; for a mode other than None, up to 50 crops with w, h ~ U(0.3, 1) x the
    image size and aspect h/w in [0.5, 2] are tried, at a random integer position. The authors' IoU constraint is
    inert (see the comment in _sample_crop). A crop keeps the instances whose box
    centre falls strictly inside it, clipping their boxes, and is accepted only if it keeps at least one
    non-crowd instance (the authors' rule: a crop may cut crowd regions freely, but never leaves only crowds).
    After 50 failures a new mode is drawn; the mode None returns the image unchanged.
    """
    height, width = sample.image.shape[:2]
    choice = _sample_crop(height, width, sample.boxes, sample.labels, rng)
    if choice is None:
        return sample
    rect, keep = choice
    out = _place(sample, -int(rect[1]), -int(rect[0]), int(rect[3] - rect[1]), int(rect[2] - rect[0]), keep)
    return out._replace(boxes=_clip_to_crop(out.boxes, rect))
