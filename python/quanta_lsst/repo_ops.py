"""Collection work a campaign does in an LSST butler repository: put a step's chain first in the
run's chain, ask which dataset types have datasets in some collections, remove a run's collections
(retention). Each subcommand prints one JSON object; errors are one line on stderr and exit 3."""

import argparse
import json
import sys


def open_butler(repo, writeable):
    from lsst.daf.butler import Butler

    if hasattr(Butler, "from_config"):
        return Butler.from_config(repo, writeable=writeable)
    return Butler(repo, writeable=writeable)


def chain_prepend(repo, parent, child):
    """Puts CHILD first in the CHAINED collection PARENT (created if missing), as
    `butler collection-chain --mode prepend`; a child already in it moves to the front."""
    from lsst.daf.butler import CollectionType

    from lsst.daf.butler.registry import MissingCollectionError

    butler = open_butler(repo, True)
    registry = butler.registry
    try:
        registry.getCollectionType(child)
    except MissingCollectionError:
        return {"parent": parent, "skipped": f"no collection {child}"}
    registry.registerCollection(parent, CollectionType.CHAINED)
    current = [c for c in registry.getCollectionChain(parent) if c != child]
    registry.setCollectionChain(parent, [child] + current)
    return {"parent": parent, "chain": [child] + current}


def dataset_types(repo, collections, types):
    """Which of TYPES have at least one dataset in COLLECTIONS (chains followed)."""
    from lsst.daf.butler import MissingDatasetTypeError

    butler = open_butler(repo, False)
    present = []
    for t in types:
        try:
            refs = butler.registry.queryDatasets(t, collections=collections, findFirst=False)
            if any(True for _ in refs):
                present.append(t)
        except MissingDatasetTypeError:
            continue
        except Exception as e:  # an unknown collection, a type the registry never saw
            if "ollection" in str(e) and "not found" in str(e).lower():
                raise
            continue
    return {"present": present}


def remove(repo, names, dry_run):
    """Removes the collections NAMES (RUN ones with their datasets and files, CHAINED ones), as
    `butler remove-runs` and `butler remove-collections`; refuses, removing nothing, when a chain
    not among NAMES lists one of them."""
    from lsst.daf.butler import CollectionType
    from lsst.daf.butler.registry import MissingCollectionError

    butler = open_butler(repo, True)
    registry = butler.registry
    removing = set(names)
    kinds = {}
    blockers = []
    for n in names:
        try:
            kinds[n] = registry.getCollectionType(n)
        except MissingCollectionError:
            continue
        for p in sorted(registry.getCollectionParentChains(n)):
            if p not in removing:
                blockers.append(f"{n} is in chain {p}; remove it from {p} first, or remove {p} too")
    if blockers or dry_run:
        return {"blockers": blockers, "removed": []}
    runs = [n for n in names if kinds.get(n) is CollectionType.RUN]
    chains = [n for n in names if kinds.get(n) is CollectionType.CHAINED]
    datasets = 0
    for r in runs:
        datasets += sum(1 for _ in registry.queryDatasets(..., collections=r, findFirst=False))
    # Chains first (they list the runs), then the runs with their files.
    for c in chains:
        registry.setCollectionChain(c, [])
    for c in chains:
        registry.removeCollection(c)
    if runs:
        butler.removeRuns(runs, unstore=True)
    return {"blockers": [], "removed": runs + chains, "runs": len(runs), "chains": len(chains), "datasets": datasets}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("chain-prepend")
    c.add_argument("repo")
    c.add_argument("parent")
    c.add_argument("child")
    d = sub.add_parser("dataset-types")
    d.add_argument("repo")
    d.add_argument("--collections", required=True)
    d.add_argument("--types", required=True)
    r = sub.add_parser("remove")
    r.add_argument("repo")
    r.add_argument("names", nargs="+")
    r.add_argument("--dry-run", action="store_true")
    a = p.parse_args()
    try:
        if a.command == "chain-prepend":
            out = chain_prepend(a.repo, a.parent, a.child)
        elif a.command == "dataset-types":
            out = dataset_types(a.repo, a.collections.split(","), a.types.split(","))
        else:
            out = remove(a.repo, a.names, a.dry_run)
    except Exception as e:
        print(f"{type(e).__name__}: {e}".splitlines()[0], file=sys.stderr)
        return 3
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
