"""``python -m engine.kronecker show|train``: print a grown graph, or train it beside its baselines.

The flags of spec fields (``--power``, ``--width``, ``--epochs`` ...) are generated from the specs' declarations;
only the matrix and name flags, which are text formats rather than fields, are written out here.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

from engine.cli import (ArgumentParser, add_spec_arguments, cli_main, count_arg, device_arg, path_arg, writable_dir,
                        writable_file)
from engine.kronecker.graph import KronGraph
from engine.kronecker.spec import (PRESETS, KronSpec, KronTrainSpec, default_names, parse_matrix,
                                   parse_names)
from engine.kronecker.tasks import TASKS
from engine.specs import field_info, fields_of


def add_graph_arguments(parser: argparse.ArgumentParser) -> None:
    """The graph flags shared by ``show`` and ``train``."""
    parser.add_argument("--base", default=json.dumps([list(map(int, r)) for r in PRESETS["example"].matrix]),
                        help='base adjacency, e.g. "[[1,0,0],[1,1,0],[1,1,1]]" or "1 0 0; 1 1 0; 1 1 1"')
    parser.add_argument("--preset", choices=sorted(PRESETS), help="use a preset base graph instead of --base")
    parser.add_argument("--names", default=None, help='layer names: "abc" or "conv,mlp,attn" (default a, b, c...)')
    parser.add_argument("--second", default=None, help="a second base matrix to multiply with (multi-fractal)")
    parser.add_argument("--second-names", default=None, help="layer names of the second graph")
    add_spec_arguments(parser, KronSpec)


def spec_from_args(args: argparse.Namespace) -> KronSpec:
    """The :class:`KronSpec` the graph flags describe (ValueError names the field)."""
    if args.preset:
        p = PRESETS[args.preset]
        base, names = [list(r) for r in p.matrix], p.names
        if args.names:
            names = parse_names(args.names)
    else:
        base = parse_matrix(args.base)
        names = parse_names(args.names) if args.names else default_names(len(base))
    second = second_names = None
    if args.second:
        second = parse_matrix(args.second, "second")
        second_names = (parse_names(args.second_names) if args.second_names
                        else default_names(len(second), offset=len(base)))
    power = vars(args).get("power", field_info(KronSpec, "power").default)
    return KronSpec(base=base, names=names, power=power, second=second, second_names=second_names)


def format_report(graph: KronGraph, max_equations: int = 50) -> str:
    """Labels, equations, streams and stats as ``show`` prints them."""
    lines = []
    n = graph.n_nodes
    shown = min(n, max_equations) if max_equations > 0 else n
    lines.append(f"Labels ({n:,} nodes):")
    lines.append("  " + " ".join(graph.labels[:shown]) + (f" ... ({n - shown:,} more)" if shown < n else ""))
    lines.append("Equations:")
    lines.extend("  " + eq for eq in graph.dataflow(0, shown))
    if shown < n:
        lines.append(f"  ... {n - shown:,} more (use --max-equations 0 for all)")
    lines.append("Streams:")
    for k, s in enumerate(graph.streams()):
        text = s if len(s) <= 400 or max_equations == 0 else s[:400] + f"... ({len(s):,} characters)"
        lines.append(f"  stream {k + 1}: {text}")
    lines.append("Stats:")
    for key, value in graph.stats().as_dict().items():
        lines.append(f"  {key.replace('_', ' ')}: {value:,}")
    return "\n".join(lines)


def format_table(table: Sequence[dict[str, Any]]) -> str:
    """The comparison as a Markdown table (what ``train`` prints)."""
    cols = ("model", "parameters", "layer_applications", "sequential_steps", "width", "test_accuracy",
            "train_time_s")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table:
        cells = [f"{row[c]:.4f}" if c == "test_accuracy" else f"{row[c]:.1f}" if c == "train_time_s"
                 else str(row[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


PROG = "python -m engine.kronecker"


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Kronecker-grown layer graphs. 'show' prints a graph; 'train' trains it "
                    "(see python -m engine.kronecker train --help).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print labels, equations, streams and stats of a graph")
    add_graph_arguments(show)
    show.add_argument("--max-equations", type=count_arg(0, 10**9), default=50,
                      help="equations/labels to print (0 = all)")
    show.add_argument("--json", dest="json_out", default=None, type=path_arg,
                      help="also write the graph as JSON to this file")
    train = sub.add_parser("train", help="train the graph as a network beside its baselines and print the table",
                           description="Train a Kronecker network beside its baselines and print the table.")
    add_graph_arguments(train)
    add_spec_arguments(train, KronTrainSpec)
    train.add_argument("--untied", dest="tied", action="store_false", default=argparse.SUPPRESS,
                       help="train the untied net as the main model (same as --no-tied)")
    train.add_argument("--baselines", default=None,
                       help='comma-separated subset of base,sequential,untied ("" for none; default all)')
    train.add_argument("--out", default=None, type=path_arg,
                       help="write the results (table, curves, summary, checkpoints) here")
    train.add_argument("--device", default=None, type=device_arg, help="cpu, cuda or auto (default)")
    return parser


def _show(args: argparse.Namespace, spec: KronSpec) -> int:
    if args.json_out:
        writable_file("--json", args.json_out)
    graph = spec.build()
    print(f"Graph {spec.describe()}")
    print(format_report(graph, args.max_equations))
    if args.json_out:
        with open(args.json_out, "w") as fh:
            fh.write(graph.to_json())
        print(f"Wrote {args.json_out}")
    return 0


def _train_spec(args: argparse.Namespace, graph: KronSpec) -> KronTrainSpec:
    from engine.device import resolve_device

    given = {f.name: getattr(args, f.name) for f in fields_of(KronTrainSpec) if f.name in vars(args)}
    task = given.get("task", field_info(KronTrainSpec, "task").default)
    given.setdefault("block", TASKS[task].default_block if task in TASKS else None)
    if args.baselines is not None:
        given["baselines"] = args.baselines
    spec = KronTrainSpec(graph=graph, **given)
    resolve_device(args.device)
    return spec


def _train(args: argparse.Namespace, spec: KronTrainSpec) -> int:
    from engine.kronecker import results

    def progress(fraction: float, info: dict | None = None) -> None:
        if info and "test_accuracy" in info:
            print(f"[{fraction:6.1%}] {info['model']:<12} epoch {info['epoch']:>3}  "
                  f"test accuracy {info['test_accuracy']:.4f}", file=sys.stderr, flush=True)

    if args.out:
        out = writable_dir("--out", args.out)
        results.run_to_dir(spec, out, progress=progress, device=args.device)
        table = results.read(out).table
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results.run_to_dir(spec, pathlib.Path(tmp), progress=progress, device=args.device)
            table = results.read(pathlib.Path(tmp)).table
    print(f"graph: {spec.graph.describe()}; task: {spec.task} ({TASKS[spec.task].metric}); block: {spec.block}; "
          f"tied: {spec.tied}; edge weights: {spec.edge_weights}; combine: {spec.combine}; width {spec.width}; "
          f"epochs {spec.epochs}; seed {spec.seed}")
    print(format_table(table))
    if args.out:
        print(f"results written to {args.out}")
    return 0


@cli_main(PROG)
def main(argv: Iterable[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    graph = spec_from_args(args)
    spec = _train_spec(args, graph) if args.command == "train" else graph
    return _train(args, spec) if args.command == "train" else _show(args, spec)


if __name__ == "__main__":
    sys.exit(main())
