#!/usr/bin/env python3
"""Time ONNX Runtime's MatMulInteger (u8 x s8 -> i32) on square shapes, for comparison
with `cargo bench -p lode-gpu-verify --bench gemm`.

Usage:
    python3 -m venv /tmp/ortvenv && /tmp/ortvenv/bin/pip install onnxruntime onnx numpy
    /tmp/ortvenv/bin/python scripts/bench/onnx_matmulinteger.py [--sizes 512,1024,2048] [--threads 1,2]

Prints, for each size and thread count, the median time and GOPS = 2*n^3 / median.
A is uint8 with zero point 128 (so it represents the same signed range as our int8 A),
B is int8; this is ONNX Runtime's fastest int8 GEMM path (MLAS QGEMM u8s8).
"""
import argparse
import statistics
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper


def build_model(n: int) -> bytes:
    a = helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])
    b = helper.make_tensor_value_info("B", TensorProto.INT8, [n, n])
    y = helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])
    azp = helper.make_tensor("a_zero_point", TensorProto.UINT8, [], [128])
    node = helper.make_node("MatMulInteger", ["A", "B", "a_zero_point"], ["Y"])
    graph = helper.make_graph([node], "mmi", [a, b], [y], initializer=[azp])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def bench(n: int, threads: int, min_time: float) -> tuple[float, float]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(build_model(n), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    a_signed = rng.integers(-128, 128, size=(n, n), dtype=np.int16)
    a = (a_signed + 128).astype(np.uint8)
    b = rng.integers(-128, 128, size=(n, n), dtype=np.int8)
    feeds = {"A": a, "B": b}
    # Correctness spot check against an exact int64 product on a few rows.
    y = sess.run(None, feeds)[0]
    ref = a_signed[:4].astype(np.int64) @ b.astype(np.int64)
    assert np.array_equal(y[:4].astype(np.int64), ref), "ONNX Runtime result mismatch"
    for _ in range(3):
        sess.run(None, feeds)
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 10:
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return med, 2 * n**3 / med / 1e9


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="512,1024,2048")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--min-time", type=float, default=3.0)
    args = p.parse_args()
    print(f"onnxruntime {ort.__version__}")
    for n in [int(s) for s in args.sizes.split(",")]:
        for t in [int(s) for s in args.threads.split(",")]:
            med, gops = bench(n, t, args.min_time)
            print(f"MatMulInteger n={n} threads={t}: median {med * 1e3:.3f} ms, {gops:.1f} GOPS")


if __name__ == "__main__":
    main()
