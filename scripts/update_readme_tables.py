#!/usr/bin/env python
"""Rewrite the generated sections: the README's speed tables from results/speed/*.csv and its model sizes from the
registry, and the model cards' size tables (``<!-- model-card:begin NAMES ...`` in docs/) from the registry.

python scripts/update_readme_tables.py            # rewrite README.md and docs/
python scripts/update_readme_tables.py --check    # exit 1 if one of them is out of date
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
    update_cards,
    update_section,
)
from hybridvision.fileio import atomic_write  # noqa: E402


def readme_text(text: str, files: list[Path]) -> str:
    """The README with its speed tables (from ``files``) and, where it asks for it, the registry's sizes."""
    new = update_section(text, results_markdown(files))
    if SIZES_BEGIN in new:
        new = update_section(new, sizes_markdown(), SIZES_BEGIN, SIZES_END)
    return update_cards(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "speed")
    parser.add_argument("--docs", type=Path, help="Markdown files with model-card blocks (default: docs/ beside it)")
    parser.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = parser.parse_args(argv)
    files = result_files(args.results)
    stale = []
    docs = args.docs or args.readme.parent / "docs"
    if docs.is_dir():
        import hybridvision.diffusion  # noqa: F401  (registers the denoisers the UNet's model card lists)
    for path in [args.readme, *sorted(docs.rglob("*.md"))]:
        text = path.read_text()
        new = readme_text(text, files) if path == args.readme else update_cards(text)
        if new == text:
            continue
        stale.append(path)
        if not args.check:
            atomic_write(path, lambda tmp, new=new: Path(tmp).write_text(new))
            print(f"rewrote {path}")
    if args.check and stale:
        print(f"out of date: {', '.join(map(str, stale))}; run scripts/update_readme_tables.py", file=sys.stderr)
        return 1
    print(f"{args.readme}: {len(files)} result file(s)" + ("" if stale else ", everything up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
