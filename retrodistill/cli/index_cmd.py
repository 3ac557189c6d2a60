"""``retrodistill index``: build an index directory, verify it, compare two of them, show a manifest."""

from __future__ import annotations

import argparse
from typing import Any

from retrodistill.cli.executor_args import add_executor_args
from retrodistill.inference.backends import BACKENDS

EPILOG = """\
index types (--index TYPE[,key=value...]):
  flat                      exact inner product (FAISS IndexFlatIP)
  hnsw,M=32,efConstruction=200,efSearch=128
  ivf,nlist=1024,recall_target=0.95  (nlist defaults to ~4*sqrt(n); without nprobe=N the build picks
                            the fewest cells whose recall@10 on probe queries, word spans of the corpus
                            encoded as queries, reaches recall_target, and writes it to the manifest)
  ivfpq,nlist=1024,nprobe=16,m=48   (m = pq_bytes = code bytes per vector; must divide the dimension)
  ivfpq,m=48,refine=fp16,k_factor=32  (+ refine: the PQ shortlist of k * k_factor re-scored with stored
                            flat / fp16 / sq8 vectors, memory-mapped from the file when served)
  numpy                     exact, numpy oracle (index.npy)
  colbert,ncandidates=64,nprobe=16,pool_factor=1
                            a ColBERT model's token vectors (the default for one): each query token's
                            ncandidates nearest tokens (FAISS IVF-SQ8, nlist ~sqrt(tokens); nlist=0: exact
                            scan) pick candidates, then exact MaxSim on the stored float16 tokens;
                            pool_factor=2 keeps about half the tokens
  qdrant,url=http://host:6333,collection=NAME,hnsw_ef=128,exact=false
                            a Qdrant collection (a server or cluster; without url= in-process, exact);
                            the API key is read from $QDRANT_API_KEY (api_key_env=)
  qdrant-colbert,url=...,collection=NAME,pool_factor=1
                            a ColBERT model's token vectors as Qdrant multi-vector points, MaxSim
                            computed by the database

examples:
  retrodistill index build --model sentence-transformers/all-MiniLM-L6-v2 --corpus beir/scifact/test \\
      --out indexes/scifact-minilm-flat
  retrodistill index build --model models/student --corpus corpus.jsonl --index hnsw,M=32 --out indexes/hnsw
  retrodistill index build --model models/colbert --corpus beir/scifact/test --out indexes/scifact-colbert
  retrodistill index compare indexes/hnsw indexes/scifact-minilm-flat --queries beir/scifact/test --k 10
  retrodistill index add indexes/scifact-minilm-flat --corpus new-docs.jsonl
  retrodistill index delete indexes/scifact-minilm-flat --ids 4983,5836
  retrodistill index verify indexes/scifact-minilm-flat
  retrodistill index info indexes/scifact-minilm-flat
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="build, compare and inspect FAISS index directories",
        description="Encode a corpus with a sentence-transformers model (or a ColBERT student's token vectors) "
        "and write an index directory "
        "(index, doc ids, doc store, manifest.json with the size and sha256 of each file); verify one; "
        "compare an approximate index with an exact one.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="index_command", metavar="ACTION", required=True)

    b = actions.add_parser("build", help="encode a corpus and write an index directory (resumable, atomic)")
    b.add_argument(
        "--model", required=True, help="sentence-transformers model id or folder, or a ColBERT student folder"
    )
    b.add_argument("--corpus", required=True, help="ir_datasets id, BEIR folder, or JSONL of {_id, title, text}")
    b.add_argument("--out", "-o", required=True, help="index directory to write")
    b.add_argument(
        "--index",
        help="TYPE[,key=value...]: flat, hnsw, ivf, ivfpq, numpy, qdrant, colbert, qdrant-colbert (default flat; "
        "colbert for a ColBERT model)",
    )
    b.add_argument("--batch-size", type=int, default=64, help="encoder batch size (default 64)")
    b.add_argument("--max-seq-length", type=int, help="truncate passages to this many tokens")
    b.add_argument("--no-normalize", dest="normalize", action="store_false", help="keep raw (unnormalised) vectors")
    b.add_argument("--query-prefix", default="", help="text prepended to queries (e.g. 'query: ')")
    b.add_argument("--passage-prefix", default="", help="text prepended to passages (e.g. 'passage: ')")
    b.add_argument("--shard-size", type=int, default=256, help="documents per resumable encoding shard")
    b.add_argument(
        "--backend",
        choices=list(BACKENDS),
        default="torch",
        help="encoder engine (default torch; onnx, openvino: the same vectors; openvino-bf16: close vectors, "
        "faster where the CPU has bfloat16; onnx-int8: other vectors, recorded in the manifest and used for queries)",
    )
    b.add_argument("--cache-dir", help="embedding cache (default $RETRODISTILL_CACHE or ~/.cache/retrodistill)")
    b.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto", help="FAISS device (default auto)")
    b.add_argument("--force", action="store_true", help="replace an existing index directory")
    add_executor_args(b)
    b.set_defaults(handler=run_build)

    a = actions.add_parser(
        "add", help="encode new documents and append them to an index directory (no rebuild; atomic, resumable)"
    )
    a.add_argument("path", help="index directory to update")
    a.add_argument(
        "--corpus", required=True, help="the new documents: JSONL of {_id, title, text}, BEIR folder or ir_datasets id"
    )
    a.add_argument("--model", help="the model to encode with; must be the index's (default: the manifest's model id)")
    a.add_argument("--batch-size", type=int, default=64, help="encoder batch size (default 64)")
    a.add_argument("--shard-size", type=int, default=256, help="documents per resumable encoding shard")
    a.add_argument("--cache-dir", help="embedding cache (default $RETRODISTILL_CACHE or ~/.cache/retrodistill)")
    a.set_defaults(handler=run_add)

    d = actions.add_parser("delete", help="delete documents from an index directory by doc id (no rebuild; atomic)")
    d.add_argument("path", help="index directory to update")
    ids = d.add_mutually_exclusive_group(required=True)
    ids.add_argument("--ids", help="comma-separated doc ids")
    ids.add_argument("--ids-file", help="a text file with one doc id per line")
    d.set_defaults(handler=run_delete)

    c = actions.add_parser("compare", help="recall@k and query time of index A against index B (e.g. flat)")
    c.add_argument("a", help="index directory to judge (e.g. hnsw)")
    c.add_argument("b", help="reference index directory (e.g. flat) built from the same corpus and model")
    c.add_argument("--queries", required=True, help="ir_datasets id or BEIR folder whose queries to search")
    c.add_argument("--split", default="test", help="qrels split of a BEIR folder (default test)")
    c.add_argument("--k", type=int, default=10, help="recall@k cut-off (default 10)")
    c.add_argument("--repeats", type=int, default=3, help="time the best of this many searches (default 3)")
    c.add_argument("--output", help="also write the result as JSON here")
    c.set_defaults(handler=run_compare)

    v = actions.add_parser(
        "verify", help="check every file of an index directory against its manifest (sizes, sha256, readable)"
    )
    v.add_argument("path", help="index directory")
    v.set_defaults(handler=run_verify)

    i = actions.add_parser("info", help="print an index directory's manifest")
    i.add_argument("path", help="index directory")
    i.set_defaults(handler=run_info)


def run_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from retrodistill.cli.executor_args import executor_from_args
    from retrodistill.errors import ConfigError
    from retrodistill.index import INDEX_TYPES
    from retrodistill.index.corpus import load_corpus
    from retrodistill.index.faiss_base import FaissIndex, import_faiss
    from retrodistill.index.options import check_positive, parse_index_option
    from retrodistill.index.store import build_index_dir, check_model_fits, check_target
    from retrodistill.students.colbert import is_colbert_model

    colbert = is_colbert_model(args.model)
    kind, options = parse_index_option(args.index or ("colbert" if colbert else "flat"))
    check_model_fits(args.model, colbert, kind)
    check_positive(batch_size=args.batch_size, shard_size=args.shard_size, max_seq_length=args.max_seq_length)
    index_cls = INDEX_TYPES.get(kind)
    if issubclass(index_cls, FaissIndex) or getattr(index_cls, "multi_vector", False):
        import_faiss()  # a missing faiss fails before the model loads
    check_target(Path(args.out).absolute(), args.force)
    if colbert and (not args.normalize or args.query_prefix or args.passage_prefix or args.backend != "torch"):
        raise ConfigError(
            "--no-normalize, prefixes and --backend do not apply to a ColBERT model (its markers are built in)"
        )
    corpus = load_corpus(args.corpus)
    encoder: Any
    if colbert:
        from retrodistill.students.colbert_encoder import ColBERTEncoder

        encoder = ColBERTEncoder(args.model, batch_size=args.batch_size, doc_maxlen=args.max_seq_length)
    else:
        from retrodistill.students.bi_encoder import BiEncoder

        encoder = BiEncoder(
            args.model,
            batch_size=args.batch_size,
            normalize=args.normalize,
            max_seq_length=args.max_seq_length,
            query_prefix=args.query_prefix,
            passage_prefix=args.passage_prefix,
            backend=args.backend,
        )
    out = build_index_dir(
        args.out,
        encoder,
        corpus,
        args.corpus,
        index_type=kind,
        index_params=options,
        cache_dir=args.cache_dir,
        shard_size=args.shard_size,
        overwrite=args.force,
        device=args.device,
        show_progress=not args.quiet,
        executor=executor_from_args(args),
    )
    print(f"index directory {out} ({kind}, {len(corpus)} docs)")
    return 0


def run_add(args: argparse.Namespace) -> int:
    from retrodistill.index.corpus import load_corpus
    from retrodistill.index.options import check_positive
    from retrodistill.index.store import load_index_dir
    from retrodistill.index.update import add_documents

    check_positive(batch_size=args.batch_size, shard_size=args.shard_size)
    store = load_index_dir(args.path, device="cpu")
    docs = list(load_corpus(args.corpus).values())
    encoder = store.open_encoder(args.model, batch_size=args.batch_size)
    record = add_documents(
        args.path, encoder, docs, cache_dir=args.cache_dir, shard_size=args.shard_size, show_progress=not args.quiet
    )
    print(_summary(args.path, record))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from pathlib import Path

    from retrodistill.errors import DataError
    from retrodistill.index.update import delete_documents

    if args.ids is not None:
        doc_ids = [d.strip() for d in args.ids.split(",") if d.strip()]
    else:
        try:
            lines = Path(args.ids_file).read_text(encoding="utf-8").splitlines()
            doc_ids = [line.strip() for line in lines if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read the ids file ({exc.__class__.__name__})", args.ids_file) from None
    record = delete_documents(args.path, doc_ids)
    print(_summary(args.path, record))
    return 0


def _summary(path: str, record: dict) -> str:
    from retrodistill.index.manifest import read_manifest

    corpus = read_manifest(path)["corpus"]
    verb = "added" if record["op"] == "add" else "deleted"
    return (
        f"{path}: {verb} {record['documents']} document(s) in {record['seconds']:.1f} s; now {corpus['size']} "
        f"live, {corpus['deleted']} deleted row(s) skipped by search"
    )


def run_compare(args: argparse.Namespace) -> int:
    import json

    from retrodistill.atomic import write_json
    from retrodistill.data.load import load_dataset
    from retrodistill.errors import ConfigError
    from retrodistill.index.compare import compare_indexes
    from retrodistill.index.store import load_index_dir
    from retrodistill.revision import same_weights

    a, b = load_index_dir(args.a), load_index_dir(args.b)
    if a.ids != b.ids:
        raise ConfigError(f"{args.a} and {args.b} index different documents; build both from the same corpus")
    if not same_weights(str(a.manifest["model"]["revision"]), str(b.manifest["model"]["revision"])):
        raise ConfigError(f"{args.a} and {args.b} were built with different models; compare indexes of one model")
    queries = load_dataset(args.queries, args.split).judged_queries()
    vectors = a.open_encoder().encode_queries([q.text for q in queries])
    result = compare_indexes(a.index, b.index, vectors, k=args.k, repeats=args.repeats).as_dict()
    result = {"a": str(args.a), "b": str(args.b), "type_a": a.manifest["index"]["type"], **result}
    result["type_b"] = b.manifest["index"]["type"]
    if args.output:
        write_json(args.output, result)
    print(json.dumps(result, indent=2))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    import time

    from retrodistill.index.store import load_index_dir

    start = time.perf_counter()
    store = load_index_dir(args.path, device="cpu", verify="full")
    seconds = time.perf_counter() - start
    for check in store.checks.values():
        rate = check.bytes / 1e6 / check.seconds if check.seconds > 0 else float("inf")
        print(f"ok  {check.path.name:<12} {check.bytes:>14,d} bytes  sha256 {check.seconds:7.3f} s ({rate:,.0f} MB/s)")
    print(f"{args.path}: every file matches its manifest; opened in {seconds:.2f} s")
    return 0


def run_info(args: argparse.Namespace) -> int:
    import json

    from retrodistill.index.manifest import read_manifest

    print(json.dumps(read_manifest(args.path), indent=2))
    return 0
