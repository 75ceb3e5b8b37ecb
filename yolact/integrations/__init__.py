"""Bridges to other engines, each behind its own extra: :mod:`yolact.integrations.ray` (Ray Data)."""
