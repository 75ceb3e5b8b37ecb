"""Load test of ``yolact serve``: N concurrent clients on 127.0.0.1 for T seconds, with dynamic batching on
(--max-batch 8) and off (--max-batch 1), beside ``Predictor.predict_arrays`` on the same images in this process,
all in one run. Prints throughput, p50/p95/p99 latency and the error count of each.

    python benchmarks/serve_load.py --clients 8 --seconds 30
    python benchmarks/serve_load.py --weights yolact_resnet50_54_800000.pth --images ../shared/data/coco128-seg/images

Without --weights the model is yolact_resnet50 with random weights (seed 0) whose class layer is rescaled so that
scores clear the threshold (see predict_latency.py): post-processing then works on a full set of detections, as
with trained weights. The server runs as its own process (`python -m yolact serve`), the clients as threads here;
on a 2-core machine they share the cores with it. Every client is bounded by the deadline and --max-requests.
The network alone is also timed per image at batch 1 and batch 4, to show what batching gains or costs on this
device before any HTTP.
A script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

import yolact
from yolact.checkpoint import save_checkpoint
from yolact.data.images import list_images, read_image
from yolact.evaluation.benchmark import calibrate_class_layer

SHARED = Path(__file__).resolve().parents[2] / "shared"


def percentiles(latencies: list[float]) -> str:
    if not latencies:
        return "no answers"
    p50, p95, p99 = np.percentile(np.asarray(latencies) * 1000, [50, 95, 99])
    return f"p50 {p50:7.0f} ms  p95 {p95:7.0f} ms  p99 {p99:7.0f} ms"


def start_server(weights: Path, max_batch: int, max_wait_ms: float, threads: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "yolact", "serve", "--weights", str(weights), "--device", "cpu", "--port", "0",
               "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms)]
    env = {"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin"}
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    line = server.stderr.readline()
    if "http://" not in line:
        server.kill()
        raise RuntimeError(f"the server did not start: {line}")
    return server, "http://" + line.split("http://", 1)[1].split("/ ", 1)[0]


def load(url: str, bodies: list[bytes], clients: int, seconds: float, max_requests: int
         ) -> tuple[int, list[float], int, float]:
    """(answers, latencies, errors, wall seconds) of ``clients`` threads posting ``bodies`` round-robin."""
    deadline = time.monotonic() + seconds

    def client(n: int) -> tuple[list[float], int]:
        latencies, errors = [], 0
        with httpx.Client(base_url=url, timeout=httpx.Timeout(120.0)) as session:
            for i in range(max_requests):
                if time.monotonic() >= deadline:
                    break
                start = time.perf_counter()
                try:
                    answer = session.post("/v1/predict", content=bodies[(n + i * clients) % len(bodies)],
                                          params={"segmentation": "rle"})
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1
        return latencies, errors

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    wall = time.perf_counter() - start
    latencies = [t for lat, _ in results for t in lat]
    return len(latencies), latencies, sum(e for _, e in results), wall


def network_ms_per_image(predictor: yolact.Predictor, images: list[np.ndarray], batches: tuple[int, ...],
                         rounds: int = 3) -> dict[int, list[float]]:
    """The network alone (no pre- or post-processing) per image at each batch size, in interleaved rounds, so
    that the machine's drift hits every batch size alike."""
    prepared = {b: predictor.prepare([images[i % len(images)] for i in range(b)]) for b in batches}
    times: dict[int, list[float]] = {b: [] for b in batches}
    with torch.inference_mode():
        for b in batches:
            predictor.run_network(prepared[b])  # warm-up
        for _ in range(rounds):
            for b in batches:
                start = time.perf_counter()
                predictor.run_network(prepared[b])
                times[b].append((time.perf_counter() - start) * 1000 / b)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, help="a checkpoint (default: random yolact_resnet50 weights)")
    parser.add_argument("--config", default="yolact_resnet50", help="preset for random weights")
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "coco128-seg" / "images")
    parser.add_argument("--num-images", type=int, default=16)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=10_000, help="per client")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    paths = list_images(args.images)[: args.num_images]
    bodies = [p.read_bytes() for p in paths]
    images = [read_image(p) for p in paths]
    with tempfile.TemporaryDirectory() as folder:
        weights = args.weights
        if weights is None:
            torch.manual_seed(0)
            config = yolact.get_config(args.config)
            model = yolact.build_yolact(config)
            probe = yolact.Predictor.from_model(model, config, device="cpu", optimize=False)
            calibrate_class_layer(model, probe.prepare([images[0]]))
            weights = save_checkpoint(Path(folder) / "random.pth", model.state_dict(), config)
        torch.set_num_threads(args.threads)
        predictor = yolact.load(weights, device="cpu")
        cpu = platform.processor() or platform.machine()
        try:
            cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                       if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        print(f"{predictor.config.name} on {cpu}, {args.threads} threads; {len(images)} coco128 images, "
              f"{args.clients} clients for {args.seconds:.0f} s each")
        predictor.predict_arrays([images[0]])  # warm-up
        latencies, start = [], time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            t = time.perf_counter()
            predictor.predict_arrays([images[len(latencies) % len(images)]])
            latencies.append(time.perf_counter() - t)
        wall = time.perf_counter() - start
        rows = [("predict_arrays, one image a call", len(latencies) / wall, percentiles(latencies), 0)]
        network = network_ms_per_image(predictor, images, (1, min(4, args.max_batch)))
        del predictor
        for name, max_batch in (("serve, --max-batch 1 (no batching)", 1),
                                (f"serve, --max-batch {args.max_batch}", args.max_batch)):
            server, url = start_server(weights, max_batch, args.max_wait_ms, args.threads)
            try:
                load(url, bodies[:2], 2, 3.0, 4)  # warm-up
                answers, lat, errors, wall = load(url, bodies, args.clients, args.seconds, args.max_requests)
                stats = httpx.get(f"{url}/v1/info").json()["stats"]
            finally:
                server.terminate()
                server.wait(timeout=120)
            mean_batch = stats["images"] / max(stats["batches"], 1)
            rows.append((f"{name} (mean batch {mean_batch:.1f})", answers / wall, percentiles(lat), errors))
    print("the network alone, ms per image, interleaved rounds: "
          + "; ".join(f"batch {b}: " + " ".join(f"{t:.0f}" for t in times) for b, times in network.items()))
    base = rows[0][1]
    for name, rate, spread, errors in rows:
        print(f"{name:48s} {rate:6.2f} img/s ({rate / base:4.2f}x)  {spread}  errors {errors}")
    print(f"dynamic batching over one request at a time: {rows[2][1] / rows[1][1]:.2f}x throughput")


if __name__ == "__main__":
    main()
