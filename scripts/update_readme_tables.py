#!/usr/bin/env python
"""Rewrite the README's generated sections: speed tables from results/*.csv, model sizes from the registry.

python scripts/update_readme_tables.py            # rewrite README.md
python scripts/update_readme_tables.py --check    # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hybridvision.bench.report import (  # noqa: E402
    SIZES_BEGIN,
    SIZES_END,
    result_files,
    results_markdown,
    sizes_markdown,
    update_section,
)
from hybridvision.fileio import atomic_write  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--check", action="store_true", help="only check that the README is up to date")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    files = result_files(args.results)
    new = update_section(text, results_markdown(files))
    if SIZES_BEGIN in new:  # the registry's sizes table, where the README asks for it
        new = update_section(new, sizes_markdown(), SIZES_BEGIN, SIZES_END)
    if args.check:
        if new != text:
            print(f"{args.readme} is out of date; run scripts/update_readme_tables.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        atomic_write(args.readme, lambda tmp: Path(tmp).write_text(new))
    print(f"{args.readme}: {len(files)} result file(s)" + ("" if new != text else ", unchanged"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
