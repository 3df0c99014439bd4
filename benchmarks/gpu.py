"""A torch model served on a GPU, batching on and off, beside in-process batched ``predict``.

One run, for an MLP (``--features`` in, two hidden layers of ``--hidden``, 10 out; seeded
random weights, exported with ``torch.export`` by ``modelport.save``):

- in-process ``modelport.load(..., device=DEVICE)``: ``predict`` on batches of 1 and of
  ``--batch`` rows, in rows/s (the ceiling: no HTTP, no queue);
- ``modelport serve --device DEVICE`` with batching on (the GPU default wait, 2 ms) and off:
  ``--clients`` concurrent clients each sending one-row V2 requests (binary tensors) for
  ``--seconds``, in rows/s, and each as a ratio to in-process batched ``predict``.

The clients are ``--procs`` processes of asyncio + httpx (no wrk: the GPU machine may not
have it). Run: ``.venv/bin/python benchmarks/gpu.py [--device cuda] [--seconds 10]``; with
no GPU it runs on the CPU (``--device cpu``), which shows the mechanics but not the GPU
figures the README quotes.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from _procs import free_port

import modelport
from modelport.protocol import v2_client as codec


class MLP(torch.nn.Module):
    """Big enough that a GPU call costs about the same for 1 row as for 64."""

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(features, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=-1)


def rows_per_second(predict: object, rows: np.ndarray, seconds: float = 3.0) -> float:
    """In-process ``predict`` calls on ``rows`` for ``seconds``; rows scored per second."""
    call = predict  # a callable taking an array
    call(rows)  # type: ignore[operator]  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call(rows)  # type: ignore[operator]
        n += 1
    return n * len(rows) / (time.perf_counter() - start)


async def _client_loop(url: str, body: bytes, headers: dict[str, str], deadline: float) -> int:
    done = 0
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < deadline:
            answer = await client.post(url, content=body, headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"{answer.status_code}: {answer.text[:200]}")
            done += 1
    return done


def _client_process(args: tuple[str, bytes, dict[str, str], int, float]) -> int:
    url, body, headers, clients, seconds = args

    async def run() -> int:
        deadline = time.monotonic() + seconds
        counts = await asyncio.gather(
            *(_client_loop(url, body, headers, deadline) for _ in range(clients))
        )
        return sum(counts)

    return asyncio.run(run())


def load_test(url: str, row: np.ndarray, clients: int, procs: int, seconds: float) -> float:
    """One-row requests from ``clients`` concurrent clients spread over ``procs``
    processes for ``seconds``; requests (= rows) answered per second."""
    body, headers = codec.encode_request({"x": row}, binary=True, binary_outputs=True)
    per_proc = max(1, clients // procs)
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        started = time.perf_counter()
        counts = pool.map(_client_process, [(url, body, headers, per_proc, seconds)] * procs)
        return sum(counts) / (time.perf_counter() - started)


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(1200):
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server not ready in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device, help="cpu, cuda or cuda:N")
    parser.add_argument("--seconds", type=float, default=10.0, help="load per server setting")
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64, help="in-process batch size")
    parser.add_argument("--clients", type=int, default=64, help="concurrent HTTP clients")
    parser.add_argument("--procs", type=int, default=max(1, min(8, (os.cpu_count() or 2) // 2)))
    args = parser.parse_args()

    torch.manual_seed(0)
    model = MLP(args.features, args.hidden).eval()
    x = np.random.default_rng(0).normal(size=(args.batch, args.features)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmpdir:
        path = Path(tmpdir) / "mlp"
        modelport.save(model, path, input_example={"x": x[:4]})
        loaded = modelport.load(str(path), device=args.device)
        in_process = {n: rows_per_second(loaded.predict, x[:n]) for n in (1, args.batch)}
        gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "no GPU"
        print(f"device {args.device} ({gpu}); torch {torch.__version__}")
        for n, rate in in_process.items():
            print(f"in-process predict, batches of {n:>3}: {rate:>12.0f} rows/s")

        served: dict[str, float] = {}
        for batching in (True, False):
            port = free_port()
            flag = "--batching" if batching else "--no-batching"
            cmd = [
                *(str(Path(sys.executable).parent / "modelport"), "serve", str(path)),
                *("--port", str(port), "--device", args.device, flag, "--no-access-log"),
            ]
            env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
            env["MODELPORT_HOME"] = str(Path(tmpdir) / "home")
            process = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
            try:
                base = f"http://127.0.0.1:{port}"
                wait_ready(f"{base}/v2/models/mlp/ready", process)
                url = f"{base}/v2/models/mlp/infer"
                load_test(url, x[:1], args.procs, args.procs, 2.0)  # warm-up
                label = "on" if batching else "off"
                served[label] = load_test(url, x[:1], args.clients, args.procs, args.seconds)
            finally:
                process.terminate()
                process.wait()
        ceiling = in_process[args.batch]
        print(f"\nserving, {args.clients} clients of one-row requests, {args.seconds:g} s each:")
        for label, rate in served.items():
            print(
                f"  batching {label:<3}: {rate:>10.0f} rows/s = {rate / ceiling:.3f}x in-process "
                f"batched predict ({args.batch} rows), {rate / in_process[1]:.2f}x one-row predict"
            )
        print(f"  batching on / off: {served['on'] / served['off']:.2f}x")


if __name__ == "__main__":
    main()
