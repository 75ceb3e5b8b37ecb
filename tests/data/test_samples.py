import cv2

from yolact.data.samples import sample_images


def test_sample_images_are_bundled_and_readable() -> None:
    paths = sample_images()
    assert len(paths) == 3
    assert [p.name for p in paths] == sorted(p.name for p in paths)
    for p in paths:
        assert p.suffix == ".jpg"
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        assert img is not None, p
        assert img.ndim == 3 and img.shape[2] == 3
        assert max(img.shape[:2]) <= 640
