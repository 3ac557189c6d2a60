"""Probe: does a fitted projection start a ColBERT student better than nn.Linear's random one?

Writes ColBERT folders over all-MiniLM-L6-v2 whose 384 -> 128 projection is random (seed 42, as training
starts), the top 128 principal directions of the backbone's L2-normalised token vectors (uncentred, centred,
or uncentred without the first), and the 384-d identity (the backbone's own tokens, the ceiling of a linear
start). The token vectors come from 256 corpus passages and 256 train queries (their qrels unused). Then::

    retrodistill eval --dataset beir/scifact/test --candidates bm25s --depth 100 \
        --system colbert:OUT/random,label=random --system colbert:OUT/pca,label=pca ...

Recorded in eval/results/colbert/init-probe/.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch

from retrodistill.data.corpus import load_corpus
from retrodistill.data.load import load_dataset
from retrodistill.students.colbert import ColBERT


def token_matrix(model: ColBERT, passages: list[str], queries: list[str]) -> np.ndarray:
    parts = []
    with torch.no_grad():
        for texts, is_query in ((passages, False), (queries, True)):
            for start in range(0, len(texts), 32):
                features = model.tokenize(texts[start : start + 32], is_query)
                hidden = model.encoder(**features).last_hidden_state[features["attention_mask"].bool()]
                parts.append(hidden.double().numpy())
    tokens = np.concatenate(parts)
    return tokens / np.linalg.norm(tokens, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="beir/scifact/test")
    parser.add_argument("--queries", default="beir/scifact/train")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    texts = [d.full_text() for d in load_corpus(args.corpus).values()]
    random.Random(0).shuffle(texts)
    queries = [q.text for q in list(load_dataset(args.queries, split="train").queries.values())[:256]]
    model = ColBERT(dim=128, seed=42, doc_maxlen=160).eval()
    model.save(args.out / "random")
    tokens = token_matrix(model, texts[:256], queries)
    _, singular, vt = np.linalg.svd(tokens, full_matrices=False)
    _, _, vt_centred = np.linalg.svd(tokens - tokens.mean(0), full_matrices=False)
    kept = float((singular[:128] ** 2).sum() / (singular**2).sum())
    print(f"{len(tokens)} token vectors; the top 128 directions keep {kept:.3f} of their energy")
    for name, weight in (("pca", vt[:128]), ("pca-centred", vt_centred[:128]), ("pca-drop1", vt[1:129])):
        model.projection.weight.data.copy_(torch.from_numpy(weight).float())
        model.save(args.out / name)
    identity = ColBERT(dim=384, seed=42, doc_maxlen=160)
    identity.projection.weight.data.copy_(torch.eye(384))
    identity.save(args.out / "identity")


if __name__ == "__main__":
    main()
