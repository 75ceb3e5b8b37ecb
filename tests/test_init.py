"""``import yolact``: light (names imported on first use), and every public name resolves."""

import subprocess
import sys

import pytest

import yolact


def test_every_public_name_resolves_and_all_lists_exactly_them() -> None:
    assert sorted(yolact.__all__) == sorted(yolact._EXPORTS)
    for name in yolact.__all__:
        assert getattr(yolact, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'Missing'"):
        yolact.Missing  # noqa: B018


def test_importing_the_package_imports_no_torch() -> None:
    code = "import sys, yolact; print(sorted(m for m in ('torch', 'cv2', 'numpy') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "[]"
