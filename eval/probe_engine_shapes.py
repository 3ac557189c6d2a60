"""First-use cost of input shapes per inference engine: the exported MiniLM graph on ONNX Runtime and on
OpenVINO, fed SciFact queries one at a time at their own token lengths, pass after pass.

A dynamic-shape engine may prepare kernels per new shape; a server meets a bounded set of shapes (its
length buckets), an in-process benchmark of a few calls meets each one once. Median ms per call per pass.

    python eval/probe_engine_shapes.py --queries 40 --passes 3 --out eval/results/serve/openvino/shapes.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beir/scifact/test")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="eval/results/serve/openvino/shapes.json")
    args = parser.parse_args()

    from retrodistill.data.load import load_dataset
    from retrodistill.inference.onnx import OnnxGraph, feeds, input_names
    from retrodistill.inference.openvino import OpenVinoGraph
    from retrodistill.revision import model_revision
    from retrodistill.students.bi_encoder import BiEncoder

    encoder = BiEncoder(MODEL)
    module, revision = encoder.model[0].auto_model, model_revision(MODEL)
    names = input_names(encoder.model.preprocess(["x"]))
    graphs = {
        "onnxruntime": OnnxGraph(module, names, "last_hidden_state", revision, threads=args.threads),
        "openvino": OpenVinoGraph(module, names, "last_hidden_state", revision, threads=args.threads),
    }
    texts = [q.text for q in load_dataset(args.dataset).judged_queries()][: args.queries]
    inputs = [feeds(encoder.model.preprocess([t]), names) for t in texts]
    result: dict = {
        "queries": len(inputs),
        "distinct_lengths": len({f["input_ids"].shape[1] for f in inputs}),
        "threads": args.threads,
        "median_ms_per_pass": {},
    }
    for name, graph in graphs.items():
        passes = []
        for _ in range(args.passes):
            times = []
            for features in inputs:
                start = time.perf_counter()
                graph.run(features)
                times.append(time.perf_counter() - start)
            passes.append(round(1000 * float(np.median(times)), 2))
        result["median_ms_per_pass"][name] = passes
        print(name, passes, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
