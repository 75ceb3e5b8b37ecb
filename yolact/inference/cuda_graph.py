"""Replay the network as a CUDA graph: one capture per input shape, then one launch per call.

At batch 1 a YOLACT network is hundreds of small kernels, and on a fast GPU launching them from Python takes
longer than running them. A CUDA graph records the launches once and replays them with one call, running the
same kernels on the same data, so the outputs are those of the eager network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from yolact.errors import YolactError
from yolact.modeling.yolact import YolactOutput

Network = Callable[[Tensor], YolactOutput]


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    static_input: Tensor
    static_output: YolactOutput


class CudaGraphNetwork:
    """``network`` (a batch [B, 3, S, S] on a CUDA device -> :class:`YolactOutput`) replayed as a CUDA graph.

    The first call with a new input shape, dtype or layout runs the network ``warmup`` times on a side stream (cuDNN
    chooses its algorithms, the model caches its anchors), then captures one run; later calls copy the input into
    the captured buffer and replay. Outputs are copies, so a caller may keep them across calls.

    A capture that fails (an operation that synchronises with the host, say) raises :class:`CudaGraphError` rather
    than falling back: after a failed capture, kernels that launch on CUDA's legacy default stream (torchvision's
    deformable convolution) were seen to give wrong results later in the same process, without an error.
    """

    def __init__(self, network: Network, warmup: int = 3) -> None:
        self.network = network
        self.warmup = warmup
        self._captured: dict[tuple, _Captured] = {}

    def __call__(self, batch: Tensor) -> YolactOutput:
        if batch.device.type != "cuda":
            return self.network(batch)
        key = (tuple(batch.shape), batch.dtype, batch.stride(), batch.device)
        captured = self._captured.get(key)
        if captured is None:
            captured = self._captured[key] = self._capture(batch)
        captured.static_input.copy_(batch)
        captured.graph.replay()
        return YolactOutput(*(t.clone() if t is not None else None for t in captured.static_output))

    def _capture(self, batch: Tensor) -> _Captured:
        static_input = batch.clone(memory_format=torch.preserve_format)
        try:
            with torch.inference_mode():
                side = torch.cuda.Stream(batch.device)
                side.wait_stream(torch.cuda.current_stream(batch.device))
                with torch.cuda.stream(side):
                    for _ in range(self.warmup):
                        self.network(static_input)
                torch.cuda.current_stream(batch.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    static_output = self.network(static_input)
        except RuntimeError as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CudaGraphError(f"capturing the network in a CUDA graph failed ({reason}); run it without one "
                                 "(predict --no-cuda-graph, or cuda_graph=False)") from error
        return _Captured(graph, static_input, static_output)


class CudaGraphError(YolactError):
    """The network could not be captured in a CUDA graph."""
